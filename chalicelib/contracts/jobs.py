"""The native API (DESIGN.md section 4, modelled on seed 002): request model and job document."""

from __future__ import annotations

from typing import Any

from chalicelib import http
from chalicelib.contracts.common import iso_seconds, shown_progress
from chalicelib.contracts.models import JobDocument, JobOutput, JobRequest
from chalicelib.model import Status, Task, utcnow
from chalicelib.objects import presign, result_url, split_s3_uri
from chalicelib.service import SubmitJob


def parse_job_request(body: Any) -> SubmitJob:
    request = http.body_model(
        body,
        JobRequest,
        "the job",
        "request body must be a JSON object with at least a `type`",
    )
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
        progress=shown_progress(task),
        result=task.result,
        resultUrl=result_url(task, utcnow()),
        output=_output(task),
        error=task.error,
        metadata=task.metadata,
        retries=task.retries,
    ).model_dump(mode="json")
