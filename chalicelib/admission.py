"""Admission through the flow control gates, a stream batch at a time.

chalicelib/fairness.py admits one task with one conditional write (one transaction when several
gates apply). A stream batch brings many tasks at once, most of them under the same few gates
(their owners', their type groups'), so the batch's tasks are admitted together:

1. The holders of every gate the tasks need are read with one consistent BatchGetItem (per 100
   gates; what a caller read already is not read again).
2. The tasks are placed in the order given: a task fits if each gate it does not already hold
   has a slot left, counting the tasks placed before it; otherwise the first full gate (in
   `Slots.gates` order, as a transaction reports it) is where it waits, and every later task
   of that gate waits there too without asking again.
3. The tasks that fit are taken per set of gates: one `ADD holders :ids` per gate on the
   condition that the set has room for all of them (`size(holders) <= limit - n`), all of a
   set's gates in one transaction when the tasks need several, so that a task holds every slot
   it needs or none and a gate never holds more tasks than its limit. If another writer took
   slots since the read, a condition fails and that set's tasks are taken one at a time
   (`Slots.acquire`), each that finds a gate full waiting at it.

A replayed record's task already holds its slots: it is queued again without a take (a second
message loses its claim). What the caller does with the answer (sends, line items, reasons)
is chalicelib/stream.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, bulk
from chalicelib.fairness import Blocked, Gate, Slots, Waiting


@dataclass
class Admitted:
    """What a batch's admission decided, task by task."""

    queued: list[Waiting] = field(default_factory=list)  # hold every slot: to be sent
    parked: list[tuple[Waiting, Gate]] = field(default_factory=list)  # wait at that gate
    failed: dict[str, Exception] = field(default_factory=dict)  # their slots' write failed


@dataclass
class _Placing:
    """The batch's tasks placed so far: who holds each gate, and the tasks to take per set."""

    held: dict[str, set[str]]
    full: dict[str, Gate]
    groups: dict[tuple[str, ...], list[Waiting]] = field(default_factory=dict)

    def room(self, gate: Gate) -> bool:
        if gate.scope in self.full:
            return False
        if len(self.held[gate.scope]) < gate.limit:
            return True
        self.full[gate.scope] = gate
        return False


class Admission:
    def __init__(self, slots: Slots) -> None:
        self.slots = slots

    def read_holders(
        self, gates: Iterable[Gate], known: dict[str, set[str]] | None = None
    ) -> dict[str, set[str]]:
        """The ids holding each gate's slots, by scope: `known` and a consistent read of the
        rest. Raises what the read raised (the caller cannot know what it did not read)."""
        held = {scope: set(ids) for scope, ids in (known or {}).items()}
        wanted = {gate.scope: gate for gate in gates if gate.scope not in held}
        if not wanted:
            return held
        items = bulk.get_items(
            self.slots.records_table,
            [gate.slots_key for gate in wanted.values()],
            consistent=True,
            projection="pk, holders",
        )
        for scope in wanted:
            held[scope] = set()
        for item in items:
            held[item["pk"]["S"].removeprefix("slots#")] = set(
                item.get("holders", {}).get("SS", [])
            )
        return held

    def admit(
        self,
        tasks: list[Waiting],
        held: dict[str, set[str]] | None = None,
        full: dict[str, Gate] | None = None,
    ) -> Admitted:
        """Place the tasks, in order, and take the slots of those that fit (module docstring).
        `held`: holders the caller read already; `full`: gates known full (added to)."""
        unique = list({task.task_id: task for task in tasks}.values())
        gates = {task.task_id: self.slots.gates(task) for task in unique}
        every_gate = [gate for found in gates.values() for gate in found]
        answer = Admitted()
        try:
            placing = _Placing(
                self.read_holders(every_gate, held), full if full is not None else {}
            )
        except Exception as exc:
            answer.failed = {task.task_id: exc for task in unique}
            return answer
        for task in unique:
            self._place(task, gates[task.task_id], placing, answer)
        by_scope = {gate.scope: gate for gate in every_gate}
        for scopes, group in placing.groups.items():
            self._take(group, [by_scope[scope] for scope in scopes], placing.full, answer)
        return answer

    def _place(self, task: Waiting, gates: list[Gate], placing: _Placing, answer: Admitted) -> None:
        taking = []
        for gate in gates:
            if task.task_id in placing.held[gate.scope]:
                continue
            if not placing.room(gate):
                answer.parked.append((task, gate))
                return
            taking.append(gate)
        if not taking:
            answer.queued.append(task)  # holds them all already (a replayed record)
            return
        for gate in taking:
            placing.held[gate.scope].add(task.task_id)
        placing.groups.setdefault(tuple(gate.scope for gate in taking), []).append(task)

    def _take(
        self, tasks: list[Waiting], gates: list[Gate], full: dict[str, Gate], answer: Admitted
    ) -> None:
        try:
            took = self._take_together(gates, [task.task_id for task in tasks])
        except Exception as exc:
            if aws.is_transient(exc):
                answer.failed.update({task.task_id: exc for task in tasks})
                return
            took = False  # refused for good: one at a time finds whose
        if took:
            answer.queued += tasks
            return
        for task in tasks:
            try:
                self.slots.acquire(task)
            except Blocked as blocked:
                full[blocked.gate.scope] = blocked.gate
                answer.parked.append((task, blocked.gate))
            except Exception as exc:
                answer.failed[task.task_id] = exc
            else:
                answer.queued.append(task)

    def _take_together(self, gates: list[Gate], task_ids: list[str]) -> bool:
        """A slot of each gate for each task, all at once; False if a gate has less room
        than that now (another writer took slots since the read)."""
        updates = [self._room_for(gate, task_ids) for gate in gates]
        ddb = aws.client("dynamodb")
        try:
            if len(updates) == 1:
                ddb.update_item(**updates[0])
            else:
                ddb.transact_write_items(TransactItems=[{"Update": u} for u in updates])
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def _room_for(self, gate: Gate, task_ids: list[str]) -> dict[str, Any]:
        return {
            "TableName": self.slots.records_table,
            "Key": gate.slots_key,
            "UpdateExpression": "ADD holders :tasks",
            "ConditionExpression": "attribute_not_exists(holders) OR size(holders) <= :most",
            "ExpressionAttributeValues": {
                ":tasks": {"SS": task_ids},
                ":most": {"N": str(gate.limit - len(task_ids))},
            },
        }


def _condition_failed(exc: ClientError) -> bool:
    error = exc.response.get("Error", {}).get("Code")
    if error == "ConditionalCheckFailedException":
        return True
    reasons = exc.response.get("CancellationReasons") or []
    return error == "TransactionCanceledException" and any(
        reason.get("Code") == "ConditionalCheckFailed" for reason in reasons
    )
