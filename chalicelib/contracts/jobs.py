"""The native API (modelled on seed 002's auto-vid): its handlers, request model and job document.

Each handler parses the request, calls the service and shapes the response.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from chalicelib import objects, timefmt
from chalicelib.contracts.common import shown_progress
from chalicelib.edge import http
from chalicelib.edge.http_errors import (
    RETRY_AFTER_SECONDS,
    BadRequest,
    Conflict,
    NotFound,
    TooManyRequests,
    Unprocessable,
    native_errors,
)
from chalicelib.errors import TransitionRefused
from chalicelib.model import Output, Status, Task, utcnow
from chalicelib.objects import NATIVE_LINK, Link, presign, result_url, split_s3_uri
from chalicelib.observability import emit_metric
from chalicelib.service import SubmitJob, TaskService
from chalicelib.store import page_key

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container
    from chalicelib.webhooks import Delivery

IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
        )
    return key


def submit_job(container: Container, request: Request) -> Response:
    job = parse_job_request(http.json_body(request))
    key = idempotency_key(request)
    owner = job_owner(request, job)
    with native_errors():
        task, created, rate_headers = submit_under_rate(container, owner, job, key)
    if created:
        emit_metric("TasksSubmitted", 1, type=task.type)
    response = accepted(task, key, replayed=not created)
    response.headers.update(rate_headers)
    return response


def submit_allowance(container: Container, owner: str, jobs: int) -> dict[str, str]:
    """SUBMIT_RATE: take `jobs` of the owner's tokens before anything is stored; the
    RateLimit headers of the answer. Short of tokens: a 429 with Retry-After, nothing taken,
    nothing stored (chalicelib/fairness.py's TokenBuckets). Every route that creates tasks
    for a caller takes from this one bucket per owner: POST /jobs, POST /jobs/batch (a token
    per job) and the seeds' submit routes (002's POST /submit); a schedule's fires do not
    (the schedule was the submit, and its limits bound them)."""
    rate = container.settings.submit_rate
    if rate is None:
        return {}
    if jobs > rate.count:
        raise Unprocessable(
            f"{jobs} jobs at once are more than SUBMIT_RATE lets you submit ({rate.count} "
            f"per {rate.period_seconds} s): split the batch"
        )
    taken = container.rate_buckets.take(_submit_scope(owner), rate, jobs)
    headers = {
        "RateLimit-Limit": str(rate.count),
        "RateLimit-Remaining": str(taken.remaining),
        "RateLimit-Policy": f"{rate.count};w={rate.period_seconds}",
    }
    if not taken.allowed:
        retry_after = max(1, math.ceil(taken.retry_after))
        raise TooManyRequests(
            f"too many submits: at most {rate.count} jobs per {rate.period_seconds} s "
            f"(SUBMIT_RATE); retry in {retry_after} s",
            headers={**headers, "Retry-After": str(retry_after)},
        )
    return headers


def submit_under_rate(
    container: Container, owner: str, job: SubmitJob, key: str | None
) -> tuple[Task, bool, dict[str, str]]:
    """One job under SUBMIT_RATE (POST /jobs, 002's POST /submit): (task, created, the
    RateLimit headers). A token pays for a job stored: a replay of an Idempotency-Key and a
    refused request give theirs back, and a replay is answered even when the bucket is
    empty (it stores nothing; the key is read only then, so a submit within the rate
    costs no extra read). Raises the service's errors for the caller to answer in its
    contract's shape."""
    try:
        headers = submit_allowance(container, owner, 1)
    except TooManyRequests:
        earlier = (
            container.service.replayed(owner, job.fingerprint(), key) if key is not None else None
        )
        if earlier is None:
            raise
        return earlier, False, {}
    try:
        task, created = container.service.submit(owner, job, key)
    except Exception:
        give_back_allowance(container, owner, 1)
        raise
    if not created:
        give_back_allowance(container, owner, 1)
    return task, created, headers


def give_back_allowance(container: Container, owner: str, jobs: int) -> None:
    """Return the tokens `submit_allowance` took for jobs that were then not submitted."""
    rate = container.settings.submit_rate
    if rate is not None:
        container.rate_buckets.give_back(_submit_scope(owner), rate, jobs)


def _submit_scope(owner: str) -> str:
    from chalicelib.store import owner_scoped

    return "submit#" + owner_scoped(owner)


def job_owner(request: Request, job: SubmitJob) -> str:
    """Whose job this is: the caller's, or the owner a service key names for it."""
    from chalicelib.reports import OwnerMissing, owner_for

    with native_errors():
        try:
            return owner_for(http.current_principal(request), job.owner)
        except OwnerMissing as exc:
            message = str(exc)
            raise Unprocessable(message, errors=[{"field": "owner", "message": message}]) from None


