"""Claims with leases: remote workers take a pool's jobs over HTTPS; every guard is written
as the attack it stops."""

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib import aws
from chalicelib.edge.service_keys import ServiceKeys
from chalicelib.model import utcnow
from chalicelib.queues import TaskMessage
from tests.conftest import auth, reset_caches
from tests.unit.helpers import get, hold_slot, submit

POOL_JOB = {"type": "video/render", "input": {"frames": 3}, "pool": "remote"}


def service_key(stack, pools=("remote",), owners=("alice", "bob"), name="worker") -> dict:
    table = stack.outputs["RecordsTableName"]
    key, secret = ServiceKeys(table).create(
        name, list(owners), ["jobs:report"], utcnow(), pools=tuple(pools)
    )
    return {"X-API-Key": secret, "Content-Type": "application/json", "key-id": key.id}


@pytest.fixture
def worker(stack):
    return service_key(stack)


def queue_job(client, stack, body=POOL_JOB, user="alice") -> str:
    response = submit(client, body, user=user)
    assert response.status_code == 202, response.json_body
    stack.settle()
    return response.json_body["jobId"]


def claim(client, headers, pool="remote", wait=0):
    return client.http.post(f"/pools/{pool}/claim?waitSeconds={wait}", headers=headers, body="")


def post(client, path, headers, body):
    return client.http.post(path, headers=headers, body=json.dumps(body))


def at(monkeypatch, service, seconds):
    """Move the service's clock: a lease runs out without waiting for it."""
    later = utcnow() + timedelta(seconds=seconds)
    monkeypatch.setattr(service, "clock", lambda: later)


def test_a_claim_answers_the_job_with_a_lease(client, stack, worker):
    job_id = queue_job(client, stack)
    response = claim(client, worker)
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert body["job"]["jobId"] == job_id
    assert body["job"]["status"] == "started"
    assert body["job"]["input"] == {"frames": 3}
    assert body["leaseToken"] and body["leaseSeconds"] > 0
    assert body["attempt"] == 1


def test_a_claim_with_nothing_queued_is_204(client, stack, worker):
    assert claim(client, worker).status_code == 204


def test_a_claimed_job_is_not_claimed_again_while_its_lease_lives(client, stack, worker):
    queue_job(client, stack)
    assert claim(client, worker).status_code == 200
    assert claim(client, worker).status_code == 204


def test_reports_under_the_lease_complete_the_job_once(client, stack, worker):
    job_id = queue_job(client, stack)
    token = claim(client, worker).json_body["leaseToken"]
    progress = {"status": "processing", "progress": {"current": 1, "total": 2}}
    assert (
        post(
            client, f"/jobs/{job_id}/report", worker, {**progress, "leaseToken": token}
        ).status_code
        == 200
    )
    done = {"status": "completed", "result": {"frames": 3}, "leaseToken": token}
    response = post(client, f"/jobs/{job_id}/report", worker, done)
    assert response.status_code == 200, response.json_body
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["result"] == {"frames": 3}
    assert claim(client, worker).status_code == 204


def test_a_heartbeat_with_the_lease_extends_it(client, stack, service, worker, monkeypatch):
    job_id = queue_job(client, stack)
    answer = claim(client, worker).json_body
    lease = answer["leaseSeconds"]
    at(monkeypatch, service, lease - 5)
    beat = post(client, f"/jobs/{job_id}/heartbeat", worker, {"leaseToken": answer["leaseToken"]})
    assert beat.status_code == 200, beat.json_body
    assert beat.json_body["cancelRequested"] is False
    at(monkeypatch, service, lease + 10)  # past the first lease, inside the extended one
    report = {"status": "completed", "leaseToken": answer["leaseToken"]}
    assert post(client, f"/jobs/{job_id}/report", worker, report).status_code == 200


def test_a_heartbeat_brings_a_cancel(client, stack, worker):
    job_id = queue_job(client, stack)
    token = claim(client, worker).json_body["leaseToken"]
    assert client.http.delete(f"/jobs/{job_id}", headers=auth("alice")).status_code in (200, 202)
    beat = post(client, f"/jobs/{job_id}/heartbeat", worker, {"leaseToken": token})
    assert beat.status_code == 200
    assert beat.json_body["cancelRequested"] is True


