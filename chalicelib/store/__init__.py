"""The tasks table's one door: every read and write of a task item goes through TaskStore.

Every write that changes a task's status is conditional on the status and the
version the writer expects, so a refused transition or a lost race surfaces as
`TransitionRefused` instead of silently overwriting another writer.

The package:
  items.py   a task as an item and back (the codec, derived from the Task dataclass),
             with the derived attributes of the indexes
  keys.py    idempotency keys (records table), written in one transaction with their task
  here       TaskStore: conditional writes, transactions of many tasks, the index queries

A create is a put on the condition that the id is free. Its answer can be lost after DynamoDB
applied it (a read timeout; an emulator or a partition that applies it late): botocore sends
it again, or the service does, and the condition then fails on the request's own task. So a
refused create reads what refused it (ALL_OLD, no second call) and, when that is the very task
it wrote (items.made_by), answers as if written; any other task under the id is JobIdTaken.

Indexes (items.py derives their attributes):
  by_owner       owner + created_at        a user's tasks, by creation time; a type, like a
                                           status, is a filter on it
  by_deadline    active_shard + deadline   sparse: non-terminal tasks, for the reaper
  by_due         due_shard + due_at        sparse: scheduled tasks, for the sweep
  (the deadline and due shards are two hex digits of the id: 256 key values, INDEX_SHARDS)
There was a by_owner_type (owner_type + created_at, whole items) until 2026-12-08: it cost each
task three index writes (its status writes change what it projects) to serve one filter, so
a type is now a filter on by_owner, as a status is (docs/capacity.md, "Write units").
  by_created     created_shard + created_at  sharded: every owner's tasks, newest first, for
                                             the operator's console (chalicelib/console.py)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from chalicelib import aws, timefmt
from chalicelib.errors import (
    IdempotencyKeyInUse,
    IdempotentJobGone,
    JobIdTaken,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.model import ACTIVE, RUNNING, Status, Task
from chalicelib.store.items import (
    DEADLINE_SHARDS,
    INDEX_SHARDS,
    ITEM_BUDGET_BYTES,
    READ_SHARDS,
    is_task_item,
    item_size,
    made_by,
    owner_scoped,
    shard_of,
    shards_from,
    task_attributes,
    task_from_item,
)
from chalicelib.store.keys import IdempotencyKeys, KeyRecord, is_key_item

__all__ = [
    "DEADLINE_SHARDS",
    "INDEX_SHARDS",
    "ITEM_BUDGET_BYTES",
    "READ_SHARDS",
    "DueTask",
    "KeyRecord",
    "OverdueTask",
    "Page",
    "Refusal",
    "TaskStore",
    "is_task_item",
    "item_size",
    "owner_scoped",
    "page_key",
    "shard_of",
    "shards_from",
    "task_attributes",
    "task_from_item",
]

BY_OWNER = "by_owner"
BY_DEADLINE = "by_deadline"
BY_DUE = "by_due"
BY_CREATED = "by_created"
MAX_QUERIES_PER_PAGE = 10
MAX_READS_PER_QUERY = 1000
MAX_KEYS_PER_READ = 100  # BatchGetItem's limit
SHARD_READERS = 10  # shards read at once for a page: botocore's connection pool (10)


@dataclass(frozen=True)
class Page:
    tasks: list[Task]
    last_key: tuple[str, str] | None  # (created_at, id) of the last item read


def page_key(task: Task) -> tuple[str, str]:
    """Where a listing that ends at `task` goes on from: its key on the owner indexes."""
    return (timefmt.item(task.created_at), task.id)


@dataclass(frozen=True)
class OverdueTask:
    id: str
    status: Status
    version: int


@dataclass(frozen=True)
class DueTask:
    id: str
    type: str


@dataclass(frozen=True)
class Refusal:
    """Why a transaction refused one of its actions (`TaskStore.write_many`)."""

    code: str | None  # DynamoDB's: None or "None" for an action that was not refused
    key: KeyRecord | None  # the live idempotency key a key's Put found
    task: dict[str, Any] | None = None  # the task item a task's Put found (its id is in use)

    @property
    def refused(self) -> bool:
        """This action's condition failed, or it conflicted with another write."""
        return self.code not in (None, "None")

    @property
    def condition_failed(self) -> bool:
        return self.code == "ConditionalCheckFailed"


def _refusal(reason: dict[str, Any]) -> Refusal:
    code = reason.get("Code")
    item = reason.get("Item") or {}
    return Refusal(
        code=code,
        key=KeyRecord.from_item(item) if is_key_item(item) else None,
        task=item if is_task_item(item) else None,
    )


