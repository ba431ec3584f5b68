"""Event source mappings for the emulator: poll SQS and the table's stream, invoke handlers.

They behave like Lambda's: an SQS message is deleted only if the handler did
not report it in `batchItemFailures`, so visibility timeouts, retries and the
dead-letter queue work as in AWS; a stream batch that reports a failure is
retried from the failed record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from local.events import LambdaContext, sqs_event, stream_event

log = logging.getLogger("taskstatus_svc.local")
Handler = Callable[[dict[str, Any], Any], Any]


class SqsPump:
    def __init__(
        self, sqs: Any, queue_url: str, handler: Handler, name: str, batch_size: int = 10
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.name = name
        self.batch_size = batch_size

    def run_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and invoke the handler; returns how many messages it got."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        failed: set[str] = set()
        try:
            result = self.handler(sqs_event(messages, self.queue_url), LambdaContext(self.name))
            if isinstance(result, dict):
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:
            log.exception("%s failed; the whole batch will be redelivered", self.name)
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return len(messages)

    def drain(self, max_batches: int = 100) -> int:
        total = 0
        for _ in range(max_batches):
            got = self.run_once()
            if not got:
                break
            total += got
        return total

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once(wait_seconds=1)
            except Exception:
                log.exception("%s poll failed", self.name)
                stop.wait(1)


class StreamPump:
    def __init__(self, streams: Any, stream_arn: str, handler: Handler, name: str) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.name = name
        self._positions: dict[str, str] = {}  # shard id -> last sequence number handled

    def _iterator(self, shard_id: str) -> str:
        request: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if shard_id in self._positions:
            request.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=self._positions[shard_id],
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
            return 0
        failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
        if failures:
            first_failed = failures[0]["itemIdentifier"]
            done = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(first_failed)]
        else:
            done = records
        if done:
            self._positions[shard_id] = done[-1]["dynamodb"]["SequenceNumber"]
        return len(done)

    def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            got = self.run_once()
            if not got:
                break
            total += got
        return total

    def run_forever(self, stop: threading.Event, interval: float = 0.05) -> None:
        while not stop.is_set():
            try:
                if not self.run_once():
                    stop.wait(interval)
            except Exception:
                log.exception("%s poll failed", self.name)
                stop.wait(1)
