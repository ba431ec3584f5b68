"""Running failed or cancelled tasks again (one, or in bulk), and cancelling in bulk.

A retry moves a task from failed or cancelled back to submitted under the same id, in one
write conditional on the status and version that were read: the table's stream queues it
as it queues a new task (chalicelib/stream.py). Its attempts start again from zero and its
`retries` count goes up; its earlier run's result, error and progress are cleared (the
history keeps them).

Bulk operations select the caller's tasks on the owner indexes (never a Scan), at most
MAX_PER_CALL per call, with a cursor to continue; each task is moved by its own guarded
write, and a task that changed meanwhile is skipped, not overwritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.errors import TaskNotFound, TransitionRefused
from chalicelib.model import ACTIVE, RETRYABLE, Status, Task
from chalicelib.service import TaskService
from chalicelib.store import KeyRecord
from chalicelib.store.keys import key_expires_at

MAX_PER_CALL = 1000


def retried(task: Task, now: datetime, by: str, ttl_seconds: int) -> Task:
    """The next version of `task`, submitted again with a clean run (model.RUN_FIELDS) and a
    full TTL.

    (A task retried near its expiry would otherwise vanish before or during its run.)
    """
    return task.without_run(
        expires_at=max(task.expires_at, int(now.timestamp()) + ttl_seconds),
        status=Status.SUBMITTED,
        version=task.version + 1,
        updated_at=now,
        updated_by=by,
        retries=task.retries + 1,
    )


def _fingerprint(task_id: str) -> str:
    return hashlib.sha256(f"retry|{task_id}".encode()).hexdigest()


def retry(
    service: TaskService,
    owner: str,
    task_id: str,
    idempotency_key: str | None = None,
    by: str = "api",
) -> tuple[Task, bool]:
    """Run the owner's failed or cancelled task again. Returns (task, retried now).

    Raises TaskNotFound (absent, expired or another owner's), TransitionRefused (any other
    status, or a write in between). With a key already used for this retry, the task as it
    is now, unchanged; used for another request, IdempotencyConflict.
    """
    store = service.store
    now = service.clock()
    fingerprint = _fingerprint(task_id)
    if idempotency_key is not None:
        earlier = service.replayed(owner, fingerprint, idempotency_key)
        if earlier is not None:
            return earlier, False
    before = service.get_owned(owner, task_id)
    if before.status not in RETRYABLE:
        raise TransitionRefused(task_id, before.status.value, Status.SUBMITTED.value)
    after = retried(before, now, by, service.settings.task_ttl_seconds)
    key = None
    if idempotency_key is not None:
        expires_at = key_expires_at(now, service.settings)
        key = (idempotency_key, KeyRecord(task_id, fingerprint, expires_at))
    return store.replace(before, after, key), True


# -- bulk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which of an owner's tasks a bulk operation takes."""

    owner: str
    statuses: frozenset[Status]
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def scope(self, operation: str) -> str:
        """What a cursor is bound to: the operation, the caller and every filter."""
        statuses = ",".join(sorted(self.statuses))
        return f"{operation}|{self.owner}|{statuses}|{self.type or ''}|{self.since}|{self.until}"


@dataclass
class BulkOutcome:
    dry_run: bool
    job_ids: list[str] = field(default_factory=list)
    skipped: int = 0
    last_key: tuple[str, str] | None = None


def select(
    service: TaskService,
    selection: Selection,
    after: tuple[str, str] | None,
) -> tuple[list[Task], tuple[str, str] | None]:
    """Up to MAX_PER_CALL matching tasks, oldest first, and where to go on from (None: no more)."""
    page = service.store.query_owned(
        selection.owner,
        service.clock(),
        limit=MAX_PER_CALL,
        statuses=selection.statuses,
        type=selection.type,
        created_between=(selection.since, selection.until),
        order="oldest",
        after=after,
    )
    return page.tasks, page.last_key


def redrive(
    service: TaskService,
    selection: Selection,
    after: tuple[str, str] | None,
    dry_run: bool,
) -> BulkOutcome:
    """Retry the selected failed or cancelled tasks (or, in a dry run, list them)."""

    def retry(task: Task) -> None:
        ttl = service.settings.task_ttl_seconds
        service.store.replace(task, retried(task, service.clock(), "redrive", ttl))

    # TransitionRefused: the index's copy was stale, the task moved meanwhile
    return _apply(service, selection, after, dry_run, retry, (TransitionRefused,))


def bulk_cancel(
    service: TaskService,
    selection: Selection,
    after: tuple[str, str] | None,
    dry_run: bool,
) -> BulkOutcome:
    """Cancel the selected unfinished tasks (or, in a dry run, list them)."""

    def cancel(task: Task) -> None:
        service.cancel(selection.owner, task.id, by="bulk-cancel")

    # it finished (or expired) meanwhile
    return _apply(service, selection, after, dry_run, cancel, (TransitionRefused, TaskNotFound))


def _apply(
    service: TaskService,
    selection: Selection,
    after: tuple[str, str] | None,
    dry_run: bool,
    move: Callable[[Task], None],
    moved_meanwhile: tuple[type[Exception], ...],
) -> BulkOutcome:
    """Move each selected task by its own guarded write; one that moved meanwhile is skipped."""
    tasks, last_key = select(service, selection, after)
    outcome = BulkOutcome(dry_run=dry_run, last_key=last_key)
    for task in tasks:
        if not dry_run:
            try:
                move(task)
            except moved_meanwhile:
                outcome.skipped += 1
                continue
        outcome.job_ids.append(task.id)
    return outcome


def unfinished(statuses: Iterable[Status] | None) -> frozenset[Status]:
    return frozenset(statuses) if statuses else ACTIVE
