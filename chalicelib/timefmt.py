"""The three ways the service writes a moment as text, each named for where it goes.

  item     2025-01-21T13:44:58.159007Z  stored items (tasks, schedules, webhook logs,
                                         connections): microseconds, so that text order is
                                         time order and a key condition compares like with like
  history  2025-01-21T13:44:58.159Z     a task's history entries: milliseconds, as shown
  wire     2025-01-21T13:44:58Z         the native API's documents and error bodies, API keys

Every moment is UTC. The seed contracts that quote their origin's own format
(`contracts/task_processor.py`) write it themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

ITEM_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
WIRE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def item(moment: datetime) -> str:
    """A stored item's time, to the microsecond."""
    return moment.astimezone(UTC).strftime(ITEM_FORMAT)


def history(moment: datetime) -> str:
    """A history entry's time, to the millisecond."""
    return item(moment)[:-4] + "Z"


@overload
def wire(moment: datetime) -> str: ...


@overload
def wire(moment: None) -> None: ...


@overload
def wire(moment: datetime | None) -> str | None: ...


def wire(moment: datetime | None) -> str | None:
    """A time in an API answer, to the second (None stays None: a field not set)."""
    return moment.astimezone(UTC).strftime(WIRE_FORMAT) if moment else None


def wire_now() -> str:
    """Now, as an error body's `timestamp`."""
    return wire(datetime.now(UTC))