def _holds(item: dict[str, Any], set_values: dict[str, Any], removed: list[str]) -> bool:
    """Whether a stored item has every value a write sets and none of what it removes."""
    return all(item.get(k) == v for k, v in set_values.items()) and not any(
        k in item for k in removed
    )


def _created_condition(
    between: tuple[datetime | None, datetime | None], values: dict[str, Any]
) -> str:
    """The key condition's part on created_at (the owner indexes' range key), if any.
    Times are compared in the stored form, in UTC, so that like is compared with like."""
    since, until = between
    if since is not None:
        values[":created_since"] = {"S": timefmt.item(since)}
    if until is not None:
        values[":created_until"] = {"S": timefmt.item(until)}
    if since is not None and until is not None:
        return " AND created_at BETWEEN :created_since AND :created_until"
    if since is not None:
        return " AND created_at >= :created_since"
    if until is not None:
        return " AND created_at <= :created_until"
    return ""


class TaskStore:
    def __init__(
        self,
        table: str,
        records_table: str,
        timeout_for: Callable[[str], int],
    ) -> None:
        self.table = table
        self.timeout_for = timeout_for  # seconds a task of a type may go without a write
        self.keys = IdempotencyKeys(records_table)

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def attributes(self, task: Task) -> dict[str, dict[str, str]]:
        return task_attributes(task, self.timeout_for(task.type))

    # -- create -----------------------------------------------------------------

    def create(self, task: Task, *, own_retry: bool = True) -> None:
        """Store a new task; JobIdTaken if its id is (a producer chose an id in use).

        The task already stored by this very request (its retry met its own late write:
        `made_by`) is no refusal. `own_retry=False` for a request that cannot tell its
        own task from another's (a batch's second item with the same jobId and content)."""
        item = self.attributes(task)
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            if own_retry and made_by(exc.response.get("Item"), item):
                return
            raise JobIdTaken(task.id) from None

    def is_own_write(self, stored: dict[str, Any] | None, task: Task) -> bool:
        """Whether the item a refused create of `task` found is `task` itself (`made_by`)."""
        return made_by(stored, self.attributes(task))

    def create_idempotent(
        self,
        task: Task,
        key: str,
        fingerprint: str,
        key_expires_at: int,
        now: datetime,
        *,
        own_retry: bool = True,
    ) -> tuple[Task, bool]:
        """Create `task` unless `key` was used before by the same owner.

        Returns (task, created). The same key with another request fingerprint
        raises IdempotencyConflict. One transaction, so a task never exists
        without its key nor a key without its task. A key and task this very request
        wrote (its retry met its own late write) are `created`, not a replay
        (`own_retry`: as for `create`).
        """
        record = KeyRecord(task.id, fingerprint, key_expires_at)
        try:
            self._ddb.transact_write_items(TransactItems=self.put_actions(task, key, record, now))
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
            found = reasons[0].get("Item") if reasons else None
            existing = KeyRecord.from_item(found) if found else self.keys.read(task.owner, key)
            if existing is None:
                raise IdempotencyKeyInUse(key) from None
            stored = reasons[1].get("Item") if len(reasons) > 1 else None
        earlier_id = existing.replay_or_conflict(fingerprint)
        if own_retry and earlier_id == task.id and self.is_own_write(stored, task):
            return task, True
        earlier = self.get(earlier_id, now)
        if earlier is None:
            raise IdempotentJobGone(earlier_id)
        return earlier, False

    def put_actions(
        self, task: Task, key: str | None, record: KeyRecord | None, now: datetime
    ) -> list[dict[str, Any]]:
        """A transaction's actions that store a new task: its Put (never over an existing
        id; refused, it returns the task it found, to tell the request's own late write from
        another task), after the Put of its idempotency key when it has one (the key first:
        a refused key's reason comes first)."""
        task_put = {
            "Put": {
                "TableName": self.table,
                "Item": self.attributes(task),
                "ConditionExpression": "attribute_not_exists(id)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        if key is None or record is None:
            return [task_put]
        return [self.keys.put_action(task.owner, key, record, now), task_put]

    def write_many(self, actions: list[dict[str, Any]]) -> list[Refusal] | None:
        """Write `actions` in one transaction: None if all were written; if a condition
        refused it (nothing was written), each action's Refusal, in order (an empty list
        when DynamoDB named no reason). Throttling and other errors are raised."""
        try:
            self._ddb.transact_write_items(TransactItems=actions)
            return None
        except ClientError as exc:
            if aws.is_transient(exc):  # throttled transactions included: none written
                raise
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            return [_refusal(reason) for reason in reasons[: len(actions)]]

    def get_many(self, task_ids: Collection[str], now: datetime) -> dict[str, Task]:
        """The live tasks among `task_ids`, by id: one BatchGetItem per MAX_KEYS_PER_READ ids,
        each read again (at most twice) for the keys DynamoDB left unprocessed. A task not
        read is absent: the caller reads it alone."""
        tasks: dict[str, Task] = {}
        ordered = sorted(task_ids)
        for start in range(0, len(ordered), MAX_KEYS_PER_READ):
            chunk = ordered[start : start + MAX_KEYS_PER_READ]
            request = {self.table: {"Keys": [{"id": {"S": task_id}} for task_id in chunk]}}
            for _ in range(3):
                response = self._ddb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    task = task_from_item(item)
                    if task.expires_at > now.timestamp():
                        tasks[task.id] = task
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return tasks

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

    def query_owned(
        self,
        owner: str,
        now: datetime,
        *,
        limit: int,
        statuses: Collection[Status] | None = None,
        type: str | None = None,
        created_between: tuple[datetime | None, datetime | None] = (None, None),
        updated_since: datetime | None = None,
        order: Literal["newest", "oldest"] = "newest",
        after: tuple[str, str] | None = None,
    ) -> Page:
        """Up to `limit` of the owner's live tasks that match, in creation order, and where
        to go on from (`after`): Queries of by_owner, never a Scan.

        Creation times narrow the key condition; the type, statuses and `updated_since` are
        filters.
        """
        names = {"#k": "owner"}
        values: dict[str, Any] = {
            ":k": {"S": owner},
            ":now": {"N": str(int(now.timestamp()))},
        }
        key_condition = "#k = :k" + _created_condition(created_between, values)
        filters = ["expires_at > :now"]
        if type is not None:
            names["#t"] = "type"
            values[":t"] = {"S": type}
            filters.append("#t = :t")
        if statuses:
            names["#s"] = "status"
            for i, status in enumerate(sorted(statuses)):
                values[f":s{i}"] = {"S": status.value}
            filters.append(f"#s IN ({', '.join(f':s{i}' for i in range(len(statuses)))})")
        if updated_since is not None:
            values[":since"] = {"S": timefmt.item(updated_since)}
            filters.append("updated_at >= :since")
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_OWNER,
            "KeyConditionExpression": key_condition,
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": order == "oldest",
        }
        # A filter drops items after DynamoDB has counted them against Limit, so one Query
        # can return a short (even empty) page while matches remain: read on until the
        # page is full or the index is exhausted, at most MAX_QUERIES_PER_PAGE calls.
        # Each further Query reads more items, and the page is cut at `limit`: the key it
        # goes on from is then the last task returned.
        items: list[dict[str, Any]] = []
        last_key = after
        read = min(MAX_READS_PER_QUERY, limit)
        for _ in range(MAX_QUERIES_PER_PAGE):
            if last_key is not None:
                request["ExclusiveStartKey"] = {
                    "id": {"S": last_key[1]},
                    "created_at": {"S": last_key[0]},
                    "owner": {"S": owner},
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
            read = min(MAX_READS_PER_QUERY, read * 4)
        return Page(tasks=[task_from_item(item) for item in items], last_key=last_key)

    def overdue(self, now: datetime, start: int = 0) -> Iterable[OverdueTask]:
        """Non-terminal tasks whose deadline has passed (one Query per shard, from the
        `start`th: `shards_from`)."""
        for item in self._sharded_before(
            BY_DEADLINE, "active_shard", "deadline < :now", now, start
        ):
            yield OverdueTask(
                id=item["id"]["S"],
                status=Status(item["status"]["S"]),
                version=int(item["version"]["N"]),
            )

    def active(self) -> Iterable[OverdueTask]:
        """Every non-terminal task, whatever its deadline (one Query per shard)."""
        return self.overdue(datetime(9000, 1, 1, tzinfo=UTC))

    def due(self, now: datetime, start: int = 0) -> Iterable[DueTask]:
        """Scheduled tasks whose due time has passed (one Query per shard of by_due, from
        the `start`th: `shards_from`)."""
        for item in self._sharded_before(BY_DUE, "due_shard", "due_at <= :now", now, start):
            yield DueTask(id=item["id"]["S"], type=item["type"]["S"])

    def overdue_sample(self, now: datetime, limit: int) -> list[OverdueTask]:
        """Up to `limit` of the tasks `overdue` finds, every shard read at once: for a
        person waiting on a page (the operator's console), where the reaper's shard after
        shard would be READ_SHARDS round trips long."""
        items = self._sharded_at_once(BY_DEADLINE, "active_shard", "deadline < :now", now, limit)
        return [
            OverdueTask(item["id"]["S"], Status(item["status"]["S"]), int(item["version"]["N"]))
            for item in items
        ]

    def due_sample(self, now: datetime, limit: int) -> list[DueTask]:
        """Up to `limit` of the tasks `due` finds, every shard read at once (as above)."""
        items = self._sharded_at_once(BY_DUE, "due_shard", "due_at <= :now", now, limit)
        return [DueTask(id=item["id"]["S"], type=item["type"]["S"]) for item in items]

    def _sharded_before(
        self, index: str, shard_key: str, before: str, now: datetime, start: int
    ) -> Iterable[dict[str, Any]]:
        """The items of a sparse sharded index whose time is `before` now: one paged Query
        per shard, from the `start`th, so each run of the reaper begins at another shard."""
        for shard in shards_from(start):
            yield from aws.query_items(
                self._ddb, self._before_request(index, shard_key, before, now, shard)
            )

    def _sharded_at_once(
        self, index: str, shard_key: str, before: str, now: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """One Query of at most `limit` items per shard, SHARD_READERS at a time (a boto3
        client is thread-safe); the first `limit` items in shard order."""

        def first_page(shard: str) -> list[dict[str, Any]]:
            request = self._before_request(index, shard_key, before, now, shard)
            return self._ddb.query(**request, Limit=limit).get("Items", [])

        with ThreadPoolExecutor(max_workers=SHARD_READERS) as pool:
            pages = pool.map(first_page, READ_SHARDS)
            return [item for page in pages for item in page][:limit]

    def _before_request(
        self, index: str, shard_key: str, before: str, now: datetime, shard: str
    ) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": f"{shard_key} = :shard AND {before}",
            "ExpressionAttributeValues": {
                ":shard": {"S": shard},
                ":now": {"N": str(int(now.timestamp()))},
            },
        }

    # -- guarded writes -----------------------------------------------------------

    def release(self, task_id: str, now: datetime, *, timeout_seconds: int) -> Task:
        """Move a due scheduled task to `submitted` (the stream then queues it)."""
        epoch = int(now.timestamp())
        return self._update(
            task_id,
            set_values={
                "status": {"S": Status.SUBMITTED.value},
                "updated_at": {"S": timefmt.item(now)},
                "deadline": {"N": str(epoch + timeout_seconds)},
                "updated_by": {"S": "scheduler"},
            },
            set_expressions=["version = version + :one"],
            remove=["due_shard", "due_at"],
            condition=("#status = :scheduled AND run_at <= :now_iso AND expires_at > :epoch"),
            condition_values={
                ":one": {"N": "1"},
                ":scheduled": {"S": Status.SCHEDULED.value},
                ":now_iso": {"S": timefmt.item(now)},
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
        version cannot both win. A write the condition refuses because it is already there
        (the SDK retried a call whose answer was lost: a read timeout under load) is this
        call's own, and returns as written, as `create` does for its own retry: else a claim
        whose answer was lost would hold its task for nobody until its lease ran out.
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
            own_write=(changed, removed),
        )

    def replace(
        self,
        before: Task,
        after: Task,
        key: tuple[str, KeyRecord] | None = None,
        *,
        key_holder: str | None = None,
    ) -> Task:
        """Write `after` whole over `before`, only if the stored task is still `before`
        (status and version); with `key` (its name and record), in one transaction with
        that idempotency key, kept under `key_holder` (default: the task's owner; a claim's
        key is its service key's, chalicelib/claims.py).

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
            if key is None:
                self._ddb.put_item(**put)
            else:
                name, record = key
                holder = key_holder or after.owner
                key_put = self.keys.put_action(holder, name, record, after.updated_at)
                self._ddb.transact_write_items(TransactItems=[key_put, {"Put": put}])
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if aws.throttled_transaction(exc):
                raise  # nothing was written: the caller answers "retry later"
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if reasons and reasons[0].get("Code") not in (None, "None"):
                    raise IdempotencyKeyInUse(key[0] if key else "") from None
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
                "updated_at": {"S": timefmt.item(now)},
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
                ":now_iso": {"S": timefmt.item(now)},
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
                "updated_at": {"S": timefmt.item(now)},
                "completed_at": {"S": timefmt.item(now)},
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
        own_write: tuple[dict[str, Any], list[str]] | None = None,
    ) -> Task:
        """`own_write`: the attributes this write sets and removes; a refused write whose
        item already holds exactly them is this write, applied by an earlier try."""
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
            if old is not None and own_write is not None and _holds(old, *own_write):
                return task_from_item(old)
            if (
                old is None
                or int(old["expires_at"]["N"]) <= now.timestamp()
                or (hide_other_owner and old["owner"]["S"] != hide_other_owner)
            ):
                raise TaskNotFound(task_id) from None
            raise TransitionRefused(task_id, old["status"]["S"], wanted.value) from None
        return task_from_item(response["Attributes"])
