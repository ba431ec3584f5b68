"""The REST half of producers: `POST /jobs/{jobId}/report` and `POST /jobs/{jobId}/heartbeat`.

Each handler reads the request, calls chalicelib/reports.py and answers in the native shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from chalicelib.contracts.claims import acting_for, lease_heartbeat, lease_token
from chalicelib.contracts.jobs import job_document
from chalicelib.edge import http
from chalicelib.edge.http_errors import (
    Conflict,
    PreconditionFailed,
    ServiceUnavailable,
    native_errors,
)
from chalicelib.errors import TransitionRefused
from chalicelib.model import Output, Progress, Status
from chalicelib.reports import (
    Report,
    ReportRefused,
    StaleVersion,
    heartbeat,
    report,
)

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container


class JobCancelled(Conflict):
    """A report on a cancelled job: the code tells a producer to stop (the SDK's Cancelled)."""

    code = "cancelled"


def parse_report(body: Any) -> Report:
    from chalicelib.contracts.schemas import ReportRequest

    asked = http.body_model(
        body,
        ReportRequest,
        "the report",
        'request body must be a JSON object such as {"status": "processing"}',
    )
    progress = None
    if asked.progress is not None:
        p = asked.progress
        progress = Progress(p.current, max(p.total, p.current), p.message)
    output = Output(**asked.output.model_dump()) if asked.output is not None else None
    return Report(
        status=asked.status,
        progress=progress,
        result=asked.result,
        error=asked.error,
        output=output,
        given=frozenset(asked.model_fields_set),
    )


def report_job(container: Container, request: Request, job_id: str) -> Response:
    service = container.service
    http.task_id_param(job_id)
    body = http.json_body(request)
    said = parse_report(body)
    with native_errors():
        try:
            task, _written = report(
                service,
                acting_for(request),
                job_id,
                said,
                request.headers.get("if-match"),
                lease_token=body.get("leaseToken"),
            )
        except StaleVersion as exc:
            tag = http.etag(exc.task.id, exc.task.version)
            raise PreconditionFailed(str(exc), headers={"ETag": tag}) from None
        except ReportRefused as exc:
            kind = JobCancelled if exc.current is Status.CANCELLED else Conflict
            raise kind(str(exc)) from None
        except TransitionRefused:
            raise ServiceUnavailable(
                f"job {job_id} is being written by others right now; send the report again",
                headers={"Retry-After": "1"},
            ) from None
    return http.json_response(
        job_document(task), headers={"ETag": http.etag(task.id, task.version)}
    )


def heartbeat_job(container: Container, request: Request, job_id: str) -> Response:
    from chalicelib.contracts.schemas import HeartbeatAnswer

    service = container.service
    http.task_id_param(job_id)
    if b"leaseToken" in (request.raw_body or b""):  # a pool job's worker sends its lease
        token = lease_token(http.json_body(request))
        return lease_heartbeat(service, request, job_id, token, acting_for(request).allows)
    with native_errors():
        beat = heartbeat(service, acting_for(request), job_id)
    task = beat.task
    answer = HeartbeatAnswer(
        jobId=task.id,
        status=task.status,
        cancelRequested=beat.cancel_requested,
        version=task.version,
        heartbeatSeconds=task.heartbeat_seconds or 0,
    )
    return http.json_response(
        answer.model_dump(mode="json"), headers={"ETag": http.etag(task.id, task.version)}
    )
