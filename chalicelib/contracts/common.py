"""Formatting shared by the contract views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.model import Status, Task

FINISHED = frozenset({Status.COMPLETED, Status.COMPLETED_WITH_ERRORS})
CANCELLED_MESSAGE = "task was cancelled"


def present(document: dict[str, Any]) -> dict[str, Any]:
    """The fields that have a value: optional fields are left out of a body, not sent null."""
    return {name: value for name, value in document.items() if value is not None}


def unix_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def shown_progress(task: Task) -> dict[str, Any] | None:
    """The progress every surface shows: a completed task's progress is complete."""
    progress = task.progress
    if progress is None:
        return None
    if task.status in FINISHED and progress.current != progress.total:
        done = max(progress.current, progress.total)
        return {"current": done, "total": done, "message": progress.message}
    return progress.as_dict()


def shown_error(task: Task) -> str | None:
    """The error every surface shows: a cancelled task says so."""
    return CANCELLED_MESSAGE if task.status is Status.CANCELLED else task.error
