"""Producers: tasks that run elsewhere and report here (`"runner": "external"`).

A producer (a Lambda, a container, a script: see taskstatus_client.Reporter) creates an
external task with `POST /jobs`, then moves it with reports and keeps it alive with
heartbeats. The service never queues such a task: it only records what the producer says.

A report goes through the same transition table (model.ALLOWED_TRANSITIONS) and the same
guarded write (`TaskService.transition`) as the built-in worker, so it makes the same
history entry, WebSocket push and webhook (the table's stream makes them from the write).
Producers retry, so a report identical to the current state writes nothing.

A heartbeat is one conditional write that moves the task's reaper deadline and keeps its
version: it is no news to readers (the stream skips a change that keeps the version). An
external task that goes `heartbeat_seconds` without a report or a heartbeat is failed by the
reaper (`TaskService.reap`) with a reason saying so: never stranded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.edge.http import etag
from chalicelib.errors import (
    DomainError,
    NotAllowed,
    StateConflict,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.model import (
    ACTIVE,
    EXTERNAL,
    Output,
    Progress,
    Status,
    Task,
    can_transition,
    utcnow,
)
from chalicelib.store import task_from_item

if TYPE_CHECKING:
    from chalicelib.edge.auth import Principal
    from chalicelib.service import TaskService

PRODUCER = "producer"  # the writer the history names for a report
MAX_RACES = 3  # a report re-read after losing a race with another writer this many times


class NotExternal(StateConflict):
    """A report or heartbeat on a task the service runs itself."""

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"job {task_id} is run by the service; only a job submitted with "
            '"runner": "external" takes reports and heartbeats'
        )


class StaleVersion(DomainError):
    """If-Match named a version the task has moved past."""

    def __init__(self, task: Task) -> None:
        super().__init__(
            f"job {task.id} is at version {task.version}, not the one If-Match names; "
            "read it again and decide on the current state"
        )
        self.task = task


class ReportRefused(DomainError):
    """The transition table refuses the reported status from the current one."""

    def __init__(self, task: Task, wanted: Status) -> None:
        super().__init__(f"job {task.id} is {task.status.value}; it cannot move to {wanted.value}")
        self.task = task
        self.current = task.status
        self.wanted = wanted


class OwnerRefused(NotAllowed):
    """A credential named an owner it may not act for."""


class OwnerMissing(DomainError):
    """A service key submitted a job without naming its owner."""


def owner_for(principal: Principal, asked: str | None) -> str:
    """The owner of a job a caller submits: a service key's must be named and be one it acts
    for; any other credential owns its jobs and may not name an owner."""
    if principal.acts_for:
        if asked is None:
            raise OwnerMissing('a service key acts for others: name the job\'s "owner"')
        if not ActingFor.patterns(principal.acts_for).allows(asked):
            raise OwnerRefused(f"this service key may not act for owner {asked!r}")
        return asked
    if asked is not None:
        raise OwnerRefused('only a service key may set "owner"; leave it out to own the job')
    return principal.owner


@dataclass(frozen=True)
class ActingFor:
    """The owners a caller may report for: its own id, or a service key's patterns
    (exact ids, a prefix ending `*`, or `*` alone for every owner: a worker key that serves
    a pool for all users, issued by the operator)."""

    exact: frozenset[str]
    prefixes: tuple[str, ...] = ()
    every: bool = False

    @classmethod
    def patterns(cls, patterns: tuple[str, ...] | list[str]) -> ActingFor:
        prefixes = tuple(p[:-1] for p in patterns if p.endswith("*") and p != "*")
        exact = frozenset(p for p in patterns if not p.endswith("*"))
        return cls(exact, prefixes, every="*" in patterns)

    def allows(self, owner: str) -> bool:
        return self.every or owner in self.exact or any(owner.startswith(p) for p in self.prefixes)

    def condition(self, names: dict[str, str], values: dict[str, Any]) -> str:
        """The same rule as a DynamoDB condition on the item's owner."""
        names["#owner"] = "owner"
        if self.every:
            return "attribute_exists(#owner)"
        terms = []
        for i, owner in enumerate(sorted(self.exact)):
            values[f":owner{i}"] = {"S": owner}
            terms.append(f"#owner = :owner{i}")
        for i, prefix in enumerate(self.prefixes):
            values[f":prefix{i}"] = {"S": prefix}
            terms.append(f"begins_with(#owner, :prefix{i})")
        return "(" + " OR ".join(terms or ["attribute_not_exists(id)"]) + ")"


_UNSET: Any = object()