def test_a_lease_that_ran_out_lets_another_worker_take_the_job_as_a_new_attempt(
    client, stack, service, worker, monkeypatch
):
    job_id = queue_job(client, stack)
    first = claim(client, worker).json_body
    at(monkeypatch, service, first["leaseSeconds"] + 1)
    _make_visible(stack, job_id, service)
    second = claim(client, worker)
    assert second.status_code == 200, second.json_body
    assert second.json_body["attempt"] == 2
    assert second.json_body["leaseToken"] != first["leaseToken"]


def test_a_report_under_an_expired_lease_is_409_and_changes_nothing(
    client, stack, service, worker, monkeypatch
):
    job_id = queue_job(client, stack)
    answer = claim(client, worker).json_body
    at(monkeypatch, service, answer["leaseSeconds"] + 1)
    report = {"status": "completed", "leaseToken": answer["leaseToken"]}
    response = post(client, f"/jobs/{job_id}/report", worker, report)
    assert response.status_code == 409
    assert service.find(job_id).status.value == "started"


def test_the_worker_that_lost_its_lease_cannot_overwrite_the_one_that_took_over(
    client, stack, service, worker, monkeypatch
):
    job_id = queue_job(client, stack)
    first = claim(client, worker).json_body
    at(monkeypatch, service, first["leaseSeconds"] + 1)
    _make_visible(stack, job_id, service)
    second = claim(client, worker).json_body
    stale = {"status": "completed", "result": "stale", "leaseToken": first["leaseToken"]}
    assert post(client, f"/jobs/{job_id}/report", worker, stale).status_code == 409
    beat = post(client, f"/jobs/{job_id}/heartbeat", worker, {"leaseToken": first["leaseToken"]})
    assert beat.status_code == 409
    fresh = {"status": "completed", "result": "fresh", "leaseToken": second["leaseToken"]}
    assert post(client, f"/jobs/{job_id}/report", worker, fresh).status_code == 200
    assert service.find(job_id).result == "fresh"


def test_a_report_on_a_pool_job_without_a_lease_token_is_409(client, stack, worker):
    job_id = queue_job(client, stack)
    claim(client, worker)
    response = post(client, f"/jobs/{job_id}/report", worker, {"status": "completed"})
    assert response.status_code == 409


def test_a_made_up_lease_token_is_409(client, stack, worker):
    job_id = queue_job(client, stack)
    claim(client, worker)
    report = {"status": "completed", "leaseToken": "0" * 32}
    assert post(client, f"/jobs/{job_id}/report", worker, report).status_code == 409


def test_a_release_hands_the_job_back_to_be_claimed_at_once(client, stack, service, worker):
    job_id = queue_job(client, stack)
    token = claim(client, worker).json_body["leaseToken"]
    response = post(client, f"/jobs/{job_id}/release", worker, {"leaseToken": token})
    assert response.status_code == 200, response.json_body
    assert response.json_body["status"] == "retrying"
    again = claim(client, worker)
    assert again.status_code == 200
    assert again.json_body["attempt"] == 2


def test_a_release_under_another_lease_is_409(client, stack, worker):
    job_id = queue_job(client, stack)
    claim(client, worker)
    response = post(client, f"/jobs/{job_id}/release", worker, {"leaseToken": "f" * 32})
    assert response.status_code == 409


def test_after_max_attempts_of_lost_leases_the_job_fails(
    client, stack, service, worker, monkeypatch
):
    monkeypatch.setattr(service, "settings", replace(service.settings, max_attempts=2))
    job_id = queue_job(client, stack)
    seconds = 0
    for _ in range(2):
        answer = claim(client, worker).json_body
        seconds += answer["leaseSeconds"] + 1
        at(monkeypatch, service, seconds)
        _make_visible(stack, job_id, service)
    assert claim(client, worker).status_code == 204
    task = service.find(job_id)
    assert task.status.value == "failed"
    assert "gave up after 2 attempts" in task.error


def test_a_users_jwt_cannot_claim(client, stack):
    queue_job(client, stack)
    response = claim(client, auth("alice"))
    assert response.status_code == 403


