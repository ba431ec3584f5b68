"""A pool's tasks are never stranded: the reaper and the pool's dead-letter queue treat them as
they treat the worker Lambda's, and never hand one to the worker Lambda."""

import json
from datetime import timedelta

import pytest

from chalicelib.bootstrap import container
from chalicelib.model import Status, utcnow
from chalicelib.queues import TaskMessage
from tests.conftest import auth
from tests.unit.test_claims import claim, queue_job, service_key


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
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.outputs["RemotePoolDeadLetterQueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(count) for count in attributes.values())


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


def test_a_pool_dead_letter_fails_its_task_with_the_reason(client, stack, service):
    job_id = queue_job(client, stack)
    dead_letter(stack, job_id)
    assert container().worker.sweep_pool_dead_letters() == [job_id]
    task = service.find(job_id)
    assert task.status is Status.FAILED
    assert "exhausted its deliveries" in task.error and "pool 'remote'" in task.error
    assert bodies(stack, stack.outputs["RemotePoolDeadLetterQueueUrl"]) == []


def test_a_pool_dead_letter_of_a_task_under_a_live_lease_waits_for_that_lease(
    client, stack, service, worker
):
    job_id = queue_job(client, stack)
    assert claim(client, worker).status_code == 200
    dead_letter(stack, job_id)
    assert container().worker.sweep_pool_dead_letters() == []
    assert service.find(job_id).status is Status.STARTED
    assert dead_letters_kept(stack) == 1
    at(service, service.settings.worker_lease_seconds + 1)  # its worker is gone
    stack.sqs.purge_queue(QueueUrl=stack.outputs["RemotePoolDeadLetterQueueUrl"])
    dead_letter(stack, job_id)
    assert container().worker.sweep_pool_dead_letters() == [job_id]
    assert service.find(job_id).status is Status.FAILED


def test_a_pool_dead_letter_of_a_finished_task_is_dropped(client, stack, service):
    job_id = queue_job(client, stack)
    assert client.http.delete(f"/jobs/{job_id}", headers=auth("alice")).status_code in (200, 202)
    dead_letter(stack, job_id)
    assert container().worker.sweep_pool_dead_letters() == []
    assert service.find(job_id).status is Status.CANCELLED
    assert bodies(stack, stack.outputs["RemotePoolDeadLetterQueueUrl"]) == []


def test_the_reaper_fails_the_tasks_of_pool_dead_letters(client, stack, service):
    from local.events import LambdaContext, scheduled_event

    job_id = queue_job(client, stack)
    dead_letter(stack, job_id)
    answer = stack.app.reaper(scheduled_event("reaper"), LambdaContext("reaper"))
    assert answer["failed"] == [job_id]
