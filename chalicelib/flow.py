"""Flow control settings: limits per task type and rates, read once at start.

- TYPE_CONCURRENCY `image/*=5,email/*=20`: at most 5 tasks of the types `image/*` matches run
  at once, all of them together (the pattern is one group, not a limit per type). A type takes
  the first pattern that matches it (`*` matches any characters, `/` included).
- TYPE_RATE `email/*=10/min`: tasks of those types start at most 10 a minute (a token bucket
  of 10 that refills one token every 6 s); a task past the rate waits, it never fails.
- POOL_CONCURRENCY `remote=8`: at most 8 tasks of the worker pool `remote` are queued or
  running at once (set it to the pool's worker threads); the rest wait in the table, in
  priority order, instead of in the pool's queue, which has no order.
- SUBMIT_RATE `100/min`: each owner submits at most that many jobs a minute (a token bucket
  per owner); a submit past it is a 429 with Retry-After, and stores nothing.

Units: s, sec, second; min, minute; h, hour; d, day (each also plural).
The slots and buckets these set are in chalicelib/fairness.py; docs/flow-control.md says why.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import TypeVar

V = TypeVar("V")

PERIOD_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+?)s?\s*$")
_PATTERN = re.compile(r"^[A-Za-z0-9_.:/*-]{1,128}$")


# The forms the parsers below read, as whole-string regular expressions: the packaged
# template's AllowedPattern of each setting's parameter (infra/package.py), so that a stack
# never deploys a value its functions would refuse at start. Stricter only where harmless:
# spaces (not tabs) around the parts, no empty entries, the units in lower case.
_NAME_FORM = r"[A-Za-z0-9_.:/*-]{1,128}"
_COUNT_FORM = r"[0-9]*[1-9][0-9]*"
_RATE_FORM = rf" *{_COUNT_FORM} */ *(s|sec|second|min|minute|h|hour|d|day)s? *"
_CONCURRENCY_ENTRY = rf" *{_NAME_FORM} *= *{_COUNT_FORM} *"
_RATE_ENTRY = rf" *{_NAME_FORM} *={_RATE_FORM}"
FORMS = {
    "TYPE_CONCURRENCY": rf"({_CONCURRENCY_ENTRY}(,{_CONCURRENCY_ENTRY})*)?",
    "TYPE_RATE": rf"({_RATE_ENTRY}(,{_RATE_ENTRY})*)?",
    "POOL_CONCURRENCY": rf"({_CONCURRENCY_ENTRY}(,{_CONCURRENCY_ENTRY})*)?",
    "SUBMIT_RATE": rf"({_RATE_FORM})?",
    "PRIORITY_AGING_SECONDS": _COUNT_FORM,
}


class FlowSettingError(ValueError):
    """A flow setting that cannot be read: the message names the variable and the fix."""


@dataclass(frozen=True)
class Rate:
    """`count` per `period_seconds`: a bucket of `count` tokens refilled evenly over the period."""

    count: int
    period_seconds: int

    @property
    def per_second(self) -> float:
        return self.count / self.period_seconds

    def __str__(self) -> str:
        return f"{self.count}/{self.period_seconds}s"


def parse_rate(name: str, raw: str) -> Rate:
    match = _RATE.match(raw.lower())
    period = PERIOD_SECONDS.get(match.group(2)) if match else None
    if match is None or period is None or int(match.group(1)) < 1:
        raise FlowSettingError(
            f"{name}: {raw.strip()[:40]!r} is not a rate; write a count of 1 or more per "
            "s, min, hour or day, e.g. 10/min"
        )
    return Rate(int(match.group(1)), period)


def _entries(name: str, raw: str) -> list[tuple[str, str]]:
    """`pattern=value` entries separated by commas, in order."""
    entries = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        pattern, sign, value = entry.partition("=")
        pattern = pattern.strip()
        if not sign or not _PATTERN.match(pattern):
            raise FlowSettingError(
                f"{name}: {entry[:60]!r} is not `type-pattern=value` (e.g. image/*=5)"
            )
        entries.append((pattern, value.strip()))
    return entries


def parse_type_concurrency(
    raw: str, name: str = "TYPE_CONCURRENCY", what: str = "a type"
) -> tuple[tuple[str, int], ...]:
    """TYPE_CONCURRENCY (or POOL_CONCURRENCY): (pattern, limit) pairs; a limit is a whole
    number of 1 or more."""
    limits = []
    for pattern, value in _entries(name, raw):
        if not value.isdigit() or int(value) < 1:
            raise FlowSettingError(
                f"{name}: the limit of {pattern} must be a whole number of 1 or "
                f"more (leave {what} out for no limit); got {value[:20]!r}"
            )
        limits.append((pattern, int(value)))
    return tuple(limits)


def parse_pool_concurrency(raw: str) -> tuple[tuple[str, int], ...]:
    """POOL_CONCURRENCY: (pool, limit) pairs."""
    return parse_type_concurrency(raw, "POOL_CONCURRENCY", "a pool")


def parse_type_rate(raw: str) -> tuple[tuple[str, Rate], ...]:
    """TYPE_RATE: (pattern, rate) pairs."""
    return tuple(
        (pattern, parse_rate(f"TYPE_RATE {pattern}", value))
        for pattern, value in _entries("TYPE_RATE", raw)
    )


def parse_submit_rate(raw: str) -> Rate | None:
    """SUBMIT_RATE: one rate per owner; empty: no limit."""
    return parse_rate("SUBMIT_RATE", raw) if raw.strip() else None


def first_match(type: str, entries: tuple[tuple[str, V], ...]) -> tuple[str, V] | None:
    """The first (pattern, value) whose pattern matches the type."""
    for pattern, value in entries:
        if fnmatch.fnmatchcase(type, pattern):
            return pattern, value
    return None
