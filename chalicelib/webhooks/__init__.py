"""Webhooks per the Standard Webhooks specification: signed, retried, logged, replayable.

An event is created once per terminal change of a task (keyed on task id and
version, so a duplicate stream record creates nothing) and delivered from the
webhooks queue. Failed attempts are rescheduled through SQS message delays on
the Standard Webhooks / Svix schedule; every attempt is logged in the records
table, readable by the task's owner.

Records table layout, partition `task#<id>`:
  event#<version>             the event: id, type, payload, status, attempts
  attempt#<version>#<n>       one delivery attempt: time, status code, latency, error
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib import aws, objects
from chalicelib.errors import JobNotFinished, NoWebhook, RedeliveryTooSoon
from chalicelib.model import Status, Task, Webhook, utcnow
from chalicelib.observability import emit_metric, task_context
from chalicelib.queues import DeliveryMessage
from chalicelib.records import RecordsTable
from chalicelib.settings import Settings
from chalicelib.webhooks.outbound import Outcome, post
from chalicelib.webhooks.signing import owner_secrets
from chalicelib.webhooks.ssrf import (
    DNS_TIMEOUT_SECONDS,
    Destination,
    Resolver,
    UnresolvableHost,
    UnsafeUrl,
    check_url,
    resolve,
)

log = logging.getLogger("taskstatus_svc.webhooks")

# Delay before attempt n+1 (index n): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE_SECONDS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE_SECONDS)
MAX_SQS_DELAY = 900
USER_AGENT = "taskstatus-webhooks/1"
# A payload larger than this is kept as an object, not in the event item (400 KB limit).
INLINE_PAYLOAD_BYTES = 200 * 1024
REDELIVERY_INTERVAL_SECONDS = 10


class Rendering(Protocol):
    """How a webhook looks on the wire, by its format: the contract views' business
    (`chalicelib.contracts.payloads.RENDERING`), given to the dispatcher by bootstrap."""

    def payload(self, task: Task, event_type: str, settings: Settings) -> dict[str, Any]: ...

    def options(self, hook: Webhook | None) -> str: ...

    def headers(self, options: dict[str, Any], body: str, owner_secret: str) -> dict[str, str]: ...


# -- signing ---------------------------------------------------------------------------


def sign(secrets: list[str], event_id: str, timestamp: datetime, body: str) -> str:
    """One signature per secret: the owner's current one and, while rotating, the previous one."""
    from standardwebhooks import Webhook

    return " ".join(Webhook(secret).sign(event_id, timestamp, body) for secret in secrets)


def event_id_for(task_id: str, version: int) -> str:
    return f"msg_{task_id.replace('-', '')}_{version}"


def event_type_for(status: Status) -> str:
    return f"job.{status.value}"


# -- storage ---------------------------------------------------------------------------


def attempt_sk(version: int, attempt: int, manual: str | None) -> str:
    sk = f"attempt#{version:010d}#{attempt:03d}"
    return f"{sk}#manual#{manual}" if manual else sk


