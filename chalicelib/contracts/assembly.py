"""Seed 003, the Status Lambda: `{assemblyId, userId?, triggerWebhook?}` -> `{statusCode, body}`.

Served as the pure Lambda `status`, over REST at `GET /assemblies/{assemblyId}`
and `GET /assemblies?assemblyId=` (the origin's Next.js route). On REST the user
always comes from the verified token, so the owner check can never be skipped;
a direct Lambda invocation is authorised by IAM and checks `userId` when given.

Bodies are the origin's: an AssemblyStatus whose `results` map step names to
arrays of file objects (a processor's JSON result is `result`, outside them),
optional fields left out rather than null; errors are
`{"error": "assemblyId is required"}`, `{"error": "Assembly not found", "assembly_id"}`,
`{"error": "Access denied: You don't own this assembly"}` and
`{"error": "Failed to fetch assembly status", "message"}`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import jsonsafe, timefmt
from chalicelib.contracts.common import present, shown_progress
from chalicelib.contracts.status_maps import ASSEMBLY_OK
from chalicelib.edge import http
from chalicelib.errors import JobNotFinished, NoWebhook, RedeliveryTooSoon
from chalicelib.model import ObjectRef, Status, Task, is_task_id, utcnow
from chalicelib.objects import Link, head, presign, result_url
from chalicelib.service import TaskService

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

log = logging.getLogger("taskstatus_svc.contracts")

MISSING_ID = "assemblyId is required"
NOT_FOUND = "Assembly not found"
FORBIDDEN = "Access denied: You don't own this assembly"
FAILED_LOOKUP = "Failed to fetch assembly status"
MAX_ID_ECHO = 128
# transflow served `ssl_url` as a plain object URL that never expired (buildS3PublicUrl); a
# presigned link lives at most 7 days, so that is the default (ASSEMBLY_URL_EXPIRES_SECONDS).
ORIGIN_LINK = Link(604800)

_RUNNING_MESSAGES = {
    Status.SCHEDULED: "The assembly is scheduled and has not started yet.",
    Status.SUBMITTED: "The assembly is queued and waiting for a worker.",
    Status.STARTED: "The assembly has started.",
    Status.PROCESSING: "The assembly is processing.",
    Status.ERROR: "The assembly hit a non-fatal error and is still processing.",
    Status.RETRYING: "The assembly failed transiently and will be retried.",
}
# The origin's `error` codes: a poller stops on `ok === "ASSEMBLY_COMPLETED"` or a truthy `error`.
_ERROR_CODES = {Status.FAILED: "PROCESSING_ERROR", Status.CANCELLED: "ASSEMBLY_CANCELED"}


def lambda_response(status_code: int, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return {"statusCode": status_code, "body": json.dumps(body), "headers": headers}


def _error(status_code: int, request_id: str, error: str, **extra: Any) -> dict[str, Any]:
    return lambda_response(status_code, {"error": error, **extra}, request_id)


def _message(task: Task) -> str:
    if task.status in _RUNNING_MESSAGES:
        progress = task.progress
        detail = f" ({progress.current}/{progress.total}: {progress.message})" if progress else ""
        return _RUNNING_MESSAGES[task.status] + detail
    if task.status is Status.CANCELLED:
        return "The assembly was cancelled."
    if task.status is Status.FAILED:
        return task.error or "The assembly failed."
    if task.status is Status.COMPLETED_WITH_ERRORS:
        return f"Processing completed with errors: {task.error}"
    return "Processing completed"


def _duration(task: Task, now: datetime) -> float | None:
    if task.started_at is None:
        return None
    end = task.completed_at or now
    return round((end - task.started_at).total_seconds(), 3)


def file_object(
    owner: str, ref: ObjectRef, field: str, now: datetime, link: Link = ORIGIN_LINK
) -> dict[str, Any] | None:
    """The origin's file object for an S3 object of `owner`; None when it is not there."""
    signed = presign(owner, ref.bucket, ref.key, now, link)
    found = head(ref.bucket, ref.key) if signed else None
    if signed is None or found is None:
        return None
    size, mime = found
    name = ref.key.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return {
        "id": hashlib.md5(f"{ref.bucket}/{ref.key}".encode(), usedforsecurity=False).hexdigest(),
        "name": name,
        "basename": stem if dot and stem else name,
        "ext": ext if dot and stem else "",
        "size": size,
        "mime": mime,
        "field": field,
        "ssl_url": signed[0],
        "bucket": ref.bucket,
        "key": ref.key,
    }


def _files(
    task: Task, ref: ObjectRef | None, field: str, now: datetime, link: Link
) -> list[dict[str, Any]]:
    found = file_object(task.owner, ref, field, now, link) if ref else None
    return [found] if found else []


