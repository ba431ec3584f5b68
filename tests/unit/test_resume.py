"""A task whose worker stopped (a Lambda timeout, a crash, `make dev` stopped) runs again once
its worker's lease has run out: within the lease and a reaper minute, not after the tasks
queue's 720 s visibility timeout."""

import json
from datetime import timedelta

from chalicelib.bootstrap import container
from chalicelib.model import Status, Task, utcnow


def running_task(service, owner: str = "alice") -> Task:
    """A task a worker claimed, then died with (its message stays invisible for 720 s)."""
    task = Task.new(owner=owner, type="demo/sleep", ttl_seconds=3600, input={"seconds": 0})
    service.store.create(task)
    return service.claim(task.id, task.type, 1)


def queued_bodies(stack) -> list[dict]:
    found = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in found.get("Messages", [])]


def at(service, seconds: float) -> None:
    later = utcnow() + timedelta(seconds=seconds)
    service.clock = lambda: later


def test_a_task_whose_worker_died_runs_again_once_its_lease_has_run_out(service, stack):
    task = running_task(service)
    at(service, service.settings.worker_lease_seconds + 1)
    resumed: list[str] = []
    assert service.reap(resumed=resumed) == []
    assert resumed == [task.id]
    assert service.find(task.id).status is Status.RETRYING
    [body] = queued_bodies(stack)
    assert (body["taskId"], body["priorAttempts"]) == (task.id, 1)


def test_a_resumed_task_finishes_on_its_next_attempt(service, stack):
    task = running_task(service)
    at(service, service.settings.worker_lease_seconds + 1)
    service.reap()
    service.clock = utcnow
    [body] = queued_bodies(stack)
    record = {"messageId": "m", "receiptHandle": "", "body": json.dumps(body), "attributes": {}}
    assert container().worker.handle_message(record) is True
    finished = service.find(task.id)
    assert finished.status is Status.COMPLETED and finished.attempts == 2


def test_a_worker_that_writes_within_its_lease_keeps_its_task(service, stack):
    task = running_task(service)
    at(service, service.settings.worker_lease_seconds * 0.75)
    service.report_progress(service.find(task.id), 1, 2, "halfway")  # renews the lease
    at(service, service.settings.worker_lease_seconds + 1)
    resumed: list[str] = []
    service.reap(resumed=resumed)
    assert resumed == []
    assert service.find(task.id).status is Status.PROCESSING


def test_a_task_whose_worker_died_on_its_last_attempt_fails_with_the_reason(service, stack):
    task = Task.new(owner="alice", type="demo/sleep", ttl_seconds=3600, input={"seconds": 0})
    service.store.create(task)
    last = service.settings.max_attempts
    service.claim(task.id, task.type, last)
    at(service, service.settings.worker_lease_seconds + 1)
    service.reap()
    failed = service.find(task.id)
    assert failed.status is Status.FAILED
    assert failed.error.startswith(f"gave up after {last} attempts: its worker stopped")


def test_a_task_silent_past_its_timeout_is_still_failed(service, stack):
    task = running_task(service)
    at(service, service.settings.default_task_timeout_seconds + 60)
    assert service.reap() == [task.id]


def test_a_runner_whose_workers_all_stopped_resumes_every_running_task_at_once(service, stack):
    """`make dev` starting again: its last run's workers are gone, their leases still live."""
    tasks = [running_task(service) for _ in range(2)]
    waiting = Task.new(owner="alice", type="demo/sleep", ttl_seconds=3600)
    service.store.create(waiting)
    assert sorted(service.resume_all_running(by="restart")) == sorted(t.id for t in tasks)
    assert {service.find(t.id).status for t in tasks} == {Status.RETRYING}
    assert service.find(waiting.id).status is Status.SUBMITTED
