"""Idempotency keys: one item layout, one condition, one lifetime, one fingerprint check.

Used by `POST /jobs` (TaskStore.create_idempotent), a user's retry (chalicelib/reruns.py)
and `POST /jobs/batch` (contracts/batches.py): each writes its key in the same transaction
as its task, so a task never exists without its key nor a key without its task.

Records table layout:
  pk idem#<owner-scoped key>, sk idem   task_id, fingerprint, expires_at (epoch s; the TTL)

A key is taken by a conditional put: `attribute_not_exists(pk) OR expires_at < :now`, i.e.
no one used it, or its use has run out. A refused put returns the item it found (ALL_OLD),
so a replay is answered without a second read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import aws
from chalicelib.errors import IdempotencyConflict
from chalicelib.store.items import owner_scoped

if TYPE_CHECKING:
    from chalicelib.settings import Settings

SORT_KEY = "idem"
REUSED = "this Idempotency-Key was already used with a different request"


def key_expires_at(now: datetime, settings: Settings) -> int:
    """When a key taken now runs out: after the longer of IDEMPOTENCY_TTL_HOURS and the
    task's own TTL, so that a replay finds the task it made for as long as the task lives."""
    lifetime = max(settings.idempotency_ttl_hours * 3600, settings.task_ttl_seconds)
    return int(now.timestamp()) + lifetime


@dataclass(frozen=True)
class KeyRecord:
    """One use of an idempotency key: the task it made and a digest of the request."""

    task_id: str
    fingerprint: str
    expires_at: int

    def replay_or_conflict(self, fingerprint: str) -> str:
        """The task id a replay of the request `fingerprint` answers with; for another
        request, IdempotencyConflict."""
        if fingerprint != self.fingerprint:
            raise IdempotencyConflict(REUSED)
        return self.task_id

    def is_live(self, now: datetime) -> bool:
        return self.expires_at >= now.timestamp()

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        return cls(
            task_id=item["task_id"]["S"],
            fingerprint=item["fingerprint"]["S"],
            expires_at=int(item["expires_at"]["N"]),
        )


def is_key_item(item: dict[str, Any]) -> bool:
    """Whether a refused put's ALL_OLD item is a key's (a task put returns the task's)."""
    return "fingerprint" in item and "task_id" in item


class IdempotencyKeys:
    def __init__(self, table: str) -> None:
        self.table = table  # the records table

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    @staticmethod
    def _key(owner: str, key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": "idem#" + owner_scoped(owner, key)}, "sk": {"S": SORT_KEY}}

    def put_action(self, owner: str, key: str, record: KeyRecord, now: datetime) -> dict[str, Any]:
        """A transaction's Put of `owner`'s `key` for `record`, unless the key is live."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **self._key(owner, key),
                    "task_id": {"S": record.task_id},
                    "fingerprint": {"S": record.fingerprint},
                    "expires_at": {"N": str(record.expires_at)},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def read(self, owner: str, key: str) -> KeyRecord | None:
        """The key's record, live or not (a consistent read)."""
        item = self._ddb.get_item(
            TableName=self.table, Key=self._key(owner, key), ConsistentRead=True
        ).get("Item")
        return KeyRecord.from_item(item) if item is not None else None

    def live(self, owner: str, key: str, now: datetime) -> KeyRecord | None:
        """The key's record while its use lasts; None if unused or run out."""
        record = self.read(owner, key)
        return record if record is not None and record.is_live(now) else None
