"""Flow control: limits on running tasks, the waiting lines they fill, and rate buckets.

Fair concurrency (MAX_RUNNING_PER_OWNER, 0: no limit; the default and why: docs/fairness.md),
a limit per type group (TYPE_CONCURRENCY), per worker pool (POOL_CONCURRENCY) and per
concurrency key (a job's `"concurrency": {"key", "limit"}`) are each a *gate*: one item of
the records table whose `holders` is the string set of the ids of the tasks that hold one of
its slots (`slots#<scope>`, sk `running`; the scope is the owner's, `type#<pattern>`,
`pool#<pool>` or `key#<owner's key>`). Taking a slot is a conditional `ADD holders :id` if
the set is smaller than the limit or already holds the task (a redelivered message, or a worker
reclaiming a crashed one's task, keeps its slot): one UpdateItem when one gate applies, one
TransactWriteItems of all of them when several do, so a task holds every slot it needs or
none. A set rather than a number: a duplicate take or release changes nothing, so a
replayed stream record or a second message can never make a count drift.

- Admission (the stream, which queues new tasks): a task that takes all its slots is queued;
  otherwise it is parked in the line of the gate that was full (`waiting#<scope>` items)
  and stays `submitted`, so a backlog never fills the queue and other tasks are queued
  behind nothing. A line is ordered by priority, then age (`rank`, below), so when slots
  free the highest priority goes first, equal priorities first in first out.
- A slot is given back by the stream when its task ends or goes to `retrying`, whoever
  wrote it: the worker, the reaper, the dead-letter handler or a cancel; then the first
  parked tasks of each of its gates' lines take the free slots. A parked task that finds
  another of its gates full moves to that gate's line, keeping its rank.
- A gate with parked tasks is listed (one `parked` item per gate, written once per stream
  batch that parks, not per task): the reaper's minute admits each listed line's tasks
  whenever the limits allow, so that raising, lowering or removing a limit on a running
  stage never strands them. A gate whose line is empty is unlisted, on the condition that
  no park came meanwhile.
- The worker takes the slots again before it claims (a no-op for an admitted task). A
  delayed run's message that comes due with no slot free moves the task to `submitted`,
  and the stream parks it (the worker's `_park_due_run`). A retry's message with no slot
  free waits: it is sent again with a delay (DEFER_SECONDS, doubling per wait up to
  MAX_DEFER_SECONDS) and the original deleted, so waiting never counts as a delivery (SQS's
  receive count, the dead-letter queue's trigger) nor as an attempt.

Priority and aging: a line's sort key is `rank#<task id>`, where rank is the task's
submit time in milliseconds plus (9 - priority) x PRIORITY_AGING_SECONDS. A priority
is worth that much waiting: a priority 9 task goes before the priority 5 tasks submitted
up to 4 x PRIORITY_AGING_SECONDS before it, and never before one that has waited longer,
so a low priority task is overtaken only by tasks submitted within 9 x
PRIORITY_AGING_SECONDS of it, and starts.

Rates (TokenBuckets): one item per bucket (`rate#<scope>`, sk `bucket`) with its tokens
and the time they were counted; a take reads it and writes it back on the condition that
nobody wrote since (retried on a race). TYPE_RATE's buckets are taken by the worker after
the slots, before it claims: a task past the rate is sent again with the delay until the
next token (it keeps its slots, it waits, it never fails); SUBMIT_RATE's by the submit
routes, one token per job.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, timefmt
from chalicelib.flow import Rate, first_match
from chalicelib.history import History
from chalicelib.model import DEFAULT_PRIORITY, MAX_PRIORITY, utcnow
from chalicelib.store import owner_scoped

DEFER_SECONDS = 1
MAX_DEFER_SECONDS = 16
# With no limit left on a line, the reaper queues at most this many of its parked tasks per
# run (the rest the next minute), so that its run stays within its time.
UNLIMITED_ADMIT_PER_RUN = 500
DEFAULT_AGING_SECONDS = 60
PARKED_GATES = {"S": "parked"}
OWNER, TYPE, POOL, KEY = "owner", "type", "pool", "key"
# Why a parked task waits, as its job document says it (`waitingFor`).
REASONS = {OWNER: "owner limit", TYPE: "type limit", POOL: "pool limit", KEY: "key limit"}
RATE_REASON = "rate"


@dataclass(frozen=True)
class Waiting:
    """What flow control knows of a task: enough to take its slots and to queue it."""

    task_id: str
    type: str
    owner: str
    created_at: str = ""  # ISO time of submit: the line's order
    priority: int = DEFAULT_PRIORITY
    key: str | None = None
    key_limit: int | None = None
    expires_at: int = 0
    version: int = 0  # the task's, as it waits (its history entry notes the wait)
    pool: str | None = None  # the worker pool that runs it (None: the worker Lambda)

    @classmethod
    def of(cls, task: Any) -> Waiting:
        """A task's (chalicelib.model.Task)."""
        return cls(
            task_id=task.id,
            type=task.type,
            owner=task.owner,
            created_at=task.created_at.isoformat(),
            priority=task.priority,
            key=task.concurrency_key,
            key_limit=task.concurrency_limit,
            expires_at=task.expires_at,
            version=task.version,
            pool=task.pool,
        )

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Waiting:
        def number(name: str) -> int | None:
            return int(item[name]["N"]) if name in item else None

        return cls(
            task_id=item["task_id"]["S"],
            type=item["type"]["S"],
            owner=item["owner"]["S"] if "owner" in item else _owner_of_line(item["pk"]["S"]),
            created_at=item.get("created_at", {}).get("S", ""),
            priority=int(item.get("priority", {}).get("N", DEFAULT_PRIORITY)),
            key=item["ckey"]["S"] if "ckey" in item else None,
            key_limit=number("climit"),
            expires_at=number("expires_at") or 0,
            version=number("version") or 0,
            pool=item["pool"]["S"] if "pool" in item else None,
        )

    def attributes(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "task_id": {"S": self.task_id},
            "type": {"S": self.type},
            "owner": {"S": self.owner},
            "created_at": {"S": self.created_at},
            "priority": {"N": str(self.priority)},
            "expires_at": {"N": str(self.expires_at)},  # the task's own TTL
            "version": {"N": str(self.version)},
        }
        if self.key is not None and self.key_limit is not None:
            item.update(ckey={"S": self.key}, climit={"N": str(self.key_limit)})
        if self.pool is not None:
            item["pool"] = {"S": self.pool}
        return item


