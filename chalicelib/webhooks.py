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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.contracts.payloads import delivery_headers, delivery_options, webhook_payload
from chalicelib.model import Schema, Status, Task, utcnow
from chalicelib.observability import emit_metric, task_context
from chalicelib.records import RecordsTable
from chalicelib.settings import Settings
from chalicelib.urls import UnsafeUrl, check_url

log = logging.getLogger("taskstatus_svc.webhooks")

# Delay before attempt n+1 (index n): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE_SECONDS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE_SECONDS)
MAX_SQS_DELAY = 900
RETRYABLE_STATUS = frozenset({408, 429})
USER_AGENT = "taskstatus-webhooks/1"


class DeliveryMessage(Schema):
    taskId: str
    version: int
    attempt: int
    notBefore: float = 0
    manual: bool = False


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after: int | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return True  # network error or timeout
        return self.status_code in RETRYABLE_STATUS or self.status_code >= 500


# -- signing ---------------------------------------------------------------------------


def sign(settings: Settings, event_id: str, timestamp: datetime, body: str) -> str:
    """Signatures by the current secret and, while rotating, by the previous one."""
    from standardwebhooks import Webhook

    secrets = [settings.webhook_secret, settings.webhook_previous_secret]
    return " ".join(Webhook(s).sign(event_id, timestamp, body) for s in secrets if s)


def event_id_for(task_id: str, version: int) -> str:
    return f"msg_{task_id.replace('-', '')}_{version}"


def event_type_for(status: Status) -> str:
    return f"job.{status.value}"


# -- storage ---------------------------------------------------------------------------


class WebhookLog(RecordsTable):
    def create_event(self, task: Task, payload: str, now: datetime) -> bool:
        """Store the event for this version of the task; False if it already exists."""
        return self.put_new(
            {
                "pk": {"S": f"task#{task.id}"},
                "sk": {"S": f"event#{task.version:010d}"},
                "event_id": {"S": event_id_for(task.id, task.version)},
                "event_type": {"S": event_type_for(task.status)},
                "url": {"S": task.webhook.url if task.webhook else ""},
                "delivery": {"S": delivery_options(task.webhook)},
                "payload": {"S": payload},
                "state": {"S": "pending"},
                "attempts": {"N": "0"},
                "created_at": {"S": now.isoformat()},
                "expires_at": {"N": str(task.expires_at)},
            }
        )

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
    ) -> bool:
        """Log an attempt and the event's new state; False if this attempt was logged before."""
        version = int(event["sk"]["S"].split("#")[1])
        item: dict[str, Any] = {
            "pk": event["pk"],
            "sk": {"S": f"attempt#{version:010d}#{attempt:03d}"},
            "event_id": event["event_id"],
            "event_type": event["event_type"],
            "attempt": {"N": str(attempt)},
            "at": {"S": now.isoformat()},
            "latency_ms": {"N": str(outcome.latency_ms)},
            "state": {"S": state},
            "expires_at": event["expires_at"],
        }
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
                            "UpdateExpression": "SET #state = :state, attempts = :attempts",
                            "ExpressionAttributeNames": {"#state": "state"},
                            "ExpressionAttributeValues": {
                                ":state": {"S": state},
                                ":attempts": {"N": str(attempt)},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def deliveries(self, task_id: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"task#{task_id}"},
                ":prefix": {"S": "attempt#"},
            },
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._ddb.query(**request)
            items += response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return [_delivery_view(item) for item in items]
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _delivery_view(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": item["event_id"]["S"],
        "eventType": item["event_type"]["S"],
        "attempt": int(item["attempt"]["N"]),
        "at": item["at"]["S"],
        "statusCode": int(item["status_code"]["N"]) if "status_code" in item else None,
        "latencyMs": int(item["latency_ms"]["N"]),
        "error": item["error"]["S"] if "error" in item else None,
        "state": item["state"]["S"],
    }


# -- delivery ----------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is a final answer, never followed (it could point anywhere)


_opener = urllib.request.build_opener(_NoRedirects)


