"""Webhooks per the Standard Webhooks specification: signed, retried, logged, replayable.

An event is created once per terminal change of a task (keyed on task id and
version, so a duplicate stream record creates nothing) and delivered from the
webhooks queue. Failed attempts are rescheduled through SQS message delays on
the Standard Webhooks / Svix schedule; every attempt is logged in the records
table, readable by the task's owner.

The log of events and attempts, and its records table layout: chalicelib/webhooks/events.py.
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

from chalicelib import aws
from chalicelib.errors import JobNotFinished, NoWebhook
from chalicelib.model import Task, Webhook, utcnow
from chalicelib.observability import emit_metric, sqs_partial, task_context
from chalicelib.queues import SQS_MAX_DELAY_SECONDS, DeliveryMessage
from chalicelib.settings import Settings
from chalicelib.webhooks.events import (
    INLINE_PAYLOAD_BYTES,
    Delivery,
    WebhookEvent,
    WebhookLog,
    event_id_for,
    event_type_for,
)
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

__all__ = [
    "INLINE_PAYLOAD_BYTES",
    "Delivery",
    "RetrySchedule",
    "WebhookDispatcher",
    "WebhookEvent",
    "WebhookLog",
    "event_id_for",
    "event_type_for",
]

log = logging.getLogger("taskstatus_svc.webhooks")

# Delay before attempt n+1 (index n): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE_SECONDS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE_SECONDS)
USER_AGENT = "taskstatus-webhooks/1"
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


# -- delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrySchedule:
    """When a failed delivery is tried again: `seconds[n]` before attempt n+1, +-10% jitter,
    or a receiver's longer Retry-After (capped at the longest step). A part of the container,
    so a test can give the dispatcher a schedule of zeros instead of patching a function."""

    seconds: tuple[float, ...] = SCHEDULE_SECONDS

    def next_delay(self, attempt: int, outcome: Outcome) -> float:
        scheduled = self.seconds[attempt] * random.uniform(0.9, 1.1)
        if outcome.retry_after is not None:
            return max(scheduled, min(outcome.retry_after, self.seconds[-1]))
        return scheduled


Sender = Callable[[Destination, bytes, dict[str, str], float, str], Outcome]


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        rendering: Rendering,
        log: WebhookLog,
        clock: Callable[[], datetime] = utcnow,
        sender: Sender = post,
        monotonic: Callable[[], float] = time.monotonic,
        schedule: RetrySchedule = RetrySchedule(),
    ) -> None:
        self.settings = settings
        self.schedule = schedule
        self.rendering = rendering
        self.log = log
        self.clock = clock
        self.sender = sender
        self.monotonic = monotonic  # measures an attempt's deadline, its lookup included

    def enqueue(self, message: DeliveryMessage, delay: float = 0) -> None:
        aws.client("sqs").send_message(
            QueueUrl=self.settings.webhooks_queue_url,
            MessageBody=message.to_json(),
            DelaySeconds=max(0, min(SQS_MAX_DELAY_SECONDS, int(delay))),
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
        created, existing = self.log.create_event(
            task, payload, options, self.clock(), self.settings.objects_bucket
        )
        # An event still pending with no attempt made was stored by a run that failed before
        # its message was sent (the stream record is retried): queue it again.
        lost = existing is not None and existing.awaits_first_send
        if created or lost:
            self.enqueue(
                DeliveryMessage(taskId=task.id, version=task.version, attempt=1, manual=manual)
            )
        return event_id_for(task.id, task.version)

    def handle_batch(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Deliver each message on its own; a failure is retried by SQS, never the batch."""
        return sqs_partial(records, self._deliver_record)

    def _deliver_record(self, record: dict[str, Any]) -> bool:
        """One message of the webhooks queue: True when it is done with (delivered,
        rescheduled, or not a delivery at all), False to have SQS hand it over again."""
        try:
            message = DeliveryMessage.from_json(record["body"])
        except ValueError:
            log.error("dropping a message that is not a delivery: %.200s", record["body"])
            return True
        with task_context(message.taskId):
            try:
                self.deliver(message)
            except Exception:
                log.exception("webhook delivery of version %s failed", message.version)
                return False
        return True

    def deliver(self, message: DeliveryMessage) -> None:
        now = self.clock()
        remaining = message.notBefore - now.timestamp()
        if remaining > 1:
            self.enqueue(message, delay=remaining)  # longer than SQS's 15 min delay: hop again
            return
        # The event carries its URL, payload and TTL: the task itself is not read again.
        event = self.log.get_event(message.taskId, message.version)
        if event is None or not event.is_live(now):
            return
        if event.attempts >= message.attempt and not message.manual:
            return  # this attempt already happened (a duplicate SQS message)
        # One deadline per attempt, the host's lookup included: a batch of deliveries
        # must fit the function's timeout however slow each host's name server is.
        started = self.monotonic()
        try:
            destination = check_url(event.url, self.settings, self._resolver(started))
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
        self._tally(event, outcome, state, now)
        emit_metric("WebhookAttempts", 1, outcome="delivered" if outcome.delivered else state)
        if state == "retrying" and not message.manual:
            delay = self.schedule.next_delay(message.attempt, outcome)
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

    def _tally(self, event: WebhookEvent, outcome: Outcome, state: str, now: datetime) -> None:
        """The operator's webhook health per host (chalicelib/tallies.py); best effort: the
        attempt is logged already, and a failed count must not send it again."""
        from urllib.parse import urlsplit

        from chalicelib.tallies import count_webhook_attempt

        status = f"HTTP {outcome.status_code}" if outcome.status_code is not None else None
        try:
            host = urlsplit(event.url).hostname or "?"
            count_webhook_attempt(
                self.settings.records_table,
                now,
                host,
                outcome.delivered,
                state,
                outcome.error or status,
            )
        except Exception:
            log.exception("could not count the webhook attempt for the operator's console")

    def _time_left(self, started: float) -> float:
        """Seconds left of the attempt's WEBHOOK_TIMEOUT_SECONDS."""
        return self.settings.webhook_timeout_seconds - (self.monotonic() - started)

    def _resolver(self, started: float) -> Resolver:
        def within_deadline(host: str, port: int) -> list[str]:
            return resolve(host, port, timeout=min(DNS_TIMEOUT_SECONDS, self._time_left(started)))

        return within_deadline

    def _send(self, event: WebhookEvent, destination: Destination, deadline: float) -> Outcome:
        body = self.log.read_payload(event, self.settings.objects_bucket)
        event_id = event.event_id
        timestamp = datetime.now(UTC)
        secrets = owner_secrets(
            self.settings.webhook_secret, self.settings.webhook_previous_secret, event.owner
        )
        signature = {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": sign(secrets, event_id, timestamp, body),
        }
        options = json.loads(event.delivery)
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
        self.enqueue(
            DeliveryMessage(
                taskId=task.id, version=latest.version, attempt=latest.attempts + 1, manual=manual
            )
        )
        return latest.event_id
