"""The emulator's DynamoDB under concurrent requests and for hours, as DynamoDB behaves
(`make dev`).

moto's TransactWriteItems deep-copies every table it names before writing, so that it can
roll back: each call costs time in proportion to the tables' size (under `make dev`'s load
test, keyed submits went from p50 0.5 s to 1.7 s as the table grew, while unkeyed ones
stayed at 40 ms). The copy includes the table's stream, every record since the table was
made, and a cancelled transaction puts the copy in the table's place: a stream reader's
shard iterator still holds the old table, so it misses every later write, and each of the
iterators moto keeps (all it ever made) holds a whole old table in memory. Under `make
load`, after a 30 s pause of the emulator, claims racing for the same tasks cancelled
transaction after transaction: the emulator spent its time copying and grew to 22 GB
before the kernel killed it. moto's server also runs requests in threads with no lock, so
a copy that meets another request's write fails with `RuntimeError: dictionary changed
size during iteration` (a 500 to the app).

`patch_dynamodb()` fixes these in the emulator's process, leaving moto's semantics alone:
  - every DynamoDB request holds one lock, so requests never see each other half-done;
  - a transaction first judges its conditions without writing (under the lock nothing can
    change them in between). When they all hold it is applied without the copies; when
    one fails it is cancelled with the reasons moto gives (`ConditionalCheckFailed`, the
    item when asked with ReturnValuesOnConditionCheckFailure, `None` for the others),
    having written and copied nothing. A transaction moto must judge itself (two
    operations on one item, an unknown operation) runs moto's own code, copies and all;
  - a stream's shard iterators expire 15 minutes after they are made, as in AWS
    (`ExpiringIterators`), instead of living as long as the emulator: each stream reader
    takes two a poll;
  - a Query reads only the partition it names, not the whole table (local/moto_query.py).
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

LOCK = threading.RLock()
_no_copies = threading.local()


class _CopyUnlessApplying:
    """Stands in for the `copy` module inside moto's DynamoDB backend."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if getattr(_no_copies, "active", False):
            return value  # the conditions held: nothing will be rolled back
        return copy.deepcopy(value, memo)


class _LeaveToMoto(Exception):
    """A transaction whose shape moto must judge and report itself."""


Reason = tuple[str, str, "dict[str, Any] | None"] | tuple[None, None, None]
HOLDS: Reason = (None, None, None)


def judge(backend: Any, transact_items: list[dict[str, Any]]) -> list[Reason]:
    """Each operation's cancellation reason as moto states it (HOLDS when its condition
    holds now), without writing. Raises _LeaveToMoto for a shape moto must judge."""
    seen: set[tuple[str, str]] = set()
    reasons: list[Reason] = []
    for entry in transact_items:
        if len(entry) != 1:
            raise _LeaveToMoto
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise _LeaveToMoto
        table = backend.get_table(op["TableName"])
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        unique = (op["TableName"], str(dict(sorted(key.items()))))
        if unique in seen:
            raise _LeaveToMoto
        seen.add(unique)
        reasons.append(_reason(backend, op, key))
    return reasons


def _reason(backend: Any, op: dict[str, Any], key: dict[str, Any]) -> Reason:
    from moto.dynamodb.comparisons import get_filter_expression

    if op.get("ConditionExpression") is None:
        return HOLDS
    condition = get_filter_expression(
        op["ConditionExpression"],
        op.get("ExpressionAttributeNames"),
        op.get("ExpressionAttributeValues"),
    )
    current = backend.get_item(op["TableName"], key)
    if condition.expr(current):
        return HOLDS
    item = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        item = current.to_json()["Attributes"]
    return ("ConditionalCheckFailed", "The conditional request failed", item)


def _transact_write_items(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        from moto.dynamodb.exceptions import TransactionCanceledException

        with LOCK:
            try:
                reasons = judge(self, transact_items)
            except Exception:  # let moto's own code report what is wrong with it
                return original(self, transact_items)
            if any(reason != HOLDS for reason in reasons):
                raise TransactionCanceledException(reasons)
            _no_copies.active = True
            try:
                return original(self, transact_items)
            finally:
                _no_copies.active = False

    return transact_write_items


ITERATOR_LIFE_SECONDS = 900  # AWS: a shard iterator expires 15 minutes after it is returned


class ExpiringIterators(dict[str, Any]):
    """moto's shard iterators by ARN, each kept for ITERATOR_LIFE_SECONDS after it is made
    (moto keeps them all: about 1.5 KB each, two a poll per stream reader)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._made: deque[tuple[float, str]] = deque()

    def __setitem__(self, arn: str, iterator: Any) -> None:
        now = self._clock()
        while self._made and now - self._made[0][0] > ITERATOR_LIFE_SECONDS:
            self.pop(self._made.popleft()[1], None)
        self._made.append((now, arn))
        super().__setitem__(arn, iterator)


def _expiring_iterators(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.shard_iterators = ExpiringIterators()

    return __init__


def _locked(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        with LOCK:
            return original(self)

    return call_action


def patch_dynamodb(set_attribute: Callable[[Any, str, Any], None] = setattr) -> None:
    """Apply the fixes to moto (tests pass `monkeypatch.setattr`, to undo them after)."""
    import moto.dynamodb.models as models
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    set_attribute(models, "copy", _CopyUnlessApplying())
    set_attribute(
        models.DynamoDBBackend,
        "transact_write_items",
        _transact_write_items(models.DynamoDBBackend.transact_write_items),
    )
    set_attribute(DynamoHandler, "call_action", _locked(DynamoHandler.call_action))
    set_attribute(
        DynamoDBStreamsBackend,
        "__init__",
        _expiring_iterators(DynamoDBStreamsBackend.__init__),
    )
    from local.moto_query import patch_query  # it holds this module's LOCK

    patch_query(set_attribute)
