"""Delayed runs: `runAt`/`delaySeconds` store a task `scheduled`; a delayed SQS message (short
delays) or the per-minute sweep of the by_due index (long ones) starts it, never before its time."""

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.bootstrap import container
from chalicelib.errors import TransitionRefused
from chalicelib.model import Status, Task, utcnow
from chalicelib.processors.sdk import processor, registered
from chalicelib.scheduling import SWEEP_GRACE_SECONDS
from chalicelib.service import SWEEP_MARGIN_SECONDS
from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit

SHORT_TIMEOUT_SECONDS = 45

if not registered("test/short-timeout"):

    @processor("test/short-timeout", timeout_seconds=SHORT_TIMEOUT_SECONDS)
    def short_timeout(task, ctx):
        return None


def delayed(client, user: str = "alice", **when) -> dict:
    response = submit(client, {**sleep_job(), **when}, user=user)
    assert response.status_code == 202, response.body
    return response.json_body


def message(job_id: str) -> dict:
    return {
        "messageId": "m1",
        "receiptHandle": "",
        "body": f'{{"taskId": "{job_id}", "type": "demo/sleep", "owner": "alice"}}',
        "attributes": {"ApproximateReceiveCount": "1"},
    }


def queue_counts(stack) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    found = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=names)
    return {
        name.removeprefix("ApproximateNumberOf"): int(found["Attributes"][name]) for name in names
    }


def at(service, moment: datetime) -> None:
    service.clock = lambda: moment


def item(stack, job_id: str) -> dict:
    table = stack.outputs["TasksTableName"]
    return stack.ddb.get_item(TableName=table, Key={"id": {"S": job_id}})["Item"]


# -- submitting ---------------------------------------------------------------------------


def test_a_job_with_delay_seconds_is_stored_scheduled_with_its_run_at(client):
    before = utcnow()
    job = delayed(client, delaySeconds=600)
    assert job["status"] == "scheduled"
    run_at = datetime.fromisoformat(job["runAt"])
    assert before + timedelta(seconds=600) <= run_at <= utcnow() + timedelta(seconds=601)


