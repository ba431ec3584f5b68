"""Fair concurrency: at most MAX_RUNNING_PER_OWNER running tasks per owner (0: no limit;
the default and why: docs/fairness.md).

The owner's slots are one item of the records table whose `holders` is the string set of
the ids of the tasks that hold one. Taking a slot is one conditional UpdateItem:
`ADD holders :id` if the set is smaller than the limit or already holds the task (a
redelivered message, or a worker reclaiming a crashed one's task, keeps its slot). A set
rather than a number: a duplicate take or release changes nothing, so a replayed stream
record or a second message can never make the count drift.

- Admission (the stream, which queues new tasks): a task whose owner has a free slot
  takes it and is queued; otherwise it is parked in the table (`waiting#<owner>` items,
  oldest first) and stays `submitted`, so an owner's backlog never fills the queue and
  another owner's task is queued behind nothing.
- A slot is given back by the stream when its task ends or goes to `retrying`, whoever
  wrote it: the worker, the reaper (a crashed worker's task, once past its deadline), the
  dead-letter handler or a cancel; then the owner's oldest parked tasks take the free
  slots. A worker that cannot claim a task that has ended does the same.
- An owner with parked tasks is listed (one `parked` item per owner, written once per
  stream batch that parks, not per task): the reaper's minute admits each listed owner's
  parked tasks whenever the limit allows, so that raising, lowering or removing the limit
  on a running stage never strands them (without it only a task's end admits the next,
  and with no limit nothing does). An owner whose line is empty is unlisted, on the
  condition that no park came meanwhile.
- The worker takes the slot again before it claims (a no-op for an admitted task). A
  delayed run's message that comes due with no slot free moves the task to `submitted`,
  and the stream parks it (the worker's `_park_due_run`). A retry's message with no slot
  free waits: it is sent again
  with a delay (DEFER_SECONDS, doubling per wait up to MAX_DEFER_SECONDS) and the original
  deleted, so waiting never counts as a delivery (SQS's receive count, the dead-letter
  queue's trigger) nor as an attempt (the new message carries the attempts already made).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.store import owner_scoped

DEFER_SECONDS = 1
MAX_DEFER_SECONDS = 16
# With no limit, the reaper queues at most this many of an owner's parked tasks per run
# (the rest the next minute), so that its run stays within its time.
UNLIMITED_ADMIT_PER_RUN = 500
PARKED_OWNERS = {"S": "parked"}


@dataclass(frozen=True)
class Parked:
    """A task waiting in its owner's line for a slot."""

    task_id: str
    type: str


class OverLimit(Exception):
    """The owner already runs as many tasks as the limit allows."""


def _key(owner: str) -> dict[str, Any]:
    return {"pk": {"S": "slots#" + owner_scoped(owner)}, "sk": {"S": "running"}}


def _waiting_key(owner: str, created_at: str, task_id: str) -> dict[str, Any]:
    return {"pk": {"S": "waiting#" + owner_scoped(owner)}, "sk": {"S": f"{created_at}#{task_id}"}}


def _parked_owner_key(owner: str) -> dict[str, Any]:
    return {"pk": PARKED_OWNERS, "sk": {"S": owner_scoped(owner)}}


# Sends a task's message: (task id, type, owner).
Enqueue = Callable[[str, str, str], None]


def defer_seconds(deferrals: int) -> int:
    """How long a task over the limit waits before it asks again (with jitter)."""
    base = min(MAX_DEFER_SECONDS, DEFER_SECONDS * 2 ** min(deferrals, 10))
    return max(1, round(base * random.uniform(0.75, 1.25)))


