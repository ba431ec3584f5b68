"""POST /jobs/{jobId}/retry: a failed or cancelled job runs again under the same id."""

import dataclasses
import json
from datetime import timedelta

import pytest

from chalicelib.errors import TransitionRefused
from chalicelib.model import RETRYABLE, RUN_FIELDS, Status, Task, utcnow
from chalicelib.reruns import retried
from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit
from tests.unit.tasks import stored_task


def retry(client, job_id: str, user: str = "alice", key: str | None = None):
    headers = auth(user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.http.post(f"/jobs/{job_id}/retry", headers=headers, body="")


def failed_job(service, **fields):
    return stored_task(service, Status.FAILED, input={"seconds": 0, "steps": 1}, **fields)


def test_a_failed_job_is_resubmitted_under_the_same_id(client, service):
    task = failed_job(service)
    response = retry(client, task.id)
    assert response.status_code == 202
    job = response.json_body
    assert (job["jobId"], job["status"], job["retries"]) == (task.id, "submitted", 1)
    assert response.headers["Location"] == f"/jobs/{task.id}"


def test_a_retry_clears_the_earlier_run(client, service):
    task = failed_job(service, attempts=5, result={"partial": True})
    retry(client, task.id)
    stored = service.find(task.id)
    assert (stored.attempts, stored.error, stored.result, stored.completed_at) == (
        0,
        None,
        None,
        None,
    )
    assert stored.version == task.version + 1


# The task's own fields: a retry keeps them. Each field of Task is here or in RUN_FIELDS.
KEPT_BY_A_RETRY = {
    "id",
    "owner",
    "type",
    "created_at",
    "updated_at",
    "expires_at",
    "status",
    "input",
    "source",
    "target",
    "metadata",
    "webhook",
    "version",
    "retries",
    "updated_by",
    "runner",
    "heartbeat_seconds",
    "schedule_id",
    "scheduled_for",
    "pool",
    "priority",
    "concurrency_key",
    "concurrency_limit",
}


def test_every_field_of_a_task_is_either_kept_or_started_afresh_by_a_retry():
    names = {spec.name for spec in dataclasses.fields(Task)}
    assert not KEPT_BY_A_RETRY & RUN_FIELDS
    assert names == KEPT_BY_A_RETRY | RUN_FIELDS, "a new Task field: is it the run's or the task's?"


def test_a_retried_task_carries_no_lease_of_its_last_run(client, service):
    task = failed_job(service, pool="remote", lease_token="old-lease", lease_receipt="r-1")
    retry(client, task.id)
    stored = service.find(task.id)
    assert (stored.lease_token, stored.lease_receipt, stored.lease_until) == (None, None, None)


def test_a_retried_job_runs_to_completion(client, service, stack):
    task = failed_job(service)
    stack.run_stream()
    retry(client, task.id)
    stack.settle()
    job = get(client, f"/jobs/{task.id}").json_body
    assert (job["status"], job["error"], job["retries"]) == ("completed", None, 1)


def test_the_stream_queues_a_retried_job_once(client, service, stack):
    task = failed_job(service)
    stack.run_stream()
    assert stack.queued_messages() == 0
    retry(client, task.id)
    stack.run_stream()
    assert stack.queued_messages() == 1


def test_a_cancelled_job_can_be_retried(client, service, stack):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    client.http.delete(f"/jobs/{job_id}", headers=auth())
    assert retry(client, job_id).status_code == 202
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "completed"


def test_the_history_shows_the_failure_the_retry_and_the_second_run(client, stack):
    job_id = submit(client, sleep_job(steps=2, fail_at=1)).json_body["jobId"]
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "failed"
    retry(client, job_id)
    stack.settle()
    entries = get(client, f"/jobs/{job_id}/events").json_body["events"]
    story = [(e["status"], e["by"]) for e in entries]
    retried_at = story.index(("submitted", "api"), 1)
    assert story[retried_at - 1] == ("failed", "worker")
    assert story[retried_at + 1] == ("started", "worker")
    assert [e["version"] for e in entries] == list(range(1, len(entries) + 1))


@pytest.mark.parametrize("status", sorted(set(Status) - RETRYABLE))
def test_a_job_that_is_not_failed_or_cancelled_is_a_409_and_unchanged(client, service, status):
    task = stored_task(service, status)
    response = retry(client, task.id)
    assert response.status_code == 409
    assert status.value in response.json_body["error"]["message"]
    assert service.find(task.id) == task


def test_bob_cannot_retry_alices_job(client, service):
    task = failed_job(service, owner="alice")
    response = retry(client, task.id, user="bob")
    assert response.status_code == 404
    assert service.find(task.id) == task


def test_a_retry_of_a_missing_job_is_a_404(client):
    assert retry(client, "5b0c5b0c-5b0c-4b0c-8b0c-5b0c5b0c5b0c").status_code == 404


def test_a_malformed_job_id_is_a_400(client):
    assert retry(client, "not~a~job").status_code == 400


def test_the_same_idempotency_key_retries_once(client, service):
    task = failed_job(service)
    first = retry(client, task.id, key="retry-1")
    again = retry(client, task.id, key="retry-1")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.headers["Idempotent-Replayed"] == "false"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert service.find(task.id).version == task.version + 1


def test_replaying_a_retry_whose_job_is_gone_is_a_404(client, service, stack):
    """The key outlives the job (the table's TTL removed it): the replay has nothing to show."""
    task = failed_job(service)
    assert retry(client, task.id, key="retry-gone").status_code == 202
    stack.ddb.delete_item(TableName=stack.outputs["TasksTableName"], Key={"id": {"S": task.id}})
    replay = retry(client, task.id, key="retry-gone")
    assert replay.status_code == 404
    assert replay.json_body["error"]["message"] == f"job {task.id} was not found"


def test_a_key_used_for_another_job_is_a_422_and_changes_nothing(client, service):
    task, other = failed_job(service), failed_job(service)
    retry(client, task.id, key="retry-1")
    response = retry(client, other.id, key="retry-1")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json_body["error"]["message"]
    assert service.find(other.id) == other


def test_a_malformed_idempotency_key_is_a_400_and_changes_nothing(client, service):
    task = failed_job(service)
    response = retry(client, task.id, key="two words")
    assert response.status_code == 400
    assert service.find(task.id) == task


def test_a_retry_written_over_a_stale_read_is_refused(service):
    task = failed_job(service)
    service.store.replace(task, retried(task, utcnow(), "api", 3600))
    with pytest.raises(TransitionRefused):
        service.store.replace(task, retried(task, utcnow(), "api", 3600))
    assert service.find(task.id).retries == 1


def test_a_retried_job_whose_message_is_lost_is_queued_again_by_the_reaper(client, service, stack):
    task = failed_job(service)
    retry(client, task.id)  # the stream is not run: its message never goes out
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert service.reap() == []
    service.clock = utcnow
    stack.run_worker()
    assert service.find(task.id).status is Status.COMPLETED


def test_each_ending_of_a_retried_job_sends_its_own_webhook(client, stack, receiver):
    hook = receiver([200, 200])
    job = {**sleep_job(steps=1, fail_at=1), "webhook": {"url": hook.url}}
    job_id = submit(client, job).json_body["jobId"]
    stack.settle()
    retry(client, job_id)
    stack.settle()
    sent = [json.loads(d.body)["event"] for d in hook.deliveries]
    ids = {d.headers["webhook-id"] for d in hook.deliveries}
    assert (sent, len(ids)) == (["job.failed", "job.failed"], 2)


def test_two_retries_racing_with_one_key_one_wins_the_other_is_told_to_retry(
    client, service, monkeypatch
):
    task, other = failed_job(service), failed_job(service)
    retry(client, task.id, key="raced")
    # The second request read the key before the first stored it.
    monkeypatch.setattr(service.store.keys, "live", lambda *args: None)
    response = retry(client, other.id, key="raced")
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert service.find(other.id) == other


def test_a_cancelled_delayed_job_retried_runs_now(client, stack):
    job = {**sleep_job(), "delaySeconds": 3600}
    job_id = submit(client, job).json_body["jobId"]
    client.http.delete(f"/jobs/{job_id}", headers=auth())
    assert retry(client, job_id).json_body["runAt"] is None
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "completed"


def test_a_job_retried_near_its_expiry_gets_a_full_ttl(client, service):
    """Otherwise the retry answers 202 and the task vanishes before or during its run."""
    soon = int(utcnow().timestamp()) + 5
    task = failed_job(service, expires_at=soon)
    retry(client, task.id)
    ttl = service.settings.task_ttl_seconds
    assert service.find(task.id).expires_at >= int(utcnow().timestamp()) + ttl - 5