def accepted(task: Task, key: str | None, replayed: bool) -> Response:
    """202 with the job: where to poll, when, its ETag, and whether a key replayed it."""
    headers = {
        "Location": f"/jobs/{task.id}",
        "Retry-After": RETRY_AFTER_SECONDS,
        "ETag": http.etag(task.id, task.version),
    }
    if key is not None:
        headers["Idempotent-Replayed"] = "true" if replayed else "false"
    return http.json_response(job_document(task), 202, headers)


def _owned_job(service: TaskService, request: Request, job_id: str) -> Task:
    """The caller's job; a malformed id is a 400, another user's job a 404 like a missing one."""
    http.task_id_param(job_id)
    with native_errors():
        return service.get_owned(http.current_user(request), job_id)


def _readable_job(service: TaskService, request: Request, job_id: str) -> Task:
    """`_owned_job`, or any owner's job on a public read by id (PUBLIC_READ_BY_ID)."""
    if http.reader(request) is not None:
        return _owned_job(service, request, job_id)
    task = service.find(http.task_id_param(job_id))
    if task is None:
        raise NotFound(f"job {job_id} was not found")
    return task


def get_job(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    task = _readable_job(service, request, job_id)
    tag = http.etag(task.id, task.version)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if not task.is_terminal:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    if http.not_modified(request, tag):
        return Response(body="", status_code=304, headers=headers)
    # The input is the owner's alone: a public read by id (PUBLIC_READ_BY_ID) never shows it.
    owners_read = http.reader(request) is not None
    document = job_document(task, with_input=owners_read)
    return http.json_response(document, headers=headers)


def list_jobs(container: Container, request: Request) -> Response:
    service = container.service
    params = http.query(request)
    unknown = set(params) - {"status", "type", "limit", "cursor"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    status = _status_param(params.get("status"))
    task_type = params.get("type") or None
    if task_type is not None and len(task_type) > 128:
        raise BadRequest("type must be at most 128 characters")
    user = http.current_user(request)
    scope = f"jobs|{user}|{task_type or ''}|{status or ''}"
    page = service.list_owned(
        user,
        limit=http.limit_param(params.get("limit")),
        type=task_type,
        status=status,
        after=http.decode_cursor(request, params.get("cursor"), scope),
    )
    jobs = [job_document(task) for task in page.tasks]
    # A page of large results could pass Lambda's response limit: it ends where it fits,
    # and the cursor goes on from its last job.
    kept = http.fitting(jobs)
    last_key = page.last_key if kept == len(jobs) else page_key(page.tasks[kept - 1])
    # The shape of JobList; each item is already a dumped JobDocument.
    return http.json_response(
        {"jobs": jobs[:kept], "nextCursor": http.encode_cursor(request, last_key, scope)}
    )


def _status_param(value: str | None) -> Status | None:
    if not value:
        return None
    try:
        return Status(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise BadRequest(f"status must be one of {allowed}; got {value[:32]!r}") from None


def cancel_job(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    http.task_id_param(job_id)
    with native_errors():
        try:
            task = service.cancel(http.current_user(request), job_id)
        except TransitionRefused as exc:
            raise Conflict(
                f"job {job_id} has already finished as {exc.current}; it cannot be cancelled"
            ) from None
    return http.json_response(
        job_document(task), headers={"ETag": http.etag(task.id, task.version)}
    )


def list_deliveries(container: Container, request: Request, job_id: str) -> Response:
    from chalicelib.contracts.schemas import DeliveryList

    _owned_job(container.service, request, job_id)
    deliveries = [delivery_document(d) for d in container.webhook_log.deliveries(job_id)]
    return http.json_response(DeliveryList(deliveries=deliveries).model_dump(mode="json"))


def redeliver_webhook(container: Container, request: Request, job_id: str) -> Response:
    from chalicelib.contracts.schemas import Redelivery

    task = _owned_job(container.service, request, job_id)
    with native_errors():
        event_id = container.redeliver(task)
    redelivery = Redelivery(triggered=True, eventId=event_id)
    return http.json_response(redelivery.model_dump(mode="json", exclude_none=True), 202)


def create_upload(container: Container, request: Request) -> Response:
    """A presigned PUT for a fresh key under the caller's prefix (no AWS credentials needed)."""
    service = container.service
    from chalicelib.contracts.schemas import UploadRequest, UploadTicket

    upload = http.body_model(
        http.json_body(request),
        UploadRequest,
        "the upload request",
        "request body must be a JSON object with filename and contentType",
    )
    bucket = service.settings.objects_bucket
    key = objects.upload_key(http.current_user(request), upload.filename)
    url, headers, expires = objects.presign_upload(
        bucket, key, upload.contentType, upload.size, utcnow()
    )
    ticket = UploadTicket(
        bucket=bucket,
        key=key,
        url=url,
        method="PUT",
        headers=headers,
        expiresAt=timefmt.wire(expires) or "",
    )
    return http.json_response(ticket.model_dump(mode="json"), 201)


def webhook_secret(container: Container, request: Request) -> Response:
    """The caller's own signing secrets: what their receiver verifies deliveries with."""
    service = container.service
    from chalicelib.contracts.schemas import WebhookSecrets
    from chalicelib.webhooks.signing import owner_secrets

    settings = service.settings
    current, *previous = owner_secrets(
        settings.webhook_secret, settings.webhook_previous_secret, http.current_user(request)
    )
    secrets = WebhookSecrets(secret=current, previousSecret=previous[0] if previous else None)
    # A secret: kept out of every cache between here and the caller.
    headers = {"Cache-Control": "no-store"}
    return http.json_response(secrets.model_dump(mode="json", exclude_none=True), headers=headers)


# -- the request model and the job document ----------------------------------------------


def parse_job_request(body: Any) -> SubmitJob:
    from chalicelib.contracts.schemas import JobRequest

    request = http.body_model(
        body,
        JobRequest,
        "the job",
        "request body must be a JSON object with at least a `type`",
    )
    return SubmitJob(
        type=request.type,
        input=request.input,
        source=request.source.domain() if request.source else None,
        target=request.target.domain() if request.target else None,
        metadata=request.metadata,
        webhook=request.webhook.domain() if request.webhook else None,
        run_at=request.runAt,
        delay_seconds=request.delaySeconds,
        runner=request.runner,
        job_id=request.jobId,
        heartbeat_seconds=request.heartbeatSeconds,
        owner=request.owner,
        pool=request.pool,
        priority=request.priority,
        concurrency_key=request.concurrency.key if request.concurrency else None,
        concurrency_limit=request.concurrency.limit if request.concurrency else None,
    )


def _output(task: Task, link: Link) -> dict[str, Any]:
    output = task.output or Output()
    document = {
        "url": None,
        "urlExpiresAt": None,
        "s3Uri": output.s3Uri,
        "duration": output.duration,
        "size": output.size,
    }
    located = split_s3_uri(output.s3Uri or "")
    if located and task.status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS):
        signed = presign(task.owner, *located, utcnow(), link)
        if signed is not None:
            document["url"], document["urlExpiresAt"] = signed[0], timefmt.wire(signed[1])
    if document["url"] is None and output.url is not None:
        document["url"] = output.url  # an external job's link, as its producer reported it
    return document


def job_document(task: Task, with_input: bool = False, link: Link = NATIVE_LINK) -> dict[str, Any]:
    """The job (schema: `JobDocument`); `with_input` for a read by id only: a list page of 100
    inputs of up to 256 KB each would pass Lambda's 6 MB response limit. `link`: how long
    `output.url` lives (the native surface's hour, or a contract's own)."""
    return {
        "jobId": task.id,
        "type": task.type,
        "status": task.status.value,
        "submittedAt": timefmt.wire(task.created_at),
        "updatedAt": timefmt.wire(task.updated_at),
        "completedAt": timefmt.wire(task.completed_at),
        "processingTime": task.processing_seconds,
        "progress": shown_progress(task),
        "result": task.result,
        "resultUrl": result_url(task, utcnow()),
        "output": _output(task, link),
        "error": task.error,
        "metadata": task.metadata,
        "version": task.version,
        "input": task.input if with_input else None,
        "retries": task.retries,
        "runAt": timefmt.wire(task.run_at),
        "hasWebhook": task.webhook is not None,
        "scheduleId": task.schedule_id,
        "scheduledFor": timefmt.wire(task.scheduled_for),
        "pool": task.pool,
        "attempt": task.attempts,
        "priority": task.priority,
        "concurrency": _concurrency(task),
        "waitingFor": task.waits_for,
    }


def _concurrency(task: Task) -> dict[str, Any] | None:
    if task.concurrency_key is None:
        return None
    return {"key": task.concurrency_key, "limit": task.concurrency_limit}


def job_change(task: Task) -> dict[str, Any]:
    """A change as native subscribers see it (the `job` of a WebSocket push): the job
    document's own names, canonical status and current version, for the fields a push
    changes. Seed 004's payload beside it keeps that contract's words for its clients."""
    return {
        "jobId": task.id,
        "status": task.status.value,
        "version": task.version,
        "progress": shown_progress(task),
        "updatedAt": timefmt.wire(task.updated_at),
        "completedAt": timefmt.wire(task.completed_at),
        "error": task.error,  # bounded (ERROR_MESSAGE_LIMIT): the frame has room for it
        "attempt": task.attempts,  # a claim or a takeover is a new attempt: the dashboard shows it
    }


def delivery_document(delivery: Delivery) -> dict[str, Any]:
    """One attempt as `GET /jobs/{jobId}/deliveries` lists it."""
    return {
        "eventId": delivery.event_id,
        "eventType": delivery.event_type,
        "attempt": delivery.attempt,
        "at": delivery.at,
        "statusCode": delivery.status_code,
        "latencyMs": delivery.latency_ms,
        "error": delivery.error,
        "state": delivery.state,
        "manual": delivery.manual,
    }
