"""Seed 004, task status: `GET /task-status/{task_id}` and `GET /task-status[?operation=]`.

TaskStatus objects with Unix-second timestamps; lists are bare JSON arrays of
the caller's tasks, newest first, read by index Queries (never a Scan). The
origin's dashboard loads its history with `?recent=true&hours=H&limit=N`, names
operations freely (an operation with no tasks is `[]`) and sends parameters of
its own: unknown query parameters are ignored here. The next page's cursor is in
the `X-Next-Cursor` header (and `Link: rel="next"`) for clients that page.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from chalice.app import Request, Response

from chalicelib.contracts.common import present, shown_error, shown_progress, unix_seconds
from chalicelib.contracts.status_maps import TASK_STATUS
from chalicelib.edge import http
from chalicelib.edge.http_errors import BadRequest, NotFound
from chalicelib.model import Task, utcnow
from chalicelib.objects import result_url
from chalicelib.realtime import MAX_FRAME_BYTES
from chalicelib.service import TaskService
from chalicelib.store import page_key

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

MAX_LIMIT = 1000
DEFAULT_LIMIT = 1000  # the origin's client reads one answer and ignores paging headers
DEFAULT_HOURS = 24
MAX_OPERATION_LENGTH = 128
MAX_PAGES = 10  # Queries one answer may make; past that, the cursor carries on


SUCCESSFUL = frozenset({"completed", "completed_with_errors"})
DEFAULT_MESSAGE = "Operation completed"


def origin_result(result: Any, status: str) -> dict[str, Any] | None:
    """The result as the origin's dashboard reads it: `TaskResult {success, message, ...}`.

    The origin standardised every result it pushed or stored (`_standardize_result_format`):
    `success` from the status, `message` from the result's `summary` or "Operation
    completed". Its result cards show `task.result.message`, so a result without one showed an
    empty card. Here the result's own fields are all kept (the origin dropped those its
    frontend did not name) and win over the two added; a result that is not an object is kept
    as `value` (a text as the `message` too), since TaskResult is always an object."""
    if result is None:
        return None
    success = status in SUCCESSFUL
    if isinstance(result, dict):
        message = result.get("summary", DEFAULT_MESSAGE)
        return {"success": success, "message": message, **result}
    message = result if isinstance(result, str) and result else DEFAULT_MESSAGE
    return {"success": success, "message": message, "value": result}


def view(task: Task, version: bool = False) -> dict[str, Any]:
    """Seed 004's TaskStatus (schema: `TaskStatus`); optional fields are left out when absent."""
    status = TASK_STATUS[task.status]
    return present(
        {
            "task_id": task.id,
            "operation": task.type,
            "status": status,
            "progress": shown_progress(task),
            "result": origin_result(task.result, status),
            "resultUrl": result_url(task, utcnow()),
            "error": shown_error(task),
            "created_at": unix_seconds(task.created_at),
            "updated_at": unix_seconds(task.updated_at),
            "version": task.version if version else None,
        }
    )


def get_task(container: Container, request: Request, task_id: str) -> Response:
    service = container.service
    http.task_id_param(task_id, "task_id")
    task = service.find(task_id)
    if task is None or task.owner != http.current_user(request):
        raise NotFound(f"task {task_id} was not found")
    return http.json_response(view(task))


def _hours(params: dict[str, str]) -> str | None:
    """The `hours` of a `recent` query, as given (it scopes the cursor), or None for all."""
    recent = params.get("recent", "").strip().lower() in {"true", "1", "yes"}
    hours = params.get("hours")
    if not recent and not hours:
        return None
    hours = hours or str(DEFAULT_HOURS)
    try:
        value = float(hours)
    except ValueError:
        value = -1
    if not 0 < value <= 24 * 366:
        raise BadRequest(f"hours must be a positive number of hours; got {hours[:32]!r}")
    return hours


def list_tasks(container: Container, request: Request) -> Response:
    service = container.service
    params = http.query(request)  # parameters this surface does not know are ignored
    operation = params.get("operation") or None
    limit = http.limit_param(params.get("limit"), default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    hours = _hours(params)
    user = http.current_user(request)
    scope = f"task-status|{user}|{operation or ''}|{hours or ''}"
    after = http.decode_cursor(request, params.get("cursor"), scope)
    if operation is not None and len(operation) > MAX_OPERATION_LENGTH:
        return http.json_response([])  # no task type is that long
    since = service.clock() - timedelta(hours=float(hours)) if hours else None
    tasks, last_key = _read(service, user, operation, limit, since, after)
    views = [view(task) for task in tasks]
    # Up to 1000 results could pass Lambda's 6 MB response: the answer ends where it fits,
    # and the cursor goes on from its last task.
    kept = http.fitting(views)
    if kept < len(views):
        views, last_key = views[:kept], page_key(tasks[kept - 1])
    headers = {}
    cursor = http.encode_cursor(request, last_key, scope)
    if cursor:
        query = {"operation": operation, "limit": str(limit), "recent": hours and "true"}
        query["hours"] = hours
        query = {k: v for k, v in query.items() if v}
        headers["X-Next-Cursor"] = cursor
        headers["Link"] = f'</task-status?{urlencode({**query, "cursor": cursor})}>; rel="next"'
    return http.json_response(views, headers=headers)


def _read(
    service: TaskService,
    user: str,
    operation: str | None,
    limit: int,
    since: datetime | None,
    after: tuple[str, str] | None,
) -> tuple[list[Task], tuple[str, str] | None]:
    """Up to `limit` tasks, page after page (a Query returns at most 1 MB)."""
    tasks: list[Task] = []
    for _ in range(MAX_PAGES):
        page = service.list_owned(
            user, limit=limit - len(tasks), type=operation, after=after, updated_since=since
        )
        tasks += page.tasks
        after = page.last_key
        if after is None or len(tasks) >= limit:
            break
    return tasks, after


def push_message(task: Task) -> str:
    """Seed 004's message, unchanged for its clients, with the native change beside it
    (`job`: canonical status and version), which the dashboard, the client and the CLI read.
    """
    from chalicelib.contracts.jobs import job_change

    payload = view(task, version=True)
    job = job_change(task)
    message = json.dumps({"type": "task_status", "payload": payload, "job": job})
    if len(message.encode()) > MAX_FRAME_BYTES:
        payload.pop("result", None)
        payload["truncated"] = True  # too large to push: GET /task-status/{id} for the result
        job.pop("error", None)
        job["truncated"] = True  # GET /jobs/{jobId} for the rest
        message = json.dumps({"type": "task_status", "payload": payload, "job": job})
    return message
