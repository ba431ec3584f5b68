"""Seed 003, the Status Lambda: `{assemblyId, userId?, triggerWebhook?}` -> `{statusCode, body}`.

Served both as the pure Lambda `status` and over REST at
`GET /assemblies/{assemblyId}?triggerWebhook=true`. On REST the user always
comes from the verified token, so the owner check can never be skipped; a
direct Lambda invocation is authorised by IAM and checks `userId` when given.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import jsonsafe
from chalicelib.contracts.common import iso_seconds
from chalicelib.contracts.models import AssemblyError, AssemblyStatus
from chalicelib.contracts.status_maps import ASSEMBLY_OK
from chalicelib.model import Status, Task, utcnow
from chalicelib.objects import presign, result_url
from chalicelib.service import TaskService

log = logging.getLogger("taskstatus_svc.contracts")

_RUNNING_MESSAGES = {
    Status.SUBMITTED: "The assembly is queued and waiting for a worker.",
    Status.STARTED: "The assembly has started.",
    Status.PROCESSING: "The assembly is processing.",
    Status.ERROR: "The assembly hit a non-fatal error and is still processing.",
    Status.RETRYING: "The assembly failed transiently and will be retried.",
}


def lambda_response(status_code: int, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return {"statusCode": status_code, "body": json.dumps(body), "headers": headers}


def _error(status_code: int, code: str, message: str, request_id: str) -> dict[str, Any]:
    body = AssemblyError(error=code, message=message).model_dump(mode="json")
    return lambda_response(status_code, body, request_id)


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


def view(task: Task) -> dict[str, Any]:
    now = utcnow()
    uploads = []
    if task.source:
        uploads.append(
            {
                "field": "source",
                "bucket": task.source.bucket,
                "key": task.source.key,
                "name": task.source.key.rsplit("/", 1)[-1],
            }
        )
    results: dict[str, Any] = {}
    if task.status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS):
        signed = task.target and presign(task.owner, task.target.bucket, task.target.key, now)
        if task.target and signed:
            results["target"] = [
                {
                    "bucket": task.target.bucket,
                    "key": task.target.key,
                    "ssl_url": signed[0],
                    "name": task.target.key.rsplit("/", 1)[-1],
                }
            ]
        if task.result is not None:
            results["result"] = task.result
    progress = task.progress
    combined = (
        100
        if task.is_terminal
        else (round(100 * progress.current / progress.total) if progress and progress.total else 0)
    )
    return AssemblyStatus(
        assembly_id=task.id,
        ok=ASSEMBLY_OK[task.status],
        error="ASSEMBLY_FAILED" if task.status is Status.FAILED else None,
        message=_message(task),
        type=task.type,
        uploads=uploads,
        results=results,
        result_url=result_url(task, now),
        execution_duration=_duration(task, now),
        progress_combined=combined,
        progress=progress.model_dump() if progress else None,
        created_at=iso_seconds(task.created_at),
        updated_at=iso_seconds(task.updated_at),
    ).model_dump(
        mode="json", exclude={"webhook"} | ({"result_url"} if not task.result_object else set())
    )


def handle(
    service: TaskService,
    event: Any,
    *,
    user: str | None,
    request_id: str = "",
) -> dict[str, Any]:
    """The Status Lambda. `user`: the REST caller (from the token); else event.userId if given."""
    from chalicelib.http import is_task_id

    if not isinstance(event, dict):
        return _error(
            400, "INVALID_EVENT", "the event must be a JSON object with an assemblyId", request_id
        )
    try:
        jsonsafe.check(event)
    except jsonsafe.UnsafeJson as exc:
        return _error(400, "INVALID_EVENT", f"the event is refused: {exc}", request_id)
    assembly_id = event.get("assemblyId")
    if not isinstance(assembly_id, str) or not assembly_id.strip():
        return _error(400, "MISSING_ASSEMBLY_ID", "assemblyId is required", request_id)
    if not is_task_id(assembly_id):
        return _error(400, "INVALID_ASSEMBLY_ID", "assemblyId must be a lowercase UUID", request_id)
    if user is None and event.get("userId") is not None:
        if not isinstance(event["userId"], str) or not event["userId"].strip():
            return _error(400, "INVALID_EVENT", "userId must be a non-empty string", request_id)
        user = event["userId"]
    trigger = event.get("triggerWebhook", False)
    if not isinstance(trigger, bool):
        return _error(400, "INVALID_EVENT", "triggerWebhook must be true or false", request_id)
    try:
        task = service.find(assembly_id)
    except (ClientError, BotoCoreError) as exc:
        log.exception("assembly lookup failed", extra={"task_id": assembly_id})
        return _error(500, "INTERNAL_ERROR", f"Failed to get assembly status: {exc}", request_id)
    if task is None:
        return _error(404, "ASSEMBLY_NOT_FOUND", f"Assembly not found: {assembly_id}", request_id)
    if user is not None and task.owner != user:
        return _error(403, "FORBIDDEN", "this assembly belongs to another user", request_id)
    body = view(task)
    if trigger:
        body["webhook"] = trigger_webhook(service, task)
    return lambda_response(200, body, request_id)


def trigger_webhook(service: TaskService, task: Task) -> dict[str, Any]:
    from chalicelib.webhooks import RedeliveryTooSoon, redeliver

    try:
        return redeliver(service, task)
    except RedeliveryTooSoon as exc:
        return {"triggered": False, "message": str(exc)}


def rest(service: TaskService, request: Any, assembly_id: str) -> Any:
    """`GET /assemblies/{assemblyId}`: the user is the token's, so ownership is always checked."""
    from chalice.app import Response

    from chalicelib import http

    params = http.query(request)
    flag = params.get("triggerWebhook", "false").lower()
    if flag not in {"true", "false", "1", "0"}:
        result = _error(
            400, "INVALID_EVENT", "triggerWebhook must be true or false", http.request_id(request)
        )
    else:
        event = {"assemblyId": assembly_id, "triggerWebhook": flag in {"true", "1"}}
        result = handle(
            service, event, user=http.current_user(request), request_id=http.request_id(request)
        )
    return Response(
        body=result["body"], status_code=result["statusCode"], headers=result["headers"]
    )
