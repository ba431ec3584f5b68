"""Fair concurrency: at most MAX_RUNNING_PER_OWNER running tasks per owner (0: no limit).

The owner's slots are one item of the records table whose `holders` is the string set of
the ids of the tasks that hold one. Taking a slot is one conditional UpdateItem:
`ADD holders :id` if the set is smaller than the limit or already holds the task (a
redelivered message, or a worker reclaiming a crashed one's task, keeps its slot). A set
rather than a number: a duplicate take or release changes nothing, so a replayed stream
record or a second message can never make the count drift.

- The worker takes a slot before it claims a task. Over the limit, the task waits: its
  message is sent again with a delay (DEFER_SECONDS, growing per deferral up to
  MAX_DEFER_SECONDS) and the original deleted, so waiting never counts as a delivery
  (SQS's receive count, the dead-letter queue's trigger) nor as an attempt (the new
  message carries the attempts already made).
- A slot is given back by the table's stream when its task leaves a running status (to
  a terminal one or to `retrying`), whoever wrote it: the worker, the reaper (a crashed
  worker's task, once past its deadline), the dead-letter handler or a cancel. A worker
  that took a slot and then could not claim the task gives it back itself.
"""

from __future__ import annotations

import random
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.store import owner_scoped

DEFER_SECONDS = 1
MAX_DEFER_SECONDS = 16


class OverLimit(Exception):
    """The owner already runs as many tasks as the limit allows."""


def _key(owner: str) -> dict[str, Any]:
    return {"pk": {"S": "slots#" + owner_scoped(owner)}, "sk": {"S": "running"}}


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

    def holders(self, owner: str) -> set[str]:
        item = (
            aws.client("dynamodb")
            .get_item(TableName=self.records_table, Key=_key(owner), ConsistentRead=True)
            .get("Item", {})
        )
        return set(item.get("holders", {}).get("SS", []))
