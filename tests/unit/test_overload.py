"""Overload delays work, it never fails it: when AWS throttles or is unavailable, every
write route answers 503 with Retry-After and writes nothing; the request sent again passes."""

import json
import uuid
from datetime import timedelta

import pytest

from chalicelib.model import Status, utcnow
from tests.conftest import auth
from tests.unit.aws_faults import (
    ANSWER_LOST,
    EVERY_FAULT,
    answer_lost_after_write,
    aws_fails,
    sqs_refuses_messages,
)
from tests.unit.helpers import sleep_job, submit
from tests.unit.tasks import stored_task


def assert_retry_later(response) -> None:
    assert response.status_code == 503, response.json_body
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("fault", EVERY_FAULT)
def test_a_throttled_submit_is_a_503_with_retry_after_and_stores_nothing(client, stack, fault):
    with aws_fails("dynamodb", "PutItem", fault):
        response = submit(client)
    assert_retry_later(response)
    assert response.json_body["error"]["code"] == "unavailable"
    assert stack.task_count() == 0
    assert submit(client).status_code == 202  # the same request, sent again, passes


def test_a_submit_with_an_idempotency_key_whose_transaction_is_throttled_is_a_503(client, stack):
    headers = {"Idempotency-Key": "k-1"}
    with aws_fails("dynamodb", "TransactWriteItems", "TransactionCanceledException"):
        response = submit(client, headers=headers)
    assert_retry_later(response)
    assert stack.task_count() == 0
    again = submit(client, headers=headers)
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") != "true"


def test_a_throttled_auto_vid_submit_is_a_503_in_the_origins_error_shape(client, stack):
    with aws_fails("dynamodb", "PutItem", "ProvisionedThroughputExceededException"):
        response = client.http.post("/submit", headers=auth("alice"), body=json.dumps(sleep_job()))
    assert_retry_later(response)
    assert set(response.json_body) == {"error", "timestamp"}
    assert "retry" in response.json_body["error"]
    assert stack.task_count() == 0


def test_a_batch_whose_writes_are_throttled_answers_each_job_503_and_stores_none(client, stack):
    body = json.dumps({"jobs": [sleep_job(), sleep_job()]})
    with aws_fails("dynamodb", "TransactWriteItems", "TransactionCanceledException"):
        response = client.http.post("/jobs/batch", headers=auth("alice"), body=body)
    assert response.status_code == 207
    assert [r["status"] for r in response.json_body["results"]] == [503, 503]
    assert int(response.headers["Retry-After"]) > 0
    assert stack.task_count() == 0


def test_a_batch_item_throttled_on_its_own_path_is_a_503_for_that_item_alone(client, stack):
    """A replayed item is read back after the others are written: a throttle there fails
    that item, not the batch whose other items are already stored."""
    replayed = {**sleep_job(), "idempotencyKey": "used"}
    client.http.post("/jobs/batch", headers=auth("alice"), body=json.dumps({"jobs": [replayed]}))
    body = json.dumps({"jobs": [sleep_job(), replayed]})
    with (
        aws_fails("dynamodb", "GetItem", "ThrottlingException"),
        aws_fails("dynamodb", "BatchGetItem", "ThrottlingException"),
    ):
        response = client.http.post("/jobs/batch", headers=auth("alice"), body=body)
    assert response.status_code == 207
    assert [r["status"] for r in response.json_body["results"]] == [202, 503]
    assert stack.task_count() == 2


@pytest.mark.parametrize("fault", EVERY_FAULT)
def test_a_throttled_cancel_is_a_503_and_the_job_runs_on(client, service, fault):
    task = stored_task(service, Status.SUBMITTED)
    with aws_fails("dynamodb", "UpdateItem", fault):
        response = client.http.delete(f"/jobs/{task.id}", headers=auth("alice"))
    assert_retry_later(response)
    assert service.find(task.id).status is Status.SUBMITTED