def _owner_of_line(pk: str) -> str:
    """The owner of a line written before lines carried it: `waiting#<len>:<owner>`."""
    scoped = pk.removeprefix("waiting#")
    length, _, rest = scoped.partition(":")
    return rest[: int(length)]


@dataclass(frozen=True)
class Gate:
    """One limit a task must fit under: its owner's, its type group's, its pool's, or its
    key's."""

    kind: str  # OWNER, TYPE, POOL or KEY
    scope: str  # what the gate's items are keyed by
    limit: int  # 0: the limit was removed (a listed line's gate)

    @property
    def slots_key(self) -> dict[str, Any]:
        return {"pk": {"S": "slots#" + self.scope}, "sk": {"S": "running"}}

    @property
    def line(self) -> dict[str, str]:
        return {"S": "waiting#" + self.scope}

    @property
    def reason(self) -> str:
        return REASONS[self.kind]


class Blocked(Exception):
    """A gate of the task has all its slots held by other tasks."""

    def __init__(self, gate: Gate) -> None:
        super().__init__(gate.scope)
        self.gate = gate


# Queues a task's message (TaskService.send through TaskService.send_waiting).
Enqueue = Callable[[Waiting], None]


def defer_seconds(deferrals: int) -> int:
    """How long a task over a limit waits before it asks again (with jitter)."""
    base = min(MAX_DEFER_SECONDS, DEFER_SECONDS * 2 ** min(deferrals, 10))
    return max(1, round(base * random.uniform(0.75, 1.25)))


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class Slots:
    """The gates, their slots and their waiting lines (module docstring)."""

    def __init__(
        self,
        records_table: str,
        limit: int,
        type_limits: tuple[tuple[str, int], ...] = (),
        aging_seconds: int = DEFAULT_AGING_SECONDS,
        tasks_table: str | None = None,
        pool_limits: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.records_table = records_table
        self.tasks_table = tasks_table  # where `mark` says why a task waits (None: not said)
        self.limit = limit  # MAX_RUNNING_PER_OWNER
        self.type_limits = type_limits
        self.pool_limits = dict(pool_limits)  # POOL_CONCURRENCY
        self.aging_seconds = aging_seconds
        self.history = History(records_table)

    @classmethod
    def of(cls, settings: Any) -> Slots:
        """The gates a deployment's settings (chalicelib.settings.Settings) set."""
        return cls(
            settings.records_table,
            settings.max_running_per_owner,
            settings.type_concurrency,
            settings.priority_aging_seconds,
            settings.tasks_table,
            settings.pool_concurrency,
        )

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    # -- gates ---------------------------------------------------------------------------

    def owner_gate(self, owner: str) -> Gate:
        return Gate(OWNER, owner_scoped(owner), self.limit)

    def gates(self, task: Waiting) -> list[Gate]:
        """The gates that apply to the task now (none: it is queued at once)."""
        if task.pool is not None:  # a pool's workers set its pace: only its own limit applies
            limit = self.pool_limits.get(task.pool)
            return [Gate(POOL, "pool#" + task.pool, limit)] if limit else []
        found = []
        if self.limit > 0:
            found.append(self.owner_gate(task.owner))
        if (group := first_match(task.type, self.type_limits)) is not None:
            found.append(Gate(TYPE, "type#" + group[0], group[1]))
        if task.key is not None and task.key_limit:
            found.append(Gate(KEY, "key#" + owner_scoped(task.owner, task.key), task.key_limit))
        return found

    def acquire(self, task: Waiting) -> bool:
        """Take a slot of each of the task's gates; True if it took a new one (False: it held
        them already, or it cannot tell: several gates are taken in one transaction, which
        says nothing of what was held before). Raises Blocked naming a full gate."""
        gates = self.gates(task)
        if not gates:
            return False
        if len(gates) == 1:
            return self._acquire_one(gates[0], task.task_id)
        self._acquire_all(gates, task.task_id)
        return False

    def _take(self, gate: Gate, task_id: str) -> dict[str, Any]:
        return {
            "TableName": self.records_table,
            "Key": gate.slots_key,
            "UpdateExpression": "ADD holders :task",
            "ConditionExpression": (
                "attribute_not_exists(holders) OR size(holders) < :limit OR contains(holders, :id)"
            ),
            "ExpressionAttributeValues": {
                ":task": {"SS": [task_id]},
                ":id": {"S": task_id},
                ":limit": {"N": str(gate.limit)},
            },
        }

    def _acquire_one(self, gate: Gate, task_id: str) -> bool:
        try:
            response = self._ddb.update_item(**self._take(gate, task_id), ReturnValues="ALL_OLD")
        except ClientError as exc:
            if _conditional_failed(exc):
                raise Blocked(gate) from None
            raise
        held = response.get("Attributes", {}).get("holders", {}).get("SS", [])
        return task_id not in held

    def _acquire_all(self, gates: list[Gate], task_id: str) -> None:
        try:
            self._ddb.transact_write_items(
                TransactItems=[{"Update": self._take(gate, task_id)} for gate in gates]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons", [])
            for gate, reason in zip(gates, reasons, strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    raise Blocked(gate) from None
            raise

    def release(self, task: Waiting) -> None:
        """Give back the task's slots (of every gate that applies now)."""
        for gate in self.gates(task):
            self.release_gate(gate, task.task_id)

    def release_gate(self, gate: Gate, task_id: str) -> None:
        self._ddb.update_item(
            TableName=self.records_table,
            Key=gate.slots_key,
            UpdateExpression="DELETE holders :task",
            ExpressionAttributeValues={":task": {"SS": [task_id]}},
        )

    def holders(self, gate: Gate | str) -> set[str]:
        """The ids holding the gate's slots (an owner's name: the owner's gate)."""
        if isinstance(gate, str):
            gate = self.owner_gate(gate)
        item = self._ddb.get_item(
            TableName=self.records_table, Key=gate.slots_key, ConsistentRead=True
        ).get("Item", {})
        return set(item.get("holders", {}).get("SS", []))

    # -- admission: a backlog waits in the table, not in the queue -----------------------

    def rank(self, task: Waiting) -> str:
        """The task's place in a line: submit time plus the wait its priority is short of 9."""
        created = datetime.fromisoformat(task.created_at) if task.created_at else None
        millis = int(created.timestamp() * 1000) if created else 0
        behind = (MAX_PRIORITY - task.priority) * self.aging_seconds * 1000
        return f"{millis + behind:016d}"

    def _line_key(self, gate: Gate, task: Waiting) -> dict[str, Any]:
        return {"pk": gate.line, "sk": {"S": f"{self.rank(task)}#{task.task_id}"}}

    def _park(self, gate: Gate, task: Waiting) -> bool:
        """Put the task in the gate's line, if it still waits at the version that parks it;
        False if it does not (a replayed stream record of a task that has since been
        admitted and run, or cancelled: parked, it would be admitted again).

        The line's item is put only if absent, and only that put notes the park in the
        history: a record handed over again, or two writers moving one task to this line,
        park it once."""
        if not self.mark(task.task_id, gate.reason, task.version):
            return False
        try:
            self._ddb.put_item(
                TableName=self.records_table,
                Item={**self._line_key(gate, task), **task.attributes()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return True  # parked there already
            raise
        self._note(task, {"event": "parked", "reason": gate.reason})
        return True

    def _note(self, task: Waiting, event: dict[str, Any], *, once: bool = False) -> None:
        """The task's history: its version's entry lists the wait and the admission."""
        if task.version:
            self.history.record_flow(
                task.task_id, task.version, {**event, "at": timefmt.history(utcnow())}, once=once
            )

    def _list(self, gate: Gate) -> None:
        """After a gate's first park of a batch: the reaper looks at its line. `parks`
        counts the listings, so that unlisting never undoes a listing it did not see."""
        request: dict[str, Any] = {
            "TableName": self.records_table,
            "Key": {"pk": PARKED_GATES, "sk": {"S": gate.scope}},
            "UpdateExpression": "SET kind = :kind ADD parks :one",
            "ExpressionAttributeValues": {":kind": {"S": gate.kind}, ":one": {"N": "1"}},
        }
        if gate.kind == KEY:  # a key's limit is its jobs': the reaper needs it to admit
            request["UpdateExpression"] = "SET kind = :kind, #limit = :limit ADD parks :one"
            request["ExpressionAttributeNames"] = {"#limit": "limit"}
            request["ExpressionAttributeValues"][":limit"] = {"N": str(gate.limit)}
        self._ddb.update_item(**request)

    def parked_gates(self) -> list[tuple[Gate, int]]:
        """The gates listed as having parked tasks, each with its listing count; a gate's
        limit is today's (0: removed)."""
        request: dict[str, Any] = {
            "TableName": self.records_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": PARKED_GATES},
            "ConsistentRead": True,
        }
        return [
            (self._listed_gate(item), int(item["parks"]["N"]))
            for item in aws.query_items(self._ddb, request)
        ]

    def _listed_gate(self, item: dict[str, Any]) -> Gate:
        scope = item["sk"]["S"]
        kind = item.get("kind", {}).get("S", OWNER)
        if kind == KEY:
            return Gate(KEY, scope, int(item["limit"]["N"]))
        if kind == TYPE:
            pattern = scope.removeprefix("type#")
            limit = dict(self.type_limits).get(pattern, 0)
            return Gate(TYPE, scope, limit)
        if kind == POOL:
            return Gate(POOL, scope, self.pool_limits.get(scope.removeprefix("pool#"), 0))
        return Gate(OWNER, scope, self.limit)

    def unlist_if_idle(self, gate: Gate, parks: int) -> bool:
        """Unlist a gate whose line is empty, unless it parked again since `parks` was read."""
        if self._first_parked(gate, 1):
            return False
        try:
            self._ddb.delete_item(
                TableName=self.records_table,
                Key={"pk": PARKED_GATES, "sk": {"S": gate.scope}},
                ConditionExpression="parks = :parks",
                ExpressionAttributeValues={":parks": {"N": str(parks)}},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _first_parked(self, gate: Gate, count: int) -> list[dict[str, Any]]:
        found = self._ddb.query(
            TableName=self.records_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": gate.line},
            ConsistentRead=True,
            Limit=count,
        )
        items: list[dict[str, Any]] = found.get("Items", [])
        return items

    def admit_next(self, gate: Gate, enqueue: Enqueue) -> list[str]:
        """Queue the first parked tasks of the gate's line while they take their slots; the
        ids queued. A task another of whose gates is full moves to that gate's line.

        With no limit left on the gate (0) up to UNLIMITED_ADMIT_PER_RUN of them may go."""
        count = gate.limit if gate.limit > 0 else UNLIMITED_ADMIT_PER_RUN
        queued = []
        for item in self._first_parked(gate, count):
            task = Waiting.from_item(item)
            try:
                self.acquire(task)
            except Blocked as blocked:
                if blocked.gate.scope == gate.scope:
                    break
                self._park(blocked.gate, task)  # its rank goes with it
                self._list(blocked.gate)
                self._ddb.delete_item(TableName=self.records_table, Key=_key_of(item))
                continue
            enqueue(task)
            self._ddb.delete_item(TableName=self.records_table, Key=_key_of(item))
            # The stream and the reaper may both admit it (duplicate messages are harmless
            # to the worker): its history holds one admission.
            self._note(task, {"event": "admitted"}, once=True)
            self.mark(task.task_id, None)
            queued.append(task.task_id)
        return queued

    def parked(self, gate: Gate, count: int) -> list[Waiting]:
        """The first `count` parked tasks of the gate's line, in their order (one Query)."""
        return [Waiting.from_item(item) for item in self._first_parked(gate, max(1, count))]

    def admit_after_release(self, task: Waiting, enqueue: Enqueue) -> list[str]:
        """The first parked tasks of each of the task's gates, which it just left."""
        queued = []
        for gate in self.gates(task):
            queued += self.admit_next(gate, enqueue)
        return queued

    def forget(self, task: Waiting) -> None:
        """A parked task that ended (cancelled, failed) leaves the line it waits in."""
        for gate in self.gates(task):
            self._ddb.delete_item(TableName=self.records_table, Key=self._line_key(gate, task))

    def mark(self, task_id: str, reason: str | None, version: int = 0) -> bool:
        """Say on the task's item why it waits (`waiting_for`, with the version it waits at:
        any later write of the task raises the version and so retires the reason), or that
        it no longer does (None: admitted). The version is left alone, so the stream, pushes
        and webhooks ignore the write; a task that moved on (started, ended, or past
        `version` when one is given) is left as is, and the answer is False.
        GET /jobs/{jobId} reads it with the task: no read is added to a poll."""
        if self.tasks_table is None:
            return True
        request: dict[str, Any] = {
            "TableName": self.tasks_table,
            "Key": {"id": {"S": task_id}},
            "UpdateExpression": "REMOVE waiting_for, waiting_version",
            "ConditionExpression": "attribute_exists(id)",
        }
        if reason is not None:
            request.update(
                UpdateExpression="SET waiting_for = :reason, waiting_version = version",
                ConditionExpression="#status IN (:submitted, :retrying)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":reason": {"S": reason},
                    ":submitted": {"S": "submitted"},
                    ":retrying": {"S": "retrying"},
                },
            )
            if version:
                request["ConditionExpression"] += " AND version = :version"
                request["ExpressionAttributeValues"][":version"] = {"N": str(version)}
        try:
            self._ddb.update_item(**request)
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return False
        return True

    # -- the parts a stream batch admits with (chalicelib/admission.py) -------------------

    def line_item(self, gate: Gate, task: Waiting) -> dict[str, Any]:
        """The item that parks the task in the gate's line."""
        return {**self._line_key(gate, task), **task.attributes()}

    def line_items(self, gate: Gate, count: int) -> list[dict[str, Any]]:
        """The first `count` items of the gate's line, in its order (one Query)."""
        return self._first_parked(gate, count)

    def note(self, task: Waiting, event: dict[str, Any], *, once: bool = False) -> None:
        self._note(task, event, once=once)

    def list_gate(self, gate: Gate) -> None:
        self._list(gate)


def _key_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"pk": item["pk"], "sk": item["sk"]}


# -- rates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    """A bucket's answer: whether the tokens were taken, how many are left, and when
    enough would be (seconds; 0 when taken)."""

    allowed: bool
    remaining: int
    retry_after: float


class TokenBuckets:
    """Token buckets in the records table (module docstring): `take` costs one consistent
    GetItem and, when it takes, one conditional PutItem; so does `give_back`."""

    RACE_RETRIES = 5

    def __init__(self, records_table: str, clock: Callable[[], float] = time.time) -> None:
        self.records_table = records_table
        self.clock = clock

    @staticmethod
    def _key(scope: str) -> dict[str, Any]:
        return {"pk": {"S": "rate#" + scope}, "sk": {"S": "bucket"}}

    def _tokens_now(self, item: dict[str, Any] | None, rate: Rate, now: float) -> float:
        """The bucket's tokens at `now`: full when it has no item (never taken, or idle)."""
        if item is None:
            return float(rate.count)
        elapsed = max(0.0, now - float(item["at"]["N"]))
        return min(float(rate.count), float(item["tokens"]["N"]) + elapsed * rate.per_second)

    def _write(
        self, scope: str, rate: Rate, item: dict[str, Any] | None, tokens: float, now: float
    ) -> bool:
        """Write the bucket's count, on the condition that nobody wrote since `item` was
        read; False if somebody did."""
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if item is not None:
            condition = {
                "ConditionExpression": "#at = :at",
                "ExpressionAttributeNames": {"#at": "at"},
                "ExpressionAttributeValues": {":at": item["at"]},
            }
        try:
            aws.client("dynamodb").put_item(
                TableName=self.records_table,
                Item={
                    **self._key(scope),
                    "tokens": {"N": f"{tokens:.6f}"},
                    "at": {"N": f"{now:.6f}"},
                    # a bucket idle for a day is full again: its item may go
                    "expires_at": {"N": str(int(now) + rate.period_seconds + 86400)},
                },
                **condition,
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _read(self, scope: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            aws.client("dynamodb")
            .get_item(TableName=self.records_table, Key=self._key(scope), ConsistentRead=True)
            .get("Item")
        )
        return item

    def take(self, scope: str, rate: Rate, count: int = 1) -> Taken:
        for _ in range(self.RACE_RETRIES):
            item = self._read(scope)
            now = self.clock()
            tokens = self._tokens_now(item, rate, now)
            if tokens < count:
                wait = (count - tokens) / rate.per_second
                return Taken(False, math.floor(tokens), wait)
            if self._write(scope, rate, item, tokens - count, now):
                return Taken(True, math.floor(tokens - count), 0.0)
            # another take wrote meanwhile: count again
        return Taken(False, 0, 1.0 / rate.per_second)

    def give_back(self, scope: str, rate: Rate, count: int) -> None:
        """Return tokens taken for work that was then refused as a whole (a batch another of
        whose owners was short): never above the bucket's size. A race lost on every retry
        leaves them taken, which only delays the owner's next submits."""
        for _ in range(self.RACE_RETRIES):
            item = self._read(scope)
            if item is None:
                return  # expired: full again
            now = self.clock()
            tokens = min(float(rate.count), self._tokens_now(item, rate, now) + count)
            if self._write(scope, rate, item, tokens, now):
                return
