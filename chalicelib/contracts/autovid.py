"""Seed 002, auto-vid: `POST /submit` and `GET /status/{jobId}`.

`POST /submit` takes the native job request (it has a `type`) or an auto-vid job
spec (`jobInfo`, `assets`, `backgroundMusic`, `timeline`, `output`,
`notifications`), which becomes the input of the task type `AUTOVID_TASK_TYPE`.
Answers are the origin's job document with its five statuses; errors are
`{"error": "<string>", "timestamp"}` (shaped by edge/contract_errors.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from chalicelib.contracts import jobs
from chalicelib.contracts.common import shown_error
from chalicelib.contracts.status_maps import AUTOVID
from chalicelib.edge import http
from chalicelib.edge.http_errors import (
    ApiError,
    BadRequest,
    NotFound,
    Unprocessable,
    job_gone,
    key_in_use,
)
from chalicelib.errors import (
    IdempotencyConflict,
    IdempotencyKeyInUse,
    IdempotentJobGone,
    SubmitRejected,
    describe,
)
from chalicelib.model import Task, is_task_id
from chalicelib.objects import Link
from chalicelib.service import SubmitJob, TaskService

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

INVALID = "Invalid job specification"
# auto-vid's output.url: `S3_PRESIGNED_URL_EXPIRATION`, "86400" by default (24 h).
ORIGIN_LINK = Link(86400)
SPEC_FIELDS = frozenset(
    {"jobInfo", "assets", "backgroundMusic", "timeline", "output", "notifications"}
)


def job_document(task: Task, link: Link = ORIGIN_LINK) -> dict[str, Any]:
    """The origin's job document (and the native one's extras: type, progress, result);
    `output.url` lives as long as the origin's (AUTOVID_URL_EXPIRES_SECONDS, 24 h)."""
    document = jobs.job_document(task, link=link)
    document["status"] = AUTOVID[task.status]
    document["error"] = shown_error(task)
    info = task.input.get("jobInfo")
    document["jobInfo"] = info if isinstance(info, dict) else {}
    return document


def _body(request: Request) -> dict[str, Any]:
    raw = request.raw_body or b""
    if not raw.strip():
        raise BadRequest("Missing request body")
    try:
        body = http.json_body(request)
    except BadRequest:
        raise BadRequest("Invalid JSON in request body") from None
    except ApiError as exc:
        if exc.status_code == 415 and "not JSON" in exc.message:
            raise BadRequest("Invalid JSON in request body") from None
        raise
    if not isinstance(body, dict):
        raise BadRequest(f"{INVALID}: the body must be a JSON object")
    return body


def _from_spec(spec: dict[str, Any], task_type: str) -> SubmitJob:
    from pydantic import ValidationError

    from chalicelib.contracts.schemas import Webhook
    from chalicelib.processors import get_processor
    from chalicelib.validation import validation_errors

    unknown = set(spec) - SPEC_FIELDS
    if unknown:
        raise BadRequest(f"{INVALID}: unknown field(s) {', '.join(sorted(unknown))}")
    if get_processor(task_type) is None:
        raise BadRequest(
            f"{INVALID}: no processor is registered for task type {task_type!r} "
            "(AUTOVID_TASK_TYPE), so auto-vid job specs cannot run here"
        )
    notifications = spec.get("notifications") or {}
    hook = notifications.get("webhook") if isinstance(notifications, dict) else None
    webhook = None
    if hook is not None:
        if not isinstance(hook, dict):
            raise BadRequest(f"{INVALID}: notifications.webhook must be an object")
        try:
            webhook = Webhook.model_validate({**hook, "format": "autovid"}).domain()
        except ValidationError as exc:
            errors = validation_errors(exc, "notifications.webhook")
            raise BadRequest(f"{INVALID}: {describe(errors)}") from None
    return SubmitJob(type=task_type, input=spec, webhook=webhook)


def submit(container: Container, request: Request) -> Response:
    service = container.service
    body = _body(request)
    if "type" in body:
        try:
            job = jobs.parse_job_request(body)
        except Unprocessable as exc:
            fields = describe(exc.details.get("errors") or [])
            raise BadRequest(f"{INVALID}: {fields or exc.message}") from None
    else:
        job = _from_spec(body, service.settings.autovid_task_type)
    key = jobs.idempotency_key(request)
    owner = http.current_user(request)
    try:  # a 429 is answered in auto-vid's error body
        task, _, rate_headers = jobs.submit_under_rate(container, owner, job, key)
    except SubmitRejected as exc:
        fields = describe(exc.errors)
        raise BadRequest(f"{INVALID}: {exc.message}" + (f" ({fields})" if fields else "")) from None
    except IdempotencyConflict as exc:
        raise Unprocessable(str(exc)) from None
    except IdempotencyKeyInUse:
        raise key_in_use() from None
    except IdempotentJobGone as exc:
        raise job_gone(str(exc)) from None
    return http.json_response(job_document(task, _link(service)), headers=rate_headers)


def _link(service: TaskService) -> Link:
    settings = service.settings
    return settings.link(settings.autovid_url_expires_seconds)


def status(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    reader = http.reader(request)  # None: a public read by id (PUBLIC_READ_BY_ID)
    task = service.find(job_id) if is_task_id(job_id) else None
    if task is None or (reader is not None and task.owner != reader):
        raise NotFound(f"Job {job_id[:128]} not found")
    return http.json_response(job_document(task, _link(service)))
