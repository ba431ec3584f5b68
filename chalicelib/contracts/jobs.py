"""The native API (DESIGN.md section 4, modelled on seed 002): request model and job document."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from chalicelib.contracts.common import iso_seconds
from chalicelib.contracts.models import JobDocument, JobOutput, JobRequest
from chalicelib.errors import Unprocessable
from chalicelib.model import Status, Task, utcnow
from chalicelib.objects import presign, result_url, split_s3_uri
from chalicelib.service import SubmitJob, validation_errors


def parse_job_request(body: Any) -> SubmitJob:
    if not isinstance(body, dict):
        raise Unprocessable("request body must be a JSON object with at least a `type`")
    try:
        request = JobRequest.model_validate(body)
    except ValidationError as exc:
        errors = validation_errors(exc, "body")
        fields = ", ".join(e["field"].removeprefix("body.") for e in errors)
        raise Unprocessable(
            f"request body is not a valid job: check {fields}", errors=errors
        ) from None
    return SubmitJob(
        type=request.type,
        input=request.input,
        source=request.source,
        target=request.target,
        metadata=request.metadata,
        webhook=request.webhook,
    )


def _output(task: Task) -> dict[str, Any]:
    output = task.output.model_dump() if task.output else {}
    document = JobOutput(**output).model_dump()
    located = split_s3_uri(document["s3Uri"] or "")
    if located and task.status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS):
        signed = presign(task.owner, *located, utcnow())
        if signed is not None:
            document["url"], document["urlExpiresAt"] = signed[0], iso_seconds(signed[1])
    return document


def job_document(task: Task) -> dict[str, Any]:
    return JobDocument(
        jobId=task.id,
        type=task.type,
        status=task.status,
        submittedAt=iso_seconds(task.created_at),
        updatedAt=iso_seconds(task.updated_at),
        completedAt=iso_seconds(task.completed_at),
        processingTime=task.processing_seconds,
        progress=task.progress.model_dump() if task.progress else None,
        result=task.result,
        resultUrl=result_url(task, utcnow()),
        output=_output(task),
        error=task.error,
        metadata=task.metadata,
    ).model_dump(mode="json")
