"""Strict JSON for untrusted input: bounded nesting, no NaN or Infinity.

Python's `json` accepts `NaN`/`Infinity` (which no other JSON reader does, and
which DynamoDB and JSON responses cannot carry) and raises RecursionError on
deep nesting. Every body, WebSocket message and Lambda event the service
reads from a caller goes through here, so each of those is a clear 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64


class UnsafeJson(ValueError):
    """The text is not JSON the service accepts; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not valid JSON; send numbers as finite values")


def loads(text: str | bytes) -> Any:
    """Parse JSON; raise UnsafeJson for invalid, non-finite or too deeply nested input."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeJson(f"JSON is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except UnsafeJson:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnsafeJson(f"not valid JSON: {exc}") from None
    check(value)
    return value


def check(value: Any) -> None:
    """Refuse an already parsed value that nests deeper than MAX_DEPTH or holds NaN/Infinity."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth > MAX_DEPTH:
                raise UnsafeJson(f"JSON is nested too deeply (at most {MAX_DEPTH} levels)")
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(current, float) and not math.isfinite(current):
            raise UnsafeJson("NaN and Infinity are not valid JSON; send finite numbers")


def encode(value: Any) -> str:
    """JSON text of what a processor returned: the Python values a result commonly holds
    (datetime, Decimal, UUID, enums, bytes, sets, tuples, dataclasses, pydantic models)
    become their JSON form, NaN and Infinity become null. Anything else is a TypeError."""
    try:
        return json.dumps(value, default=_jsonable, ensure_ascii=False, allow_nan=False)
    except ValueError:  # a non-finite float somewhere: null, as JSON readers expect
        return json.dumps(_finite(json.loads(json.dumps(value, default=_jsonable))))


def _jsonable(value: Any) -> Any:
    import dataclasses
    import datetime
    import decimal
    import enum
    import uuid

    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):  # a pydantic model
        return value.model_dump(mode="json")
    raise TypeError(f"a result of type {type(value).__name__} cannot be written as JSON")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
