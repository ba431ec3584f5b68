"""REST handlers of the operations routes: a job's history, retry, bulk redrive and cancel.

Every one is owner-scoped: another user's job is a 404 like a missing one, and a bulk
operation selects on the caller's own index partition only.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Request, Response

from chalicelib import http, redrive
from chalicelib.contracts.jobs import accepted, idempotency_key, key_in_use
from chalicelib.contracts.operations import (
    BulkCancelRequest,
    BulkFilter,
    BulkResult,
    JobEventList,
    RedriveRequest,
)
from chalicelib.errors import (
    IdempotencyConflict,
    IdempotencyKeyInUse,
    IdempotentJobGone,
    TaskNotFound,
    TransitionRefused,
)
from chalicelib.history import History
from chalicelib.http_errors import BadRequest, Conflict, NotFound, Unprocessable
from chalicelib.model import Status
from chalicelib.service import TaskService

MAX_EVENTS_PER_PAGE = 100


def list_events(service: TaskService, request: Request, job_id: str) -> Response:
    params = http.query(request)
    unknown = set(params) - {"limit", "cursor"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    limit = http.limit_param(params.get("limit"), MAX_EVENTS_PER_PAGE, MAX_EVENTS_PER_PAGE)
    user = http.current_user(request)
    http.task_id_param(job_id)
    try:
        service.get_owned(user, job_id)
    except TaskNotFound:
        raise NotFound(f"job {job_id} was not found") from None
    scope = f"events|{user}|{job_id}"
    after = _version_cursor(request, params.get("cursor"), scope)
    page = History(service.settings.records_table).page(
        job_id, service.clock(), limit=limit, after=after
    )
    cursor = None
    if page.last_version is not None:
        cursor = http.encode_cursor(request, (str(page.last_version), job_id), scope)
    body = JobEventList.model_validate({"events": page.events, "nextCursor": cursor})
    return http.json_response(
        body.model_dump(mode="json", exclude_none=True) | {"nextCursor": cursor}
    )


def _version_cursor(request: Request, cursor: str | None, scope: str) -> int:
    decoded = http.decode_cursor(request, cursor, scope)
    if decoded is None:
        return 0
    if not decoded[0].isdigit() or len(decoded[0]) > 10:
        raise BadRequest("cursor is invalid; pass the nextCursor you were given")
    return int(decoded[0])


def retry_job(service: TaskService, request: Request, job_id: str) -> Response:
    http.task_id_param(job_id)
    key = idempotency_key(request)
    try:
        task, retried = redrive.retry(service, http.current_user(request), job_id, key)
    except TaskNotFound:
        raise NotFound(f"job {job_id} was not found") from None
    except TransitionRefused as exc:
        raise Conflict(
            f"job {job_id} is {exc.current}; only failed or cancelled jobs can be retried"
        ) from None
    except IdempotencyConflict as exc:
        raise Unprocessable(str(exc)) from None
    except IdempotencyKeyInUse:
        raise key_in_use() from None
    except IdempotentJobGone:
        raise NotFound(f"job {job_id} was not found") from None
    return accepted(task, key, replayed=not retried)


def redrive_jobs(service: TaskService, request: Request) -> Response:
    body = _bulk_body(request, RedriveRequest, "the redrive")
    selection = _selection(request, body, frozenset({Status(body.status)}))
    scope = selection.scope("redrive")
    after = http.decode_cursor(request, body.cursor, scope)
    outcome = redrive.redrive(service, selection, after, body.dryRun)
    return _bulk_response(request, outcome, scope, 200 if body.dryRun else 202)


def cancel_jobs(service: TaskService, request: Request) -> Response:
    body = _bulk_body(request, BulkCancelRequest, "the bulk cancel")
    statuses = redrive.unfinished([body.status] if body.status else None)
    selection = _selection(request, body, statuses)
    scope = selection.scope("cancel")
    outcome = redrive.bulk_cancel(
        service, selection, http.decode_cursor(request, body.cursor, scope), body.dryRun
    )
    return _bulk_response(request, outcome, scope, 200)


def _bulk_body(request: Request, model: type[Any], what: str) -> Any:
    return http.body_model(
        http.json_body(request),
        model,
        what,
        "request body must be a JSON object with at least a `status`"
        if model is RedriveRequest
        else "request body must be a JSON object (`{}` takes every unfinished job)",
    )


def _selection(
    request: Request, body: BulkFilter, statuses: frozenset[Status]
) -> redrive.Selection:
    return redrive.Selection(
        owner=http.current_user(request),
        statuses=statuses,
        type=body.type,
        since=body.since,
        until=body.until,
    )


def _bulk_response(
    request: Request, outcome: redrive.BulkOutcome, scope: str, status: int
) -> Response:
    result = BulkResult(
        dryRun=outcome.dry_run,
        count=len(outcome.job_ids),
        jobIds=outcome.job_ids,
        skipped=outcome.skipped,
        nextCursor=http.encode_cursor(request, outcome.last_key, scope),
    )
    return http.json_response(result.model_dump(mode="json"), status)