@dataclass(frozen=True)
class Report:
    """What a producer says about its task: a status, and any of progress, result, error and
    output (a field not given keeps its value)."""

    status: Status
    progress: Progress | None = None
    result: Any = _UNSET
    error: str | None = None
    output: Output | None = None
    given: frozenset[str] = field(default_factory=frozenset)

    def repeats(self, task: Task) -> bool:
        """Whether the task already holds everything this report says (a producer's retry)."""
        if task.status is not self.status:
            return False
        if self.progress is not None and task.progress != self.progress:
            return False
        if "result" in self.given and (task.result_object or task.result != self.result):
            return False
        if self.error is not None and task.error != self.error:
            return False
        return self.output is None or task.output == self.output

    def changes(self, service: TaskService, task: Task) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if self.progress is not None:
            changes["progress"] = self.progress
        if "result" in self.given:
            changes.update(service.result_changes(task, self.result))
        if self.error is not None:
            changes["error"] = self.error
        if self.output is not None:
            changes["output"] = self.output
        if task.started_at is None and self.status not in (Status.SUBMITTED, Status.SCHEDULED):
            changes["started_at"] = service.clock()
        return changes


def _check_reportable(
    task: Task | None,
    task_id: str,
    acting: ActingFor,
    lease_token: str | None = None,
    now: datetime | None = None,
) -> Task:
    if task is None or not acting.allows(task.owner):
        raise TaskNotFound(task_id)  # another's task answers exactly like a missing one
    if task.pool is not None:  # a remote worker's: only under its live lease (claims.py)
        from chalicelib.claims import check_lease

        if not task.is_terminal:
            check_lease(task, lease_token, int((now or utcnow()).timestamp()))
        return task
    if not task.is_external:
        raise NotExternal(task_id)
    return task


def matches_etag(if_match: str, task: Task) -> bool:
    """If-Match as sent (a list, weak or strong tags, or `*`) against the task's version."""
    current = etag(task.id, task.version)
    for candidate in (c.strip() for c in if_match.split(",")):
        if candidate == "*" or candidate.removeprefix("W/") == current.removeprefix("W/"):
            return True
    return False


def report(
    service: TaskService,
    acting: ActingFor,
    task_id: str,
    said: Report,
    if_match: str | None = None,
    lease_token: str | None = None,
) -> tuple[Task, bool]:
    """Record `said` on the task; returns (task, written). A repeat writes nothing.

    Without If-Match, a write that loses a race with another writer (a cancel, the reaper)
    is decided again on what that writer left; with it, the race is the caller's: 412.
    """
    for _ in range(MAX_RACES):
        task = _check_reportable(
            service.find(task_id), task_id, acting, lease_token, service.clock()
        )
        if if_match is not None and not matches_etag(if_match, task):
            raise StaleVersion(task)
        if said.repeats(task):
            return task, False
        if not can_transition(task.status, said.status):
            raise ReportRefused(task, said.status)
        try:
            changes = said.changes(service, task)
            written = service.transition(task, said.status, by=_writer(task), **changes)
            if task.pool is not None:
                from chalicelib.claims import settle_message

                settle_message(service, task, written)
            return written, True
        except TransitionRefused:
            if if_match is not None:
                current = service.find(task_id)
                raise StaleVersion(current or task) from None
            continue
    raise TransitionRefused(task_id, None, said.status.value)


def _writer(task: Task) -> str:
    return f"worker:{task.pool}" if task.pool is not None else PRODUCER


@dataclass(frozen=True)
class Beat:
    """What a heartbeat answers: the task's state, and whether it was cancelled."""

    task: Task
    extended: bool  # False: the task had ended, nothing was written

    @property
    def cancel_requested(self) -> bool:
        return self.task.status is Status.CANCELLED


def heartbeat(service: TaskService, acting: ActingFor, task_id: str) -> Beat:
    """Move an external task's deadline to now + its window: one conditional write.

    The condition holds the whole rule (it exists, it is external, the caller may act for its
    owner, it has not ended or expired), so a heartbeat never touches a task it may not; on
    a refusal the item as it was says why, with no second call.
    """
    now = service.clock()
    epoch = int(now.timestamp())
    names = {"#status": "status", "#runner": "runner"}
    active = sorted(s.value for s in ACTIVE)
    values: dict[str, Any] = {
        ":epoch": {"N": str(epoch)},
        ":external": {"S": EXTERNAL},
        **{f":a{i}": {"S": s} for i, s in enumerate(active)},
    }
    owner_rule = acting.condition(names, values)
    statuses = ", ".join(f":a{i}" for i in range(len(active)))
    try:
        item = aws.client("dynamodb").update_item(
            TableName=service.settings.tasks_table,
            Key={"id": {"S": task_id}},
            UpdateExpression="SET deadline = heartbeat_seconds + :epoch",
            ConditionExpression=(
                f"#runner = :external AND {owner_rule} AND expires_at > :epoch "
                f"AND #status IN ({statuses})"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        old = exc.response.get("Item")
        task = task_from_item(old) if old else None
        if task is not None and task.expires_at <= epoch:
            task = None
        task = _check_reportable(task, task_id, acting)
        return Beat(task, extended=False)  # it has ended: the producer learns how
    return Beat(task_from_item(item), extended=True)