def post(
    url: str, body: str, headers: dict[str, str], timeout: float, method: str = "POST"
) -> Outcome:
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method=method)
    start = time.monotonic()
    try:
        with _opener.open(request, timeout=timeout) as response:
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        status, retry_after = exc.code, exc.headers.get("Retry-After")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(None, f"network error: {reason}", _ms_since(start))
    return Outcome(
        status,
        None if 200 <= status < 300 else f"HTTP {status}",
        _ms_since(start),
        _seconds(retry_after),
    )


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def _seconds(header: str | None) -> int | None:
    if header and header.strip().isdigit():
        return int(header.strip())
    return None


def next_delay(attempt: int, outcome: Outcome) -> float:
    """Seconds until attempt `attempt + 1`: the schedule +-10% jitter, or a longer Retry-After."""
    scheduled = SCHEDULE_SECONDS[attempt] * random.uniform(0.9, 1.1)
    if outcome.retry_after is not None:
        return max(scheduled, min(outcome.retry_after, SCHEDULE_SECONDS[-1]))
    return scheduled


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        sender: Callable[..., Outcome] = post,
    ) -> None:
        self.settings = settings
        self.log = WebhookLog(settings.records_table)
        self.clock = clock
        self.sender = sender

    def enqueue(self, message: DeliveryMessage, delay: float = 0) -> None:
        aws.client("sqs").send_message(
            QueueUrl=self.settings.webhooks_queue_url,
            MessageBody=message.model_dump_json(),
            DelaySeconds=max(0, min(MAX_SQS_DELAY, int(delay))),
        )

    def on_task_change(self, was_terminal: bool, new: Task) -> None:
        """From the stream: a task that just became terminal gets its event, once."""
        if new.webhook is None or not new.is_terminal or was_terminal:
            return
        self.create_and_send(new)

    def create_and_send(self, task: Task, manual: bool = False) -> str:
        payload = json.dumps(webhook_payload(task, event_type_for(task.status)))
        if self.log.create_event(task, payload, self.clock()):
            self.enqueue(
                DeliveryMessage(taskId=task.id, version=task.version, attempt=1, manual=manual)
            )
        return event_id_for(task.id, task.version)

    def handle_batch(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            message = DeliveryMessage.model_validate_json(record["body"])
            with task_context(message.taskId):
                self.deliver(message)

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
        url = event["url"]["S"]
        try:
            check_url(url, self.settings)
            outcome = self._send(event, url)
        except UnsafeUrl as exc:
            outcome = Outcome(None, f"refused: {exc}", 0)
            self.log.record_attempt(event, message.attempt, outcome, "failed", now)
            return
        state = self._state_after(message.attempt, outcome)
        if not self.log.record_attempt(event, message.attempt, outcome, state, now):
            return
        emit_metric("WebhookAttempts", 1, outcome="delivered" if outcome.delivered else state)
        if state == "retrying":
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
            "webhook attempt %s: %s",
            message.attempt,
            state,
            extra={"status_code": outcome.status_code, "latency_ms": outcome.latency_ms},
        )

    def _send(self, event: dict[str, Any], url: str) -> Outcome:
        body = event["payload"]["S"]
        event_id = event["event_id"]["S"]
        timestamp = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": event_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": sign(self.settings, event_id, timestamp, body),
        }
        options = json.loads(event.get("delivery", {}).get("S", "{}"))
        headers = delivery_headers(options, body, self.settings) | headers
        method = options.get("method", "POST")
        return self.sender(url, body, headers, self.settings.webhook_timeout_seconds, method)

    @staticmethod
    def _state_after(attempt: int, outcome: Outcome) -> str:
        if outcome.delivered:
            return "delivered"
        if not outcome.retryable:
            return "failed"
        return "retrying" if attempt < MAX_ATTEMPTS else "exhausted"

    def redeliver(self, task: Task) -> dict[str, Any]:
        """Send the task's latest event again (same webhook-id), or a first one for its state."""
        if task.webhook is None:
            return {"triggered": False, "message": "no webhook is configured for this job"}
        latest = self.log.latest_event(task.id)
        if latest is None:
            return {"triggered": True, "eventId": self.create_and_send(task, manual=True)}
        version = int(latest["sk"]["S"].split("#")[1])
        attempt = int(latest["attempts"]["N"]) + 1
        self.enqueue(DeliveryMessage(taskId=task.id, version=version, attempt=attempt, manual=True))
        return {"triggered": True, "eventId": latest["event_id"]["S"]}


def redeliver(service: Any, task: Task) -> dict[str, Any]:
    return WebhookDispatcher(service.settings).redeliver(task)
