"""A task as a DynamoDB item, and back: the codec is derived from the `Task` dataclass.

Every field of `Task` is an attribute named as the field, encoded by its type:
  str, a StrEnum (Status), a Literal (Runner)  -> S
  int                                          -> N
  datetime                                     -> S, ISO 8601 UTC with microseconds
                                                  (sortable: the owner indexes' range key)
  a Part (Progress, ObjectRef, Output, ...)    -> S, its `as_dict` as compact JSON
  anything else (dict, Any)                    -> S, compact JSON, so that any JSON
                                                  survives (floats, empty strings, nesting)
A None, or an empty JSON document, is not stored; neither is a Literal's default (absent
runner: the service's own task). An absent attribute reads back as the field's default.
So a field added to `Task` is stored and read without a change here; a field of a type
none of these codecs takes fails at import, not silently on write.

Derived attributes drive the indexes (never read back into the task):
  owner + created_at        -> GSI by_owner (a user's tasks, newest first)
  owner_type                -> no index since 2026-12-08 (by_owner_type was retired: a type is
                               a filter on by_owner). Still written for one release, so
                               that a rollback's re-created by_owner_type holds every task.
  active_shard + deadline   -> sparse GSI by_deadline (non-terminal tasks, for the reaper)
  due_shard + due_at        -> sparse GSI by_due (scheduled tasks, for the sweep: scheduling.py)
  created_shard + created_at -> sharded GSI by_created (every owner's tasks, for the operator)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from chalicelib import jsonsafe, scheduling, timefmt
from chalicelib.model import ACTIVE, RUNNING, Part, Task

Item = dict[str, dict[str, str]]

# The schedules' due index (chalicelib/schedules.py) and, before the spread below, the
# tasks' sparse indexes: one hex digit, 16 key values.
DEADLINE_SHARDS = "0123456789abcdef"
# The key values of the sparse indexes by_deadline and by_due: 256, two hex digits of the
# task's id, so that no value takes more than 1/256 of the account's deadline and due
# writes (a partition takes 1,000 writes/s: 256,000/s for these indexes, 16,000 before).
INDEX_SHARDS = tuple(f"{n:02x}" for n in range(256))
# What the reaper and the sweep read: the 256, and the 16 single digits that items
# written before the spread keep until their task ends or is released.
READ_SHARDS = INDEX_SHARDS + tuple(DEADLINE_SHARDS)
# What a task's item may grow to (DynamoDB's limit is 400 KB), with room for the
# attributes a later write adds (progress, error, lease, timestamps).
ITEM_BUDGET_BYTES = 380 * 1024


def owner_scoped(owner: str, *parts: str) -> str:
    """A key of an owner's item. The owner's length comes first, so that no owner value,
    whatever separators it holds, can produce another owner's key (`a#b` + `c` vs `a` + `b#c`)."""
    return "#".join([f"{len(owner)}:{owner}", *parts])


def shard_of(task_id: str) -> str:
    """The task's shard of the sparse indexes: one of INDEX_SHARDS, which the reaper and
    the sweep query. A service-made id (a UUID) starts with one; a producer's own id (any
    letters: `local-...`) is hashed to one, else the reaper would never see it."""
    first = task_id[:2]
    if first in INDEX_SHARDS:
        return first
    return hashlib.sha256(task_id.encode()).hexdigest()[:2]


def shards_from(start: int) -> tuple[str, ...]:
    """READ_SHARDS, beginning at `start` and wrapping round: a run that stops for time
    leaves other shards each time, so none waits behind the others run after run."""
    start %= len(READ_SHARDS)
    return READ_SHARDS[start:] + READ_SHARDS[:start]


