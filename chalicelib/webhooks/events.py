"""The webhook log: events (what is to be sent) and attempts (what was), as typed records.

Records table layout, partition `task#<id>` (beside the task's history):
  event#<version>             the event: version, id, type, owner, url, delivery options,
                              payload (or payload_key: an object), state, attempts, TTL
  attempt#<version>#<n>       one delivery attempt: time, status code, latency, error
  attempt#<version>#<n>#manual#<id>   a manual redelivery's attempt

Items stop here: the dispatcher reads a WebhookEvent and a Delivery, never an attribute map.
(Not `log.py`: the dispatcher's module has a logger named `log`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, objects, timefmt
from chalicelib.errors import RedeliveryTooSoon
from chalicelib.model import Status, Task
from chalicelib.records import RecordsTable
from chalicelib.webhooks.outbound import Outcome

# A payload larger than this is kept as an object, not in the event item (400 KB limit).
INLINE_PAYLOAD_BYTES = 200 * 1024


def event_id_for(task_id: str, version: int) -> str:
    return f"msg_{task_id.replace('-', '')}_{version}"


def event_type_for(status: Status) -> str:
    return f"job.{status.value}"


def event_sk(version: int) -> str:
    return f"event#{version:010d}"


def attempt_sk(version: int, attempt: int, manual: str | None) -> str:
    sk = f"attempt#{version:010d}#{attempt:03d}"
    return f"{sk}#manual#{manual}" if manual else sk


def _task_pk(task_id: str) -> dict[str, str]:
    return {"S": f"task#{task_id}"}


@dataclass(frozen=True)
class WebhookEvent:
    """One version's event: everything a delivery needs, so the task is not read again."""

    task_id: str
    version: int
    event_id: str
    event_type: str
    owner: str  # whose secret signs it
    url: str
    delivery: str  # the format's options (method, headers, ...) as JSON
    state: str  # pending, retrying, delivered, failed, exhausted
    attempts: int  # scheduled attempts made (a manual redelivery does not count)
    expires_at: int
    payload: str | None = None
    payload_key: str | None = None  # a payload too large for the item, as an object

    @property
    def awaits_first_send(self) -> bool:
        """Stored, but no attempt made: its run may have failed before queueing it."""
        return self.state == "pending" and self.attempts == 0

    def is_live(self, now: datetime) -> bool:
        return self.expires_at > now.timestamp()

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WebhookEvent:
        return cls(
            task_id=item["pk"]["S"].removeprefix("task#"),
            version=int(item["version"]["N"]),
            event_id=item["event_id"]["S"],
            event_type=item["event_type"]["S"],
            owner=item["owner"]["S"],
            url=item["url"]["S"],
            delivery=item["delivery"]["S"],
            state=item["state"]["S"],
            attempts=int(item["attempts"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            payload=item["payload"]["S"] if "payload" in item else None,
            payload_key=item["payload_key"]["S"] if "payload_key" in item else None,
        )


class WebhookLog(RecordsTable):
    def create_event(
        self, task: Task, payload: str, options: str, now: datetime, bucket: str
    ) -> tuple[bool, WebhookEvent | None]:
        """Store the event for this version of the task: (created, the event stored before
        if there was one).

        A payload too large for the item (metadata and results can be large) is kept as
        an object under the owner's prefix, and the event holds its key.
        """
        item = {
            "pk": _task_pk(task.id),
            "sk": {"S": event_sk(task.version)},
            "version": {"N": str(task.version)},
            "event_id": {"S": event_id_for(task.id, task.version)},
            "owner": {"S": task.owner},
            "event_type": {"S": event_type_for(task.status)},
            "url": {"S": task.webhook.url if task.webhook else ""},
            "delivery": {"S": options},
            "state": {"S": "pending"},
            "attempts": {"N": "0"},
            "created_at": {"S": timefmt.item(now)},
            "expires_at": {"N": str(task.expires_at)},
        }
        encoded = payload.encode()
        if len(encoded) > INLINE_PAYLOAD_BYTES:
            key = objects.output_key(task.owner, task.id, f"webhook-{task.version}.json")
            objects.write(bucket, key, encoded, "application/json")
            item["payload_key"] = {"S": key}
        else:
            item["payload"] = {"S": payload}
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            return False, WebhookEvent.from_item(old) if old else None
        return True, None

    def claim_redelivery(self, task_id: str, now: datetime, interval: int) -> None:
        """One manual redelivery per task per `interval` seconds; raises RedeliveryTooSoon."""
        epoch = int(now.timestamp())
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": _task_pk(task_id), "sk": {"S": "redelivery"}},
                UpdateExpression="SET #at = :now, expires_at = :expires",
                ConditionExpression="attribute_not_exists(pk) OR #at <= :cutoff",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={
                    ":now": {"N": str(epoch)},
                    ":cutoff": {"N": str(epoch - interval)},
                    ":expires": {"N": str(epoch + 86400)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            last = int(exc.response.get("Item", {}).get("at", {}).get("N", epoch))
            raise RedeliveryTooSoon(max(1, last + interval - epoch)) from None

    def get_event(self, task_id: str, version: int) -> WebhookEvent | None:
        item = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": _task_pk(task_id), "sk": {"S": event_sk(version)}},
            ConsistentRead=True,
        ).get("Item")
        return WebhookEvent.from_item(item) if item is not None else None

    def latest_event(self, task_id: str) -> WebhookEvent | None:
        response = self._ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _task_pk(task_id), ":prefix": {"S": "event#"}},
            ScanIndexForward=False,
            Limit=1,
        )
        items = response.get("Items", [])
        return WebhookEvent.from_item(items[0]) if items else None

    def read_payload(self, event: WebhookEvent, bucket: str) -> str:
        """The event's body: in the item, or in the object it names."""
        if event.payload is not None:
            return event.payload
        return objects.read(bucket, event.payload_key or "").decode()

    def record_attempt(
        self,
        event: WebhookEvent,
        attempt: int,
        outcome: Outcome,
        state: str,
        now: datetime,
        manual: str | None = None,
    ) -> bool:
        """Log an attempt and the event's new state; False if this attempt was logged before."""
        pk = _task_pk(event.task_id)
        item: dict[str, Any] = {
            "pk": pk,
            "sk": {"S": attempt_sk(event.version, attempt, manual)},
            "event_id": {"S": event.event_id},
            "event_type": {"S": event.event_type},
            "attempt": {"N": str(attempt)},
            "at": {"S": timefmt.item(now)},
            "latency_ms": {"N": str(outcome.latency_ms)},
            "state": {"S": state},
            "expires_at": {"N": str(event.expires_at)},
        }
        if manual:
            item["manual"] = {"BOOL": True}
        if outcome.status_code is not None:
            item["status_code"] = {"N": str(outcome.status_code)}
        if outcome.error:
            item["error"] = {"S": outcome.error[:1000]}
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": pk, "sk": {"S": event_sk(event.version)}},
                            **self._event_update(state, attempt, manual),
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    @staticmethod
    def _event_update(state: str, attempt: int, manual: str | None) -> dict[str, Any]:
        """A manual attempt sets the event's state; only the schedule advances `attempts`."""
        if manual:
            return {
                "UpdateExpression": "SET #state = :state",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":state": {"S": state}},
            }
        return {
            "UpdateExpression": "SET #state = :state, attempts = :attempts",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {
                ":state": {"S": state},
                ":attempts": {"N": str(attempt)},
            },
        }

    def deliveries(self, task_id: str) -> list[Delivery]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"task#{task_id}"},
                ":prefix": {"S": "attempt#"},
            },
        }
        return [_delivery(item) for item in aws.query_items(self._ddb, request)]


@dataclass(frozen=True)
class Delivery:
    """One logged delivery attempt (`contracts.jobs.delivery_document` renders it)."""

    event_id: str
    event_type: str
    attempt: int
    at: str
    status_code: int | None
    latency_ms: int
    error: str | None
    state: str
    manual: bool


def _delivery(item: dict[str, Any]) -> Delivery:
    return Delivery(
        event_id=item["event_id"]["S"],
        event_type=item["event_type"]["S"],
        attempt=int(item["attempt"]["N"]),
        at=item["at"]["S"],
        status_code=int(item["status_code"]["N"]) if "status_code" in item else None,
        latency_ms=int(item["latency_ms"]["N"]),
        error=item["error"]["S"] if "error" in item else None,
        state=item["state"]["S"],
        manual="manual" in item,
    )
