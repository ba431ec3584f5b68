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
failed send hands the record back and Lambda redelivers it (duplicate messages are
harmless to the worker).

One pass per batch, not per record. The batch's records are planned in order (what each
task's last change asks: a slot, a send, a slot given back), then done together, each kind
of work in as few calls as AWS allows (chalicelib/bulk.py retries what a call leaves
undone):
- reads: one BatchGetItem of the history entries already written (a replayed version adds
  no entry and is not counted again), one of the gates' holders (chalicelib/admission.py);
- slots: one `DELETE holders` per gate for the tasks that ended, one conditional
  `ADD holders` per gate (per set of gates) for the tasks that fit;
- sends: SendMessageBatch per queue (the tasks queue, each pool's), ten a call;
- writes: BatchWriteItem, 25 a call: new history entries (a task parked at its new version
  carries the `parked` event in its entry), parked tasks' line items, and their removal;
- then, for each gate a task left or parked at, its line's first tasks take the slots
  free now (read after the line items are written: a slot freed by a batch running beside
  this one is seen here or by that batch's own pass), as `Slots.admit_next` does.
The writes a batch cannot group stay one per task: a parked task's reason on its item
(written first, on the condition that the task still waits at that version, so a replayed
record of a task since admitted is not parked again), an admitted one's `admitted` event
(once per version), both conditional updates; and webhook events.

A failure belongs to its own task. One that fails for good (a value SQS or DynamoDB refuses,
a broken image) fails that task, and the batch goes on; one that may pass (throttling, AWS
unavailable) fails nothing: the earliest record of its task is reported
(`batchItemFailures`) and Lambda hands that record and those after it on the shard over
again. Every step bears the replay: an entry is read before it is written, slots are sets,
a second message loses its claim. Lambda keeps each task's records in order across the ten
batches of a shard it runs at once (ParallelizationFactor), so no task's changes are
handled out of order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib import aws, bulk, jsonsafe, scheduling, timefmt
from chalicelib.admission import Admission, Admitted
from chalicelib.fairness import Gate, Waiting
from chalicelib.history import entry_item, entry_sk
from chalicelib.model import Status, Task, utcnow
from chalicelib.observability import emit_metric, sqs_partial, task_context
from chalicelib.service import TaskService
from chalicelib.store import is_task_item, task_from_item
from chalicelib.tallies import Tallies

if TYPE_CHECKING:
    from chalicelib.fairness import Slots
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


def _task_id(record: dict[str, Any]) -> str | None:
    task_id: str | None = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
    return task_id


# -- what one batch does, planned in the records' order before anything is done ---------------


@dataclass(frozen=True)
class Change:
    """A new version: its history entry, and what the operator's figures count of it."""

    entry: dict[str, Any]
    old: Status | None
    inserted: bool
    task: Task

    @property
    def key(self) -> tuple[str, str]:
        return self.entry["pk"]["S"], self.entry["sk"]["S"]


@dataclass
class Outcome:
    """The tasks of a batch whose work failed: for good (with the reason) or for now."""

    permanent: dict[str, Exception] = field(default_factory=dict)
    transient: set[str] = field(default_factory=set)

    def failed(self, task_ids: Iterable[str], exc: Exception) -> None:
        for task_id in task_ids:
            self.failed_one(task_id, exc)

    def failed_one(self, task_id: str, exc: Exception) -> None:
        if aws.is_transient(exc):
            self.transient.add(task_id)
        else:
            self.permanent.setdefault(task_id, exc)

    def failed_each(self, failures: dict[str, Exception]) -> None:
        for task_id, exc in failures.items():
            self.failed_one(task_id, exc)


@dataclass
class Plan:
    """A batch's work, task by task, as its records left it (a task's last change wins)."""

    first_record: dict[str, str] = field(default_factory=dict)  # task id -> sequence number
    changes: dict[tuple[str, str], Change] = field(default_factory=dict)  # by entry key
    sends: list[bulk.Send] = field(default_factory=list)  # queued without a gate
    asks: dict[str, Waiting] = field(default_factory=dict)  # new tasks behind gates, in order
    releases: dict[str, Waiting] = field(default_factory=dict)  # tasks that give slots back
    forgets: dict[str, Waiting] = field(default_factory=dict)  # parked tasks that ended
    webhooks: list[tuple[bool, Task]] = field(default_factory=list)

    def ask(self, task: Waiting) -> None:
        self.asks[task.task_id] = task  # after a release in the batch: given back, then taken

    def release(self, task: Waiting, parked: bool) -> None:
        self.asks.pop(task.task_id, None)  # asked and ended in one batch: it never runs
        self.releases[task.task_id] = task
        if parked:
            self.forgets[task.task_id] = task


@dataclass
class Lines:
    """The gates whose lines this batch looks at after its writes, each with the tasks whose
    records brought it there (handed back if that admission fails for now)."""

    gates: dict[str, Gate] = field(default_factory=dict)
    triggers: dict[str, set[str]] = field(default_factory=dict)

    def add(self, gate: Gate, task_id: str) -> None:
        self.gates[gate.scope] = gate
        self.triggers.setdefault(gate.scope, set()).add(task_id)


class StreamHandler:
    def __init__(
        self,
        service: TaskService,
        slots: Slots,
        webhooks: Callable[[], WebhookDispatcher],
    ) -> None:
        """`webhooks` builds the dispatcher: only a change that can create a webhook event
        pays for it."""
        self.service = service
        self.slots = slots
        self.admission = Admission(slots)
        self.table = service.settings.records_table
        self._webhooks = webhooks

    @cached_property
    def webhooks(self) -> WebhookDispatcher:
        # Built by the first change that can create a webhook event, not at cold start.
        return self._webhooks()

    def handle_batch(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Handle a batch in one pass (the module docstring). A task whose work fails for
        good is failed with the reason; one whose work may pass on retry has its earliest
        record reported, and Lambda resumes there (bounded retries, then the on-failure
        destination, whose handler replays it until it passes: see `replay_unprocessed`).
        Throttling delays a task, never fails it.

        Everything a batch learns is its own (no state on the handler): the container's one
        handler may run two batches at once (`make dev` replays failures beside the stream).
        """
        outcome = Outcome()
        plan = self._plan(list(records), outcome)
        written = self._existing_entries(plan, outcome)
        lines = Lines()
        self._release(plan, lines, outcome)
        admitted = self._admit(plan, outcome)
        self._send(plan.sends + self._sends_of(admitted.queued), outcome)
        parked = self._still_waiting(admitted.parked, outcome)
        self._write(plan, parked, written, outcome)
        self._after_parks(parked, written, lines, outcome)
        self._webhook_events(plan, outcome)
        self._admit_from_lines(lines, outcome)
        self._count(plan, written)
        self._fail_tasks(outcome)
        return self._handed_back(plan, outcome)

    # -- the plan ------------------------------------------------------------------------

    def _plan(self, records: list[dict[str, Any]], outcome: Outcome) -> Plan:
        plan = Plan()
        for record in records:
            task_id = _task_id(record)
            if task_id is None:
                log.error("dropping a stream record that is not a task's")
                continue
            plan.first_record.setdefault(task_id, str(record["dynamodb"]["SequenceNumber"]))
            try:
                new = _image(record, "NewImage")
                if new is None or _keeps_version(record):
                    continue
                self._plan_change(plan, record, new)
            except Exception as exc:  # a broken image: no retry mends it
                outcome.permanent.setdefault(task_id, exc)
        return plan

    def _plan_change(self, plan: Plan, record: dict[str, Any], new: Task) -> None:
        change = Change(entry_item(new), _old_status(record), _inserted(record), new)
        plan.changes.setdefault(change.key, change)  # a version's first record counts it
        self._plan_queueing(plan, record, new)
        self._plan_release(plan, record, new)
        if new.webhook is not None and new.is_terminal:
            plan.webhooks.append((_was_terminal(record), new))

    def _plan_queueing(self, plan: Plan, record: dict[str, Any], new: Task) -> None:
        if needs_queueing(record, new):
            waiting = Waiting.of(new)
            if self.slots.gates(waiting):
                plan.ask(waiting)
            else:
                plan.sends.append(self._send_of(new))
        elif (
            _inserted(record)
            and (delay := scheduling.queue_delay(new, self.service.clock())) is not None
        ):
            plan.sends.append(self._send_of(new, delay))

    def _plan_release(self, plan: Plan, record: dict[str, Any], new: Task) -> None:
        """A task that ends (or waits to retry) gives its slots back, and the first parked
        tasks of each of its gates' lines take them (fairness.py); a parked one leaves its
        line."""
        old = _old_status(record)
        if old is None or old.is_terminal:
            return
        # A pool task waiting to retry is back in its pool's queue: it keeps its pool slot (a
        # claim takes no slot), so the pool's limit counts it until it ends.
        retries_here = new.status is Status.RETRYING and new.pool is None
        if not (new.is_terminal or retries_here):
            return
        waiting = Waiting.of(new)
        if self.slots.gates(waiting):
            plan.release(waiting, parked=old is Status.SUBMITTED)

    def _send_of(self, task: Task, delay_seconds: int = 0) -> bulk.Send:
        url, message = self.service.message_for(
            task.id,
            task.type,
            task.owner,
            pool=task.pool,
            concurrency=(task.concurrency_key, task.concurrency_limit),
        )
        return bulk.Send(task.id, url, message.to_json(), delay_seconds)

    def _sends_of(self, tasks: list[Waiting]) -> list[bulk.Send]:
        """The messages of tasks flow control admitted (as `TaskService.send_waiting`)."""
        sends = []
        for task in tasks:
            url, message = self.service.message_of_waiting(task)
            sends.append(bulk.Send(task.task_id, url, message.to_json()))
        return sends

    # -- reads ---------------------------------------------------------------------------

    def _existing_entries(self, plan: Plan, outcome: Outcome) -> set[tuple[str, str]] | None:
        """The batch's history entries already written (a replay, or a batch beside this
        one): they are not written again nor counted. A consistent read: an entry written a
        moment ago is seen. None if they could not be read: their tasks are handed back."""
        keys = [
            {"pk": change.entry["pk"], "sk": change.entry["sk"]} for change in plan.changes.values()
        ]
        if not keys:
            return set()
        try:
            items = bulk.get_items(self.table, keys, consistent=True, projection="pk, sk")
        except Exception as exc:
            outcome.failed({change.task.id for change in plan.changes.values()}, exc)
            return None
        return {(item["pk"]["S"], item["sk"]["S"]) for item in items}

    # -- slots ---------------------------------------------------------------------------

    def _release(self, plan: Plan, lines: Lines, outcome: Outcome) -> None:
        """Give back the slots of the tasks that ended, one DELETE per gate for all of them."""
        by_gate: dict[str, tuple[Gate, list[str]]] = {}
        for task in plan.releases.values():
            for gate in self.slots.gates(task):
                by_gate.setdefault(gate.scope, (gate, []))[1].append(task.task_id)
                lines.add(gate, task.task_id)
        ddb = aws.client("dynamodb")
        for gate, task_ids in by_gate.values():
            try:
                ddb.update_item(
                    TableName=self.table,
                    Key=gate.slots_key,
                    UpdateExpression="DELETE holders :tasks",
                    ExpressionAttributeValues={":tasks": {"SS": sorted(task_ids)}},
                )
            except Exception as exc:
                outcome.failed(task_ids, exc)

    def _admit(self, plan: Plan, outcome: Outcome) -> Admitted:
        """The batch's new tasks behind gates: queued or parked (chalicelib/admission.py)."""
        admitted = self.admission.admit(list(plan.asks.values()))
        outcome.failed_each(admitted.failed)
        return admitted

    # -- sends and writes ----------------------------------------------------------------

    def _send(self, sends: list[bulk.Send], outcome: Outcome) -> dict[str, Exception]:
        failed = bulk.send_messages(sends)
        outcome.failed_each(failed)
        return failed

    def _write(
        self,
        plan: Plan,
        parked: list[tuple[Waiting, Gate]],
        written: set[tuple[str, str]] | None,
        outcome: Outcome,
    ) -> None:
        """New history entries, parked tasks leaving their lines, parked tasks joining them:
        one BatchWriteItem per 25 (a key written twice: the later wins)."""
        parked_at = {task.task_id: (task, gate) for task, gate in parked}
        writes = []
        if written is not None:
            for change in plan.changes.values():
                if change.key not in written:
                    entry = _with_park(change, parked_at.get(change.task.id))
                    writes.append(bulk.put(change.task.id, entry))
        for task in plan.forgets.values():
            for gate in self.slots.gates(task):
                line_key = self.slots.line_item(gate, task)
                writes.append(
                    bulk.delete(task.task_id, {"pk": line_key["pk"], "sk": line_key["sk"]})
                )
        for task, gate in parked:
            writes.append(bulk.put(task.task_id, self.slots.line_item(gate, task)))
        outcome.failed_each(bulk.write_items(self.table, writes))

    def _still_waiting(
        self, parked: list[tuple[Waiting, Gate]], outcome: Outcome
    ) -> list[tuple[Waiting, Gate]]:
        """The parked tasks that still wait at the version that parks them, each saying why
        on its item first (`Slots.mark`, one conditional update each). A replayed record of
        a task since admitted and run, or cancelled, is not parked: it would be admitted
        again."""
        waiting = []
        for task, gate in parked:
            try:
                if self.slots.mark(task.task_id, gate.reason, task.version):
                    waiting.append((task, gate))
            except Exception as exc:
                outcome.failed_one(task.task_id, exc)
        return waiting

    def _after_parks(
        self,
        parked: list[tuple[Waiting, Gate]],
        written: set[tuple[str, str]] | None,
        lines: Lines,
        outcome: Outcome,
    ) -> None:
        """Each gate that parked tasks is listed (once per batch: the reaper's minute looks
        at its line), and a parked task whose entry was there already (a replay) notes the
        wait on it, once."""
        gates = {gate.scope: gate for _, gate in parked}
        for gate in gates.values():
            try:
                self.slots.list_gate(gate)
            except Exception as exc:
                outcome.failed([t.task_id for t, g in parked if g.scope == gate.scope], exc)
        for task, gate in parked:
            lines.add(gate, task.task_id)
            if written is None or _entry_key(task) not in written:
                continue  # the new entry carries the park, or the record comes again
            try:
                self.slots.note(task, {"event": "parked", "reason": gate.reason}, once=True)
            except Exception as exc:
                outcome.failed_one(task.task_id, exc)

    def _webhook_events(self, plan: Plan, outcome: Outcome) -> None:
        """A task that just became terminal gets its webhook event, once (conditional put),
        after its history entry: a task whose work here failed for now gets it when its
        record comes again, so a receiver that reads the history on a webhook finds the end
        there."""
        for was_terminal, task in plan.webhooks:
            if task.id in outcome.transient:
                continue
            try:
                with task_context(task.id):
                    self.webhooks.on_task_change(was_terminal, task)
            except Exception as exc:
                outcome.failed_one(task.id, exc)

    # -- the lines: slots freed, or parks that may have raced a release --------------------

    def _admit_from_lines(self, lines: Lines, outcome: Outcome) -> None:
        """The first tasks of each line that has room now take the free slots and are
        queued; one another of whose gates is full moves to that gate's line, keeping its
        rank (as `Slots.admit_next`). A task whose send fails for now gives its slots back
        and stays in line, and the records that brought the line here are handed back."""
        if not lines.gates:
            return
        try:
            held = self.admission.read_holders(lines.gates.values())
        except Exception as exc:
            outcome.failed(set().union(*lines.triggers.values()), exc)
            return
        home: dict[str, tuple[Gate, dict[str, Any]]] = {}  # task id -> its line and item
        for scope, gate in sorted(lines.gates.items()):
            if len(held[scope]) >= gate.limit:
                continue
            try:
                items = self.slots.line_items(gate, gate.limit)
            except Exception as exc:
                outcome.failed(lines.triggers[scope], exc)
                continue
            for item in items:
                home.setdefault(item["task_id"]["S"], (gate, item))
        if not home:
            return
        tasks = [Waiting.from_item(item) for _, item in home.values()]
        admitted = self.admission.admit(tasks, held)
        self._queue_from_lines(admitted.queued, home, lines, outcome)
        moved = [
            (task, gate)
            for task, gate in admitted.parked
            if gate.scope != home[task.task_id][0].scope
        ]
        self._move(moved, home)
        for task_id, exc in admitted.failed.items():
            outcome.failed(lines.triggers[home[task_id][0].scope], exc)

    def _queue_from_lines(
        self,
        queued: list[Waiting],
        home: dict[str, tuple[Gate, dict[str, Any]]],
        lines: Lines,
        outcome: Outcome,
    ) -> None:
        failed = bulk.send_messages(self._sends_of(queued))
        sent = [task for task in queued if task.task_id not in failed]
        for task in queued:
            exc = failed.get(task.task_id)
            if exc is None:
                continue
            if not aws.is_transient(exc):
                outcome.permanent.setdefault(task.task_id, exc)  # its end gives the slots back
                continue
            outcome.failed(lines.triggers[home[task.task_id][0].scope], exc)
            try:
                self.slots.release(task)  # in line, holding nothing: the next pass takes it
            except Exception:
                log.exception("could not give back the slots of a parked task not sent")
        deletes = [bulk.delete(t.task_id, _key_of(home[t.task_id][1])) for t in sent]
        bulk.write_items(self.table, deletes)  # an item left behind is sent again: harmless
        for task in sent:
            try:
                # the reaper may admit it too: its history holds one admission
                self.slots.note(task, {"event": "admitted"}, once=True)
                self.slots.mark(task.task_id, None)
            except Exception:
                log.exception("could not note the admission of %s", task.task_id)

    def _move(
        self,
        moved: list[tuple[Waiting, Gate]],
        home: dict[str, tuple[Gate, dict[str, Any]]],
    ) -> None:
        """Parked tasks that found another of their gates full join that gate's line (first,
        so a task is never in no line; its rank goes with it) and leave their own, as
        `Slots.admit_next` moves them. One that no longer waits at its version (it ran, or
        was cancelled) only leaves its line."""
        if not moved:
            return
        still = []
        for task, gate in moved:
            try:
                if self.slots.mark(task.task_id, gate.reason, task.version):
                    still.append((task, gate))
            except Exception:
                log.exception("could not say why %s waits; it stays where it is", task.task_id)
                home.pop(task.task_id)
        failed = bulk.write_items(
            self.table,
            [bulk.put(task.task_id, self.slots.line_item(gate, task)) for task, gate in still],
        )
        leaving = [task for task, _ in moved if task.task_id in home and task.task_id not in failed]
        bulk.write_items(
            self.table, [bulk.delete(t.task_id, _key_of(home[t.task_id][1])) for t in leaving]
        )
        joined = [(task, gate) for task, gate in still if task.task_id not in failed]
        for gate in {gate.scope: gate for _, gate in joined}.values():
            try:
                self.slots.list_gate(gate)
            except Exception:
                log.exception("could not list the gate %s", gate.scope)
        for task, gate in joined:
            try:
                self.slots.note(task, {"event": "parked", "reason": gate.reason})
            except Exception:
                log.exception("could not note the wait of %s", task.task_id)

    # -- the end of a batch --------------------------------------------------------------

    def _count(self, plan: Plan, written: set[tuple[str, str]] | None) -> None:
        """The operator's figures: each version whose entry is new, once per batch. Best
        effort: a batch that cannot add them is not handed back for figures."""
        if written is None:
            return
        tallies = Tallies(self.table)
        for change in plan.changes.values():
            if change.key not in written:
                tallies.count(change.old, change.inserted, change.task)
        try:
            tallies.flush()
        except Exception:
            log.exception("could not add this batch to the operator's figures")

    def _fail_tasks(self, outcome: Outcome) -> None:
        """Fail each task whose change cannot be handled; one whose failing fails too is
        handed back (its records come again)."""
        for task_id, exc in outcome.permanent.items():
            if task_id in outcome.transient:
                continue  # handed back anyway: its records come again
            with task_context(task_id):
                log.error("a change of this task cannot be handled, failing it: %s", exc)
                emit_metric("StreamRecordsFailed", 1)
                try:
                    self.service.fail(
                        task_id, f"the service could not handle this task: {exc}", by="stream"
                    )
                except Exception:
                    log.exception("could not fail the task either")
                    outcome.transient.add(task_id)

    def _handed_back(self, plan: Plan, outcome: Outcome) -> dict[str, Any]:
        """The earliest record of the tasks whose work may pass on retry (a task outside
        the batch, which only a line's admission could name: the whole batch)."""
        if not outcome.transient or not plan.first_record:
            return {"batchItemFailures": []}
        firsts = [plan.first_record[t] for t in outcome.transient if t in plan.first_record]
        first = min(firsts or plan.first_record.values(), key=int)
        log.warning("%d tasks' records handed back for now", len(outcome.transient))
        return {"batchItemFailures": [{"itemIdentifier": first}]}


def _inserted(record: dict[str, Any]) -> bool:
    return record.get("eventName") == "INSERT"


def _entry_key(task: Waiting) -> tuple[str, str]:
    """The key of the history entry of the version the task waits at."""
    return f"task#{task.task_id}", entry_sk(task.version)


def _with_park(change: Change, parked: tuple[Waiting, Gate] | None) -> dict[str, Any]:
    """A new entry of a task parked at that version carries the park (History.record_flow's
    shape), so the wait costs no write of its own."""
    if parked is None:
        return change.entry
    task, gate = parked
    if task.version != change.task.version:
        return change.entry
    event = {"event": "parked", "reason": gate.reason, "at": timefmt.history(utcnow())}
    return {
        **change.entry,
        "flow": {"L": [{"S": jsonsafe.compact(event)}]},
        "flow_once": {"SS": ["parked"]},  # a replay of this record does not note it again
    }


def _key_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"pk": item["pk"], "sk": item["sk"]}


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