def test_a_job_with_run_at_keeps_that_time(client):
    when = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    job = delayed(client, runAt=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert job["status"] == "scheduled"
    assert datetime.fromisoformat(job["runAt"]) == when


def test_a_run_at_with_an_offset_is_read_as_that_instant(client):
    when = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    paris = when.astimezone(timezone_plus(2)).isoformat()
    assert datetime.fromisoformat(delayed(client, runAt=paris)["runAt"]) == when


def timezone_plus(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_a_delay_of_zero_runs_now(client):
    job = delayed(client, delaySeconds=0)
    assert job["status"] == "submitted" and job["runAt"] is None


def test_scheduled_jobs_are_listed_by_status_for_their_owner_only(client):
    mine = delayed(client, delaySeconds=600)
    delayed(client, user="bob", delaySeconds=600)
    submit(client)
    listed = get(client, "/jobs?status=scheduled").json_body["jobs"]
    assert [job["jobId"] for job in listed] == [mine["jobId"]]


def test_a_delayed_task_is_kept_a_full_ttl_after_its_run_at(client, service):
    job = delayed(client, delaySeconds=3 * 86400)
    task = service.find(job["jobId"])
    assert task.expires_at == int(task.run_at.timestamp()) + service.settings.task_ttl_seconds


def test_the_same_idempotency_key_and_delay_returns_the_same_scheduled_job(client, stack):
    headers = {"Idempotency-Key": "delayed-1"}
    body = {**sleep_job(), "delaySeconds": 3600}
    first = submit(client, body, headers=headers).json_body
    again = submit(client, body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json_body["jobId"] == first["jobId"]
    assert stack.task_count() == 1


def test_the_same_idempotency_key_with_another_delay_is_422(client):
    headers = {"Idempotency-Key": "delayed-2"}
    submit(client, {**sleep_job(), "delaySeconds": 3600}, headers=headers)
    other = submit(client, {**sleep_job(), "delaySeconds": 60}, headers=headers)
    assert other.status_code == 422


# -- short delays: a delayed SQS message ----------------------------------------------------


def test_a_short_delay_is_queued_at_once_as_a_delayed_message(client, stack):
    delayed(client, delaySeconds=30)
    stack.run_stream()
    assert queue_counts(stack) == {"Messages": 0, "MessagesDelayed": 1}


def test_the_worker_refuses_a_scheduled_task_before_its_run_at(client, service):
    job = delayed(client, delaySeconds=30)
    with pytest.raises(TransitionRefused):
        service.claim(job["jobId"], "demo/sleep", 1)
    assert service.find(job["jobId"]).status is Status.SCHEDULED


def test_the_delayed_message_runs_the_task_once_its_run_at_has_passed(client, service):
    job = delayed(client, delaySeconds=30)
    at(service, utcnow() + timedelta(seconds=31))
    assert container().worker.handle_message(message(job["jobId"])) is True
    task = service.find(job["jobId"])
    assert task.status is Status.COMPLETED
    assert task.started_at >= task.run_at


def test_a_claimed_scheduled_task_leaves_the_sweeps_index(client, service, stack):
    job = delayed(client, delaySeconds=30)
    assert "due_at" in item(stack, job["jobId"])
    at(service, utcnow() + timedelta(seconds=31))
    service.claim(job["jobId"], "demo/sleep", 1)
    assert {"due_shard", "due_at"}.isdisjoint(item(stack, job["jobId"]))


def test_a_claimed_task_is_given_its_own_types_timeout(client, service, stack):
    job = delayed(client, type="test/short-timeout", input={})["jobId"]
    now = utcnow()
    at(service, now)
    service.claim(job, "test/short-timeout", 1)
    deadline = int(item(stack, job)["deadline"]["N"])
    assert deadline == int(now.timestamp()) + SHORT_TIMEOUT_SECONDS


def test_the_sweep_leaves_a_short_delay_to_its_message_for_the_grace_period(client, service):
    job = delayed(client, delaySeconds=30)
    at(service, utcnow() + timedelta(seconds=31))
    assert service.release_due() == []
    at(service, utcnow() + timedelta(seconds=31 + SWEEP_GRACE_SECONDS))
    assert service.release_due() == [job["jobId"]]


# -- long delays: the sweep ----------------------------------------------------------------


def test_a_long_delay_is_not_queued_by_the_stream(client, stack):
    delayed(client, delaySeconds=3600)
    stack.run_stream()
    assert queue_counts(stack) == {"Messages": 0, "MessagesDelayed": 0}


def test_the_sweep_leaves_a_task_not_yet_due(client, service):
    delayed(client, delaySeconds=3600)
    at(service, utcnow() + timedelta(seconds=3500))
    assert service.release_due() == []


def test_the_sweep_submits_a_due_task_and_the_stream_queues_it(client, service, stack):
    job = delayed(client, delaySeconds=3600)
    stack.run_stream()
    at(service, utcnow() + timedelta(seconds=3601))
    assert service.release_due() == [job["jobId"]]
    assert service.find(job["jobId"]).status is Status.SUBMITTED
    assert "due_at" not in item(stack, job["jobId"])
    stack.run_stream()
    assert queue_counts(stack) == {"Messages": 1, "MessagesDelayed": 0}
    stack.run_worker()
    assert service.find(job["jobId"]).status is Status.COMPLETED


def test_a_task_released_twice_is_queued_once(client, service, stack):
    job = delayed(client, delaySeconds=3600)
    at(service, utcnow() + timedelta(seconds=3601))
    assert service.release_due() == [job["jobId"]]
    assert service.release_due() == []
    stack.run_stream()
    assert queue_counts(stack)["Messages"] == 1


def test_the_reaper_handler_releases_due_tasks(client, service, stack):
    from local.events import LambdaContext, scheduled_event

    job = delayed(client, delaySeconds=3600)
    at(service, utcnow() + timedelta(seconds=3601))
    answer = stack.app.reaper(scheduled_event("reaper"), LambdaContext("reaper"))
    expected = {"failed": [], "released": [job["jobId"]], "admitted": [], "resumed": []}
    assert answer == {**expected, "fired": 0}


def test_the_sweep_stops_when_its_time_runs_out_and_the_next_run_takes_the_rest(client, service):
    jobs = [delayed(client, delaySeconds=3600)["jobId"] for _ in range(4)]
    at(service, utcnow() + timedelta(seconds=3601))
    # The clock the sweep reads before each release: two fit, then it is out of time.
    readings = iter([SWEEP_MARGIN_SECONDS + 2, SWEEP_MARGIN_SECONDS + 1, SWEEP_MARGIN_SECONDS - 1])
    first = service.release_due(time_left=lambda: next(readings))
    assert len(first) == 2
    assert sorted(first + service.release_due()) == sorted(jobs)


def test_a_due_task_cancelled_after_the_index_listed_it_does_not_stop_the_sweep(
    client, service, monkeypatch
):
    gone, job = (delayed(client, delaySeconds=3600)["jobId"] for _ in range(2))
    at(service, utcnow() + timedelta(seconds=3601))
    listed = sorted(service.store.due(service.clock()), key=lambda due: due.id != gone)
    assert client.http.delete(f"/jobs/{gone}", headers=auth()).status_code == 200
    # the index (a GSI, read eventually consistent) still lists the cancelled task first
    monkeypatch.setattr(service.store, "due", lambda now, start=0: iter(listed))
    assert service.release_due() == [job]


def test_a_released_task_is_the_schedulers_write_at_the_release_and_leaves_the_sweeps_index(
    client, service, stack
):
    job = delayed(client, delaySeconds=3600)["jobId"]
    now = utcnow() + timedelta(seconds=3601)
    at(service, now)
    assert service.release_due() == [job]
    released = service.find(job)
    assert (released.updated_at, released.updated_by) == (now, "scheduler")
    assert {"due_shard", "due_at"}.isdisjoint(item(stack, job))


def test_a_released_task_is_given_its_own_types_timeout(client, service, stack):
    job = delayed(client, type="test/short-timeout", input={}, delaySeconds=3600)["jobId"]
    now = utcnow() + timedelta(seconds=3601)
    at(service, now)
    assert service.release_due() == [job]
    deadline = int(item(stack, job)["deadline"]["N"])
    assert deadline == int(now.timestamp()) + SHORT_TIMEOUT_SECONDS


def test_the_reaper_with_no_time_left_releases_nothing_and_leaves_it_due(client, service, stack):
    from local.events import LambdaContext, scheduled_event

    job = delayed(client, delaySeconds=3600)
    at(service, utcnow() + timedelta(seconds=3601))
    answer = stack.app.reaper(scheduled_event("reaper"), LambdaContext("reaper", 1))
    assert answer["released"] == []
    assert service.find(job["jobId"]).status is Status.SCHEDULED
    assert service.release_due() == [job["jobId"]]


def test_the_reaper_does_not_fail_a_task_waiting_for_its_run_at(client, service):
    delayed(client, delaySeconds=7200)
    timeout = service.settings.default_task_timeout_seconds
    at(service, utcnow() + timedelta(seconds=timeout + 60))
    assert service.reap() == []


def test_the_reaper_queues_a_released_task_no_worker_picked_up(client, service, stack):
    job = delayed(client, delaySeconds=3600)
    at(service, utcnow() + timedelta(seconds=3601))
    service.release_due()
    timeout = service.settings.default_task_timeout_seconds
    at(service, utcnow() + timedelta(seconds=3601 + timeout + 60))
    assert service.reap() == []
    assert service.find(job["jobId"]).status is Status.SUBMITTED
    assert stack.queued_messages() == 1


# -- cancelling ----------------------------------------------------------------------------


def test_a_scheduled_job_can_be_cancelled_and_never_runs(client, service, stack):
    job = delayed(client, delaySeconds=3600)
    cancelled = client.http.delete(f"/jobs/{job['jobId']}", headers=auth())
    assert cancelled.json_body["status"] == "cancelled"
    assert "due_at" not in item(stack, job["jobId"])
    at(service, utcnow() + timedelta(seconds=3601))
    assert service.release_due() == []
    assert service.find(job["jobId"]).status is Status.CANCELLED


def test_a_cancelled_short_delay_is_not_run_by_its_delayed_message(client, service):
    job = delayed(client, delaySeconds=30)
    client.http.delete(f"/jobs/{job['jobId']}", headers=auth())
    at(service, utcnow() + timedelta(seconds=31))
    assert container().worker.handle_message(message(job["jobId"])) is True
    assert service.find(job["jobId"]).status is Status.CANCELLED


def test_another_user_cannot_cancel_a_scheduled_job(client, service):
    job = delayed(client, delaySeconds=3600)
    response = client.http.delete(f"/jobs/{job['jobId']}", headers=auth("bob"))
    assert response.status_code == 404
    assert service.find(job["jobId"]).status is Status.SCHEDULED


# -- the model -----------------------------------------------------------------------------


def test_a_task_created_with_a_past_run_at_is_submitted():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    task = Task.new(owner="a", type="t", ttl_seconds=60, now=now, run_at=now - timedelta(seconds=1))
    assert task.status is Status.SUBMITTED and task.run_at is None


# -- bad input: a clear 4xx, nothing stored or queued ------------------------------------


@pytest.fixture
def refused(client, stack):
    def check(when: dict, *phrases: str) -> None:
        response = submit(client, {**sleep_job(), **when})
        assert response.status_code == 422, response.body
        message = response.json_body["error"]["message"]
        for phrase in phrases:
            assert phrase in message, message
        stack.run_stream()
        assert stack.task_count() == 0
        assert queue_counts(stack) == {"Messages": 0, "MessagesDelayed": 0}

    return check


def test_a_run_at_in_the_past_is_422(refused):
    past = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused({"runAt": past}, "is in the past", "omit it to run now")


def test_an_unparseable_run_at_is_422(refused):
    refused({"runAt": "next tuesday"}, "runAt")


def test_a_run_at_without_a_timezone_is_422(refused):
    naive = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    refused({"runAt": naive}, "runAt")


def test_a_run_at_beyond_the_ttl_is_422(refused):
    far = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused({"runAt": far}, "at most 7 days ahead")


def test_a_delay_beyond_the_ttl_is_422(refused):
    refused({"delaySeconds": 30 * 86400}, "delaySeconds may be at most 604800")


def test_a_negative_delay_is_422(refused):
    refused({"delaySeconds": -5}, "delaySeconds")


def test_both_run_at_and_delay_seconds_is_422(refused):
    soon = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    refused({"runAt": soon, "delaySeconds": 60}, "either runAt or delaySeconds, not both")


# -- WebSocket pushes --------------------------------------------------------------------------


def test_a_scheduled_job_and_its_start_are_pushed_to_its_owner(client, stack, service):
    from tests.unit.test_realtime import connected, pushes

    realtime = container().realtime
    connected(realtime, "c-sched", "alice")
    job = delayed(client, delaySeconds=3600)
    stack.run_stream()
    at(service, utcnow() + timedelta(seconds=3601))
    service.release_due()
    stack.run_stream()
    seen = [(p["task_id"], p["status"]) for p in pushes("c-sched")]
    # seed 004's view: scheduled and submitted are both its "started" (not yet running)
    assert seen == [(job["jobId"], "started"), (job["jobId"], "started")]
    assert [p["version"] for p in pushes("c-sched")] == [1, 2]