def test_a_throttled_retry_is_a_503_and_the_job_stays_failed(client, service):
    task = stored_task(service, Status.FAILED)
    with aws_fails("dynamodb", "PutItem", "ThrottlingException"):
        response = client.http.post(f"/jobs/{task.id}/retry", headers=auth("alice"), body="")
    assert_retry_later(response)
    assert service.find(task.id).status is Status.FAILED
    assert client.http.post(f"/jobs/{task.id}/retry", headers=auth("alice")).status_code == 202


def test_a_throttled_read_is_a_503_too(client, service):
    task = stored_task(service, Status.SUBMITTED)
    with aws_fails("dynamodb", "GetItem", "ThrottlingException"):
        response = client.http.get(f"/jobs/{task.id}", headers=auth("alice"))
    assert_retry_later(response)


def test_a_submit_whose_answer_was_lost_is_a_503_that_says_it_may_have_been_made(client):
    with aws_fails("dynamodb", "PutItem", ANSWER_LOST):
        response = submit(client)
    assert_retry_later(response)
    assert "did not hear whether the change was made" in response.json_body["error"]["message"]


def test_a_refused_submit_says_nothing_was_changed(client):
    with aws_fails("dynamodb", "PutItem", "ThrottlingException"):
        response = submit(client)
    assert "nothing was changed" in response.json_body["error"]["message"]


def test_an_error_that_is_not_overload_is_still_a_500(client):
    with aws_fails("dynamodb", "PutItem", "ValidationException"):
        response = submit(client)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


# -- a write applied late: the retry meets the request's own write ---------------------------


def external_job(job_id: str) -> dict:
    return {"type": "media/convert", "runner": "external", "jobId": job_id}


def stored_job(client, job_id: str) -> dict:
    response = client.http.get(f"/jobs/{job_id}", headers=auth("alice"))
    assert response.status_code == 200, response.json_body
    return response.json_body


def test_a_submit_whose_retry_meets_its_own_late_write_is_accepted(client, stack):
    with answer_lost_after_write("dynamodb", "PutItem") as lost:
        response = submit(client)
    assert lost == ["PutItem"]
    assert response.status_code == 202, response.json_body
    assert stack.task_count() == 1
    assert stored_job(client, response.json_body["jobId"])["type"] == "demo/sleep"


