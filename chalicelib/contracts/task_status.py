"""Seed 004, task status: `GET /task-status/{task_id}` and `GET /task-status[?operation=]`.

TaskStatus objects with Unix-second timestamps; lists are bare JSON arrays of
the caller's tasks, newest first, one index Query per page. The next page's
cursor is in the `X-Next-Cursor` header (and a `Link: rel="next"` header).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from chalice.app import Request, Response

from chalicelib import http
from chalicelib.contracts.common import unix_seconds
from chalicelib.contracts.models import TaskStatus
from chalicelib.contracts.status_maps import TASK_STATUS
from chalicelib.errors import BadRequest, NotFound
from chalicelib.model import Task, utcnow
from chalicelib.objects import result_url
from chalicelib.processors import registered_types
from chalicelib.service import TaskService


def view(task: Task, version: bool = False) -> dict[str, Any]:
    """Seed 004's TaskStatus; optional fields are left out when absent."""
    return TaskStatus(
        task_id=task.id,
        operation=task.type,
        status=TASK_STATUS[task.status],
        progress=task.progress.model_dump() if task.progress else None,
        result=task.result,
        resultUrl=result_url(task, utcnow()),
        error=task.error,
        created_at=unix_seconds(task.created_at),
        updated_at=unix_seconds(task.updated_at),
        version=task.version if version else None,
    ).model_dump(mode="json", exclude_none=True)


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=body, status_code=200, headers={"Content-Type": "application/json", **(headers or {})}
    )


def get_task(service: TaskService, request: Request, task_id: str) -> Response:
    http.task_id_param(task_id, "task_id")
    task = service.find(task_id)
    if task is None or task.owner != http.current_user(request):
        raise NotFound(f"task {task_id} was not found")
    return _json(view(task))


def list_tasks(service: TaskService, request: Request) -> Response:
    params = http.query(request)
    unknown = set(params) - {"operation", "limit", "cursor"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    operation = params.get("operation") or None
    if operation is not None and operation not in registered_types():
        known = ", ".join(registered_types())
        raise BadRequest(f"operation {operation[:64]!r} is not known; known operations: {known}")
    user = http.current_user(request)
    scope = f"task-status|{user}|{operation or ''}"
    limit = http.limit_param(params.get("limit"), default=50)
    page = service.list_owned(
        user, limit=limit, type=operation, after=http.decode_cursor(params.get("cursor"), scope)
    )
    headers = {}
    cursor = http.encode_cursor(page.last_key, scope)
    if cursor:
        query = {k: v for k, v in (("operation", operation), ("limit", str(limit))) if v}
        headers["X-Next-Cursor"] = cursor
        headers["Link"] = f'</task-status?{urlencode({**query, "cursor": cursor})}>; rel="next"'
    return _json([view(task) for task in page.tasks], headers)