def test_a_users_api_key_cannot_claim(client, stack):
    queue_job(client, stack)
    body = {"name": "sneaky", "scopes": ["jobs:report", "jobs:write", "jobs:read"]}
    key = client.http.post("/api-keys", headers=auth("alice"), body=json.dumps(body))
    headers = {"X-API-Key": key.json_body["key"], "Content-Type": "application/json"}
    assert claim(client, headers).status_code == 403


def test_a_service_key_without_the_pool_cannot_claim_it(client, stack):
    queue_job(client, stack)
    producer = service_key(stack, pools=(), name="producer")
    assert claim(client, producer).status_code == 403


def test_a_service_key_for_another_pool_cannot_claim_this_one(client, stack):
    queue_job(client, stack)
    other = service_key(stack, pools=("gpu",), name="gpu-worker")
    assert claim(client, other).status_code == 403


def test_a_claim_on_an_undeclared_pool_is_404(client, stack, worker):
    assert claim(client, worker, pool="nowhere").status_code == 404


def test_a_claim_waiting_longer_than_twenty_seconds_is_422(client, stack, worker):
    assert claim(client, worker, wait=60).status_code == 422


def test_a_service_key_cannot_report_on_a_pool_job_of_an_owner_it_does_not_act_for(
    client, stack, worker
):
    job_id = queue_job(client, stack, user="bob")
    token = claim(client, worker).json_body["leaseToken"]
    alices = service_key(stack, owners=("alice",), name="alices-worker")
    report = {"status": "completed", "leaseToken": token}
    assert post(client, f"/jobs/{job_id}/report", alices, report).status_code == 404


def _make_visible(stack, job_id, service):
    """The pool message reappears when the lease it was hidden for ends (SQS's clock is
    the real one, so the test brings it back itself)."""
    receipt = service.find(job_id).lease_receipt
    stack.sqs.change_message_visibility(
        QueueUrl=stack.outputs["RemotePoolQueueUrl"], ReceiptHandle=receipt, VisibilityTimeout=0
    )


def test_a_pool_job_shows_its_pool_and_the_attempt_its_claim_started(client, stack, worker):
    job_id = queue_job(client, stack)
    before = get(client, f"/jobs/{job_id}").json_body
    assert (before["pool"], before["attempt"]) == ("remote", 0)
    assert claim(client, worker).status_code == 200
    after = get(client, f"/jobs/{job_id}").json_body
    assert (after["pool"], after["attempt"]) == ("remote", 1)


def test_a_service_key_cannot_release_a_pool_job_of_an_owner_it_does_not_act_for(
    client, stack, service, worker
):
    job_id = queue_job(client, stack, user="bob")
    token = claim(client, worker).json_body["leaseToken"]
    alices = service_key(stack, owners=("alice",), name="alices-worker")
    response = post(client, f"/jobs/{job_id}/release", alices, {"leaseToken": token})
    assert response.status_code == 404
    assert service.find(job_id).status.value == "started"


def test_a_released_job_says_its_worker_handed_it_back(client, stack, worker):
    job_id = queue_job(client, stack)
    token = claim(client, worker).json_body["leaseToken"]
    post(client, f"/jobs/{job_id}/release", worker, {"leaseToken": token})
    stack.run_stream()
    assert "handed back by its worker" in get(client, f"/jobs/{job_id}").json_body["error"]
    events = get(client, f"/jobs/{job_id}/events").json_body["events"]
    assert (events[-1]["status"], events[-1]["by"]) == ("retrying", "worker:remote")


def test_a_service_key_cannot_heartbeat_a_pool_job_of_an_owner_it_does_not_act_for(
    client, stack, worker
):
    job_id = queue_job(client, stack, user="bob")
    token = claim(client, worker).json_body["leaseToken"]
    alices = service_key(stack, owners=("alice",), name="alices-worker")
    response = post(client, f"/jobs/{job_id}/heartbeat", alices, {"leaseToken": token})
    assert response.status_code == 404


