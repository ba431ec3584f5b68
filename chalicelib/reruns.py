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
from datetime import UTC, datetime
from typing import Any

from chalicelib import aws
from chalicelib.errors import (
    IdempotencyConflict,
    IdempotentJobGone,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.model import ACTIVE, RETRYABLE, Status, Task
from chalicelib.service import TaskService
from chalicelib.store import BY_OWNER, BY_OWNER_TYPE, owner_scoped, task_from_item

MAX_PER_CALL = 1000
MAX_QUERIES_PER_CALL = 10


def retried(task: Task, now: datetime, by: str, ttl_seconds: int) -> Task:
    """The next version of `task`, submitted again with a clean run and a full TTL.

    (A task retried near its expiry would otherwise vanish before or during its run.)
    """
    return task.replace(
        expires_at=max(task.expires_at, int(now.timestamp()) + ttl_seconds),
        status=Status.SUBMITTED,
        version=task.version + 1,
        updated_at=now,
        updated_by=by,
        attempts=0,
        retries=task.retries + 1,
        progress=None,
        result=None,
        result_object=None,
        output=None,
        error=None,
        started_at=None,
        completed_at=None,
        lease_until=None,
        run_at=None,  # a retry runs now, whatever its first run waited for
    )


def _fingerprint(task_id: str) -> str:
    return hashlib.sha256(f"retry|{task_id}".encode()).hexdigest()


def retry(
    service: TaskService, owner: str, task_id: str, idempotency_key: str | None = None
) -> tuple[Task, bool]:
    """Run the owner's failed or cancelled task again. Returns (task, retried now).

    Raises TaskNotFound (absent, expired or another owner's), TransitionRefused (any other
    status, or a write in between). With a key already used for this retry, the task as it
    is now, unchanged; used for another request, IdempotencyConflict.
    """
    store = service.store
    now = service.clock()
    if idempotency_key is not None:
        used = store.live_key_item(owner, idempotency_key, now)
        if used is not None:
            if used["fingerprint"]["S"] != _fingerprint(task_id):
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used for another request"
                )
            return _replayed(service, owner, task_id), False
    before = service.get_owned(owner, task_id)
    if before.status not in RETRYABLE:
        raise TransitionRefused(task_id, before.status.value, Status.SUBMITTED.value)
    after = retried(before, now, "api", service.settings.task_ttl_seconds)
    key_item = None
    if idempotency_key is not None:
        lifetime = max(
            service.settings.idempotency_ttl_hours * 3600, service.settings.task_ttl_seconds
        )
        key_item = store.key_item(
            owner, idempotency_key, task_id, _fingerprint(task_id), int(now.timestamp()) + lifetime
        )
    return store.replace(before, after, key_item), True


def _replayed(service: TaskService, owner: str, task_id: str) -> Task:
    task = service.find(task_id)
    if task is None or task.owner != owner:
        raise IdempotentJobGone(task_id)
    return task


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
    """Up to MAX_PER_CALL matching tasks, oldest first, and where to go on from (None: no more).

    Each Query reads at most what is still wanted, so the key where it stops is exactly
    after the last task returned; at most MAX_QUERIES_PER_CALL Queries per call.
    """
    limit = MAX_PER_CALL
    if selection.type is None:
        index, key_name, key_value = BY_OWNER, "owner", selection.owner
    else:
        index, key_name = BY_OWNER_TYPE, "owner_type"
        key_value = owner_scoped(selection.owner, selection.type)
    names = {"#k": key_name, "#s": "status"}
    values: dict[str, Any] = {
        ":k": {"S": key_value},
        ":now": {"N": str(int(service.clock().timestamp()))},
    }
    key_condition = "#k = :k"
    if selection.since is not None:
        values[":since"] = {"S": _utc_iso(selection.since)}
    if selection.until is not None:
        values[":until"] = {"S": _utc_iso(selection.until)}
    if selection.since is not None and selection.until is not None:
        key_condition += " AND created_at BETWEEN :since AND :until"
    elif selection.since is not None:
        key_condition += " AND created_at >= :since"
    elif selection.until is not None:
        key_condition += " AND created_at <= :until"
    statuses = sorted(selection.statuses)
    for i, status in enumerate(statuses):
        values[f":s{i}"] = {"S": status.value}
    placeholders = ", ".join(f":s{i}" for i in range(len(statuses)))
    request: dict[str, Any] = {
        "TableName": service.store.table,
        "IndexName": index,
        "KeyConditionExpression": key_condition,
        "FilterExpression": f"expires_at > :now AND #s IN ({placeholders})",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": True,
    }
    tasks: list[Task] = []
    last_key = after
    for _ in range(MAX_QUERIES_PER_CALL):
        if last_key is not None:
            request["ExclusiveStartKey"] = {
                "id": {"S": last_key[1]},
                "created_at": {"S": last_key[0]},
                key_name: {"S": key_value},
            }
        request["Limit"] = limit - len(tasks)
        response = aws.client("dynamodb").query(**request)
        tasks += [task_from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        last_key = (last["created_at"]["S"], last["id"]["S"]) if last else None
        if last_key is None or len(tasks) >= limit:
            break
    return tasks, last_key


def _utc_iso(value: datetime) -> str:
    """The store's format of created_at, so that a key condition compares like with like."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