def test_a_keyed_submit_whose_retry_meets_its_own_late_write_is_accepted_not_replayed(
    client, stack
):
    headers = {"Idempotency-Key": "k-late"}
    with answer_lost_after_write("dynamodb", "TransactWriteItems") as lost:
        response = submit(client, headers=headers)
    assert lost == ["TransactWriteItems"]
    assert response.status_code == 202, response.json_body
    assert response.headers.get("Idempotent-Replayed") != "true"
    assert stack.task_count() == 1
    replay = submit(client, headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json_body["jobId"] == response.json_body["jobId"]


def test_a_status_write_whose_retry_meets_its_own_late_write_stands(client, stack, service):
    job_id = submit(client).json_body["jobId"]
    task = service.find(job_id)
    with answer_lost_after_write("dynamodb", "UpdateItem") as lost:
        started = service.transition(task, Status.STARTED, by="worker")
    assert lost == ["UpdateItem"]
    stored = service.find(job_id)
    assert (started.version, stored.version, stored.status) == (2, 2, Status.STARTED)


def test_a_batch_whose_retry_meets_its_own_late_write_accepts_every_item(client, stack):
    jobs = [sleep_job(), {**sleep_job(), "idempotencyKey": "b-late"}, sleep_job(steps=2)]
    with answer_lost_after_write("dynamodb", "TransactWriteItems") as lost:
        response = client.http.post(
            "/jobs/batch", headers=auth("alice"), body=json.dumps({"jobs": jobs})
        )
    assert lost == ["TransactWriteItems"]
    results = response.json_body["results"]
    assert [r["status"] for r in results] == [202, 202, 202], results
    assert results[1]["replayed"] is False
    assert stack.task_count() == 3
    for result in results:
        assert stored_job(client, result["job"]["jobId"])["jobId"] == result["job"]["jobId"]


def test_a_submit_with_its_own_job_id_whose_retry_meets_its_own_late_write_is_accepted(
    client, stack
):
    job_id = f"local-{uuid.uuid4()}"
    with answer_lost_after_write("dynamodb", "PutItem") as lost:
        response = submit(client, external_job(job_id))
    assert lost == ["PutItem"]
    assert response.status_code == 202, response.json_body
    assert response.json_body["jobId"] == job_id
    assert stack.task_count() == 1


def test_a_batch_item_with_its_own_job_id_whose_retry_meets_its_own_write_is_accepted(
    client, stack
):
    job_id = f"local-{uuid.uuid4()}"
    body = json.dumps({"jobs": [external_job(job_id), sleep_job()]})
    with answer_lost_after_write("dynamodb", "TransactWriteItems"):
        response = client.http.post("/jobs/batch", headers=auth("alice"), body=body)
    results = response.json_body["results"]
    assert [r["status"] for r in results] == [202, 202], results
    assert results[0]["job"]["jobId"] == job_id


def test_a_job_id_another_task_holds_is_still_409_when_the_answer_was_lost(client, stack):
    """The same owner, type and input under the same id, but another request's task: the
    earlier request's, not this one's own write."""
    job_id = f"local-{uuid.uuid4()}"
    assert submit(client, external_job(job_id)).status_code == 202
    with answer_lost_after_write("dynamodb", "PutItem") as lost:
        response = submit(client, external_job(job_id))
    assert lost == ["PutItem"]
    assert response.status_code == 409, response.json_body
    assert stack.task_count() == 1


def test_a_batch_item_whose_job_id_another_task_holds_is_still_409(client, stack):
    job_id = f"local-{uuid.uuid4()}"
    assert submit(client, external_job(job_id), user="bob").status_code == 202
    body = json.dumps({"jobs": [external_job(job_id), sleep_job()]})
    with answer_lost_after_write("dynamodb", "TransactWriteItems"):
        response = client.http.post("/jobs/batch", headers=auth("alice"), body=body)
    assert [r["status"] for r in response.json_body["results"]] == [409, 202]
    assert stack.task_count() == 2


# -- the worker: a throttled claim is no delivery ------------------------------------------


@pytest.fixture
def no_claim_backoff(monkeypatch):
    """A throttled claim asks again at once (the backoff itself is tested on its own)."""
    from chalicelib import worker

    monkeypatch.setattr(worker, "claim_backoff_seconds", lambda throttled: 0)


def queued_task(client, stack) -> str:
    job_id = submit(client).json_body["jobId"]
    stack.run_stream()
    return job_id


def dead_letters(stack) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_throttled_claims_never_count_as_deliveries(client, stack, service, no_claim_backoff):
    job_id = queued_task(client, stack)
    max_attempts = service.settings.max_attempts
    with aws_fails("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException") as failed:
        for _ in range(max_attempts * 2):
            assert stack.worker_pump.run_once() == 1
    assert len(failed) >= max_attempts * 2
    assert dead_letters(stack) == 0
    assert service.find(job_id).status is Status.SUBMITTED
    stack.settle()
    done = service.find(job_id)
    assert (done.status, done.attempts) == (Status.COMPLETED, 1)


def test_a_throttled_claim_keeps_the_attempts_its_task_already_made(
    client, stack, service, no_claim_backoff
):
    """A task on its second delivery (the first one's worker died) stays on attempt 2."""
    job_id = queued_task(client, stack)
    stack.sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0)  # a lost delivery
    with aws_fails("dynamodb", "UpdateItem", "ThrottlingException", times=1):
        stack.worker_pump.run_once()
    stack.settle()
    assert service.find(job_id).attempts == 2


def test_when_sqs_refuses_the_new_message_too_the_message_is_kept_for_later(
    client, stack, service, no_claim_backoff
):
    job_id = queued_task(client, stack)
    with (
        aws_fails("dynamodb", "UpdateItem", "ThrottlingException"),
        aws_fails("sqs", "SendMessage", "ServiceUnavailable"),
    ):
        assert stack.worker_pump.run_once() == 1
    assert stack.queued_messages() == 1
    assert service.find(job_id).status is Status.SUBMITTED
    stack.settle()
    assert service.find(job_id).status is Status.COMPLETED


