"""The operations routes: a job's history, retry, bulk redrive and cancel (handlers, models).

Every one is owner-scoped: another user's job is a 404 like a missing one, and a bulk
operation selects on the caller's own index partition only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from chalice.app import Request, Response
from pydantic import ConfigDict, Field, field_validator, model_validator

from chalicelib import reruns
from chalicelib.contracts.jobs import accepted, idempotency_key
from chalicelib.edge import http
from chalicelib.edge.http_errors import BadRequest, Conflict, NotFound, native_errors
from chalicelib.errors import IdempotentJobGone, TransitionRefused
from chalicelib.model import TERMINAL, Status
from chalicelib.validation import Schema, UtcDatetime

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

TYPE_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


class EventProgress(Schema):
    current: int
    total: int
    message: str


class FlowEvent(Schema):
    """A version's wait for a slot, or its admission (docs/flow-control.md)."""

    event: Literal["parked", "admitted"]
    at: str = Field(description="ISO-8601 UTC, milliseconds")
    reason: str | None = Field(
        default=None, description="a park's: owner limit, type limit, pool limit or key limit"
    )


class JobEvent(Schema):
    """One version of a job: what it became, when, and who wrote it."""

    version: int
    status: Status
    at: str = Field(description="when this version was written (ISO-8601 UTC, milliseconds)")
    by: str = Field(
        description="who wrote it: api, worker, reaper, dead-letters, scheduler, redrive, "
        "bulk-cancel, stream, stream-failures, ..."
    )
    progress: EventProgress | None = None
    error: str | None = None
    flow: list[FlowEvent] | None = Field(
        default=None,
        description="flow control on this version: each wait in a line (why) and the "
        "admission that queued it",
    )


class JobEventList(Schema):
    events: list[JobEvent]
    nextCursor: str | None


class BulkFilter(Schema):
    """Which of your jobs a bulk operation takes: by status, type and submission time."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, min_length=1, max_length=128, pattern=TYPE_PATTERN)
    since: UtcDatetime | None = Field(
        default=None, description="submitted at or after (ISO-8601 with a zone, e.g. ...Z)"
    )
    until: UtcDatetime | None = Field(default=None, description="submitted at or before")
    dryRun: bool = Field(default=False, description="count and list, change nothing")
    cursor: str | None = Field(
        default=None, max_length=512, description="nextCursor of the previous call"
    )

    @model_validator(mode="after")
    def _ordered(self) -> BulkFilter:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be later than until")
        return self


class RedriveRequest(BulkFilter):
    status: Literal["failed", "cancelled"]


class BulkCancelRequest(BulkFilter):
    status: Status | None = Field(
        default=None, description="one status that has not finished; all of them if omitted"
    )

    @field_validator("status")
    @classmethod
    def _not_finished(cls, value: Status | None) -> Status | None:
        if value is not None and value in TERMINAL:
            finished = value.value
            raise ValueError(f"{finished} jobs have finished: only unfinished ones are cancelled")
        return value


class BulkResult(Schema):
    dryRun: bool
    count: int = Field(description="jobs moved by this call (or, in a dry run, that would be)")
    jobIds: list[str]
    skipped: int = Field(description="jobs that changed meanwhile and were left as they are")
    nextCursor: str | None = Field(description="more jobs may match: call again with it")


MAX_EVENTS_PER_PAGE = 100


def list_events(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    params = http.query(request)
    unknown = set(params) - {"limit", "cursor"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    limit = http.limit_param(params.get("limit"), MAX_EVENTS_PER_PAGE, MAX_EVENTS_PER_PAGE)
    user = http.current_user(request)
    http.task_id_param(job_id)
    with native_errors():
        service.get_owned(user, job_id)
    scope = f"events|{user}|{job_id}"
    after = _version_cursor(request, params.get("cursor"), scope)
    page = container.history.page(job_id, service.clock(), limit=limit, after=after)
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


def retry_job(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    http.task_id_param(job_id)
    key = idempotency_key(request)
    with native_errors():
        try:
            task, retried = reruns.retry(service, http.current_user(request), job_id, key)
        except TransitionRefused as exc:
            raise Conflict(
                f"job {job_id} is {exc.current}; only failed or cancelled jobs can be retried"
            ) from None
        except IdempotentJobGone:  # the key replays this very job, which has expired since
            raise NotFound(f"job {job_id} was not found") from None
    return accepted(task, key, replayed=not retried)


def redrive_jobs(container: Container, request: Request) -> Response:
    service = container.service
    body = _bulk_body(request, RedriveRequest, "the redrive")
    selection = _selection(request, body, frozenset({Status(body.status)}))
    scope = selection.scope("redrive")
    after = http.decode_cursor(request, body.cursor, scope)
    outcome = reruns.redrive(service, selection, after, body.dryRun)
    return _bulk_response(request, outcome, scope, 200 if body.dryRun else 202)


def cancel_jobs(container: Container, request: Request) -> Response:
    service = container.service
    body = _bulk_body(request, BulkCancelRequest, "the bulk cancel")
    statuses = reruns.unfinished([body.status] if body.status else None)
    selection = _selection(request, body, statuses)
    scope = selection.scope("cancel")
    outcome = reruns.bulk_cancel(
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


def _selection(request: Request, body: BulkFilter, statuses: frozenset[Status]) -> reruns.Selection:
    return reruns.Selection(
        owner=http.current_user(request),
        statuses=statuses,
        type=body.type,
        since=body.since,
        until=body.until,
    )


def _bulk_response(
    request: Request, outcome: reruns.BulkOutcome, scope: str, status: int
) -> Response:
    result = BulkResult(
        dryRun=outcome.dry_run,
        count=len(outcome.job_ids),
        jobIds=outcome.job_ids,
        skipped=outcome.skipped,
        nextCursor=http.encode_cursor(request, outcome.last_key, scope),
    )
    return http.json_response(result.model_dump(mode="json"), status)
