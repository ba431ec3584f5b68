"""Seeds 000/001, the Task Processor API: `GET /task/{task_id}` and `GET /task/list?operations=`.

Field names, casing and error bodies are the seeds' own. A task with a target
gets a presigned `TargetObjectURL` in every status, as the origin does (valid
`PRESIGN_EXPIRES_SECONDS`, 24 h by default); `image/deblindwatermark` tasks
answer in seed 001's deblindwatermark shape, with the extracted text as `Result`.

Timestamps are written as the origin wrote them (`datetime.now(timezone.utc).isoformat()`:
microseconds and `+00:00`), since its clients parse them. The origin's items always had
`SourceKey`, `TargetKey` and their buckets, so a task without objects answers empty
strings rather than leaving the keys out: its readers index them unguarded.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import Response

from chalicelib.contracts.common import present, shown_error
from chalicelib.contracts.status_maps import TASK_PROCESSOR
from chalicelib.edge import http
from chalicelib.model import ObjectRef, Task, is_task_id, utcnow
from chalicelib.objects import Link, presign, result_url

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.bootstrap import Container

log = logging.getLogger("taskstatus_svc.contracts")

DEBLIND = "image/deblindwatermark"
MISSING_ID = "task_id is required in path parameters"
MAX_ID_LENGTH = 128
MISSING_OPERATION = "operation parameter is required for list operation"
MAX_LISTED = 1000  # the origin lists every match; this is the most one answer carries


def missing_id(container: Container, request: Request) -> Response:
    """`GET /task` without an id: the origin's fixed 400, which answers anyone."""
    return _missing_id()


def _missing_id() -> Response:
    return http.json_response({"error": MISSING_ID}, 400)


def reported_url(task: Task) -> str | None:
    """An external job's output link as its producer reported it (it names its own objects)."""
    return task.output.url if task.is_external and task.output is not None else None


def origin_timestamp(moment: datetime) -> str:
    """`2025-01-21T13:44:58.159007+00:00`, as seed 001's example and the origin's items."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def view(task: Task, link: Link) -> dict[str, Any]:
    """The seeds' fields (schema: `TaskProcessorTask`): the object keys and buckets always
    (empty without objects), `TargetObjectURL` and `ErrorMessage` only when they apply.
    Deblindwatermark tasks carry `Result` and no target, as seed 001's example."""
    status = TASK_PROCESSOR[task.status]
    deblind = task.type == DEBLIND
    target = None if deblind else task.target
    signed = None
    if target is not None:
        signed = presign(task.owner, target.bucket, target.key, utcnow(), link)
    return present(
        {
            "TaskId": task.id,
            "Status": status,
            "Result": task.result if deblind else None,
            "TargetObjectURL": signed[0] if signed else reported_url(task),
            "SourceKey": task.source.key if task.source else "",
            "TargetKey": None if deblind else (target.key if target else ""),
            "SourceBucket": task.source.bucket if task.source else "",
            "TargetBucket": None if deblind else (target.bucket if target else ""),
            "ResultURL": result_url(task, utcnow()) if deblind else None,
            "TaskType": task.type,
            "Created_at": origin_timestamp(task.created_at),
            "Updated_at": origin_timestamp(task.updated_at),
            "ErrorMessage": (shown_error(task) or "task failed") if status == "failed" else None,
        }
    )


def get_task(container: Container, request: Request, task_id: str) -> Response:
    """The caller's task; a caller without credentials is a public read by id
    (PUBLIC_READ_BY_ID)."""
    service, user = container.service, http.reader(request)
    if not task_id or not task_id.strip():
        return _missing_id()
    if len(task_id) > MAX_ID_LENGTH:
        return http.json_response(
            {"error": f"task_id is too long (at most {MAX_ID_LENGTH} characters)"}, 400
        )
    try:
        task = service.find(task_id) if _looks_like_id(task_id) else None
    except (ClientError, BotoCoreError) as exc:
        log.exception("task lookup failed", extra={"task_id": task_id})
        return http.json_response({"error": f"Failed to get task status: {exc}"}, 500)
    if task is None or (user is not None and task.owner != user):
        return http.json_response({"error": f"Task not found: {task_id}"}, 404)
    settings = service.settings
    return http.json_response(view(task, settings.link(settings.presign_expires_seconds)), 200)


def _looks_like_id(task_id: str) -> bool:
    return is_task_id(task_id)


def _s3_file(ref: ObjectRef | None) -> str | None:
    return f"S3://{ref.bucket}/{ref.key}" if ref else None


def list_item(task: Task) -> dict[str, Any]:
    """Schema: `TaskProcessorListItem`."""
    return present(
        {
            "TaskId": task.id,
            "Status": TASK_PROCESSOR[task.status],
            "TaskType": task.type,
            "Created_at": origin_timestamp(task.created_at),
            "Updated_at": origin_timestamp(task.updated_at),
            "SourceFile": _s3_file(task.source),
            "TargetFile": _s3_file(task.target),
        }
    )


def list_tasks(container: Container, request: Request) -> Response:
    """The caller's tasks of one type, newest first (the origin's `?operations=` list).

    A caller without credentials on a stage with PUBLIC_READ_BY_ID: the list answers as at
    the origin, but owner-scoped like every list, and such a caller owns nothing, so it is
    empty. Listing every owner's tasks would hand out their ids, and an id is all a public
    read needs."""
    service, user = container.service, http.reader(request)
    operation = http.query(request).get("operations")
    if not operation:
        return http.json_response({"error": MISSING_OPERATION}, 400)
    tasks: list[Task] = []
    after = None
    if user is not None and len(operation) <= MAX_ID_LENGTH:
        while len(tasks) < MAX_LISTED:
            page = service.list_owned(
                user, limit=MAX_LISTED - len(tasks), type=operation, after=after
            )
            tasks += page.tasks
            after = page.last_key
            if after is None:
                break
    return http.json_response({"tasks": [list_item(task) for task in tasks]}, 200)