def test_a_throttled_claims_backoff_grows_to_a_minute_at_most():
    from chalicelib.worker import MAX_CLAIM_BACKOFF_SECONDS, claim_backoff_seconds

    assert claim_backoff_seconds(0) <= 2
    assert all(claim_backoff_seconds(n) <= MAX_CLAIM_BACKOFF_SECONDS * 1.25 for n in range(30))
    assert claim_backoff_seconds(20) >= MAX_CLAIM_BACKOFF_SECONDS * 0.75


# -- the stream: a throttled record delays its task, never fails it ---------------------------


def exhaust_stream_retries(stack) -> None:
    """Lambda's retries of the stream's batch, then its record set aside (the on-failure
    destination: the stream failures queue)."""
    from infra.package import EVENT_SOURCES

    for _ in range(EVENT_SOURCES["stream"].settings["MaximumRetryAttempts"]):
        assert stack.run_stream() == 0
    assert stack.run_stream() >= 1


def messages_in(stack, queue_url: str) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_a_throttled_stream_record_set_aside_does_not_fail_its_task(client, stack, service):
    job_id = submit(client).json_body["jobId"]
    with aws_fails("sqs", "SendMessageBatch", "ThrottlingException"):
        exhaust_stream_retries(stack)
        assert stack.stream_failures_pump.drain() == 1  # replayed, still throttled
    assert service.find(job_id).status is Status.SUBMITTED
    assert messages_in(stack, stack.stream_failures_url) == 1  # kept, to be replayed again


def test_a_set_aside_record_is_replayed_once_aws_recovers_and_its_task_runs(client, stack, service):
    job_id = submit(client).json_body["jobId"]
    with aws_fails("sqs", "SendMessageBatch", "ProvisionedThroughputExceededException"):
        exhaust_stream_retries(stack)
    assert stack.stream_failures_pump.drain() == 1
    assert messages_in(stack, stack.stream_failures_url) == 0
    stack.settle()
    assert service.find(job_id).status is Status.COMPLETED


def test_a_set_aside_record_that_fails_for_good_still_fails_its_task(client, stack, service):
    job_id = submit(client).json_body["jobId"]
    with aws_fails("sqs", "SendMessageBatch", "ThrottlingException"):
        exhaust_stream_retries(stack)
    with sqs_refuses_messages(lambda body: job_id in body, "InvalidParameterValue"):
        assert stack.stream_failures_pump.drain() == 1
    failed = service.find(job_id)
    assert failed.status is Status.FAILED and "InvalidParameterValue" in failed.error
    assert messages_in(stack, stack.stream_failures_url) == 0


# -- the reaper: a stream that lags never fails a task ----------------------------------------


def past_deadline(service):
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later


def test_a_task_the_lagging_stream_has_not_queued_is_queued_by_the_reaper_not_failed(
    client, stack, service
):
    job_id = submit(client).json_body["jobId"]  # its stream record is not handled yet
    past_deadline(service)
    assert service.reap() == []
    assert service.find(job_id).status is Status.SUBMITTED
    assert stack.queued_messages() == 1


def test_a_queued_again_task_waits_a_whole_timeout_before_the_reaper_looks_again(
    client, stack, service
):
    submit(client)
    past_deadline(service)
    service.reap()
    service.reap()
    assert stack.queued_messages() == 1


def test_a_task_queued_by_the_reaper_and_then_by_the_stream_runs_once(client, stack, service):
    job_id = submit(client).json_body["jobId"]
    past_deadline(service)
    service.reap()
    service.clock = utcnow
    stack.settle()  # the stream catches up: a second message for the same task
    done = service.find(job_id)
    assert (done.status, done.attempts) == (Status.COMPLETED, 1)
    history = client.http.get(f"/jobs/{job_id}/events", headers=auth("alice")).json_body
    assert "failed" not in [event["status"] for event in history["events"]]
