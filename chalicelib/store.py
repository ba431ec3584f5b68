"""DynamoDB repository for tasks and idempotency keys.

Every write that changes a task's status is conditional on the status and the
version the writer expects, so a refused transition or a lost race surfaces as
`TransitionRefused` instead of silently overwriting another writer.

Layout of a task item: scalar attributes are native DynamoDB types; nested or
free-form values (input, result, progress, ...) are stored as JSON strings so
that any JSON survives the round trip (floats, empty strings, deep nesting).
Derived attributes drive the indexes:
  owner + created_at        -> GSI by_owner (a user's tasks, newest first)
  owner_type + created_at   -> GSI by_owner_type (a user's tasks of one type)
  active_shard + deadline   -> sparse GSI by_deadline (non-terminal tasks, for the reaper)
  due_shard + due_at        -> sparse GSI by_due (scheduled tasks, for the sweep: scheduling.py)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from chalicelib import aws, jsonsafe, scheduling
from chalicelib.errors import (
    IdempotencyConflict,
    IdempotencyKeyInUse,
    IdempotentJobGone,
    JobIdTaken,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.model import (
    ACTIVE,
    EXTERNAL,
    RUNNING,
    SERVICE,
    ObjectRef,
    Output,
    Part,
    Progress,
    Status,
    Task,
    Webhook,
)

P = TypeVar("P", bound=Part)

BY_OWNER = "by_owner"
BY_OWNER_TYPE = "by_owner_type"
BY_DEADLINE = "by_deadline"
BY_DUE = "by_due"
DEADLINE_SHARDS = "0123456789abcdef"
MAX_QUERIES_PER_PAGE = 10
# What a task's item may grow to (DynamoDB's limit is 400 KB), with room for the
# attributes a later write adds (progress, error, lease, timestamps).
ITEM_BUDGET_BYTES = 380 * 1024

_JSON_FIELDS = (
    "progress",
    "input",
    "source",
    "target",
    "result",
    "result_object",
    "output",
    "metadata",
    "webhook",
)
_TIME_FIELDS = (
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "run_at",
    "scheduled_for",
)
_INT_FIELDS = ("version", "expires_at", "attempts", "lease_until", "retries", "heartbeat_seconds")
_STR_FIELDS = (
    "id",
    "owner",
    "type",
    "status",
    "error",
    "updated_by",
    "schedule_id",
    "pool",
    "lease_token",
    "lease_receipt",
)


def owner_scoped(owner: str, *parts: str) -> str:
    """A key of an owner's item. The owner's length comes first, so that no owner value,
    whatever separators it holds, can produce another owner's key (`a#b` + `c` vs `a` + `b#c`)."""
    return "#".join([f"{len(owner)}:{owner}", *parts])


def shard_of(task_id: str) -> str:
    """The task's shard of the sparse indexes: one of DEADLINE_SHARDS, which the reaper and
    the sweep query. A service-made id (a UUID) starts with one; a producer's own id (any
    letters: `local-...`) is hashed to one, else the reaper would never see it."""
    first = task_id[0]
    if first in DEADLINE_SHARDS:
        return first
    return hashlib.sha256(task_id.encode()).hexdigest()[0]


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def task_attributes(task: Task, timeout_seconds: int) -> dict[str, dict[str, str]]:
    """The DynamoDB attribute values of a task, derived index keys included."""
    item: dict[str, dict[str, str]] = {}
    for name in _STR_FIELDS:
        value = getattr(task, name)
        if value is not None:
            item[name] = {"S": str(value)}
    for name in _INT_FIELDS:
        value = getattr(task, name)
        if value is not None:
            item[name] = {"N": str(int(value))}
    for name in _TIME_FIELDS:
        value = getattr(task, name)
        if value is not None:
            item[name] = {"S": _iso(value)}
    for name in _JSON_FIELDS:
        value = getattr(task, name)
        if value is not None and value != {}:
            document = value.as_dict() if isinstance(value, Part) else value
            item[name] = {"S": jsonsafe.compact(document)}
    if task.runner != SERVICE:  # absent on the service's own tasks: their items stay as they were
        item["runner"] = {"S": task.runner}
    item["owner_type"] = {"S": owner_scoped(task.owner, task.type)}
    if task.status in ACTIVE:
        item["active_shard"] = {"S": shard_of(task.id)}
        # A scheduled task's clock starts at its run_at: the reaper leaves it to the sweep.
        since = max(task.updated_at, task.run_at or task.updated_at)
        # An external task's producer must report or heartbeat within its own window.
        window = task.silence_limit or timeout_seconds
        deadline = int(since.timestamp()) + window
        if task.status in RUNNING and task.lease_until is not None:
            # A running task is looked at when its worker's lease runs out: a worker that
            # died leaves its task to be taken over then (TaskService.reap), not after the
            # queue's visibility timeout.
            deadline = min(deadline, task.lease_until)
        item["deadline"] = {"N": str(deadline)}
    due = scheduling.due_at(task)
    if due is not None:
        item["due_shard"] = {"S": shard_of(task.id)}
        item["due_at"] = {"N": str(due)}
    return item


