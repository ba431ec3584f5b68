"""The SQS worker: outcomes, retries, duplicates, cancellation, dead letters, the reaper."""

import json
from datetime import timedelta

from chalicelib import worker as worker_module
from chalicelib.bootstrap import container
from chalicelib.model import Status, Task, utcnow
from chalicelib.processors import TransientError, processor
from chalicelib.processors.sdk import registered
from chalicelib.service import TaskService
from tests.unit.helpers import get, sleep_job, submit

CALLS: dict[str, int] = {}


def _count(task):
    CALLS[task.id] = CALLS.get(task.id, 0) + 1
    return CALLS[task.id]


if not registered("test/flaky"):

    @processor("test/flaky")
    def flaky(task, ctx):
        if _count(task) == 1:
            raise TransientError("dependency throttled")
        return "ok on retry"

    @processor("test/always-transient")
    def always_transient(task, ctx):
        _count(task)
        raise TransientError("still down")

    @processor("test/counted")
    def counted(task, ctx):
        _count(task)
        return "ran"

    @processor("test/crash")
    def crash(task, ctx):
        raise RuntimeError("unexpected bug")

    @processor("test/warns")
    def warns(task, ctx):
        ctx.progress(1, 2, "half")
        ctx.warn("one row was skipped")
        ctx.progress(2, 2, "done")
        return {"rows": 9}

    @processor("test/cancelled-midway")
    def cancelled_midway(task, ctx):
        from chalicelib.bootstrap import container

        _count(task)
        container().service.cancel(task.owner, task.id)  # a DELETE arriving while it runs
        ctx.progress(1, 2, "should notice the cancellation here")
        CALLS[f"{task.id}:after"] = 1
        return "never recorded"


def submitted(service: TaskService, type: str = "test/counted", owner: str = "alice") -> Task:
    task = Task.new(owner=owner, type=type, ttl_seconds=3600)
    service.store.create(task)
    return task


def message(task: Task, message_id: str = "m1", receive_count: int = 1) -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": "",
        "body": json.dumps({"taskId": task.id, "type": task.type, "owner": task.owner}),
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
    }


def test_a_batch_reports_only_the_failed_messages(service):
    flaky_task = submitted(service, "test/flaky")
    good_task = submitted(service, "test/counted")
    result = container().worker.handle_batch(
        [message(flaky_task, "bad"), message(good_task, "good")]
    )
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert service.find(good_task.id).status is Status.COMPLETED
    assert service.find(flaky_task.id).status is Status.RETRYING


def test_a_transient_failure_is_retried_through_redelivery(client, stack, no_backoff):
    job_id = submit(client, {"type": "test/flaky"}).json_body["jobId"]
    stack.run_stream()
    stack.worker_pump.run_once()
    retrying = get(client, f"/jobs/{job_id}").json_body
    assert (retrying["status"], retrying["error"]) == ("retrying", "dependency throttled")
    stack.run_worker()
    final = get(client, f"/jobs/{job_id}").json_body
    assert (final["status"], final["result"]) == ("completed", "ok on retry")
    assert service_task(stack, job_id).attempts == 2


def service_task(stack, job_id):
    from chalicelib.bootstrap import container

    return container().service.find(job_id)


def test_the_last_attempt_fails_the_task(service):
    task = submitted(service, "test/always-transient")
    last = service.settings.max_attempts
    result = container().worker.handle_batch([message(task, receive_count=last)])
    assert result == {"batchItemFailures": []}
    stored = service.find(task.id)
    assert stored.status is Status.FAILED
    assert f"gave up after {last} attempts" in stored.error


def test_an_unexpected_exception_is_retried_then_fails(service):
    task = submitted(service, "test/crash")
    worker = container().worker
    assert worker.handle_batch([message(task)])["batchItemFailures"]
    assert service.find(task.id).status is Status.RETRYING
    worker.handle_batch([message(task, receive_count=service.settings.max_attempts)])
    assert service.find(task.id).status is Status.FAILED


def test_a_permanent_error_fails_at_once(client, stack):
    job_id = submit(client, sleep_job(steps=2, fail_at=1)).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "failed"
    assert "failed at step 1" in job["error"]
    assert stack.queued_messages() == 0


def test_a_duplicate_message_runs_the_task_once(service):
    task = submitted(service)
    worker = container().worker
    worker.handle_batch([message(task, "m1"), message(task, "m2")])
    worker.handle_batch([message(task, "m3")])
    assert CALLS[task.id] == 1
    assert service.find(task.id).status is Status.COMPLETED


def test_a_duplicate_never_moves_a_status_backwards(service):
    task = submitted(service)
    worker = container().worker
    worker.handle_batch([message(task)])
    finished = service.find(task.id)
    worker.handle_batch([message(task, receive_count=2)])
    again = service.find(task.id)
    assert (again.status, again.version) == (finished.status, finished.version)


def test_a_cancelled_task_is_not_started(service):
    task = submitted(service)
    service.cancel("alice", task.id)
    result = container().worker.handle_batch([message(task)])
    assert result == {"batchItemFailures": []}
    assert task.id not in CALLS
    assert service.find(task.id).status is Status.CANCELLED