def test_a_heartbeat_that_loses_a_race_with_the_worker_that_took_over_is_409(
    client, stack, service, worker
):
    job_id = queue_job(client, stack)
    token = claim(client, worker).json_body["leaseToken"]
    ddb = aws.client("dynamodb")
    taken_over: list[str] = []

    def take_over_first(**_) -> None:
        """Between the heartbeat's read and its write, another worker takes the job."""
        if not taken_over:
            taken_over.append("b" * 32)
            stack.ddb.update_item(
                TableName=stack.outputs["TasksTableName"],
                Key={"id": {"S": job_id}},
                UpdateExpression="SET lease_token = :other",
                ExpressionAttributeValues={":other": {"S": taken_over[0]}},
            )

    ddb.meta.events.register("before-call.dynamodb.UpdateItem", take_over_first, "take-over")
    try:
        beat = post(client, f"/jobs/{job_id}/heartbeat", worker, {"leaseToken": token})
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.UpdateItem", unique_id="take-over")
    assert beat.status_code == 409, beat.json_body
    assert service.find(job_id).lease_token == taken_over[0]


def test_a_pool_job_whose_worker_heartbeats_outlives_its_first_lease_at_the_reaper(
    client, stack, service, worker, monkeypatch
):
    job_id = queue_job(client, stack)
    answer = claim(client, worker).json_body
    at(monkeypatch, service, answer["leaseSeconds"] - 5)
    post(client, f"/jobs/{job_id}/heartbeat", worker, {"leaseToken": answer["leaseToken"]})
    at(monkeypatch, service, answer["leaseSeconds"] + 10)
    assert service.reap() == []
    assert service.find(job_id).status.value == "started"


def send_again(stack, job_id: str) -> None:
    """A second message for the job on its pool's queue (a redelivery, a resend)."""
    body = TaskMessage(taskId=job_id, type=POOL_JOB["type"], owner="alice").to_json()
    stack.sqs.send_message(QueueUrl=stack.outputs["RemotePoolQueueUrl"], MessageBody=body)


def messages_on(stack, queue_output: str) -> int:
    """Messages on the stack's queue `queue_output`, in view or in flight."""
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.outputs[queue_output],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(count) for count in attributes.values())


def messages_left(stack) -> int:
    return messages_on(stack, "RemotePoolQueueUrl")


def frozen(monkeypatch, service, moment) -> None:
    monkeypatch.setattr(service, "clock", lambda: moment)


def claimed_into_its_last_second(client, stack, service, worker, monkeypatch) -> tuple[str, dict]:
    """A job claimed, with the service's clock then at the last second of its lease."""
    job_id = queue_job(client, stack)
    claimed_at = utcnow()
    frozen(monkeypatch, service, claimed_at)
    first = claim(client, worker).json_body
    frozen(monkeypatch, service, claimed_at + timedelta(seconds=first["leaseSeconds"]))
    return job_id, first


def test_a_second_message_of_a_job_under_a_live_lease_does_not_hand_it_to_another_worker(
    client, stack, service, worker
):
    job_id = queue_job(client, stack)
    first = claim(client, worker).json_body
    send_again(stack, job_id)
    assert claim(client, worker).status_code == 204
    assert service.find(job_id).lease_token == first["leaseToken"]


def test_in_the_last_second_of_its_lease_a_job_is_not_handed_to_another_worker(
    client, stack, service, worker, monkeypatch
):
    job_id, first = claimed_into_its_last_second(client, stack, service, worker, monkeypatch)
    send_again(stack, job_id)
    assert claim(client, worker).status_code == 204
    assert service.find(job_id).lease_token == first["leaseToken"]


def test_a_report_in_the_last_second_of_its_lease_is_accepted(
    client, stack, service, worker, monkeypatch
):
    job_id, first = claimed_into_its_last_second(client, stack, service, worker, monkeypatch)
    report = {"status": "completed", "leaseToken": first["leaseToken"]}
    assert post(client, f"/jobs/{job_id}/report", worker, report).status_code == 200


def test_a_message_that_names_no_job_is_deleted_and_the_claim_finds_nothing(client, stack, worker):
    stack.sqs.send_message(QueueUrl=stack.outputs["RemotePoolQueueUrl"], MessageBody="{not json")
    assert claim(client, worker).status_code == 204
    assert messages_left(stack) == 0


def test_the_message_of_an_ended_job_is_deleted_not_handed_out(client, stack, worker):
    job_id = queue_job(client, stack)
    assert client.http.delete(f"/jobs/{job_id}", headers=auth("alice")).status_code in (200, 202)
    assert claim(client, worker).status_code == 204
    assert messages_left(stack) == 0


