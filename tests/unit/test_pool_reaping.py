"""A pool's tasks are never stranded: the reaper treats them as it treats the worker Lambda's,
bounded by their deadline, and never hands one to the worker Lambda. A pool's dead letters
wait for an operator (docs/workers.md)."""

import json
from datetime import timedelta

import pytest

from chalicelib.model import Status, utcnow
from chalicelib.queues import TaskMessage
from tests.unit.test_claims import claim, messages_on, queue_job, service_key


@pytest.fixture
def worker(stack):
    return service_key(stack)


def at(service, seconds: float) -> None:
    later = utcnow() + timedelta(seconds=seconds)
    service.clock = lambda: later


def bodies(stack, queue_url: str) -> list[dict]:
    found = stack.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in found.get("Messages", [])]


def dead_letter(stack, task_id: str, task_type: str = "video/render") -> None:
    """A pool message that exhausted its receives, as SQS's redrive leaves it."""
    body = TaskMessage(taskId=task_id, type=task_type, owner="alice").to_json()
    stack.sqs.send_message(QueueUrl=stack.outputs["RemotePoolDeadLetterQueueUrl"], MessageBody=body)


def dead_letters_kept(stack) -> int:
    return messages_on(stack, "RemotePoolDeadLetterQueueUrl")


def test_a_pool_task_whose_remote_worker_died_goes_back_to_its_pool_not_to_the_worker_lambda(
    client, stack, service, worker
):
    job_id = queue_job(client, stack)
    assert claim(client, worker).status_code == 200
    at(service, service.settings.worker_lease_seconds + 1)
    resumed: list[str] = []
    service.reap(resumed=resumed)
    assert resumed == [job_id]
    assert bodies(stack, stack.queue_url) == []  # the worker Lambda's queue
    assert [b["taskId"] for b in bodies(stack, stack.outputs["RemotePoolQueueUrl"])] == [job_id]


def test_a_submitted_pool_task_no_worker_claims_within_its_timeout_is_failed_naming_the_pool(
    client, stack, service
):
    job_id = queue_job(client, stack)
    at(service, service.settings.default_task_timeout_seconds + 60)
    assert service.reap() == [job_id]
    task = service.find(job_id)
    assert task.status is Status.FAILED
    assert "no worker of pool 'remote' claimed it" in task.error


def test_a_pool_task_waiting_within_its_timeout_is_left_to_its_workers(client, stack, service):
    job_id = queue_job(client, stack)
    at(service, service.settings.default_task_timeout_seconds - 60)
    assert service.reap() == []
    assert service.find(job_id).status is Status.SUBMITTED


def reap_now(stack) -> dict:
    from local.events import LambdaContext, scheduled_event

    return stack.app.reaper(scheduled_event("reaper"), LambdaContext("reaper"))


def test_a_pool_dead_letter_waits_for_an_operator_the_reaper_leaves_it_and_its_task(
    client, stack, service
):
    job_id = queue_job(client, stack)
    dead_letter(stack, job_id)
    assert reap_now(stack)["failed"] == []
    assert service.find(job_id).status is Status.SUBMITTED
    assert dead_letters_kept(stack) == 1


def test_a_pool_task_whose_message_died_is_failed_at_its_deadline_and_its_letter_stays(
    client, stack, service
):
    job_id = queue_job(client, stack)
    stack.sqs.purge_queue(QueueUrl=stack.outputs["RemotePoolQueueUrl"])  # SQS moved it away
    dead_letter(stack, job_id)
    at(service, service.settings.default_task_timeout_seconds + 60)
    assert service.reap() == [job_id]
    assert "no worker of pool 'remote' claimed it" in service.find(job_id).error
    assert dead_letters_kept(stack) == 1  # the operator's to redrive (a retry) or discard
