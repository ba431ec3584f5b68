"""Event source mappings for the emulator: poll SQS and the table's stream, invoke handlers.

They behave like Lambda's: an SQS message is deleted only if the handler did
not report it in `batchItemFailures`, so visibility timeouts, retries and the
dead-letter queue work as in AWS; a stream batch that reports a failure is
retried from the failed record.

`SqsPump.run_forever` runs up to `concurrency` invocations at once, as Lambda scales
its pollers: a received batch is split over the free invocation slots, so a long
task never holds up a short one that arrives beside it (Lambda may deliver any batch
size up to the mapping's). Messages stay invisible for the queue's visibility timeout
while their invocation runs; a message whose invocation outlives it is delivered again,
as in AWS. `run_once` and `drain` invoke one batch at a time, for tests.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.events import LambdaContext, sqs_event, stream_event, stream_failure_record

log = logging.getLogger("taskstatus_svc.local")
Handler = Callable[[dict[str, Any], Any], Any]


class SqsPump:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        name: str,
        batch_size: int = 10,
        concurrency: int = 1,
        invocation_size: int | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.name = name
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        # At most this many messages per invocation (the mapping's batch size), so that a
        # message never waits behind another in one invocation where Lambda would not.
        self.invocation_size = invocation_size or batch_size
        self._in_flight: dict[str, str] = {}  # message id -> receipt handle
        self._lock = threading.Lock()
        self.stopping = False

    @property
    def in_flight(self) -> int:
        """Messages received whose invocation has not ended."""
        with self._lock:
            return len(self._in_flight)

    def _receive(self, wait_seconds: int, free: int = 0) -> list[dict[str, Any]]:
        wanted = self.batch_size
        if free:
            wanted = max(1, min(wanted, free * self.invocation_size))
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        with self._lock:
            self._in_flight.update({m["MessageId"]: m["ReceiptHandle"] for m in messages})
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        """One invocation: the handler, then delete what it did not report as failed."""
        try:
            failed: set[str] = set()
            try:
                result = self.handler(sqs_event(messages, self.queue_url), LambdaContext(self.name))
                if isinstance(result, dict):
                    failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except Exception:
                if not self.stopping:
                    log.exception("%s failed; the whole batch will be redelivered", self.name)
                return
            done = [m for m in messages if m["MessageId"] not in failed]
            if done and not self.stopping:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done)
                    ],
                )
        finally:
            with self._lock:
                for message in messages:
                    self._in_flight.pop(message["MessageId"], None)

    def run_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and invoke the handler; returns how many messages it got."""
        messages = self._receive(wait_seconds)
        if messages:
            self._invoke(messages)
        return len(messages)

    def drain(self, max_batches: int = 100) -> int:
        return drain(self.run_once, max_batches)

    def run_forever(self, stop: threading.Event) -> None:
        slots = threading.Semaphore(self.concurrency)
        while not stop.is_set():
            if not slots.acquire(timeout=0.5):
                continue
            free = 1
            while free < self.concurrency and slots.acquire(blocking=False):
                free += 1
            try:
                messages = [] if stop.is_set() else self._receive(wait_seconds=1, free=free)
            except Exception:
                log.exception("%s poll failed", self.name)
                messages = []
                stop.wait(1)
            batches = split(messages, free)
            for _ in range(free - len(batches)):
                slots.release()
            for batch in batches:
                # Daemon threads: stopping `make dev` does not wait for a long task.
                threading.Thread(
                    target=self._invoke_then_release,
                    args=(batch, slots),
                    name=f"{self.name}-invocation",
                    daemon=True,
                ).start()

    def _invoke_then_release(self, messages: list[dict[str, Any]], slots: Any) -> None:
        try:
            self._invoke(messages)
        finally:
            slots.release()

    def release_in_flight(self, visible_in_seconds: int) -> int:
        """At shutdown: the messages of invocations that will not finish come back after
        `visible_in_seconds` (as after a crashed invocation, without waiting out the whole
        visibility timeout). Returns how many."""
        self.stopping = True
        with self._lock:
            handles = list(self._in_flight.values())
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": visible_in_seconds}
                    for i, h in enumerate(chunk)
                ],
            )
        return len(handles)


def drain(run_once: Callable[[], int], max_rounds: int = 100) -> int:
    """Call `run_once` until it handles nothing (at most `max_rounds` times); the total."""
    total = 0
    for _ in range(max_rounds):
        got = run_once()
        if not got:
            break
        total += got
    return total