def test_a_claim_records_when_the_job_started_and_was_last_written(
    client, stack, service, worker, monkeypatch
):
    job_id = queue_job(client, stack)
    claimed_at = utcnow() + timedelta(seconds=90)
    frozen(monkeypatch, service, claimed_at)
    claim(client, worker)
    task = service.find(job_id)
    assert (task.started_at, task.updated_at) == (claimed_at, claimed_at)


def test_a_claimed_jobs_history_names_the_pool_whose_worker_took_it(client, stack, worker):
    job_id = queue_job(client, stack)
    claim(client, worker)
    stack.run_stream()
    events = get(client, f"/jobs/{job_id}/events").json_body["events"]
    assert (events[-1]["status"], events[-1]["by"]) == ("started", "worker:remote")


# -- a claim retried with its Idempotency-Key ------------------------------------------------


def keyed_claim(client, headers, key, pool="remote"):
    return claim(client, {**headers, "Idempotency-Key": key}, pool)


def test_a_claim_retried_with_its_key_answers_the_job_and_lease_the_first_attempt_took(
    client, stack, service, worker
):
    queue_job(client, stack)
    queue_job(client, stack)
    first = keyed_claim(client, worker, "claim-1").json_body
    version = service.find(first["job"]["jobId"]).version
    again = keyed_claim(client, worker, "claim-1")
    assert again.status_code == 200, again.json_body
    assert again.json_body["job"]["jobId"] == first["job"]["jobId"]
    assert (again.json_body["leaseToken"], again.json_body["attempt"]) == (first["leaseToken"], 1)
    assert service.find(first["job"]["jobId"]).version == version  # nothing written again


def test_a_claim_retried_after_its_lease_ran_out_gets_the_job_with_a_renewed_lease(
    client, stack, service, worker, monkeypatch
):
    """The answer was lost for longer than a lease: nobody took the job over meanwhile, so
    the retry still gets it, as its first attempt, with a lease from now."""
    job_id = queue_job(client, stack)
    first = keyed_claim(client, worker, "claim-1").json_body
    at(monkeypatch, service, first["leaseSeconds"] + 30)
    again = keyed_claim(client, worker, "claim-1")
    assert again.status_code == 200, again.json_body
    assert (again.json_body["job"]["jobId"], again.json_body["attempt"]) == (job_id, 1)
    report = {"status": "processing", "leaseToken": first["leaseToken"]}
    assert post(client, f"/jobs/{job_id}/report", worker, report).status_code == 200


def test_a_claim_retried_after_another_took_its_job_over_does_not_get_it(
    client, stack, service, worker, monkeypatch
):
    job_id = queue_job(client, stack)
    first = keyed_claim(client, worker, "claim-1").json_body
    at(monkeypatch, service, first["leaseSeconds"] + 1)
    _make_visible(stack, job_id, service)
    assert keyed_claim(client, worker, "claim-2").json_body["attempt"] == 2  # the takeover
    assert keyed_claim(client, worker, "claim-1").status_code == 204


def test_a_claim_retried_with_its_key_leaves_the_other_jobs_to_new_claims(client, stack, worker):
    ids = {queue_job(client, stack), queue_job(client, stack)}
    first = keyed_claim(client, worker, "claim-1").json_body["job"]["jobId"]
    keyed_claim(client, worker, "claim-1")
    second = keyed_claim(client, worker, "claim-2").json_body["job"]["jobId"]
    assert {first, second} == ids


def test_two_attempts_of_one_claim_at_once_take_one_job_between_them(
    client, stack, service, worker
):
    """The second attempt passed its look-up before the first took a job, then received
    another job's message: its take finds the key spent and answers the first's job."""
    from chalicelib import claims

    first_id = queue_job(client, stack)
    first = keyed_claim(client, worker, "claim-1").json_body
    assert first["job"]["jobId"] == first_id
    other_id = queue_job(client, stack)
    queue_url = stack.outputs["RemotePoolQueueUrl"]
    [message] = stack.sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=60)["Messages"]
    key = claims.ClaimKey(f"claim:{worker['key-id']}", "claim-1")
    answer = claims._take(service, "remote", queue_url, message, 60, key)
    assert (answer.task.id, answer.lease_token) == (first_id, first["leaseToken"])
    assert service.find(other_id).status.value == "submitted"  # untouched, and its message
    assert keyed_claim(client, worker, "claim-2").json_body["job"]["jobId"] == other_id  # back