def _idempotency_pk(owner: str, key: str) -> str:
    return "idem#" + owner_scoped(owner, key)


def item_size(item: dict[str, dict[str, str]]) -> int:
    """Bytes DynamoDB counts for an item: attribute names plus values (UTF-8)."""
    return sum(
        len(name.encode()) + len(next(iter(value.values())).encode())
        for name, value in item.items()
    )


def task_from_item(item: dict[str, dict[str, str]]) -> Task:
    """The task an item holds; the item was checked when it was written (no validation)."""

    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value is not None else None

    def number(name: str) -> int | None:
        value = item.get(name)
        return int(value["N"]) if value is not None else None

    def moment(name: str) -> datetime | None:
        value = item.get(name)
        return datetime.fromisoformat(value["S"]) if value is not None else None

    def document(name: str) -> Any:
        value = item.get(name)
        return json.loads(value["S"]) if value is not None else None

    def part(kind: type[P], name: str) -> P | None:
        value = document(name)
        return kind.from_dict(value) if value is not None else None

    return Task(
        id=item["id"]["S"],
        owner=item["owner"]["S"],
        type=item["type"]["S"],
        status=Status(item["status"]["S"]),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        updated_at=datetime.fromisoformat(item["updated_at"]["S"]),
        expires_at=int(item["expires_at"]["N"]),
        progress=part(Progress, "progress"),
        input=document("input") or {},
        source=part(ObjectRef, "source"),
        target=part(ObjectRef, "target"),
        result=document("result"),
        result_object=part(ObjectRef, "result_object"),
        error=text("error"),
        output=part(Output, "output"),
        metadata=document("metadata") or {},
        webhook=part(Webhook, "webhook"),
        started_at=moment("started_at"),
        completed_at=moment("completed_at"),
        version=number("version") or 1,
        attempts=number("attempts") or 0,
        lease_until=number("lease_until"),
        retries=number("retries") or 0,
        updated_by=text("updated_by"),
        run_at=moment("run_at"),
        runner=EXTERNAL if text("runner") == EXTERNAL else SERVICE,
        heartbeat_seconds=number("heartbeat_seconds"),
        schedule_id=text("schedule_id"),
        scheduled_for=moment("scheduled_for"),
        pool=text("pool"),
        lease_token=text("lease_token"),
        lease_receipt=text("lease_receipt"),
    )


def is_task_item(item: dict[str, Any]) -> bool:
    return "id" in item and "owner" in item and "status" in item


@dataclass(frozen=True)
class Page:
    tasks: list[Task]
    last_key: tuple[str, str] | None  # (created_at, id) of the last item read


def page_key(task: Task) -> tuple[str, str]:
    """Where a listing that ends at `task` goes on from: its key on the owner indexes."""
    return (_iso(task.created_at), task.id)


@dataclass(frozen=True)
class OverdueTask:
    id: str
    status: Status
    version: int


@dataclass(frozen=True)
class DueTask:
    id: str
    type: str