class Slots:
    def __init__(self, records_table: str, limit: int) -> None:
        self.records_table = records_table
        self.limit = limit

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def acquire(self, owner: str, task_id: str) -> bool:
        """Take a slot for the task; True if it took a new one (False: it held one already).

        Raises OverLimit when the owner's slots are all held by other tasks."""
        try:
            response = aws.client("dynamodb").update_item(
                TableName=self.records_table,
                Key=_key(owner),
                UpdateExpression="ADD holders :task",
                ConditionExpression=(
                    "attribute_not_exists(holders) OR size(holders) < :limit "
                    "OR contains(holders, :id)"
                ),
                ExpressionAttributeValues={
                    ":task": {"SS": [task_id]},
                    ":id": {"S": task_id},
                    ":limit": {"N": str(self.limit)},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise OverLimit(owner) from None
            raise
        held = response.get("Attributes", {}).get("holders", {}).get("SS", [])
        return task_id not in held

    def release(self, owner: str, task_id: str) -> None:
        aws.client("dynamodb").update_item(
            TableName=self.records_table,
            Key=_key(owner),
            UpdateExpression="DELETE holders :task",
            ExpressionAttributeValues={":task": {"SS": [task_id]}},
        )

    # -- admission: an owner's backlog waits in the table, not in the queue ------------------

    def admit(
        self,
        task_id: str,
        type: str,
        owner: str,
        created_at: str,
        enqueue: Enqueue,
        full: set[str],
        expires_at: int,
    ) -> bool:
        """Queue a new task if its owner has a free slot (taking it); else park it in the
        table until one frees. Returns whether it was queued.

        `full`: the owners found full so far (this call adds to it); their next tasks are
        parked without asking again. The caller must call `admit_next` for each of them
        once it has parked its tasks: a slot freed meanwhile is then seen by that call, or
        by the release, which reads the parked tasks after it frees the slot.
        """
        if owner not in full:
            try:
                self.acquire(owner, task_id)
                enqueue(task_id, type, owner)
                return True
            except OverLimit:
                full.add(owner)
                self._park(owner, created_at, task_id, type, expires_at)
                self._list_parked_owner(owner)
                return False
        self._park(owner, created_at, task_id, type, expires_at)
        return False

    def _park(self, owner: str, created_at: str, task_id: str, type: str, expires_at: int) -> None:
        aws.client("dynamodb").put_item(
            TableName=self.records_table,
            Item={
                **_waiting_key(owner, created_at, task_id),
                "task_id": {"S": task_id},
                "type": {"S": type},
                "expires_at": {"N": str(expires_at)},  # the task's own TTL
            },
        )

    def _list_parked_owner(self, owner: str) -> None:
        """After the owner's first park of a batch: the reaper looks at the owner's line.
        `parks` counts the listings, so that unlisting never undoes a listing it did not see."""
        aws.client("dynamodb").update_item(
            TableName=self.records_table,
            Key=_parked_owner_key(owner),
            UpdateExpression="SET #owner = :owner ADD parks :one",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":owner": {"S": owner}, ":one": {"N": "1"}},
        )

    def parked_owners(self) -> list[tuple[str, int]]:
        """The owners listed as having parked tasks, each with its listing count."""
        request: dict[str, Any] = {
            "TableName": self.records_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": PARKED_OWNERS},
            "ConsistentRead": True,
        }
        return [
            (item["owner"]["S"], int(item["parks"]["N"]))
            for item in aws.query_items(aws.client("dynamodb"), request)
        ]

    def unlist_if_idle(self, owner: str, parks: int) -> bool:
        """Unlist an owner whose line is empty, unless it parked again since `parks` was read."""
        if self._first_parked(owner, 1):
            return False
        try:
            aws.client("dynamodb").delete_item(
                TableName=self.records_table,
                Key=_parked_owner_key(owner),
                ConditionExpression="parks = :parks",
                ExpressionAttributeValues={":parks": {"N": str(parks)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _first_parked(self, owner: str, count: int) -> list[dict[str, Any]]:
        found = aws.client("dynamodb").query(
            TableName=self.records_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "waiting#" + owner_scoped(owner)}},
            ConsistentRead=True,
            Limit=count,
        )
        items: list[dict[str, Any]] = found.get("Items", [])
        return items

    def parked(self, owner: str, count: int) -> list[Parked]:
        """The owner's oldest `count` parked tasks, oldest first (one Query)."""
        return [
            Parked(item["task_id"]["S"], item["type"]["S"])
            for item in self._first_parked(owner, max(1, count))
        ]

    def admit_next(self, owner: str, enqueue: Enqueue) -> list[str]:
        """Queue the owner's oldest parked tasks while slots are free; the ids queued.

        With no limit (0) every parked task may go: up to UNLIMITED_ADMIT_PER_RUN of them."""
        count = self.limit if self.enabled else UNLIMITED_ADMIT_PER_RUN
        queued = []
        for item in self._first_parked(owner, count):
            task_id = item["task_id"]["S"]
            if self.enabled:
                try:
                    self.acquire(owner, task_id)
                except OverLimit:
                    break
            enqueue(task_id, item["type"]["S"], owner)
            key = {"pk": item["pk"], "sk": item["sk"]}
            aws.client("dynamodb").delete_item(TableName=self.records_table, Key=key)
            queued.append(task_id)
        return queued

    def forget(self, owner: str, created_at: str, task_id: str) -> None:
        """A parked task that ended (cancelled, failed) leaves the waiting line."""
        aws.client("dynamodb").delete_item(
            TableName=self.records_table, Key=_waiting_key(owner, created_at, task_id)
        )

    def holders(self, owner: str) -> set[str]:
        item = (
            aws.client("dynamodb")
            .get_item(TableName=self.records_table, Key=_key(owner), ConsistentRead=True)
            .get("Item", {})
        )
        return set(item.get("holders", {}).get("SS", []))