def test_a_claim_key_is_its_service_keys_own(client, stack, worker):
    ids = {queue_job(client, stack), queue_job(client, stack)}
    mine = keyed_claim(client, worker, "claim-1").json_body
    other_worker = service_key(stack, name="another-worker")
    theirs = keyed_claim(client, other_worker, "claim-1")
    assert theirs.status_code == 200, theirs.json_body
    assert theirs.json_body["leaseToken"] != mine["leaseToken"]
    assert {mine["job"]["jobId"], theirs.json_body["job"]["jobId"]} == ids


def test_a_key_whose_claim_has_ended_takes_the_next_job(client, stack, worker):
    first_id = queue_job(client, stack)
    first = keyed_claim(client, worker, "claim-1").json_body
    done = {"status": "completed", "leaseToken": first["leaseToken"]}
    assert post(client, f"/jobs/{first_id}/report", worker, done).status_code == 200
    next_id = queue_job(client, stack)
    again = keyed_claim(client, worker, "claim-1")
    assert again.status_code == 200, again.json_body
    assert again.json_body["job"]["jobId"] == next_id


def test_a_claim_key_that_is_not_printable_ascii_is_400_and_takes_nothing(
    client, stack, service, worker
):
    job_id = queue_job(client, stack)
    response = keyed_claim(client, worker, "a key with spaces")
    assert response.status_code == 400
    assert "Idempotency-Key" in str(response.json_body)
    assert service.find(job_id).status.value == "submitted"


# -- a pool's limit: its backlog waits in the table, in priority order -------------------------


