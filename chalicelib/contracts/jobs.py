"""The native API (DESIGN.md section 4, modelled on seed 002): request model and job document."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from chalicelib.contracts.common import iso_seconds
from chalicelib.errors import Unprocessable
from chalicelib.model import ObjectRef, Schema, Status, Task, Webhook, utcnow
from chalicelib.objects import presign, split_s3_uri
from chalicelib.service import SubmitJob, validation_errors

TYPE_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


class JobRequest(Schema):
    """Body of `POST /jobs`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=128, pattern=TYPE_PATTERN)
    input: dict[str, Any] = Field(default_factory=dict)
    source: ObjectRef | None = None
    target: ObjectRef | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook: Webhook | None = None


class JobOutput(Schema):
    url: str | None = None
    urlExpiresAt: str | None = None
    s3Uri: str | None = None
    duration: float | None = None
    size: int | None = None


class JobProgress(Schema):
    current: int
    total: int
    message: str


class JobDocument(Schema):
    """A job as every native route returns it (seed 002's fields plus type, progress, result)."""

    jobId: str
    type: str
    status: Status
    submittedAt: str
    updatedAt: str
    completedAt: str | None
    processingTime: float | None
    progress: JobProgress | None
    result: Any = None
    output: JobOutput
    error: str | None
    metadata: dict[str, Any]


class JobList(Schema):
    jobs: list[JobDocument]
    nextCursor: str | None


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
        url, expires = presign(*located, utcnow())
        document["url"], document["urlExpiresAt"] = url, iso_seconds(expires)
    return document


def job_document(task: Task) -> dict[str, Any]:
    return {
        "jobId": task.id,
        "type": task.type,
        "status": task.status.value,
        "submittedAt": iso_seconds(task.created_at),
        "updatedAt": iso_seconds(task.updated_at),
        "completedAt": iso_seconds(task.completed_at),
        "processingTime": task.processing_seconds,
        "progress": task.progress.model_dump() if task.progress else None,
        "result": task.result,
        "output": _output(task),
        "error": task.error,
        "metadata": task.metadata,
    }
