"""Batched AWS calls, each with the part AWS left undone retried: BatchGetItem (its
`UnprocessedKeys`), BatchWriteItem (its `UnprocessedItems`) and SendMessageBatch (its `Failed`
entries that were not the sender's fault).

Each request carries a tag (the task it is for), and a failure is answered per tag, so that
a caller fails only the tasks whose part failed: AWS throttles a batch item by item, and
refuses a bad item or message on its own. What is still undone after ROUNDS (a short
backoff between them) is reported as throttled, which may pass: the caller hands it back.
A whole call AWS refuses for good (a value it will never take) is made again one request
at a time, so that the request at fault is found and the others go through.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws

READ_BATCH = 100  # BatchGetItem's most keys
WRITE_BATCH = 25  # BatchWriteItem's most requests
SEND_BATCH = 10  # SendMessageBatch's most entries
ROUNDS = 4  # calls made for one batch's undone part before it is reported
BACKOFF_SECONDS = 0.05  # before the second round, doubling


def still_throttled(operation: str) -> ClientError:
    """What is reported for a part AWS left undone through every round (it may pass)."""
    error = {"Code": "ProvisionedThroughputExceededException", "Message": "left unprocessed"}
    return ClientError({"Error": error}, operation)


def _backoff(round_number: int) -> None:
    time.sleep(BACKOFF_SECONDS * 2**round_number)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- reads --------------------------------------------------------------------------------


def get_items(
    table: str,
    keys: list[dict[str, Any]],
    *,
    consistent: bool = False,
    projection: str | None = None,
) -> list[dict[str, Any]]:
    """The items found under `keys` (in no order; a key with no item adds nothing): one
    BatchGetItem per 100 keys. Raises the call's error, or `still_throttled` if keys stayed
    unprocessed: the caller cannot know what it did not read."""
    ddb = aws.client("dynamodb")
    found: list[dict[str, Any]] = []
    for chunk in _chunks(keys, READ_BATCH):
        request: dict[str, Any] = {"Keys": chunk, "ConsistentRead": consistent}
        if projection is not None:
            request["ProjectionExpression"] = projection
        for round_number in range(ROUNDS):
            response = ddb.batch_get_item(RequestItems={table: request})
            found += response.get("Responses", {}).get(table, [])
            unread = response.get("UnprocessedKeys", {}).get(table)
            if not unread:
                break
            request = unread
            if round_number == ROUNDS - 1:
                raise still_throttled("BatchGetItem")
            _backoff(round_number)
    return found


# -- writes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One request of a BatchWriteItem (`{"PutRequest": ...}` or `{"DeleteRequest": ...}`),
    for the task `tag`."""

    tag: str
    request: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        found = (
            self.request.get("PutRequest", {}).get("Item") or self.request["DeleteRequest"]["Key"]
        )
        return found["pk"]["S"], found["sk"]["S"]


def put(tag: str, item: dict[str, Any]) -> Write:
    return Write(tag, {"PutRequest": {"Item": item}})


def delete(tag: str, key: dict[str, Any]) -> Write:
    return Write(tag, {"DeleteRequest": {"Key": key}})


def write_items(table: str, writes: list[Write]) -> dict[str, Exception]:
    """Make every write, 25 a BatchWriteItem; two on one key: the later wins (a batch may
    not name a key twice). The failures, by tag."""
    latest = {write.key: write for write in writes}
    failed: dict[str, Exception] = {}
    for chunk in _chunks(list(latest.values()), WRITE_BATCH):
        failed.update(_write_chunk(table, chunk))
    return failed


def _write_chunk(table: str, chunk: list[Write]) -> dict[str, Exception]:
    ddb = aws.client("dynamodb")
    by_key = {write.key: write for write in chunk}
    pending = [write.request for write in chunk]
    for round_number in range(ROUNDS):
        try:
            response = ddb.batch_write_item(RequestItems={table: pending})
        except Exception as exc:
            left = [by_key[Write("", request).key] for request in pending]
            if aws.is_transient(exc):
                return {write.tag: exc for write in left}
            return _write_one_by_one(table, left)
        pending = response.get("UnprocessedItems", {}).get(table, [])
        if not pending:
            return {}
        if round_number < ROUNDS - 1:
            _backoff(round_number)
    exc = still_throttled("BatchWriteItem")
    return {by_key[Write("", request).key].tag: exc for request in pending}


def _write_one_by_one(table: str, writes: list[Write]) -> dict[str, Exception]:
    ddb = aws.client("dynamodb")
    failed: dict[str, Exception] = {}
    for write in writes:
        try:
            if "PutRequest" in write.request:
                ddb.put_item(TableName=table, Item=write.request["PutRequest"]["Item"])
            else:
                ddb.delete_item(TableName=table, Key=write.request["DeleteRequest"]["Key"])
        except Exception as exc:
            failed[write.tag] = exc
    return failed


# -- sends --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """One message for the task `tag`: its queue, body and SQS delay."""

    tag: str
    queue_url: str
    body: str
    delay_seconds: int = 0


def send_messages(sends: list[Send]) -> dict[str, Exception]:
    """Send every message, per queue, ten a SendMessageBatch; the failures, by tag."""
    by_queue: dict[str, list[Send]] = {}
    for send in sends:
        by_queue.setdefault(send.queue_url, []).append(send)
    failed: dict[str, Exception] = {}
    for queue_url, group in by_queue.items():
        for chunk in _chunks(group, SEND_BATCH):
            failed.update(_send_chunk(queue_url, chunk))
    return failed


def _send_chunk(queue_url: str, chunk: list[Send]) -> dict[str, Exception]:
    sqs = aws.client("sqs")
    pending = dict(enumerate(chunk))
    failed: dict[str, Exception] = {}
    last: dict[str, Exception] = {}  # what SQS answered for an entry it has not taken yet
    for round_number in range(ROUNDS):
        entries = [
            {"Id": str(n), "MessageBody": s.body, "DelaySeconds": s.delay_seconds}
            for n, s in pending.items()
        ]
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            if aws.is_transient(exc):
                return failed | {send.tag: exc for send in pending.values()}
            return failed | _send_one_by_one(list(pending.values()))
        again: dict[int, Send] = {}
        for entry in response.get("Failed", []):
            send = pending[int(entry["Id"])]
            error = {
                "Code": entry.get("Code", "InternalError"),
                "Message": entry.get("Message", ""),
            }
            exc = ClientError({"Error": error}, "SendMessageBatch")
            if entry.get("SenderFault") and not aws.is_transient(exc):
                failed[send.tag] = exc  # the message itself is wrong: it never passes
            else:
                again[int(entry["Id"])] = send
                last[send.tag] = exc
        pending = again
        if not pending:
            return failed
        if round_number < ROUNDS - 1:
            _backoff(round_number)
    return failed | {send.tag: last[send.tag] for send in pending.values()}


def _send_one_by_one(sends: list[Send]) -> dict[str, Exception]:
    sqs = aws.client("sqs")
    failed: dict[str, Exception] = {}
    for send in sends:
        try:
            sqs.send_message(
                QueueUrl=send.queue_url, MessageBody=send.body, DelaySeconds=send.delay_seconds
            )
        except Exception as exc:
            failed[send.tag] = exc
    return failed
