"""serverless-media-processor's `ddb_operations` task writer, on taskstatus.

    from taskstatus_client.compat.media_processor import (
        ProcessingError, TaskStatus, create_task_record, update_task_status,
    )

`create_task_record` stores the task as an external job under the origin's own task id,
`processing` as the origin's readers see it (`GET /task/{task_id}`); `update_task_status`
moves it, a message on `completed` becoming its `Result`, on `failed` its `ErrorMessage`.
Objects are recorded in the origin's bucket (`S3_BUCKET_NAME`), as the origin did.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any

from taskstatus_client.compat import advance, reporter
from taskstatus_client.errors import TaskStatusError


class TaskStatus(str, Enum):  # noqa: UP042  (the origin's type: str(), format() as it had them)
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class ProcessingError(Exception):
    """The origin's error: an HTTP status and what went wrong."""

    def __init__(self, status_code: int, detail: str):
        self.status_code = status_code
        self.detail = detail
        super().__init__(detail)


def _failure(action: str, exc: TaskStatusError) -> ProcessingError:
    return ProcessingError(status_code=exc.status_code or 500, detail=f"{action}: {exc}")


def _object(key: str) -> dict[str, str] | None:
    bucket = os.getenv("S3_BUCKET_NAME")
    return {"bucket": bucket, "key": key} if bucket and key else None


def create_task_record(
    task_id: str, source_key: str, target_key: str, task_type: str, conversion_params: dict
) -> None:
    """Create the task, already running (the origin's records start `processing`)."""
    try:
        reporter().create(
            task_type,
            job_id=task_id,
            input=dict(conversion_params or {}),
            source=_object(source_key),
            target=_object(target_key),
        )
        reporter().report(task_id, "started")
    except TaskStatusError as exc:
        raise _failure("Failed to create task record", exc) from None


def update_task_status(
    task_id: str, task_type: str, status: TaskStatus, message: str | None = None
) -> None:
    """Move the task to `status`; `message` is the result of a completed task, the error of
    a failed one (and ignored otherwise, as the origin does)."""
    fields: dict[str, Any] = {}
    value = TaskStatus(status)
    if message and value is TaskStatus.COMPLETED:
        fields["result"] = message
    if value is TaskStatus.FAILED:
        fields["error"] = message or "failed"
    try:
        advance(task_id, value.value, **fields)
    except TaskStatusError as exc:
        raise _failure("Failed to update task status", exc) from None