class TaskStore:
    def __init__(
        self,
        table: str,
        records_table: str,
        timeout_for: Callable[[str], int],
    ) -> None:
        self.table = table
        self.records_table = records_table
        self.timeout_for = timeout_for  # seconds a task of a type may go without a write

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def attributes(self, task: Task) -> dict[str, dict[str, str]]:
        return task_attributes(task, self.timeout_for(task.type))

    # -- create -----------------------------------------------------------------

    def create(self, task: Task) -> None:
        """Store a new task; JobIdTaken if its id is (a producer chose an id in use)."""
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item=self.attributes(task),
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise JobIdTaken(task.id) from None

    def create_idempotent(
        self, task: Task, key: str, fingerprint: str, key_expires_at: int, now: datetime
    ) -> tuple[Task, bool]:
        """Create `task` unless `key` was used before by the same owner.

        Returns (task, created). The same key with another request fingerprint
        raises IdempotencyConflict. One transaction, so a task never exists
        without its key nor a key without its task.
        """
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    self.key_put(task, key, fingerprint, key_expires_at, now),
                    self.task_put(task),
                ]
            )
            return task, True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            if aws.throttled_transaction(exc):
                raise  # nothing was written: the caller answers "retry later"
            reasons = exc.response.get("CancellationReasons") or []
            if any(reason.get("Code") == "TransactionConflict" for reason in reasons):
                raise IdempotencyKeyInUse(key) from None
            refused = [reason.get("Code") not in (None, "None") for reason in reasons]
            if refused[1:2] == [True] and not refused[0]:
                raise JobIdTaken(task.id) from None  # a new key, but the chosen id is in use
            existing = reasons[0].get("Item") if reasons else None
            if existing is None:
                existing = self._get_key_item(task.owner, key)
            if existing is None:
                raise IdempotencyKeyInUse(key) from None
        if existing["fingerprint"]["S"] != fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            )
        earlier = self.get(existing["task_id"]["S"], now)
        if earlier is None:
            raise IdempotentJobGone(existing["task_id"]["S"])
        return earlier, False

    def task_put(self, task: Task) -> dict[str, Any]:
        """A transaction's Put of a new task (never over an existing id)."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": self.attributes(task),
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }

    def key_put(
        self, task: Task, key: str, fingerprint: str, key_expires_at: int, now: datetime
    ) -> dict[str, Any]:
        """A transaction's Put of an idempotency key for `task`, unless the key is live."""
        return {
            "Put": {
                "TableName": self.records_table,
                "Item": {
                    "pk": {"S": _idempotency_pk(task.owner, key)},
                    "sk": {"S": "idem"},
                    "task_id": {"S": task.id},
                    "fingerprint": {"S": fingerprint},
                    "expires_at": {"N": str(key_expires_at)},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def key_item(
        self, owner: str, key: str, task_id: str, fingerprint: str, expires_at: int
    ) -> dict[str, Any]:
        """An idempotency key's item, as `create_idempotent` and `replace` store it."""
        return {
            "pk": {"S": _idempotency_pk(owner, key)},
            "sk": {"S": "idem"},
            "task_id": {"S": task_id},
            "fingerprint": {"S": fingerprint},
            "expires_at": {"N": str(expires_at)},
        }

    def live_key_item(self, owner: str, key: str, now: datetime) -> dict[str, Any] | None:
        item = self._get_key_item(owner, key)
        if item is None or int(item["expires_at"]["N"]) < now.timestamp():
            return None
        return item

    def _get_key_item(self, owner: str, key: str) -> dict[str, Any] | None:
        response = self._ddb.get_item(
            TableName=self.records_table,
            Key={"pk": {"S": _idempotency_pk(owner, key)}, "sk": {"S": "idem"}},
            ConsistentRead=True,
        )
        return response.get("Item")

    # -- read -------------------------------------------------------------------

    def get(self, task_id: str, now: datetime) -> Task | None:
        """The task, or None if it does not exist or its TTL has passed."""
        item = self._ddb.get_item(TableName=self.table, Key={"id": {"S": task_id}}).get("Item")
        if item is None:
            return None
        task = task_from_item(item)
        if task.expires_at <= now.timestamp():
            return None
        return task

    def list_for_owner(
        self,
        owner: str,
        now: datetime,
        *,
        limit: int,
        type: str | None = None,
        status: Status | None = None,
        after: tuple[str, str] | None = None,
        updated_since: datetime | None = None,
    ) -> Page:
        """One Query on an index, newest first; never a Scan."""
        if type is None:
            index, key_name, key_value = BY_OWNER, "owner", owner
        else:
            index, key_name, key_value = BY_OWNER_TYPE, "owner_type", owner_scoped(owner, type)
        names = {"#k": key_name}
        values: dict[str, Any] = {
            ":k": {"S": key_value},
            ":now": {"N": str(int(now.timestamp()))},
        }
        filters = ["expires_at > :now"]
        if status is not None:
            names["#s"] = "status"
            values[":s"] = {"S": status.value}
            filters.append("#s = :s")
        if updated_since is not None:
            values[":since"] = {"S": _iso(updated_since)}
            filters.append("updated_at >= :since")
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k",
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        # A filter drops items after DynamoDB has counted them against Limit, so one Query
        # can return a short (even empty) page while matches remain: read on until the
        # page is full or the index is exhausted, at most MAX_QUERIES_PER_PAGE calls.
        # Each further Query reads more items, and the page is cut at `limit`.
        items: list[dict[str, Any]] = []
        last_key = after
        read = limit
        for _ in range(MAX_QUERIES_PER_PAGE):
            if last_key is not None:
                request["ExclusiveStartKey"] = {
                    "id": {"S": last_key[1]},
                    "created_at": {"S": last_key[0]},
                    key_name: {"S": key_value},
                }
            request["Limit"] = read
            response = self._ddb.query(**request)
            found = response.get("Items", [])
            wanted = limit - len(items)
            items += found[:wanted]
            if len(found) > wanted:
                last_key = (items[-1]["created_at"]["S"], items[-1]["id"]["S"])
                break
            last = response.get("LastEvaluatedKey")
            last_key = (last["created_at"]["S"], last["id"]["S"]) if last else None
            if last_key is None or len(items) >= limit:
                break
            read = min(1000, read * 4)
        return Page(tasks=[task_from_item(item) for item in items], last_key=last_key)

    def overdue(self, now: datetime) -> Iterable[OverdueTask]:
        """Non-terminal tasks whose deadline has passed (one Query per shard)."""
        for shard in DEADLINE_SHARDS:
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": BY_DEADLINE,
                "KeyConditionExpression": "active_shard = :shard AND deadline < :now",
                "ExpressionAttributeValues": {
                    ":shard": {"S": shard},
                    ":now": {"N": str(int(now.timestamp()))},
                },
            }
            for item in aws.query_items(self._ddb, request):
                yield OverdueTask(
                    id=item["id"]["S"],
                    status=Status(item["status"]["S"]),
                    version=int(item["version"]["N"]),
                )

    def active(self) -> Iterable[OverdueTask]:
        """Every non-terminal task, whatever its deadline (one Query per shard)."""
        return self.overdue(datetime(9000, 1, 1, tzinfo=UTC))

    def due(self, now: datetime) -> Iterable[DueTask]:
        """Scheduled tasks whose due time has passed (one Query per shard of by_due)."""
        for shard in DEADLINE_SHARDS:
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": BY_DUE,
                "KeyConditionExpression": "due_shard = :shard AND due_at <= :now",
                "ExpressionAttributeValues": {
                    ":shard": {"S": shard},
                    ":now": {"N": str(int(now.timestamp()))},
                },
            }
            while True:
                response = self._ddb.query(**request)
                for item in response.get("Items", []):
                    yield DueTask(id=item["id"]["S"], type=item["type"]["S"])
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- guarded writes -----------------------------------------------------------

    def release(self, task_id: str, now: datetime, *, timeout_seconds: int) -> Task:
        """Move a due scheduled task to `submitted` (the stream then queues it)."""
        epoch = int(now.timestamp())
        return self._update(
            task_id,
            set_values={
                "status": {"S": Status.SUBMITTED.value},
                "updated_at": {"S": _iso(now)},
                "deadline": {"N": str(epoch + timeout_seconds)},
                "updated_by": {"S": "scheduler"},
            },
            set_expressions=["version = version + :one"],
            remove=["due_shard", "due_at"],
            condition=("#status = :scheduled AND run_at <= :now_iso AND expires_at > :epoch"),
            condition_values={
                ":one": {"N": "1"},
                ":scheduled": {"S": Status.SCHEDULED.value},
                ":now_iso": {"S": _iso(now)},
                ":epoch": {"N": str(epoch)},
            },
            wanted=Status.SUBMITTED,
            now=now,
        )

    def postpone_deadline(self, task: Task, until: datetime) -> None:
        """Move a waiting task's reaper deadline (not a status write: the version stays).

        Conditional on the status and version read, so it never touches a task that moved.
        """
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"id": {"S": task.id}},
                UpdateExpression="SET deadline = :until",
                ConditionExpression="#status = :status AND version = :version",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":until": {"N": str(int(until.timestamp()))},
                    ":status": {"S": task.status.value},
                    ":version": {"N": str(task.version)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def save(self, before: Task, after: Task) -> Task:
        """Write `after` over `before`, only if the stored task is still `before`.

        The condition is on id, status and version: two writers that read the same
        version cannot both win.
        """
        if after.version != before.version + 1:
            raise ValueError("a saved task must carry the next version")
        old = self.attributes(before)
        new = self.attributes(after)
        changed = {k: v for k, v in new.items() if old.get(k) != v and k != "id"}
        removed = [k for k in old if k not in new]
        return self._update(
            after.id,
            set_values=changed,
            remove=removed,
            condition="#status = :expected_status AND version = :expected_version",
            condition_values={
                ":expected_status": {"S": before.status.value},
                ":expected_version": {"N": str(before.version)},
            },
            wanted=after.status,
            now=after.updated_at,
        )

    def replace(self, before: Task, after: Task, key_item: dict[str, Any] | None = None) -> Task:
        """Write `after` whole over `before`, only if the stored task is still `before`
        (status and version); with `key_item`, in one transaction with that idempotency key.

        For a change that resets many attributes at once (a retry): a whole item leaves no
        attribute of the earlier run behind.
        """
        if after.version != before.version + 1:
            raise ValueError("a replaced task must carry the next version")
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": self.attributes(after),
            "ConditionExpression": "#status = :expected_status AND version = :expected_version",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":expected_status": {"S": before.status.value},
                ":expected_version": {"N": str(before.version)},
            },
        }
        try:
            if key_item is None:
                self._ddb.put_item(**put)
            else:
                self._ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.records_table,
                                "Item": key_item,
                                "ConditionExpression": "attribute_not_exists(pk) "
                                "OR expires_at < :now",
                                "ExpressionAttributeValues": {
                                    ":now": {"N": str(int(after.updated_at.timestamp()))}
                                },
                            }
                        },
                        {"Put": put},
                    ]
                )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if aws.throttled_transaction(exc):
                raise  # nothing was written: the caller answers "retry later"
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if reasons and reasons[0].get("Code") not in (None, "None"):
                    raise IdempotencyKeyInUse(key_item["pk"]["S"] if key_item else "") from None
            elif code != "ConditionalCheckFailedException":
                raise
            raise TransitionRefused(before.id, before.status.value, after.status.value) from None
        return after

    def claim(
        self, task_id: str, now: datetime, *, lease_seconds: int, attempt: int, timeout_seconds: int
    ) -> Task:
        """Move a task to `started` for a worker, holding a lease until now + lease_seconds.

        Allowed from submitted/retrying, from scheduled once its run_at has passed (a
        delayed message), or from a running status whose lease has expired (its worker
        died). A live lease means another worker holds the task.
        """
        epoch = int(now.timestamp())
        return self._update(
            task_id,
            set_values={
                "status": {"S": Status.STARTED.value},
                "updated_at": {"S": _iso(now)},
                "lease_until": {"N": str(epoch + lease_seconds)},
                "attempts": {"N": str(attempt)},
                "active_shard": {"S": shard_of(task_id)},
                "updated_by": {"S": "worker"},
            },
            set_expressions=[
                "version = version + :one",
                "started_at = if_not_exists(started_at, :now_iso)",
                "deadline = :deadline",
            ],
            remove=["due_shard", "due_at"],
            condition=(
                "attribute_exists(id) AND expires_at > :epoch AND ("
                "#status IN (:submitted, :retrying) OR "
                "(#status = :scheduled AND run_at <= :now_iso) OR "
                "(#status IN (:started, :processing, :error) AND lease_until < :epoch))"
            ),
            condition_values={
                ":one": {"N": "1"},
                ":now_iso": {"S": _iso(now)},
                ":deadline": {"N": str(epoch + min(lease_seconds, timeout_seconds))},
                ":epoch": {"N": str(epoch)},
                ":submitted": {"S": Status.SUBMITTED.value},
                ":retrying": {"S": Status.RETRYING.value},
                ":scheduled": {"S": Status.SCHEDULED.value},
                **{f":{s.value}": {"S": s.value} for s in RUNNING},
            },
            wanted=Status.STARTED,
            now=now,
        )

    def cancel(self, task_id: str, owner: str, now: datetime, by: str = "api") -> Task:
        """Cancel in one conditional write: owner matches and the task is not terminal."""
        active = sorted(s.value for s in ACTIVE)
        placeholders = {f":a{i}": {"S": s} for i, s in enumerate(active)}
        return self._update(
            task_id,
            set_values={
                "status": {"S": Status.CANCELLED.value},
                "updated_at": {"S": _iso(now)},
                "completed_at": {"S": _iso(now)},
                "updated_by": {"S": by},
            },
            set_expressions=["version = version + :one"],
            remove=["active_shard", "deadline", "lease_until", "due_shard", "due_at"],
            condition=(
                "#owner = :owner AND expires_at > :epoch "
                f"AND #status IN ({', '.join(placeholders)})"
            ),
            condition_values={
                ":one": {"N": "1"},
                ":owner": {"S": owner},
                ":epoch": {"N": str(int(now.timestamp()))},
                **placeholders,
            },
            extra_names={"#owner": "owner"},
            wanted=Status.CANCELLED,
            now=now,
            hide_other_owner=owner,
        )

    def _update(
        self,
        task_id: str,
        *,
        set_values: dict[str, dict[str, str]],
        remove: list[str],
        condition: str,
        condition_values: dict[str, Any],
        wanted: Status,
        now: datetime,
        set_expressions: list[str] | None = None,
        extra_names: dict[str, str] | None = None,
        hide_other_owner: str | None = None,
    ) -> Task:
        names = {"#status": "status", **(extra_names or {})}
        values = dict(condition_values)
        assignments = list(set_expressions or [])
        for i, (name, value) in enumerate(sorted(set_values.items())):
            names[f"#f{i}"] = name
            values[f":f{i}"] = value
            assignments.append(f"#f{i} = :f{i}")
        expression = "SET " + ", ".join(assignments)
        if remove:
            removals = []
            for i, name in enumerate(sorted(remove)):
                names[f"#r{i}"] = name
                removals.append(f"#r{i}")
            expression += " REMOVE " + ", ".join(removals)
        try:
            response = self._ddb.update_item(
                TableName=self.table,
                Key={"id": {"S": task_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            if (
                old is None
                or int(old["expires_at"]["N"]) <= now.timestamp()
                or (hide_other_owner and old["owner"]["S"] != hide_other_owner)
            ):
                raise TaskNotFound(task_id) from None
            raise TransitionRefused(task_id, old["status"]["S"], wanted.value) from None
        return task_from_item(response["Attributes"])