def view(task: Task, link: Link = ORIGIN_LINK) -> dict[str, Any]:
    """Seed 003's AssemblyStatus (schema: `AssemblyStatus`); `link`: how long `ssl_url` lives."""
    now = utcnow()
    finished = task.status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)
    results: dict[str, list[dict[str, Any]]] = {}
    target_files = _files(task, task.target, "target", now, link) if finished else []
    if target_files:
        results["target"] = target_files
    progress = shown_progress(task)
    combined = 0
    if task.is_terminal:
        combined = 100
    elif progress and progress["total"]:
        combined = round(100 * progress["current"] / progress["total"])
    return present(
        {
            "assembly_id": task.id,
            "ok": ASSEMBLY_OK[task.status],
            "error": _ERROR_CODES.get(task.status),
            "message": _message(task),
            "type": task.type,
            "user": {"userId": task.owner},
            "uploads": _files(task, task.source, "source", now, link),
            "results": results,
            "result": task.result,
            "result_url": result_url(task, now),
            "execution_start": timefmt.wire(task.started_at),
            "execution_duration": _duration(task, now),
            "progress_combined": combined,
            **_steps(task, progress),
            "progress": progress,
            "created_at": timefmt.wire(task.created_at),
            "updated_at": timefmt.wire(task.updated_at),
        }
    )


def _steps(task: Task, progress: dict[str, Any] | None) -> dict[str, Any]:
    """transflow HEAD's step fields, which its example page shows while a task runs
    ("Step {current_step} of {steps_total}: {current_step_name}", a bar at `progress_pct`).

    The origin writes `progress_pct` as `Math.floor(done / total * 100)` and 100 once the
    assembly completes or fails; our progress `current` is the step the processor reports
    (done, or under way), so it is both `current_step` and `steps_completed`."""
    if task.is_terminal:
        pct = 100
    elif progress and progress["total"]:
        pct = min(100, max(0, 100 * progress["current"] // progress["total"]))
    else:
        pct = 0
    steps: dict[str, Any] = {"progress_pct": pct}
    if progress is not None:
        steps |= {
            "steps_total": progress["total"],
            "steps_completed": progress["current"],
            "current_step": progress["current"],
            "current_step_name": progress["message"] or None,
        }
    return steps


def _flag(value: Any) -> bool | None:
    """`triggerWebhook`: true/false, or their strings as a query string carries them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", ""}:
        return value.strip().lower() in {"true", "1"}
    return None


Redeliver = Callable[[Task], str]  # the dispatcher's `redeliver`: the event id sent again


def handle(
    service: TaskService,
    redeliver: Redeliver,
    event: Any,
    *,
    user: str | None,
    request_id: str = "",
) -> dict[str, Any]:
    """The Status Lambda. `user`: the REST caller (from the token); else event.userId if given."""
    if not isinstance(event, dict):
        return _error(400, request_id, MISSING_ID)
    try:
        jsonsafe.check(event)
    except jsonsafe.UnsafeJson as exc:
        return _error(400, request_id, f"the event is refused: {exc}")
    assembly_id = event.get("assemblyId")
    if not isinstance(assembly_id, str) or not assembly_id.strip():
        return _error(400, request_id, MISSING_ID)
    claimed = event.get("userId")
    if claimed is not None and not isinstance(claimed, str):
        return _error(400, request_id, "userId must be a string")
    if user is None and claimed:
        user = claimed  # "" is treated as absent, as the origin's truthiness check does
    trigger = _flag(event.get("triggerWebhook", False))
    if trigger is None:
        return _error(400, request_id, "triggerWebhook must be true or false")
    try:
        task = service.find(assembly_id) if _is_ours(assembly_id) else None
    except (ClientError, BotoCoreError) as exc:
        log.exception("assembly lookup failed", extra={"task_id": assembly_id})
        return _error(500, request_id, FAILED_LOOKUP, message=str(exc))
    if task is None:
        return _error(404, request_id, NOT_FOUND, assembly_id=assembly_id[:MAX_ID_ECHO])
    if user is not None and task.owner != user:
        return _error(403, request_id, FORBIDDEN)
    try:
        settings = service.settings
        body = view(task, settings.link(settings.assembly_url_expires_seconds))
    except (ClientError, BotoCoreError) as exc:
        log.exception("assembly view failed", extra={"task_id": assembly_id})
        return _error(500, request_id, FAILED_LOOKUP, message=str(exc))
    if trigger:
        body["webhook"] = trigger_webhook(redeliver, task)
    return lambda_response(200, body, request_id)


def _is_ours(assembly_id: str) -> bool:
    return is_task_id(assembly_id)


def trigger_webhook(redeliver: Redeliver, task: Task) -> dict[str, Any]:
    try:
        return {"triggered": True, "eventId": redeliver(task)}
    except (NoWebhook, JobNotFinished, RedeliveryTooSoon) as exc:
        return {"triggered": False, "message": str(exc)}


def rest(container: Container, request: Any, assembly_id: str | None = None) -> Any:
    """`GET /assemblies/{assemblyId}` and `GET /assemblies?assemblyId=`: the token's user."""
    from chalice.app import Response

    params = http.query(request)
    if assembly_id is None:
        assembly_id = params.get("assemblyId") or params.get("assembly_id") or ""
    event = {"assemblyId": assembly_id, "triggerWebhook": params.get("triggerWebhook", "false")}
    result = handle(
        container.service,
        container.redeliver,
        event,
        user=http.current_user(request),
        request_id=http.request_id(request),
    )
    return Response(
        body=result["body"], status_code=result["statusCode"], headers=result["headers"]
    )