def limits(monkeypatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()


def finish(client, worker, answer) -> None:
    done = {"status": "completed", "leaseToken": answer["leaseToken"]}
    path = f"/jobs/{answer['job']['jobId']}/report"
    assert post(client, path, worker, done).status_code == 200


def test_a_pool_job_admitted_from_a_line_goes_to_its_pool_not_to_the_worker_lambda(
    client, stack, service, worker, monkeypatch
):
    limits(monkeypatch, MAX_RUNNING_PER_OWNER="0", POOL_CONCURRENCY="remote=1")
    queue_job(client, stack)
    second = queue_job(client, stack)
    finish(client, worker, claim(client, worker).json_body)
    stack.settle()  # the first's end frees the pool's slot: the second is admitted
    assert service.find(second).status.value == "submitted"  # not run by the worker Lambda
    answer = claim(client, worker)
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["job"]["jobId"] == second


def test_an_owner_limit_leaves_pool_jobs_to_their_workers_pace(client, stack, monkeypatch):
    limits(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    ids = [queue_job(client, stack) for _ in range(3)]
    assert [get(client, f"/jobs/{i}").json_body["waitingFor"] for i in ids] == [None] * 3


def test_a_pools_limit_keeps_its_backlog_in_the_table_saying_why(
    client, stack, worker, monkeypatch
):
    limits(monkeypatch, MAX_RUNNING_PER_OWNER="0", POOL_CONCURRENCY="remote=1")
    queue_job(client, stack)
    waiting = queue_job(client, stack)
    assert get(client, f"/jobs/{waiting}").json_body["waitingFor"] == "pool limit"
    assert claim(client, worker).status_code == 200
    assert claim(client, worker).status_code == 204  # the pool's queue holds one job only


def test_a_pool_slot_whose_release_was_lost_is_given_back_by_the_reaper(
    client, stack, worker, monkeypatch
):
    """The listed line is read back as the pool's own gate, with the pool's limit, so the
    reaper's minute checks its holders: one that has gone frees its slot for the backlog."""
    from chalicelib.bootstrap import container
    from chalicelib.fairness import Waiting

    limits(monkeypatch, MAX_RUNNING_PER_OWNER="0", POOL_CONCURRENCY="remote=1")
    slots = container().slots
    (gate,) = slots.gates(Waiting("gone", "video/render", "alice", pool="remote"))
    hold_slot(stack, gate, "gone")  # a job that ended while its release was lost
    waiting = queue_job(client, stack)
    assert get(client, f"/jobs/{waiting}").json_body["waitingFor"] == "pool limit"
    assert container().service.admit_parked() == [waiting]
    assert claim(client, worker).json_body["job"]["jobId"] == waiting


def test_a_high_priority_pool_job_submitted_behind_low_ones_is_claimed_next(
    client, stack, worker, monkeypatch
):
    limits(monkeypatch, MAX_RUNNING_PER_OWNER="0", POOL_CONCURRENCY="remote=1")
    low = {**POOL_JOB, "priority": 1}
    running = queue_job(client, stack, low)
    for _ in range(3):
        queue_job(client, stack, low)
    urgent = queue_job(client, stack, {**POOL_JOB, "priority": 9})
    first = claim(client, worker).json_body
    assert first["job"]["jobId"] == running
    finish(client, worker, first)
    stack.settle()
    assert claim(client, worker).json_body["job"]["jobId"] == urgent


def test_a_pool_limit_on_a_pool_not_declared_stops_the_start(monkeypatch):
    from chalicelib.settings import ConfigurationError, get_settings

    limits(monkeypatch, WORKER_POOLS="remote", POOL_CONCURRENCY="gpu=2")
    with pytest.raises(ConfigurationError, match="POOL_CONCURRENCY: 'gpu' is not a pool"):
        get_settings()


def test_a_pool_job_handed_back_keeps_its_pool_slot_until_it_ends(
    client, stack, worker, monkeypatch
):
    limits(monkeypatch, MAX_RUNNING_PER_OWNER="0", POOL_CONCURRENCY="remote=1")
    running = queue_job(client, stack)
    waiting = queue_job(client, stack)
    answer = claim(client, worker).json_body
    release = {"leaseToken": answer["leaseToken"]}
    assert post(client, f"/jobs/{running}/release", worker, release).status_code == 200
    stack.settle()
    assert get(client, f"/jobs/{waiting}").json_body["waitingFor"] == "pool limit"
    again = claim(client, worker).json_body
    assert again["job"]["jobId"] == running
    finish(client, worker, again)
    stack.settle()
    assert claim(client, worker).json_body["job"]["jobId"] == waiting


def test_a_claim_whose_take_was_applied_but_answered_late_still_gets_its_job(
    client, stack, service
):
    """Under load DynamoDB's answer to the take is lost and the SDK sends it again: the
    retry meets the take's own write and the claim answers the job (not 204 with the job
    held for nobody until its lease runs out)."""
    from chalicelib import claims
    from tests.unit.aws_faults import answer_lost_after_write

    job_id = queue_job(client, stack)
    with answer_lost_after_write("dynamodb", "UpdateItem") as lost:
        claimed = claims.claim(service, "remote", 0)  # the take is the claim's one UpdateItem
    assert lost == ["UpdateItem"]
    assert claimed is not None, "the job is held for nobody"
    assert (claimed.task.id, claimed.task.attempts) == (job_id, 1)
    assert service.find(job_id).lease_token == claimed.lease_token


def test_a_hand_back_whose_answer_was_lost_stands_with_its_lease_cleared(client, stack, service):
    """A write that removes attributes (the lease's) is still found as its own on a retry."""
    from chalicelib import claims
    from tests.unit.aws_faults import answer_lost_after_write

    job_id = queue_job(client, stack)
    claimed = claims.claim(service, "remote", 0)
    with answer_lost_after_write("dynamodb", "UpdateItem") as lost:
        back = claims.release(service, job_id, claimed.lease_token, lambda owner: True)
    assert lost == ["UpdateItem"]
    assert (back.status.value, back.lease_token) == ("retrying", None)


def test_a_claim_retried_after_its_job_expired_claims_anew(client, stack, service, worker):
    job_id = queue_job(client, stack)
    keyed_claim(client, worker, "claim-1")
    stack.ddb.delete_item(
        TableName=service.settings.tasks_table, Key={"id": {"S": job_id}}
    )  # gone with its TTL
    assert keyed_claim(client, worker, "claim-1").status_code == 204
