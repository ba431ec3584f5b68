"""The emulator's DynamoDB under concurrent requests, as DynamoDB behaves (`make dev`).

moto's TransactWriteItems deep-copies every table it names before writing, so that it can
roll back: each call costs time in proportion to the tables' size (under `make dev`'s load
test, keyed submits went from p50 0.5 s to 1.7 s as the table grew, while unkeyed ones
stayed at 40 ms). moto's server also runs requests in threads with no lock, so a copy that
meets another request's write fails with `RuntimeError: dictionary changed size during
iteration` (a 500 to the app) and a rolled-back transaction can put back a table without
the writes made meanwhile.

`patch_dynamodb()` fixes both in the emulator's process, leaving moto's semantics alone:
  - every DynamoDB request holds one lock, so requests never see each other half-done;
  - a transaction first checks its conditions without writing; when they all hold it is
    applied without the copies (under the lock nothing can change them in between); when
    one fails, moto's own code runs as before and cancels it with the reasons.
"""

from __future__ import annotations

import copy
import functools
import threading
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


def conditions_hold(backend: Any, transact_items: list[dict[str, Any]]) -> bool:
    """Whether every condition of the transaction holds now (nothing is written)."""
    from moto.dynamodb.comparisons import get_filter_expression

    seen: set[tuple[str, str]] = set()
    for entry in transact_items:
        if len(entry) != 1:
            return False
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            return False
        table = backend.get_table(op["TableName"])
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        unique = (op["TableName"], str(dict(sorted(key.items()))))
        if unique in seen:
            return False
        seen.add(unique)
        if op.get("ConditionExpression") is None:
            continue
        condition = get_filter_expression(
            op["ConditionExpression"],
            op.get("ExpressionAttributeNames"),
            op.get("ExpressionAttributeValues"),
        )
        if not condition.expr(backend.get_item(op["TableName"], key)):
            return False
    return True


def _transact_write_items(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        with LOCK:
            try:
                cheap = conditions_hold(self, transact_items)
            except Exception:  # let moto's own code report what is wrong with it
                cheap = False
            _no_copies.active = cheap
            try:
                return original(self, transact_items)
            finally:
                _no_copies.active = False

    return transact_write_items


def _locked(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        with LOCK:
            return original(self)

    return call_action


def patch_dynamodb(set_attribute: Callable[[Any, str, Any], None] = setattr) -> None:
    """Apply both fixes to moto (tests pass `monkeypatch.setattr`, to undo them after)."""
    import moto.dynamodb.models as models
    from moto.dynamodb.responses import DynamoHandler

    set_attribute(models, "copy", _CopyUnlessApplying())
    set_attribute(
        models.DynamoDBBackend,
        "transact_write_items",
        _transact_write_items(models.DynamoDBBackend.transact_write_items),
    )
    set_attribute(DynamoHandler, "call_action", _locked(DynamoHandler.call_action))
