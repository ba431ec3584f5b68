"""Delayed runs: when a scheduled task is due, and the two paths that start it.

A task submitted with `runAt` or `delaySeconds` is stored `scheduled`, with its `run_at`.
- A short delay (at most SQS_MAX_DELAY_SECONDS, SQS's limit): the stream queues the task's
  message at once with that SQS DelaySeconds, and the worker's claim takes the task from
  `scheduled` once `run_at` has passed. Precision: seconds.
- Every scheduled task is also in the sparse index by_due (due_shard + due_at, removed by
  any write that leaves `scheduled`). The per-minute sweep (the reaper's schedule) moves
  the due ones from `scheduled` to `submitted` with a guarded write, and the stream queues
  them like any submitted task (the outbox). Precision: the sweep's minute. For a short
  delay, due_at is run_at + SWEEP_GRACE_SECONDS: the sweep is only the safety net of a
  message that came early or was lost, never a race with it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from chalicelib.model import Status, Task
from chalicelib.queues import SQS_MAX_DELAY_SECONDS

SWEEP_GRACE_SECONDS = 120
# A runAt this little in the past is "now" seen through a skewed clock: it runs at once.
PAST_TOLERANCE_SECONDS = 30


class BadSchedule(ValueError):
    """`runAt`/`delaySeconds` cannot be honoured; `field` names the one to fix."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def run_at_for(
    run_at: datetime | None, delay_seconds: int | None, now: datetime, ttl_seconds: int
) -> datetime | None:
    """The time a new task may start (whole seconds, rounded up), or None to start now.

    Refuses what cannot be honoured, with the field to fix."""
    if run_at is not None and delay_seconds is not None:
        raise BadSchedule("give either runAt or delaySeconds, not both", "runAt")
    if delay_seconds is not None:
        if delay_seconds > ttl_seconds:
            raise BadSchedule(
                f"delaySeconds may be at most {ttl_seconds} (the task's TTL); got {delay_seconds}",
                "delaySeconds",
            )
        return _ceil_second(now + timedelta(seconds=delay_seconds)) if delay_seconds > 0 else None
    if run_at is None:
        return None
    if run_at < now - timedelta(seconds=PAST_TOLERANCE_SECONDS):
        raise BadSchedule(
            f"runAt {run_at.isoformat()} is in the past (now is {now.isoformat()}); "
            "omit it to run now",
            "runAt",
        )
    if run_at > now + timedelta(seconds=ttl_seconds):
        raise BadSchedule(
            f"runAt may be at most {ttl_seconds // 86400} days ahead (the task's TTL); "
            f"got {run_at.isoformat()}",
            "runAt",
        )
    return _ceil_second(run_at) if run_at > now else None


def _ceil_second(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


def _epoch_ceil(value: datetime) -> int:
    return math.ceil(value.timestamp())


def is_short(task: Task) -> bool:
    """Whether the delay fits one SQS message's DelaySeconds (from the task's creation)."""
    if task.run_at is None:
        return False
    return _epoch_ceil(task.run_at) - int(task.created_at.timestamp()) <= SQS_MAX_DELAY_SECONDS


def due_at(task: Task) -> int | None:
    """The by_due index's sort key: when the sweep should start the task (None: not scheduled)."""
    if task.status is not Status.SCHEDULED or task.run_at is None:
        return None
    return _epoch_ceil(task.run_at) + (SWEEP_GRACE_SECONDS if is_short(task) else 0)


def queue_delay(task: Task, now: datetime) -> int | None:
    """The SQS DelaySeconds of a new scheduled task's message; None if the sweep starts it."""
    if task.status is not Status.SCHEDULED or not is_short(task) or task.run_at is None:
        return None
    remaining = math.ceil((task.run_at - now).total_seconds())
    return max(0, min(SQS_MAX_DELAY_SECONDS, remaining))