def split(messages: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    """`messages` in at most `parts` batches of nearly equal size, in order."""
    if not messages:
        return []
    size = math.ceil(len(messages) / max(1, min(parts, len(messages))))
    return [messages[i : i + size] for i in range(0, len(messages), size)]


def send_to_queue(sqs: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination that is an SQS queue."""

    def send(message: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))

    return send


class StreamPump:
    """One batch per shard at a time, in order, as Lambda reads a stream. `positions` (shard
    id -> last sequence number handled) is the mapping's checkpoint; the dev runner keeps it
    across restarts."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        name: str,
        positions: dict[str, str] | None = None,
        max_retries: int | None = None,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.name = name
        self.positions: dict[str, str] = dict(positions or {})
        # As the deployed mapping: after `max_retries` failed retries of the same records,
        # send where they were to `on_failure` (the on-failure destination) and move on.
        self.max_retries = max_retries
        self.on_failure = on_failure
        self._failed_invokes: dict[tuple[str, str], int] = {}

    def _iterator(self, shard_id: str) -> str:
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if shard_id in self.positions:
            request.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=self.positions[shard_id],
            )
        else:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        return self.streams.get_shard_iterator(**request)["ShardIterator"]

    def run_once(self) -> int:
        handled = 0
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
            "Shards"
        ]
        for shard in shards:
            shard_id = shard["ShardId"]
            records = self.streams.get_records(ShardIterator=self._iterator(shard_id), Limit=100)[
                "Records"
            ]
            if not records:
                continue
            handled += self._deliver(shard_id, records)
        return handled

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> int:
        try:
            result = self.handler(stream_event(records, self.stream_arn), LambdaContext(self.name))
        except Exception:
            log.exception("%s failed; the batch will be retried", self.name)
            return self._give_up_after_retries(shard_id, records)
        failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
        if failures:
            first_failed = failures[0]["itemIdentifier"]
            done = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(first_failed)]
        else:
            done = records
        if done:
            self.positions[shard_id] = done[-1]["dynamodb"]["SequenceNumber"]
            return len(done)
        # The first record itself failed (bisecting a batch ends on the failing record).
        return self._give_up_after_retries(shard_id, records[:1])

    def _give_up_after_retries(self, shard_id: str, records: list[dict[str, Any]]) -> int:
        if self.max_retries is None or self.on_failure is None:
            return 0
        key = (shard_id, records[0]["dynamodb"]["SequenceNumber"])
        self._failed_invokes[key] = self._failed_invokes.get(key, 0) + 1
        if self._failed_invokes[key] <= self.max_retries:
            return 0
        del self._failed_invokes[key]
        self.on_failure(
            stream_failure_record(
                records, self.stream_arn, shard_id, self.name, self.max_retries + 1
            )
        )
        self.positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
        return len(records)

    def drain(self, max_rounds: int = 100) -> int:
        return drain(self.run_once, max_rounds)

    def run_forever(self, stop: threading.Event, interval: float = 0.05) -> None:
        while not stop.is_set():
            try:
                if not self.run_once():
                    stop.wait(interval)
            except Exception:
                log.exception("%s poll failed", self.name)
                stop.wait(1)


def every(
    seconds: float, fire: Callable[[], Any], stop: threading.Event, name: str = "schedule"
) -> None:
    """A `rate(...)` schedule: call `fire` every `seconds` until `stop`."""
    next_at = time.monotonic() + seconds
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        next_at += seconds
        try:
            fire()
        except Exception:
            log.exception("%s failed", name)


@dataclass
class EventSources:
    """The deployed event source mappings (infra/package.py's EVENT_SOURCES), as pumps."""

    stream: StreamPump
    pushes: StreamPump  # the stream's second reader: WebSocket pushes
    stream_failures: SqsPump
    worker: SqsPump
    dead_letters: SqsPump
    webhooks: SqsPump

    def all(self) -> list[SqsPump | StreamPump]:
        return [
            self.stream,
            self.pushes,
            self.worker,
            self.dead_letters,
            self.stream_failures,
            self.webhooks,
        ]


def event_sources(
    app_module: Any,
    outputs: dict[str, str],
    sqs: Any,
    streams: Any,
    concurrency: int = 1,
    positions: dict[str, str] | None = None,
    push_positions: dict[str, str] | None = None,
) -> EventSources:
    """Wire the stack's queues and stream (`outputs` of infra/resources.json) to the app's
    handlers, as the deploy does; `make dev` and the tests both build their pumps here."""
    from infra.package import EVENT_SOURCES

    failures_url = outputs["StreamFailuresQueueUrl"]
    return EventSources(
        stream=StreamPump(
            streams,
            outputs["TasksStreamArn"],
            app_module.stream,
            "stream",
            positions=positions,
            max_retries=EVENT_SOURCES["stream"].settings["MaximumRetryAttempts"],
            on_failure=send_to_queue(sqs, failures_url),
        ),
        pushes=StreamPump(
            streams,
            outputs["TasksStreamArn"],
            app_module.pushes,
            "pushes",
            positions=push_positions,
        ),
        stream_failures=SqsPump(sqs, failures_url, app_module.stream_failures, "stream_failures"),
        worker=SqsPump(
            sqs,
            outputs["TasksQueueUrl"],
            app_module.worker,
            "worker",
            concurrency=concurrency,
            invocation_size=_mapping_batch_size(app_module, "worker"),
        ),
        dead_letters=SqsPump(
            sqs,
            outputs["TasksDeadLetterQueueUrl"],
            app_module.dead_letters,
            "dead_letters",
            concurrency=concurrency,
        ),
        webhooks=SqsPump(
            sqs,
            outputs["WebhooksQueueUrl"],
            app_module.webhooks,
            "webhooks",
            concurrency=concurrency,
        ),
    )


def _mapping_batch_size(app_module: Any, name: str) -> int:
    """The batch size app.py gives a function's event source (the worker's is 1)."""
    return next(s.batch_size for s in app_module.app.event_sources if s.name == name)