class WebhookLog(RecordsTable):
    def create_event(
        self, task: Task, payload: str, options: str, now: datetime, bucket: str
    ) -> dict[str, Any] | None:
        """Store the event for this version of the task; the existing event if there is one.

        A payload too large for the item (metadata and results can be large) is kept as
        an object under the owner's prefix, and the event holds its key.
        """
        item = {
            "pk": {"S": f"task#{task.id}"},
            "sk": {"S": f"event#{task.version:010d}"},
            "event_id": {"S": event_id_for(task.id, task.version)},
            "owner": {"S": task.owner},
            "event_type": {"S": event_type_for(task.status)},
            "url": {"S": task.webhook.url if task.webhook else ""},
            "delivery": {"S": options},
            "state": {"S": "pending"},
            "attempts": {"N": "0"},
            "created_at": {"S": now.isoformat()},
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
            return exc.response.get("Item") or {}
        return None

    def claim_redelivery(self, task_id: str, now: datetime, interval: int) -> None:
        """One manual redelivery per task per `interval` seconds; raises RedeliveryTooSoon."""
        epoch = int(now.timestamp())
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"task#{task_id}"}, "sk": {"S": "redelivery"}},
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

    def get_event(self, task_id: str, version: int) -> dict[str, Any] | None:
        response = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"task#{task_id}"}, "sk": {"S": f"event#{version:010d}"}},
            ConsistentRead=True,
        )
        return response.get("Item")

    def latest_event(self, task_id: str) -> dict[str, Any] | None:
        response = self._ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"task#{task_id}"}, ":prefix": {"S": "event#"}},
            ScanIndexForward=False,
            Limit=1,
        )
        items = response.get("Items", [])
        return items[0] if items else None

    def record_attempt(
        self,
        event: dict[str, Any],
        attempt: int,
        outcome: Outcome,
        state: str,
        now: datetime,
        manual: str | None = None,
    ) -> bool:
        """Log an attempt and the event's new state; False if this attempt was logged before."""
        version = int(event["sk"]["S"].split("#")[1])
        item: dict[str, Any] = {
            "pk": event["pk"],
            "sk": {"S": attempt_sk(version, attempt, manual)},
            "event_id": event["event_id"],
            "event_type": event["event_type"],
            "attempt": {"N": str(attempt)},
            "at": {"S": now.isoformat()},
            "latency_ms": {"N": str(outcome.latency_ms)},
            "state": {"S": state},
            "expires_at": event["expires_at"],
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
                            "Key": {"pk": event["pk"], "sk": event["sk"]},
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


# -- delivery ----------------------------------------------------------------------------


def next_delay(attempt: int, outcome: Outcome) -> float:
    """Seconds until attempt `attempt + 1`: the schedule +-10% jitter, or a longer Retry-After."""
    scheduled = SCHEDULE_SECONDS[attempt] * random.uniform(0.9, 1.1)
    if outcome.retry_after is not None:
        return max(scheduled, min(outcome.retry_after, SCHEDULE_SECONDS[-1]))
    return scheduled


Sender = Callable[[Destination, bytes, dict[str, str], float, str], Outcome]


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        rendering: Rendering,
        clock: Callable[[], datetime] = utcnow,
        sender: Sender = post,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rendering = rendering
        self.log = WebhookLog(settings.records_table)
        self.clock = clock
        self.sender = sender
        self.monotonic = monotonic  # measures an attempt's deadline, its lookup included

    def enqueue(self, message: DeliveryMessage, delay: float = 0) -> None:
        aws.client("sqs").send_message(
            QueueUrl=self.settings.webhooks_queue_url,
            MessageBody=message.to_json(),
            DelaySeconds=max(0, min(MAX_SQS_DELAY, int(delay))),
        )

    def on_task_change(self, was_terminal: bool, new: Task) -> None:
        """From the stream: a task that just became terminal gets its event, once."""
        if new.webhook is None or not new.is_terminal or was_terminal:
            return
        self.create_and_send(new)

    def create_and_send(self, task: Task, manual: str | None = None) -> str:
        document = self.rendering.payload(task, event_type_for(task.status), self.settings)
        payload = json.dumps(document, ensure_ascii=False)
        options = self.rendering.options(task.webhook)
        existing = self.log.create_event(
            task, payload, options, self.clock(), self.settings.objects_bucket
        )
        # An event still pending with no attempt made was stored by a run that failed before
        # its message was sent (the stream record is retried): queue it again.
        lost = existing is not None and (
            existing.get("state", {}).get("S") == "pending"
            and existing.get("attempts", {}).get("N") == "0"
        )
        if existing is None or lost:
            self.enqueue(
                DeliveryMessage(taskId=task.id, version=task.version, attempt=1, manual=manual)
            )
        return event_id_for(task.id, task.version)

    def handle_batch(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Deliver each message on its own; a failure is retried by SQS, never the batch."""
        failures = []
        for record in records:
            try:
                message = DeliveryMessage.from_json(record["body"])
            except ValueError:
                log.error("dropping a message that is not a delivery: %.200s", record["body"])
                continue
            with task_context(message.taskId):
                try:
                    self.deliver(message)
                except Exception:
                    log.exception("webhook delivery of version %s failed", message.version)
                    failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def deliver(self, message: DeliveryMessage) -> None:
        now = self.clock()
        remaining = message.notBefore - now.timestamp()
        if remaining > 1:
            self.enqueue(message, delay=remaining)  # longer than SQS's 15 min delay: hop again
            return
        # The event carries its URL, payload and TTL: the task itself is not read again.
        event = self.log.get_event(message.taskId, message.version)
        if event is None or int(event["expires_at"]["N"]) <= now.timestamp():
            return
        if int(event["attempts"]["N"]) >= message.attempt and not message.manual:
            return  # this attempt already happened (a duplicate SQS message)
        # One deadline per attempt, the host's lookup included: a batch of deliveries
        # must fit the function's timeout however slow each host's name server is.
        started = self.monotonic()
        try:
            destination = check_url(event["url"]["S"], self.settings, self._resolver(started))
        except UnresolvableHost as exc:
            outcome = Outcome(None, f"DNS: {exc}", 0)  # often passing: retried on schedule
        except UnsafeUrl as exc:
            outcome = Outcome(None, f"refused: {exc}", 0)
            self.log.record_attempt(event, message.attempt, outcome, "failed", now, message.manual)
            return
        else:
            outcome = self._send(event, destination, self._time_left(started))
        state = self._state_after(message.attempt, outcome)
        if not self.log.record_attempt(event, message.attempt, outcome, state, now, message.manual):
            return
        emit_metric("WebhookAttempts", 1, outcome="delivered" if outcome.delivered else state)
        if state == "retrying" and not message.manual:
            delay = next_delay(message.attempt, outcome)
            self.enqueue(
                DeliveryMessage(
                    taskId=message.taskId,
                    version=message.version,
                    attempt=message.attempt + 1,
                    notBefore=now.timestamp() + delay,
                ),
                delay=delay,
            )
        log.info(
            "webhook attempt %s: %s%s",
            message.attempt,
            state,
            f" ({outcome.error})" if outcome.error else "",
            extra={"status_code": outcome.status_code, "latency_ms": outcome.latency_ms},
        )

    def _time_left(self, started: float) -> float:
        """Seconds left of the attempt's WEBHOOK_TIMEOUT_SECONDS."""
        return self.settings.webhook_timeout_seconds - (self.monotonic() - started)

    def _resolver(self, started: float) -> Resolver:
        def within_deadline(host: str, port: int) -> list[str]:
            return resolve(host, port, timeout=min(DNS_TIMEOUT_SECONDS, self._time_left(started)))

        return within_deadline

    def _payload(self, event: dict[str, Any]) -> str:
        if "payload" in event:
            return event["payload"]["S"]
        key = event["payload_key"]["S"]
        return objects.read(self.settings.objects_bucket, key).decode()

    def _owner_of(self, event: dict[str, Any]) -> str:
        """The event's owner; events stored before owners were recorded read it from the task."""
        if "owner" in event:
            return event["owner"]["S"]
        task_id = event["pk"]["S"].removeprefix("task#")
        item = aws.client("dynamodb").get_item(
            TableName=self.settings.tasks_table,
            Key={"id": {"S": task_id}},
            ProjectionExpression="#owner",
            ExpressionAttributeNames={"#owner": "owner"},
        )
        return item["Item"]["owner"]["S"]

    def _send(self, event: dict[str, Any], destination: Destination, deadline: float) -> Outcome:
        body = self._payload(event)
        event_id = event["event_id"]["S"]
        timestamp = datetime.now(UTC)
        secrets = owner_secrets(
            self.settings.webhook_secret,
            self.settings.webhook_previous_secret,
            self._owner_of(event),
        )
        signature = {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": sign(secrets, event_id, timestamp, body),
        }
        options = json.loads(event.get("delivery", {}).get("S", "{}"))
        # The format may name its origin's User-Agent; callers cannot (a reserved header).
        headers = (
            {"Content-Type": "application/json", "User-Agent": USER_AGENT}
            | self.rendering.headers(options, body, secrets[0])
            | signature
        )
        return self.sender(
            destination,
            body.encode(),
            headers,
            deadline,
            options.get("method", "POST"),
        )

    @staticmethod
    def _state_after(attempt: int, outcome: Outcome) -> str:
        if outcome.delivered:
            return "delivered"
        if not outcome.retryable:
            return "failed"
        return "retrying" if attempt < MAX_ATTEMPTS else "exhausted"

    def redeliver(self, task: Task) -> str:
        """Send the task's latest event again (same webhook-id), or a first one for its state.

        Returns the event id. At most one manual redelivery per task every
        REDELIVERY_INTERVAL_SECONDS (raises RedeliveryTooSoon); each is logged as an
        attempt of its own. A task without a webhook raises NoWebhook, an unfinished one
        JobNotFinished.
        """
        if task.webhook is None:
            raise NoWebhook()
        if not task.is_terminal:
            raise JobNotFinished(task.status.value)
        self.log.claim_redelivery(task.id, self.clock(), REDELIVERY_INTERVAL_SECONDS)
        manual = uuid.uuid4().hex[:12]
        latest = self.log.latest_event(task.id)
        if latest is None:
            return self.create_and_send(task, manual=manual)
        version = int(latest["sk"]["S"].split("#")[1])
        attempt = int(latest["attempts"]["N"]) + 1
        self.enqueue(
            DeliveryMessage(taskId=task.id, version=version, attempt=attempt, manual=manual)
        )
        return latest["event_id"]["S"]
