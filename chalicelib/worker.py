"""The SQS worker: claim a task, run its processor, record the outcome.

Each message is `{"taskId", "type"}`. The result of one message is one of:
  done   - delete it (finished, failed for good, duplicate, cancelled, unknown)
  retry  - keep it: the task is `retrying` and SQS redelivers after a backoff
Duplicates are harmless because every write is guarded: a second copy of a
message cannot claim a task that is finished or held by a live lease.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, jsonsafe, objects
from chalicelib.errors import TaskNotFound, TransitionRefused
from chalicelib.fairness import RATE_REASON, Blocked, Slots, TokenBuckets, Waiting, defer_seconds
from chalicelib.flow import first_match
from chalicelib.model import Output, Progress, Status, Task, utcnow
from chalicelib.observability import emit_metric, sqs_partial, task_context
from chalicelib.processors import Context, PermanentError, get_processor
from chalicelib.processors.sdk import is_permanent, is_transient_failure
from chalicelib.queues import RetryPolicy, TaskMessage, TaskQueue
from chalicelib.service import TaskService

log = logging.getLogger("taskstatus_svc.worker")

MAX_SQS_DELAY_SECONDS = 900  # a message's longest DelaySeconds
# A throttled claim asks again within a minute: throttling passes in seconds, and the wait
# delays the task, it costs it nothing (no attempt, no delivery counted).
MAX_CLAIM_BACKOFF_SECONDS = 60
MAX_SOURCE_BYTES = 100 * 1024 * 1024  # read whole into the worker's memory (1 GB)
# At most one progress write per task per this many seconds (TaskReporter).
PROGRESS_MIN_INTERVAL_SECONDS = 1.0


class TaskCancelled(Exception):
    pass


class LeaseLost(Exception):
    pass


def is_transient(exc: BaseException) -> bool:
    return is_transient_failure(exc) or aws.is_transient(exc)


def claim_backoff_seconds(throttled: int) -> int:
    """How long a task whose claim AWS throttled waits before it asks again (with jitter)."""
    base = min(MAX_CLAIM_BACKOFF_SECONDS, 2 ** min(throttled, 10))
    return max(1, round(base * random.uniform(0.75, 1.25)))


class TaskReporter:
    """The worker side of a processor's context: guarded writes that track the latest version.

    Progress is coalesced: at most one progress write per `min_interval` seconds (the claim
    counts as a write). A report inside the interval is kept and goes out with the next
    write: a later report past the interval, a warning, or the final transition, so the
    final state always carries the latest progress. A processor that reports often costs one
    write per interval, not one per report; a cancellation is seen at the next write.
    """

    def __init__(
        self,
        service: TaskService,
        task: Task,
        min_interval: float = PROGRESS_MIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.task = task
        self.min_interval = min_interval
        self.clock = clock
        self._written_at = clock()
        self._pending: Progress | None = None

    def progress(self, current: int, total: int, message: str) -> None:
        self._pending = Progress(current, max(total, current), message)
        if self.clock() - self._written_at >= self.min_interval:
            self._write(Status.PROCESSING)

    def warn(self, message: str) -> None:
        self._write(Status.ERROR, error=message)

    def read_object(self, bucket: str, key: str) -> bytes:
        try:
            return objects.read(bucket, key, MAX_SOURCE_BYTES)
        except objects.ObjectTooLarge as exc:
            raise PermanentError(
                f"{exc}; a processor reads sources of at most {MAX_SOURCE_BYTES} bytes"
            ) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NoSuchBucket"}:
                raise PermanentError(f"source object s3://{bucket}/{key} does not exist") from None
            raise

    def write_object(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        objects.write(bucket, key, data, content_type)

    def finish(self, status: Status, **changes: Any) -> None:
        self._write(status, **changes)

    def _write(self, status: Status, **changes: Any) -> None:
        """A guarded transition that carries the latest unwritten progress."""
        if self._pending is not None:
            changes.setdefault("progress", self._pending)
        try:
            self.task = self.service.transition(self.task, status, by="worker", **changes)
            self._pending = None
            self._written_at = self.clock()
        except TransitionRefused:
            current = self.service.find(self.task.id)
            if current is None or current.status is Status.CANCELLED:
                raise TaskCancelled(self.task.id) from None
            raise LeaseLost(self.task.id) from None


def _frees_its_slot(refused: Exception, took_slot: bool) -> bool:
    """Whether a task the worker could not claim gives its slot back: the slot was taken
    for this message alone, or the task ended or is gone (a parked task cancelled before
    its turn). A live lease (a duplicate message of a running task) keeps it."""
    if took_slot or isinstance(refused, TaskNotFound):
        return True
    current = getattr(refused, "current", None)
    return current is not None and Status(current).is_terminal


class Worker:
    def __init__(
        self,
        service: TaskService,
        slots: Slots,
        queue: TaskQueue,
        retry: RetryPolicy,
        buckets: TokenBuckets,
        progress_interval: float = PROGRESS_MIN_INTERVAL_SECONDS,
    ) -> None:
        """`retry` is the container's policy (MAX_ATTEMPTS runs, the backoff between them);
        `buckets` its token buckets (TYPE_RATE's here)."""
        self.service = service
        self.slots = slots
        self.queue = queue
        self.retry = retry
        self.progress_interval = progress_interval
        self.buckets = buckets  # TYPE_RATE's

    def handle_batch(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Process an SQS batch; return the failed message ids for ReportBatchItemFailures."""
        return sqs_partial(records, self.handle_message)

    def handle_message(self, record: dict[str, Any]) -> bool:
        try:
            message = TaskMessage.from_json(record["body"])
        except ValueError:
            log.error("dropping a message that is not a task message: %.200s", record["body"])
            return True
        receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        attempt = message.priorAttempts + receives
        with task_context(message.taskId):
            handle = record.get("receiptHandle")
            try:
                took_slot = self._take_slot(message)
                rate_wait = self._rate_wait(message)
            except Blocked as blocked:
                if self._park_due_run(message):
                    return True
                return self._defer(message, attempt - 1, blocked.gate.reason)
            except Exception as exc:
                if not aws.is_transient(exc):
                    raise
                return self._claim_later(message, attempt - 1, handle, exc)
            if rate_wait:
                return self._defer(message, attempt - 1, RATE_REASON, rate_wait)
            try:
                task = self.service.claim(message.taskId, message.type, attempt)
            except (TaskNotFound, TransitionRefused) as exc:
                log.info("nothing to run: %s", exc, extra={"attempt": attempt})
                if _frees_its_slot(exc, took_slot):
                    waiting = self._waiting(message)
                    self.slots.release(waiting)
                    self.slots.admit_after_release(waiting, self.service.send_waiting)
                return True
            except Exception as exc:
                if not aws.is_transient(exc):
                    raise
                return self._claim_later(message, attempt - 1, handle, exc)
            return self._run(task, attempt, handle)

    def _claim_later(
        self,
        message: TaskMessage,
        attempts_made: int,
        receipt_handle: str | None,
        exc: Exception,
    ) -> bool:
        """AWS throttled the claim (or its slot): nothing ran, so nothing may count.

        SQS counts a message's receives, not its failures: every receive of this message
        moves it toward the queue's maxReceiveCount (MAX_ATTEMPTS), past which it goes to the
        dead-letter queue and its task is failed, and ChangeMessageVisibility does not reset
        the count. So the task asks again on a new message, after a short growing backoff,
        carrying the attempts made so far, and this one is deleted (True). Only if SQS
        refuses that send too is this message kept, back in view after the backoff: one
        receive counted, the least left to do.
        """
        delay = claim_backoff_seconds(message.throttled)
        later = replace(message, priorAttempts=attempts_made, throttled=message.throttled + 1)
        log.warning("claim throttled, asking again in %s s: %s", delay, exc)
        emit_metric("ClaimsThrottled", 1)
        try:
            self.queue.send(later, delay)
            return True
        except Exception as send_exc:
            if not aws.is_transient(send_exc) or not receipt_handle:
                raise
        self.queue.show_again(receipt_handle, delay)
        return False

    @staticmethod
    def _waiting(message: TaskMessage) -> Waiting:
        return Waiting(
            task_id=message.taskId,
            type=message.type,
            owner=message.owner,
            key=message.concurrencyKey,
            key_limit=message.concurrencyLimit or None,
        )

    def _take_slot(self, message: TaskMessage) -> bool:
        """The task's slots (its owner's, its type's, its key's: fairness.py); True if newly
        taken. Raises Blocked naming a full gate."""
        return self.slots.acquire(self._waiting(message))

    def _rate_wait(self, message: TaskMessage) -> float:
        """Seconds until the task's type may start under TYPE_RATE (0: now, a token taken)."""
        found = first_match(message.type, self.service.settings.type_rate)
        if found is None:
            return 0.0
        pattern, rate = found
        taken = self.buckets.take("type#" + pattern, rate)
        return 0.0 if taken.allowed else taken.retry_after

    def _park_due_run(self, message: TaskMessage) -> bool:
        """A delayed run that comes due while its owner is at the limit joins the owner's
        waiting line like any new task: it is moved to `submitted` (the sweep's guarded
        write) and the stream parks it, so it waits in the table, not in the shared queue,
        and its message is done. False if the task is not a due scheduled one (a retry's
        message, or a task another writer moved): that message waits by deferral."""
        if message.priorAttempts or message.deferrals:
            return False  # a message of a task that has run, or that waits already
        try:
            self.service.release_one(message.taskId, message.type)
        except (TaskNotFound, TransitionRefused):
            return False
        emit_metric("TasksParked", 1)
        log.info("owner at MAX_RUNNING_PER_OWNER: the due delayed run joins the waiting line")
        return True

    def _defer(
        self, message: TaskMessage, attempts_made: int, reason: str, wait: float = 0.0
    ) -> bool:
        """Over a limit (`reason`), or past its type's rate (`wait`: until its next token):
        ask again later on a new message, so that waiting counts neither as a delivery of
        this one nor as an attempt. A task past the rate keeps its slots meanwhile."""
        delay = defer_seconds(message.deferrals)
        if wait:  # spread over a second, so that the waiters do not all ask at once
            delay = min(MAX_SQS_DELAY_SECONDS, math.ceil(wait + random.uniform(0, 1)))
        later = replace(message, priorAttempts=attempts_made, deferrals=message.deferrals + 1)
        self.queue.send(later, delay)
        self.slots.mark(message.taskId, reason)
        emit_metric("TasksDeferred", 1)
        log.info("waiting %s s for its %s", delay, reason)
        return True

    def _run(self, task: Task, attempt: int, receipt_handle: str | None) -> bool:
        reporter = TaskReporter(self.service, task, self.progress_interval)
        found = get_processor(task.type)
        try:
            if found is None:
                raise PermanentError(f"no processor is registered for {task.type!r}")
            context = Context(task, found.read_input(task.input), reporter)
            result = found.func(task, context)
            status = Status.COMPLETED_WITH_ERRORS if context.warnings else Status.COMPLETED
            # An error left by an earlier, retried attempt is not this run's outcome.
            error = context.warnings[-1] if context.warnings else None
            try:
                changes = self.service.result_changes(reporter.task, result)
            except jsonsafe.UnencodableResult as exc:
                raise PermanentError(str(exc)) from None  # no run again would change it
            output = Output.from_dict(context.output) if context.output else None
            reporter.finish(status, output=output, error=error, **changes)
            self._record_outcome(reporter.task)
            return True
        except (TaskCancelled, LeaseLost) as exc:
            log.info("stopped %s: %s", task.id, type(exc).__name__)
            return True
        except Exception as exc:
            if is_permanent(exc):  # this SDK's, or taskstatus_client.worker's in a user package
                return self._fail(reporter, str(exc))
            if self.retry.exhausted(attempt):
                return self._fail(reporter, f"gave up after {attempt} attempts: {exc}")
            log.warning(
                "attempt %s of %s failed: %s", attempt, task.id, exc, exc_info=not is_transient(exc)
            )
            return self._retry_later(reporter, str(exc), attempt, receipt_handle)

    def _fail(self, reporter: TaskReporter, message: str) -> bool:
        try:
            reporter.finish(Status.FAILED, error=message[:2000])
        except (TaskCancelled, LeaseLost):
            return True
        log.warning("task failed: %s", message[:500])
        self._record_outcome(reporter.task)
        return True

    def _record_outcome(self, task: Task) -> None:
        name = "TasksFailed" if task.status is Status.FAILED else "TasksCompleted"
        emit_metric(name, 1, type=task.type)
        if task.started_at is not None:
            elapsed = (utcnow() - task.started_at).total_seconds() * 1000
            emit_metric("ProcessingTime", round(elapsed, 1), "Milliseconds", type=task.type)

    def _retry_later(
        self, reporter: TaskReporter, message: str, attempt: int, receipt_handle: str | None
    ) -> bool:
        try:
            reporter.finish(Status.RETRYING, error=message[:2000])
        except (TaskCancelled, LeaseLost):
            return True
        if receipt_handle:
            self.queue.show_again(receipt_handle, self.retry.backoff(attempt))
        return False

    def handle_dead_letters(self, records: Iterable[dict[str, Any]]) -> None:
        """A message that exhausted its deliveries: its task is failed, never left running."""
        for record in records:
            self._settle_dead_letter(record["body"])

    def _settle_dead_letter(self, body: str) -> None:
        """Fail the task of a tasks-DLQ letter, unless it has finished or another writer won."""
        try:
            message = TaskMessage.from_json(body)
        except ValueError:
            log.error("dead letter is not a task message: %.200s", body)
            return
        task = self.service.find(message.taskId)
        if task is None or task.is_terminal:
            return
        try:
            self.service.transition(
                task,
                Status.FAILED,
                by="dead-letters",
                error="gave up: the task's message exhausted its deliveries "
                f"(last error: {task.error or 'the worker did not finish'})",
            )
        except TransitionRefused:
            log.info("dead letter for %s raced another writer; left as is", task.id)