# -- one codec per type ----------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """How one field is stored: its attribute value, and back; `stored` says whether a
    value is written at all (an absent attribute reads back as the field's default)."""

    encode: Callable[[Any], dict[str, str]]
    decode: Callable[[dict[str, str]], Any]
    stored: Callable[[Any], bool] = lambda value: value is not None


def _text(kind: type) -> Codec:
    return Codec(lambda value: {"S": str(value)}, lambda attribute: kind(attribute["S"]))


def _number() -> Codec:
    return Codec(lambda value: {"N": str(int(value))}, lambda attribute: int(attribute["N"]))


def _time() -> Codec:
    return Codec(
        lambda value: {"S": timefmt.item(value)},
        lambda attribute: datetime.fromisoformat(attribute["S"]),
    )


def _part(kind: type[Part]) -> Codec:
    return Codec(
        lambda value: {"S": jsonsafe.compact(value.as_dict())},
        lambda attribute: kind.from_dict(json.loads(attribute["S"])),
    )


def _document() -> Codec:
    return Codec(
        lambda value: {"S": jsonsafe.compact(value)},
        lambda attribute: json.loads(attribute["S"]),
        stored=lambda value: value is not None and value != {},
    )


def _choice(choices: tuple[Any, ...], default: Any) -> Codec:
    """A Literal: stored only when it is not its default; an unknown word reads as the default."""
    return Codec(
        lambda value: {"S": str(value)},
        lambda attribute: attribute["S"] if attribute["S"] in choices else default,
        stored=lambda value: value is not None and value != default,
    )


def _without_none(hint: Any) -> Any:
    """`X | None` (or Optional[X]) as X; any other hint as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def codec_for(field: dataclasses.Field[Any], hint: Any) -> Codec:
    """The codec of a field of `hint`'s type; TypeError for a type no codec takes."""
    kind = _without_none(hint)
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return _choice(typing.get_args(kind), field.default)
    if kind is str or (isinstance(kind, type) and issubclass(kind, str) and issubclass(kind, Enum)):
        return _text(kind)
    if kind is int:
        return _number()
    if kind is datetime:
        return _time()
    if isinstance(kind, type) and issubclass(kind, Part):
        return _part(kind)
    if kind is Any or origin in (dict, list):
        return _document()
    raise TypeError(f"Task.{field.name}: no item codec for {hint!r}")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    if field.default is not dataclasses.MISSING:
        return field.default
    return dataclasses.MISSING  # a required field: its attribute is always there


_HINTS = typing.get_type_hints(Task)
CODECS: dict[str, Codec] = {f.name: codec_for(f, _HINTS[f.name]) for f in dataclasses.fields(Task)}
_FIELDS = dataclasses.fields(Task)


# -- the item ----------------------------------------------------------------------------------


def task_attributes(task: Task, timeout_seconds: int) -> Item:
    """The DynamoDB attribute values of a task, derived index keys included."""
    item: Item = {}
    for name, codec in CODECS.items():
        value = getattr(task, name)
        if codec.stored(value):
            item[name] = codec.encode(value)
    item["owner_type"] = {"S": owner_scoped(task.owner, task.type)}
    item["created_shard"] = {"S": shard_of(task.id)[0]}  # one of DEADLINE_SHARDS: 16
    if task.status in ACTIVE:
        item["active_shard"] = {"S": shard_of(task.id)}
        # A scheduled task's clock starts at its run_at: the reaper leaves it to the sweep.
        since = max(task.updated_at, task.run_at or task.updated_at)
        # An external task's producer must report or heartbeat within its own window.
        window = task.silence_limit or timeout_seconds
        deadline = int(since.timestamp()) + window
        if task.status in RUNNING and task.lease_until is not None:
            # A running task is looked at when its worker's lease runs out: a worker that
            # died leaves its task to be taken over then (TaskService.reap), not after the
            # queue's visibility timeout.
            deadline = min(deadline, task.lease_until)
        item["deadline"] = {"N": str(deadline)}
    due = scheduling.due_at(task)
    if due is not None:
        item["due_shard"] = {"S": shard_of(task.id)}
        item["due_at"] = {"N": str(due)}
    return item


def task_from_item(item: Item) -> Task:
    """The task an item holds; the item was checked when it was written (no validation)."""
    values: dict[str, Any] = {}
    for field in _FIELDS:
        attribute = item.get(field.name)
        if attribute is not None:
            values[field.name] = CODECS[field.name].decode(attribute)
        else:
            default = _default(field)
            if default is dataclasses.MISSING:
                raise KeyError(field.name)
            values[field.name] = default
    return Task(**values)


# What the request that creates a task sets and no later write changes. A service-made id is
# a fresh UUID, so a stored item with it is this request's; a producer's own id (`jobId`) may
# be another request's, which was made at another time (created_at, to the microsecond).
CREATION_ATTRIBUTES = ("id", "owner", "type", "created_at", "input")


def made_by(stored: dict[str, Any] | None, built: Item) -> bool:
    """Whether `stored` (the item a refused create found) is the task `built` (the item the
    request wrote): the request's own write, applied late (a lost answer botocore retried,
    or a write DynamoDB applied after its timeout), not another task under the same id."""
    if stored is None:
        return False
    return all(stored.get(name) == built.get(name) for name in CREATION_ATTRIBUTES)


def is_task_item(item: dict[str, Any]) -> bool:
    return "id" in item and "owner" in item and "status" in item


def item_size(item: Item) -> int:
    """Bytes DynamoDB counts for an item: attribute names plus values (UTF-8)."""
    return sum(
        len(name.encode()) + len(next(iter(value.values())).encode())
        for name, value in item.items()
    )
