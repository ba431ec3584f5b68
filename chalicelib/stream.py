"""The table's stream: what happens after a task changes.

Every version of a task adds its entry to the task's history (chalicelib/history.py).
An INSERT of a submitted task queues it, as does a scheduled task's move to
submitted (the sweep), a retry (failed or cancelled back to submitted), and the
INSERT of a task scheduled a short delay ahead (with that SQS delay:
chalicelib/scheduling.py); a change into a terminal status
creates the task's webhook event (once per version, however often the record
is delivered). WebSocket pushes, and the operators' change messages, are the stream's
second reader (the `pushes` function, chalicelib/realtime/pushes.py): no number of
dashboards delays a task being queued here.

Queueing from here is a transactional outbox: the REST call makes one write and
no SQS call, and a task can never be stored without being queued, because a
failed send fails the record and Lambda redelivers it (duplicate messages are
harmless to the worker).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib import aws, scheduling
from chalicelib.fairness import Waiting
from chalicelib.model import Status, Task
from chalicelib.observability import emit_metric, sqs_partial, task_context
from chalicelib.service import TaskService
from chalicelib.store import is_task_item, task_from_item
from chalicelib.tallies import Tallies

if TYPE_CHECKING:
    from chalicelib.fairness import Gate, Slots
    from chalicelib.history import History
    from chalicelib.webhooks import WebhookDispatcher

log = logging.getLogger("taskstatus_svc.stream")


def _image(record: dict[str, Any], name: str) -> Task | None:
    item = record.get("dynamodb", {}).get(name)
    if not item or not is_task_item(item):
        return None
    return task_from_item(item)


def _old_status(record: dict[str, Any]) -> Status | None:
    old_status = record.get("dynamodb", {}).get("OldImage", {}).get("status", {}).get("S")
    return Status(old_status) if old_status is not None else None


def _keeps_version(record: dict[str, Any]) -> bool:
    """A change that keeps the version moved only the reaper's deadline (a producer's
    heartbeat, a waiting task postponed): no news for history or webhooks."""
    images = record.get("dynamodb", {})
    old = images.get("OldImage", {}).get("version", {}).get("N")
    return old is not None and old == images.get("NewImage", {}).get("version", {}).get("N")


def _was_terminal(record: dict[str, Any]) -> bool:
    """Whether the task was already terminal before this change (no need to parse the image)."""
    old_status = _old_status(record)
    return old_status is not None and old_status.is_terminal


def needs_queueing(record: dict[str, Any], new: Task) -> bool:
    """A task just submitted, a scheduled one now due, or one a retry brought back from
    failed or cancelled."""
    if new.status is not Status.SUBMITTED or new.is_external:
        return False  # an external task's producer runs it: never queued
    old = _old_status(record)
    return record.get("eventName") == "INSERT" or old is Status.SCHEDULED or _was_terminal(record)


class StreamHandler:
    def __init__(
        self,
        service: TaskService,
        history: History,
        slots: Slots,
        webhooks: Callable[[], WebhookDispatcher],
    ) -> None:
        """`webhooks` builds the dispatcher: only a change that can create a webhook event
        pays for it."""
        self.service = service
        self.history = history
        self.slots = slots
        self._webhooks = webhooks

    @cached_property
    def webhooks(self) -> WebhookDispatcher:
        # Built by the first change that can create a webhook event, not at cold start.
        return self._webhooks()

    def handle_batch(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Handle records in order, so that one bad record never holds the others.

        A record that fails for good (a value DynamoDB or SQS refuses, a broken image)
        fails its task with the reason and the batch goes on. A record that may pass on
        retry (AWS throttling or unavailable) is reported, and Lambda resumes there
        (bounded retries, then the on-failure destination, whose handler replays it until
        it passes: see `replay_unprocessed`). Throttling delays a task, never fails it.

        What a batch learns (the owners it parked, its tallies) is the batch's own: the
        container's one handler may run two batches at once (`make dev` replays failures
        beside the stream).
        """
        records = list(records)
        parked: dict[str, Gate] = {}  # the full gates this batch parked tasks behind, by scope
        # The operator's figures (chalicelib/tallies.py), added once per batch.
        tallies = Tallies(self.service.settings.records_table)
        try:
            for record in records:
                try:
                    self.handle_record(record, parked, tallies)
                except Exception as exc:
                    if not aws.is_transient(exc) and self._fail_task(record, exc):
                        continue
                    log.exception("stream record %s failed", record.get("eventID"))
                    sequence = record["dynamodb"]["SequenceNumber"]
                    return {"batchItemFailures": [{"itemIdentifier": sequence}]}
            return {"batchItemFailures": []}
        finally:
            self._admit_parked(parked)
            tallies.flush()

    def _admit_parked(self, parked: dict[str, Gate]) -> None:
        """Gates whose lines this batch parked tasks in: a slot may have freed since
        (fairness.py). A failure here fails the invocation, and Lambda hands the batch over
        again."""
        for scope in sorted(parked):
            self.slots.admit_next(parked[scope], self.service.send_waiting)

    def _fail_task(self, record: dict[str, Any], exc: Exception) -> bool:
        """Fail the task of a record that cannot be handled; False if that write failed too."""
        task_id = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
        if not task_id:
            log.error("dropping a stream record that is not a task's: %s", exc)
            return True
        with task_context(task_id):
            log.error("a change of this task cannot be handled, failing it: %s", exc)
            emit_metric("StreamRecordsFailed", 1)
            try:
                self.service.fail(
                    task_id, f"the service could not handle this task: {exc}", by="stream"
                )
            except Exception:
                log.exception("could not fail the task either")
                return False
        return True

    def handle_record(
        self, record: dict[str, Any], parked: dict[str, Gate], tallies: Tallies
    ) -> None:
        """One change; a full gate its new task waits behind is added to `parked`, and
        the change is counted in the batch's `tallies`."""
        new = _image(record, "NewImage")
        if new is None or _keeps_version(record):
            return
        with task_context(new.id):
            if self.history.record(new):  # a version seen before is not counted again
                inserted = record.get("eventName") == "INSERT"
                tallies.count(_old_status(record), inserted, new)
            self._queue(record, new, parked)
            self._free_slot(record, new)
            if new.webhook is not None and new.is_terminal:
                self.webhooks.on_task_change(_was_terminal(record), new)

    def _queue(self, record: dict[str, Any], new: Task, parked: dict[str, Gate]) -> None:
        inserted = record.get("eventName") == "INSERT"
        if needs_queueing(record, new):
            waiting = Waiting.of(new)
            if new.pool is None and self.slots.gates(waiting):  # a pool's workers set its pace
                self.slots.admit(waiting, self.service.send_waiting, parked)
            else:
                self.service.enqueue(new)
        elif inserted and (delay := scheduling.queue_delay(new, self.service.clock())) is not None:
            self.service.enqueue(new, delay)

    def _free_slot(self, record: dict[str, Any], new: Task) -> None:
        """A task that ends (or waits to retry) gives its slots back, and the first parked
        tasks of each of its gates' lines take them (fairness.py)."""
        old = _old_status(record)
        if old is None or old.is_terminal or new.pool is not None:
            return
        if not (new.is_terminal or new.status is Status.RETRYING):
            return
        waiting = Waiting.of(new)
        if not self.slots.gates(waiting):
            return
        self.slots.release(waiting)
        if old is Status.SUBMITTED:
            self.slots.forget(waiting)
        self.slots.admit_after_release(waiting, self.service.send_waiting)


