"""Strict JSON for untrusted input: bounded nesting, no NaN or Infinity, only Unicode text.

Python's `json` accepts `NaN`/`Infinity` (which no other JSON reader does, and
which DynamoDB and JSON responses cannot carry), raises RecursionError on
deep nesting, and turns an escaped lone surrogate (`"\\ud800"`) into a str that
cannot be encoded as UTF-8, so every later write or answer of it fails. Every
body, WebSocket message and Lambda event the service reads from a caller goes
through here, so each of those is a clear 400.
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
    """Refuse an already parsed value that nests deeper than MAX_DEPTH, holds NaN/Infinity,
    or holds a string (value or key) that is not Unicode text."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth > MAX_DEPTH:
                raise UnsafeJson(f"JSON is nested too deeply (at most {MAX_DEPTH} levels)")
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
            if isinstance(current, dict):
                stack.extend((key, depth) for key in current)
        elif isinstance(current, str):
            _check_text(current)
        elif isinstance(current, float) and not math.isfinite(current):
            raise UnsafeJson("NaN and Infinity are not valid JSON; send finite numbers")


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = f"\\u{ord(text[exc.start]):04x}"
        raise UnsafeJson(
            f"a string holds the lone surrogate {code}, which is not Unicode text; "
            "send each character whole (a surrogate pair, or the character itself)"
        ) from None


def compact(value: Any) -> str:
    """JSON as the service stores it in an item: no spaces, non-ASCII kept as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class UnencodableResult(TypeError):
    """A processor's result that has no JSON form; the message names what."""


def encode(value: Any) -> str:
    """JSON text of what a processor returned. Plain JSON goes through `json`; anything else
    (datetimes, timedeltas, Decimals, enums, sets, dataclasses, pydantic models...) is
    written as pydantic writes it, with NaN and Infinity as null."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    from pydantic_core import PydanticSerializationError, to_json

    try:
        return to_json(value, inf_nan_mode="null").decode()
    except (PydanticSerializationError, RecursionError) as exc:
        raise UnencodableResult(f"the result cannot be written as JSON: {exc}") from None