def test_a_running_task_stops_at_its_next_progress_write_after_cancellation(service):
    task = submitted(service, "test/cancelled-midway")
    # Every report is written here: with coalescing, the next write past the interval.
    c = container()
    worker = worker_module.Worker(
        c.service, c.slots, c.tasks_queue, c.retry_policy, c.rate_buckets, progress_interval=0
    )
    result = worker.handle_batch([message(task)])
    assert result == {"batchItemFailures": []}
    assert f"{task.id}:after" not in CALLS
    stored = service.find(task.id)
    assert stored.status is Status.CANCELLED
    assert stored.result is None


def test_a_warning_ends_completed_with_errors(service):
    task = submitted(service, "test/warns")
    container().worker.handle_batch([message(task)])
    stored = service.find(task.id)
    assert stored.status is Status.COMPLETED_WITH_ERRORS
    assert stored.error == "one row was skipped"
    assert stored.result == {"rows": 9}


def test_a_message_that_is_not_a_task_message_is_dropped(service):
    record = {"messageId": "junk", "receiptHandle": "", "body": "{oops", "attributes": {}}
    assert container().worker.handle_batch([record]) == {"batchItemFailures": []}


def test_a_message_for_an_unknown_task_is_dropped(service):
    ghost = Task.new(owner="alice", type="test/counted", ttl_seconds=60)
    assert container().worker.handle_batch([message(ghost)]) == {"batchItemFailures": []}


def test_a_dead_letter_fails_its_task(stack, service):
    task = submitted(service)
    service.claim(task.id, task.type, attempt=1)
    stack.sqs.send_message(
        QueueUrl=stack.dlq_url,
        MessageBody=json.dumps({"taskId": task.id, "type": task.type, "owner": task.owner}),
    )
    stack.dlq_pump.drain()
    stored = service.find(task.id)
    assert stored.status is Status.FAILED
    assert "exhausted its deliveries" in stored.error


def test_a_dead_letter_for_a_finished_task_changes_nothing(stack, service):
    task = submitted(service)
    container().worker.handle_batch([message(task)])
    before = service.find(task.id)
    stack.sqs.send_message(
        QueueUrl=stack.dlq_url,
        MessageBody=json.dumps({"taskId": task.id, "type": task.type, "owner": task.owner}),
    )
    stack.dlq_pump.drain()
    assert service.find(task.id) == before


def test_a_crashed_workers_task_is_taken_over_when_its_message_returns(service):
    task = submitted(service)
    service.claim(task.id, task.type, attempt=1)  # a worker claimed it, then its Lambda died
    later = utcnow() + timedelta(seconds=service.settings.worker_lease_seconds + 5)
    service.clock = lambda: later
    container().worker.handle_batch([message(task, receive_count=2)])
    assert service.find(task.id).status is Status.COMPLETED


def test_the_reaper_fails_a_task_stuck_past_its_timeout(service):
    stuck = submitted(service)
    service.claim(stuck.id, stuck.type, attempt=1)
    fresh = submitted(service)
    service.claim(fresh.id, fresh.type, attempt=1)
    done = submitted(service)
    container().worker.handle_batch([message(done)])
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    # `fresh` reports progress just before the reaper runs, pushing its deadline out.
    service.report_progress(service.find(fresh.id), 1, 2, "still alive")
    assert service.reap() == [stuck.id]
    assert service.find(stuck.id).status is Status.FAILED
    assert "timed out" in service.find(stuck.id).error
    assert service.find(fresh.id).status is Status.PROCESSING
    assert service.find(done.id).status is Status.COMPLETED


def test_the_reaper_queues_a_task_never_picked_up_instead_of_failing_it(service, stack):
    never_queued = submitted(service)
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert service.reap() == []
    assert service.find(never_queued.id).status is Status.SUBMITTED
    assert stack.queued_messages() == 1
    service.clock = utcnow
    stack.run_worker()
    assert service.find(never_queued.id).status is Status.COMPLETED


def test_the_reaper_handler_runs_from_the_schedule(stack):
    from local.events import LambdaContext, scheduled_event

    assert stack.app.reaper(scheduled_event("reaper"), LambdaContext("reaper")) == {
        "failed": [],
        "released": [],
        "admitted": [],
        "resumed": [],
        "fired": 0,
    }


def test_worker_log_lines_carry_the_lambda_request_id_and_the_task_id(stack, service, capsys):
    from local.events import LambdaContext, sqs_event

    task = submitted(service, "test/crash")
    context = LambdaContext("worker")
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "",
        "Body": json.dumps({"taskId": task.id, "type": task.type, "owner": task.owner}),
        "Attributes": {"ApproximateReceiveCount": str(service.settings.max_attempts)},
    }
    stack.app.worker(sqs_event([message], stack.queue_url), context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"level"' in line]
    assert lines and all(line["request_id"] == context.aws_request_id for line in lines)
    assert all(line["task_id"] == task.id for line in lines)