# What the stream could not read back to replay: records older than the stream keeps (24 h).
_RECORDS_GONE = frozenset({"TrimmedDataAccessException", "ExpiredIteratorException"})


def replay_unprocessed(
    handler: StreamHandler, messages: Iterable[dict[str, Any]], streams: Any = None
) -> dict[str, Any]:
    """The stream's on-failure destination: handle again the records Lambda gave up on.

    Only records that kept failing for a reason that may pass get here (handle_batch fails
    the task of a record that fails for good, and moves on), so their tasks are not failed:
    the records are read back from the stream (Lambda sends where they were,
    DDBStreamBatchInfo, not the records) and handled again, in order; records of the range
    that had passed are handled twice, which each step bears (one history entry and one
    webhook event per version; a second message loses its claim). A message whose
    records still fail is reported, and SQS hands it over again after the queue's
    visibility timeout; so throttling delays these tasks, however long it lasts. Records
    older than the stream keeps are gone: the message is dropped, and a task whose
    queueing they held is queued by the reaper once its deadline passes.
    """

    def replay(message: dict[str, Any]) -> bool:
        records = _unprocessed_records(message["body"], streams)
        return not handler.handle_batch(records)["batchItemFailures"]

    return sqs_partial(messages, replay)


def _unprocessed_records(body: str, streams: Any) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    try:
        return _read_records(json.loads(body)["DDBStreamBatchInfo"], streams)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _RECORDS_GONE:
            raise
        log.error("the records of a stream failure are no longer in the stream: %s", exc)
        return []


def _read_records(info: dict[str, Any], streams: Any) -> list[dict[str, Any]]:
    """The records from startSequenceNumber to endSequenceNumber of one shard."""
    client = streams or aws.client("dynamodbstreams")
    iterator = client.get_shard_iterator(
        StreamArn=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    end = int(info["endSequenceNumber"])
    records: list[dict[str, Any]] = []
    while iterator:
        response = client.get_records(ShardIterator=iterator, Limit=100)
        for record in response.get("Records", []):
            if int(record["dynamodb"]["SequenceNumber"]) > end:
                return records
            records.append(record)
        if not response.get("Records"):
            return records
        iterator = response.get("NextShardIterator")
    return records
