"""Use cases: submit, read, list, cancel; and the worker's guarded transitions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib import jsonsafe, objects, scheduling
from chalicelib.errors import (
    IdempotentJobGone,
    SubmitRejected,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.model import (
    DEFAULT_PRIORITY,
    RUNNING,
    SERVICE,
    ObjectRef,
    Progress,
    Runner,
    Status,
    Task,
    Webhook,
    can_transition,
    heartbeat_window,
    utcnow,
)
from chalicelib.observability import emit_metric
from chalicelib.queues import TaskMessage, TaskQueue
from chalicelib.settings import Settings
from chalicelib.store import ITEM_BUDGET_BYTES, Page, TaskStore, item_size
from chalicelib.store.keys import key_expires_at

if TYPE_CHECKING:
    from chalicelib.fairness import Gate, Slots, Waiting
    from chalicelib.webhooks.ssrf import Resolver

# The reaper stops this long before its Lambda's timeout: the rest is the next run's.
REAPER_MARGIN_SECONDS = 10.0
# Webhook formats whose origin checked the host only when it delivered: auto-vid accepted a
# job whose webhook host did not resolve yet, and its delivery failed and logged. A host that
# resolves to an address a webhook must not reach is refused at submit all the same.
DNS_AT_DELIVERY_FORMATS = frozenset({"autovid"})
# The sweep runs first in the reaper's invocation and stops with this much time left, so the
# reaping after it always has some: a backlog of due runs cannot starve it, nor outrun
# the function's timeout.
SWEEP_MARGIN_SECONDS = REAPER_MARGIN_SECONDS + 30.0


@dataclass(frozen=True)
class SubmitJob:
    type: str
    input: dict[str, Any] = field(default_factory=dict)
    source: ObjectRef | None = None
    target: ObjectRef | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook: Webhook | None = None
    run_at: datetime | None = None
    delay_seconds: int | None = None
    runner: Runner = SERVICE
    job_id: str | None = None  # an external task's own id
    heartbeat_seconds: int | None = None
    owner: str | None = None  # asked by a service key (chalicelib/edge/service_keys.py)
    pool: str | None = None  # asked for; POOL_TYPES may route a type to one too
    priority: int = DEFAULT_PRIORITY  # among tasks waiting for a slot (chalicelib/fairness.py)
    concurrency_key: str | None = None  # at most concurrency_limit of the owner's jobs with
    concurrency_limit: int | None = None  # this key run at once

    def fingerprint(self) -> str:
        """A digest of what was asked, to tell a replay from a different request."""
        canonical = {
            "type": self.type,
            "input": self.input,
            "source": self.source.as_dict() if self.source else None,
            "target": self.target.as_dict() if self.target else None,
            "metadata": self.metadata,
            "webhook": self.webhook.as_dict() if self.webhook else None,
        }
        # As asked, not as resolved: a replayed delaySeconds is the same request.
        if self.run_at is not None:
            canonical["runAt"] = self.run_at.isoformat()
        if self.delay_seconds is not None:
            canonical["delaySeconds"] = self.delay_seconds
        if self.pool is not None:
            canonical["pool"] = self.pool
        if self.priority != DEFAULT_PRIORITY:
            canonical["priority"] = self.priority
        if self.concurrency_key is not None:
            canonical["concurrency"] = [self.concurrency_key, self.concurrency_limit]
        if self.runner != SERVICE:
            canonical.update(
                runner=self.runner, jobId=self.job_id, heartbeatSeconds=self.heartbeat_seconds
            )
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


def timeout_for(settings: Settings) -> Callable[[str], int]:
    def lookup(task_type: str) -> int:
        from chalicelib.processors import get_processor  # the processors load on first use

        found = get_processor(task_type)
        if found is not None and found.timeout_seconds:
            return found.timeout_seconds
        return settings.default_task_timeout_seconds

    return lookup


def first_shard(now: datetime) -> int:
    """Where a reaper run starts reading the sparse indexes' shards: another one each
    minute (61 steps on, coprime to their count), so a run stopped for time never leaves
    the same shards behind twice in a row."""
    return int(now.timestamp()) // 60 * 61


class TaskService:
    def __init__(
        self,
        store: TaskStore,
        settings: Settings,
        slots: Slots,
        queue: TaskQueue,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.slots = slots
        self.queue = queue
        self.clock = clock

    # -- client-facing ---------------------------------------------------------

    def submit(
        self, owner: str, job: SubmitJob, idempotency_key: str | None = None
    ) -> tuple[Task, bool]:
        """Store a new task (the table's stream queues it). Returns (task, created)."""
        now = self.clock()
        task = self.new_task(owner, job, now)
        if idempotency_key is None:
            self.store.create(task)
            return task, True
        return self.store.create_idempotent(
            task,
            idempotency_key,
            job.fingerprint(),
            key_expires_at=key_expires_at(now, self.settings),
            now=now,
        )

    def replayed(self, owner: str, fingerprint: str, idempotency_key: str) -> Task | None:
        """The task an earlier request of the owner's with this key made (a submit, a retry),
        without writing; None while the key is unused. IdempotencyConflict if the key was used
        for another request (`fingerprint` differs), IdempotentJobGone if its task has expired.
        One consistent GetItem of the key (and one of the task when there is one)."""
        now = self.clock()
        record = self.store.keys.live(owner, idempotency_key, now)
        if record is None:
            return None
        task_id = record.replay_or_conflict(fingerprint)
        earlier = self.store.get(task_id, now)
        if earlier is None or earlier.owner != owner:
            raise IdempotentJobGone(task_id)
        return earlier

    def new_task(
        self,
        owner: str,
        job: SubmitJob,
        now: datetime,
        resolver: Resolver | None = None,
        task_id: str | None = None,
    ) -> Task:
        """The task `job` asks for, validated (SubmitRejected says why not); not yet stored.
        `resolver` looks the webhook host up (a batch's shares one time budget). `task_id`: an
        id the caller derived (a schedule's fire: one id per fire time, chalicelib/schedules.py)."""
        if job.runner != SERVICE:
            return self.external_task(owner, job, now, resolver)
        pool = self.pool_for(job)
        if pool is None:
            parsed_input = self.check_runnable(owner, job, resolver)
        else:
            parsed_input = self.pool_input(owner, job, resolver)
        task = Task.new(
            id=task_id,
            run_at=self.run_at(job, now),
            owner=owner,
            type=job.type,
            ttl_seconds=self.settings.task_ttl_seconds,
            input=parsed_input,
            source=job.source,
            target=job.target,
            metadata=job.metadata,
            webhook=job.webhook,
            now=now,
            pool=pool,
            priority=job.priority,
            concurrency_key=job.concurrency_key,
            concurrency_limit=job.concurrency_limit,
        )
        if pool is not None:
            return task
        from chalicelib.processors import get_processor

        found = get_processor(job.type)
        if task.target is None and found is not None and found.needs_target:
            key = objects.output_key(owner, task.id, "output")
            task = task.replace(target=ObjectRef(self.settings.objects_bucket, key))
        return task

    def pool_for(self, job: SubmitJob) -> str | None:
        from chalicelib.pools import Pools, UnknownPool

        try:
            return Pools.from_environment().pool_for(job.type, job.pool)
        except UnknownPool as exc:
            raise SubmitRejected(str(exc), [{"field": "pool", "message": str(exc)}]) from None

    def pool_input(self, owner: str, job: SubmitJob, resolver: Resolver | None) -> Any:
        """The input of a task a pool's remote workers run: checked like any other when this
        service knows its processor too; otherwise any well-formed type, its input kept as
        given (the processor lives in the remote worker's package)."""
        from chalicelib.processors import get_processor

        if get_processor(job.type) is not None:
            return self.check_runnable(owner, job, resolver)
        self.check_webhook(job, resolver)
        return job.input

    def external_task(
        self, owner: str, job: SubmitJob, now: datetime, resolver: Resolver | None = None
    ) -> Task:
        """A task a producer runs (chalicelib/reports.py): any well-formed type (no processor
        is needed), objects recorded as the producer names them (it reads and writes them,
        never the service), the webhook checked like any other; never queued."""
        self.check_webhook(job, resolver)
        return Task.new(
            id=job.job_id,
            owner=owner,
            type=job.type,
            ttl_seconds=self.settings.task_ttl_seconds,
            input=job.input,
            source=job.source,
            target=job.target,
            metadata=job.metadata,
            webhook=job.webhook,
            now=now,
            runner=job.runner,
            heartbeat_seconds=heartbeat_window(
                job.heartbeat_seconds, self.settings.external_heartbeat_seconds
            ),
        )

    def run_at(self, job: SubmitJob, now: datetime) -> datetime | None:
        try:
            return scheduling.run_at_for(
                job.run_at, job.delay_seconds, now, self.settings.task_ttl_seconds
            )
        except scheduling.BadSchedule as exc:
            raise SubmitRejected(
                exc.message, [{"field": exc.field, "message": exc.message}]
            ) from None

    def check_webhook(self, job: SubmitJob, resolver: Resolver | None = None) -> None:
        """A webhook URL that resolves to a private address is refused (SubmitRejected); one
        that does not resolve yet only for formats that look it up at delivery."""
        from chalicelib.webhooks.ssrf import UnresolvableHost, UnsafeUrl, check_url, resolve

        if job.webhook is None:
            return
        try:
            check_url(job.webhook.url, self.settings, resolver or resolve)
        except UnresolvableHost as exc:
            if job.webhook.format not in DNS_AT_DELIVERY_FORMATS:
                raise _refused_webhook(exc) from None
        except UnsafeUrl as exc:
            raise _refused_webhook(exc) from None

    def check_runnable(
        self, owner: str, job: SubmitJob, resolver: Resolver | None = None
    ) -> dict[str, Any]:
        """Validate a job against its processor; return the input as the processor sees it."""
        # Imported here: reads (GET, the status Lambda, the stream) never load the processors.
        from chalicelib.processors import get_processor, registered_types
        from chalicelib.processors.sdk import InvalidInput

        found = get_processor(job.type)
        if found is None:
            known = ", ".join(registered_types())
            raise SubmitRejected(
                f"type {job.type!r} is not a registered processor; known types: {known}",
                [{"field": "type", "message": "unknown task type"}],
            )
        try:
            parsed_input = found.validate_input(job.input)
        except InvalidInput as exc:
            raise SubmitRejected(f"input is not valid for {job.type}", exc.errors) from None
        errors = []
        if found.needs_source and job.source is None:
            errors.append({"field": "source", "message": f"{job.type} needs a source object"})
        for name in ("source", "target"):
            ref: ObjectRef | None = getattr(job, name)
            if ref is None:
                continue
            if ref.bucket != self.settings.objects_bucket:
                errors.append(
                    {
                        "field": f"{name}.bucket",
                        "message": f"objects must be in this service's bucket "
                        f"{self.settings.objects_bucket!r}",
                    }
                )
            elif problem := objects.key_problem(owner, ref.key):
                errors.append({"field": f"{name}.key", "message": problem})
        if errors:
            raise SubmitRejected(f"{job.type} cannot run with these objects", errors)
        self.check_webhook(job, resolver)
        return parsed_input

    def find(self, task_id: str) -> Task | None:
        return self.store.get(task_id, self.clock())

    def get_owned(self, owner: str, task_id: str) -> Task:
        task = self.find(task_id)
        if task is None or task.owner != owner:
            raise TaskNotFound(task_id)
        return task

    def list_owned(
        self,
        owner: str,
        *,
        limit: int,
        type: str | None = None,
        status: Status | None = None,
        after: tuple[str, str] | None = None,
        updated_since: datetime | None = None,
    ) -> Page:
        return self.store.query_owned(
            owner,
            self.clock(),
            limit=limit,
            type=type,
            statuses=None if status is None else {status},
            after=after,
            updated_since=updated_since,
        )

    def cancel(self, owner: str, task_id: str, by: str = "api") -> Task:
        return self.store.cancel(task_id, owner, self.clock(), by)

    # -- queue -------------------------------------------------------------------

    def enqueue(self, task: Task, delay_seconds: int = 0) -> None:
        self.send(
            task.id,
            task.type,
            task.owner,
            delay_seconds,
            pool=task.pool,
            concurrency=(task.concurrency_key, task.concurrency_limit),
        )

    def send_waiting(self, task: Waiting) -> None:
        """Queue a task that flow control admitted (chalicelib/fairness.py)."""
        url, message = self.message_of_waiting(task)
        self.queue.send(message, 0, url)

    def message_of_waiting(self, task: Waiting) -> tuple[str, TaskMessage]:
        """The queue and message of a task flow control admitted (here and in the stream)."""
        return self.message_for(
            task.task_id,
            task.type,
            task.owner,
            pool=task.pool,
            concurrency=(task.key, task.key_limit),
        )

    def send(
        self,
        task_id: str,
        type: str,
        owner: str,
        delay_seconds: int = 0,
        prior_attempts: int = 0,
        pool: str | None = None,
        concurrency: tuple[str | None, int | None] = (None, None),
    ) -> None:
        """Queue a task's message: on the tasks queue (the worker Lambda), or on its pool's.
        `concurrency`: the job's key and limit, which the worker's slots need."""
        url, message = self.message_for(task_id, type, owner, prior_attempts, pool, concurrency)
        self.queue.send(message, delay_seconds, url)

    def message_for(
        self,
        task_id: str,
        type: str,
        owner: str,
        prior_attempts: int = 0,
        pool: str | None = None,
        concurrency: tuple[str | None, int | None] = (None, None),
    ) -> tuple[str, TaskMessage]:
        """The queue's url and the message `send` sends (the stream sends them in batches)."""
        from chalicelib.pools import pool_queue_url

        key, limit = concurrency
        message = TaskMessage(
            taskId=task_id,
            type=type,
            owner=owner,
            priorAttempts=prior_attempts,
            concurrencyKey=key if limit else None,
            concurrencyLimit=(limit or 0) if key is not None else 0,
        )
        url = pool_queue_url(self.queue.url, pool) if pool is not None else self.queue.url
        return url, message

    # -- worker-facing guarded transitions -----------------------------------------

    def claim(self, task_id: str, task_type: str, attempt: int) -> Task:
        return self.store.claim(
            task_id,
            self.clock(),
            lease_seconds=self.settings.worker_lease_seconds,
            attempt=attempt,
            timeout_seconds=self.store.timeout_for(task_type),
        )

    def transition(self, task: Task, status: Status, *, by: str, **changes: Any) -> Task:
        """Move `task` to `status` if the table allows it and nobody wrote in between.

        `by` names the writer (worker, reaper, dead-letters, ...): the history shows it.
        """
        if not can_transition(task.status, status):
            raise TransitionRefused(task.id, task.status.value, status.value)
        now = self.clock()
        updates: dict[str, Any] = {
            "status": status,
            "version": task.version + 1,
            "updated_at": now,
            "updated_by": by,
            **changes,
        }
        if status.is_terminal:
            updates.update(completed_at=now, lease_until=None)
        elif status in (Status.PROCESSING, Status.ERROR):
            updates["lease_until"] = int(now.timestamp()) + self.settings.worker_lease_seconds
        return self.store.save(task, task.replace(**updates))

    def report_progress(self, task: Task, current: int, total: int, message: str) -> Task:
        progress = Progress(current, max(total, current), message)
        return self.transition(task, Status.PROCESSING, by="worker", progress=progress)

    def fail(self, task_id: str, reason: str, by: str) -> Task | None:
        """Fail a task that has not finished; None if it has (or is gone). Races are retried."""
        for _ in range(3):
            task = self.find(task_id)
            if task is None or task.is_terminal:
                return None
            try:
                return self.transition(task, Status.FAILED, by=by, error=reason)
            except TransitionRefused:
                continue  # another writer moved it meanwhile: look again
        raise TransitionRefused(task_id, None, Status.FAILED.value)

    def result_changes(self, task: Task, result: Any) -> dict[str, Any]:
        """The changes that record `result`: inline when it fits, else as an object.

        A result over RESULT_INLINE_MAX_BYTES, or one that would push the task's item
        past ITEM_BUDGET_BYTES (DynamoDB refuses items over 400 KB), is written under
        the owner's prefix and read through a presigned `resultUrl`.
        """
        text = jsonsafe.encode(result)
        encoded = text.encode()
        others = item_size(self.store.attributes(task.replace(result=None)))
        if (
            len(encoded) <= self.settings.result_inline_max_bytes
            and others + len(encoded) <= ITEM_BUDGET_BYTES
        ):
            return {"result": json.loads(text), "result_object": None}  # as stored and read
        key = objects.output_key(task.owner, task.id, "result.json")
        objects.write(self.settings.objects_bucket, key, encoded, "application/json")
        ref = ObjectRef(self.settings.objects_bucket, key)
        return {"result": None, "result_object": ref}

    def release_one(self, task_id: str, task_type: str) -> Task:
        """Move one due scheduled task to `submitted` (the stream queues or parks it).

        Raises TaskNotFound, or TransitionRefused if it is not scheduled or not yet due."""
        timeout = self.store.timeout_for(task_type)
        return self.store.release(task_id, self.clock(), timeout_seconds=timeout)

    def release_due(self, time_left: Callable[[], float] = lambda: float("inf")) -> list[str]:
        """The sweep: move every due scheduled task to `submitted` (the stream queues it).

        Stops when `time_left()` (seconds) falls under SWEEP_MARGIN_SECONDS: the tasks not
        reached stay in the index, due, and the next run (a minute on) takes them.
        """
        now = self.clock()
        released = []
        for due in self.store.due(now, first_shard(now)):
            if time_left() < SWEEP_MARGIN_SECONDS:
                break
            try:
                self.store.release(due.id, now, timeout_seconds=self.store.timeout_for(due.type))
            except (TaskNotFound, TransitionRefused):
                continue  # cancelled, claimed by its delayed message, or expired meanwhile
            released.append(due.id)
        return released

    def admit_parked(self, time_left: Callable[[], float] = lambda: float("inf")) -> list[str]:
        """Queue the parked tasks of every gate listed as having some, as far as the limits
        allow now; the ids queued (chalicelib/fairness.py).

        A task's end admits its gates' next; this is for what that cannot see: a limit
        raised, lowered or removed (0) while tasks were parked, or a slot whose release was
        lost. One Query of the list per run, and per listed gate a GetItem of its slots
        (and of each holder when they are all held) and a Query of its line."""
        slots = self.slots
        admitted: set[str] = set()
        for gate, parks in slots.parked_gates():
            if time_left() < REAPER_MARGIN_SECONDS:
                break
            if gate.limit > 0:
                self._live_holders(slots, gate, admitted)
            admitted.update(slots.admit_next(gate, self.send_waiting))
            slots.unlist_if_idle(gate, parks)
        return sorted(admitted)

    def reap(
        self,
        time_left: Callable[[], float] = lambda: float("inf"),
        admitted: Iterable[str] = (),
        resumed: list[str] | None = None,
    ) -> list[str]:
        """Fail every non-terminal task past its deadline; returns the ids failed.

        A running task whose worker's lease ran out before its timeout is not failed: its
        worker stopped (a Lambda timeout, a crash), and the task runs again (`retrying`, a new
        message; its id is added to `resumed`) within the lease and a reaper minute, not after
        the queue's visibility timeout (720 s: AWS wants it at least the function's timeout,
        and six times it lets Lambda retry a throttled batch without counting a delivery).

        Stops when `time_left()` (seconds) runs out: the rest, oldest deadlines first, is
        the next run's. A task waiting for its owner's slot is not failed; its deadline
        moves on by its timeout, so a backlog of them is read once per timeout, not once
        a minute ahead of everyone else's overdue tasks. Nor is a parked task `admitted`
        (queued) just before.
        """
        now = self.clock()
        failed = []
        full: dict[str, bool] = {}
        admitted = set(admitted)  # waiting tasks this run gave a freed slot to
        for overdue in self.store.overdue(now, first_shard(now)):
            if time_left() < REAPER_MARGIN_SECONDS:
                break
            task = self.find(overdue.id)
            if task is None or task.is_terminal or task.version != overdue.version:
                continue
            limit = self.store.timeout_for(task.type)
            if task.silence_limit is not None:
                reason = (
                    f"timed out: no report or heartbeat from its producer for "
                    f"{task.silence_limit} s while {task.status.value}"
                )
                if self._fail_overdue(task, reason):
                    failed.append(task.id)
                continue
            if self._worker_stopped(task, now, limit):
                if self.resume(task, by="reaper") and resumed is not None:
                    resumed.append(task.id)
                continue
            if task.status is Status.SUBMITTED and task.pool is not None:
                # Its message waits on the pool's queue: nobody came for it, and sending it
                # again would change nothing. (Pool tasks take no owner's slot either.)
                reason = f"timed out: no worker of pool {task.pool!r} claimed it within {limit} s"
                if self._fail_overdue(task, reason):
                    failed.append(task.id)
                continue
            if task.status is Status.SUBMITTED and (
                self._waits_for_a_slot(task, full, admitted) or task.id in admitted
            ):
                self.store.postpone_deadline(task, now + timedelta(seconds=limit))
                continue
            if task.status is Status.SUBMITTED and not task.is_external:
                self._queue_again(task, now + timedelta(seconds=limit))
                continue
            try:
                self.transition(
                    task,
                    Status.FAILED,
                    by="reaper",
                    error=f"timed out: no progress for {limit} s while {task.status.value}",
                )
            except TransitionRefused:
                continue
            failed.append(task.id)
        return failed

    def _fail_overdue(self, task: Task, reason: str) -> bool:
        try:
            self.transition(task, Status.FAILED, by="reaper", error=reason)
        except TransitionRefused:
            return False
        return True

    def _queue_again(self, task: Task, until: datetime) -> None:
        """A submitted task past its deadline was never claimed: its queueing is late (the
        stream lags behind, or its record was set aside) or its message was lost. That is
        no fault of its own, so it is not failed: it is queued (again) and its deadline moved
        on by its timeout. A message sent twice is harmless: one claim wins."""
        self.enqueue(task)
        self.store.postpone_deadline(task, until)
        emit_metric("TasksRequeued", 1)

    @staticmethod
    def _worker_stopped(task: Task, now: datetime, timeout_seconds: int) -> bool:
        """A running task whose worker's lease has run out, short of the task's timeout (a
        worker that is alive writes within its lease; one past its timeout is failed)."""
        if task.status not in RUNNING or task.lease_until is None or task.is_external:
            return False
        timed_out = task.updated_at + timedelta(seconds=timeout_seconds) <= now
        return task.lease_until < now.timestamp() and not timed_out

    def resume(self, task: Task, by: str) -> bool:
        """Run again a task whose worker stopped: `retrying` (the attempt counts) and a new
        message, as a transient failure would; failed if it has no attempt left. The stream
        gives its slot back on the way to `retrying`; the message takes one, or waits.

        True if it was resumed; False if another writer moved it first, or it failed."""
        reason = "its worker stopped before it finished (no word within its lease)"
        attempts = task.attempts or 0
        try:
            if attempts >= self.settings.max_attempts:
                self.transition(
                    task, Status.FAILED, by=by, error=f"gave up after {attempts} attempts: {reason}"
                )
                return False
            retrying = self.transition(task, Status.RETRYING, by=by, error=reason)
        except TransitionRefused:
            return False
        # A pool task goes back to its pool's queue: the worker Lambda never runs one.
        self.send(
            retrying.id,
            retrying.type,
            retrying.owner,
            prior_attempts=attempts,
            pool=retrying.pool,
            concurrency=(retrying.concurrency_key, retrying.concurrency_limit),
        )
        return True

    def resume_all_running(self, by: str) -> list[str]:
        """Resume every running task, whatever its lease: for a runner that knows every worker
        that held one has stopped (`make dev` starting again after a stop or a crash)."""
        resumed = []
        for active in self.store.active():
            if active.status not in RUNNING:
                continue
            task = self.find(active.id)
            if task is None or task.status not in RUNNING or task.is_external:
                continue  # an external task's producer is not one of the runner's workers
            if self.resume(task, by=by):
                resumed.append(task.id)
        return resumed

    def _waits_for_a_slot(self, task: Task, full: dict[str, bool], admitted: set[str]) -> bool:
        """A submitted task one of whose gates (its owner's, its type's, its key's) is full
        is waiting its turn, not lost. `full` caches each gate's answer by its scope."""
        from chalicelib.fairness import Waiting

        if task.pool is not None:
            return False
        slots = self.slots
        for gate in slots.gates(Waiting.of(task)):
            if gate.scope not in full:
                full[gate.scope] = len(self._live_holders(slots, gate, admitted)) >= gate.limit
            if full[gate.scope]:
                return True
        return False

    def _live_holders(self, slots: Slots, gate: Gate, admitted: set[str]) -> set[str]:
        """The gate's slot holders, after giving back the slots of tasks that have ended.

        A slot is freed by the stream when its task ends; if that record was lost (retries
        exhausted), the slot would be held forever and the gate's waiting tasks with it.
        """
        holders = slots.holders(gate)
        if len(holders) < gate.limit:
            return holders
        for task_id in sorted(holders):
            task = self.find(task_id)
            if task is None or task.is_terminal:
                slots.release_gate(gate, task_id)
                holders.discard(task_id)
        if len(holders) < gate.limit:
            taken = slots.admit_next(gate, self.send_waiting)
            admitted.update(taken)
            holders.update(taken)
        return holders


def _refused_webhook(exc: Exception) -> SubmitRejected:
    return SubmitRejected(
        f"webhook.url is refused: {exc}", [{"field": "webhook.url", "message": str(exc)}]
    )
