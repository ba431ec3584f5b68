"""The models of every request and response body, for the handlers and the OpenAPI document.

It imports pydantic, the domain model and errors, and `validation.Schema` (the project's
pydantic base), nothing of the REST edge. The Python client keeps its own copy
(taskstatus_client/models.py), held equal to these by tests/unit/test_client_models.py.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from chalicelib import errors, model
from chalicelib.model import MAX_WEBHOOK_EXTRAS_BYTES, RESERVED_WEBHOOK_HEADERS, Status
from chalicelib.validation import Schema

TYPE_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")


class ObjectRef(Schema):
    """An S3 object as a request names it; `domain()` is the task's `model.ObjectRef`."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)

    def domain(self) -> model.ObjectRef:
        return model.ObjectRef(self.bucket, self.key)


class Webhook(Schema):
    """Where and how a task's webhook is sent; `domain()` is the task's `model.Webhook`.

    format: `standard` (the job document, Standard Webhooks signature), `transflow` (seed 003's
    AssemblyStatus, `X-Transflow-Signature`), `autovid` (seed 002's job document).
    method, headers, metadata: auto-vid's `notifications.webhook`.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    format: Literal["standard", "transflow", "autovid"] = "standard"
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _safe_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name[:64]!r} is not a valid header name")
            if name.lower() in RESERVED_WEBHOOK_HEADERS:
                raise ValueError(f"header {name!r} is set by the service and cannot be given")
            if any(c in header for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break in its value")
        _within_limit(value, "headers")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        _within_limit(value, "metadata")
        return value

    def domain(self) -> model.Webhook:
        return model.Webhook(self.url, self.format, self.method, self.headers, self.metadata)


def _within_limit(value: dict[str, Any], name: str) -> None:
    size = len(json.dumps(value))
    if size > MAX_WEBHOOK_EXTRAS_BYTES:
        limit = MAX_WEBHOOK_EXTRAS_BYTES
        raise ValueError(f"webhook {name} are {size} bytes; the limit is {limit}")


# -- native API ----------------------------------------------------------------------------


class Concurrency(Schema):
    """A job's concurrency key: at most `limit` of the owner's jobs with `key` run at once."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=128, pattern=r"^[!-~]+$", examples=["customer-42"])
    limit: int = Field(strict=True, ge=1, le=1000, examples=[2])


class JobRequest(Schema):
    """Body of `POST /jobs`."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=128, pattern=TYPE_PATTERN, examples=["demo/sleep"])
    input: dict[str, Any] = Field(default_factory=dict, examples=[{"seconds": 3, "steps": 3}])
    source: ObjectRef | None = None
    target: ObjectRef | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook: Webhook | None = None
    runAt: AwareDatetime | None = Field(
        default=None,
        description="ISO-8601 time with its offset (UTC: `Z`); the job does not start before it",
        examples=["2030-01-01T09:00:00Z"],
    )
    delaySeconds: int | None = Field(
        default=None, ge=0, description="start the job no earlier than this many seconds from now"
    )
    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="the owner a service key submits for; any other credential is refused it",
    )
    runner: Literal["service", "external"] = Field(
        default="service",
        description="external: a producer elsewhere runs the job and reports on it "
        "(POST /jobs/{jobId}/report); it is never queued to the service's worker",
    )
    jobId: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=model.JOB_ID.pattern,
        description="an external job's own id (" + model.JOB_ID_RULE + "); one in use is a 409",
    )
    heartbeatSeconds: int | None = Field(
        default=None,
        strict=True,
        ge=model.MIN_HEARTBEAT_SECONDS,
        le=model.MAX_HEARTBEAT_SECONDS,
        description="an external job with no report or heartbeat for this long is failed",
    )

    pool: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="the worker pool whose remote workers run the job (WORKER_POOLS); "
        "one this service does not declare is a 422",
        examples=["remote"],
    )

    priority: int = Field(
        default=model.DEFAULT_PRIORITY,
        strict=True,
        ge=model.MIN_PRIORITY,
        le=model.MAX_PRIORITY,
        description="0 (lowest) to 9 (highest): when a limit makes jobs wait, higher priority "
        "starts first, equal priority first in first out; a waiting low priority is aged, so "
        "it still starts (docs/flow-control.md). It orders nothing when nothing waits",
    )
    concurrency: Concurrency | None = Field(
        default=None,
        description="at most `limit` of your jobs with this `key` run at once; the others wait",
    )

    @model_validator(mode="after")
    def _external_only(self) -> JobRequest:
        """jobId and heartbeatSeconds belong to external jobs; a producer starts its own job
        when it starts, so runAt and delaySeconds do not apply to one."""
        if self.runner == "external":
            for name in ("runAt", "delaySeconds", "pool", "concurrency"):
                if getattr(self, name) is not None:
                    raise errors.FieldError(name, "does not apply to a job with runner external")
        else:
            for name in ("jobId", "heartbeatSeconds"):
                if getattr(self, name) is not None:
                    raise errors.FieldError(name, 'is only for a job with "runner": "external"')
        return self


# -- producers: reports and heartbeats of external jobs (chalicelib/reports.py) -----------------


class ReportProgress(Schema):
    model_config = ConfigDict(extra="forbid")

    current: int = Field(ge=0)
    total: int = Field(ge=0)
    message: str = Field(default="", max_length=model.PROGRESS_MESSAGE_LIMIT)


class ReportOutput(Schema):
    model_config = ConfigDict(extra="forbid")

    s3Uri: str | None = Field(default=None, max_length=2048)
    duration: float | None = Field(default=None, ge=0)
    size: int | None = Field(default=None, ge=0)
    url: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^https?://\S+$",
        description="the producer's own link to the output (kept as given, never signed here)",
    )


class ReportRequest(Schema):
    """Body of `POST /jobs/{jobId}/report`: the status, and what else changed."""

    model_config = ConfigDict(extra="forbid")

    status: Status = Field(examples=["processing"])
    progress: ReportProgress | None = None
    result: Any = Field(default=None, description="any JSON; a large one is kept as an object")
    error: str | None = Field(default=None, min_length=1, max_length=model.ERROR_MESSAGE_LIMIT)
    output: ReportOutput | None = None
    leaseToken: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="a pool job's lease (POST /pools/{pool}/claim): required on those, "
        "an expired or superseded one is a 409",
    )


class LeaseRequest(Schema):
    """Body of a pool job's `POST /jobs/{jobId}/heartbeat` and `POST /jobs/{jobId}/release`."""

    model_config = ConfigDict(extra="forbid")

    leaseToken: str = Field(min_length=1, max_length=64)


class ClaimAnswer(Schema):
    """`POST /pools/{pool}/claim`: a job under a new lease."""

    job: dict[str, Any]
    leaseToken: str
    leaseSeconds: int
    attempt: int


class HeartbeatAnswer(Schema):
    """`POST /jobs/{jobId}/heartbeat`: the job's state; a producer stops on cancelRequested."""

    jobId: str
    status: Status
    cancelRequested: bool
    version: int
    heartbeatSeconds: int = Field(description="the job is failed after this long without a word")


MIME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"
MAX_UPLOAD_BYTES = 5 * 1024**3  # S3's limit for one PUT


class UploadRequest(Schema):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, examples=["photo.png"])
    contentType: str = Field(max_length=127, pattern=MIME_PATTERN, examples=["image/png"])
    # Required: a presigned PUT without a signed Content-Length accepts anything up to 5 GB.
    size: int = Field(
        ge=1, le=MAX_UPLOAD_BYTES, description="bytes; the URL accepts only this size"
    )


class UploadTicket(Schema):
    bucket: str
    key: str
    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expiresAt: str


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


class JobConcurrency(Schema):
    """A job's concurrency key and its limit, as the job document shows them."""

    key: str
    limit: int


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
    resultUrl: str | None = Field(
        default=None, description="a presigned GET of a result too large to inline"
    )
    output: JobOutput
    error: str | None
    metadata: dict[str, Any]
    # Optional in the schema, always sent: clients of servers from before it keep working.
    version: int | None = Field(
        default=None, description="rises by one on every change, as in WebSocket pushes"
    )
    input: Any = Field(default=None, description="the job's input; on GET /jobs/{jobId} only")
    retries: int = Field(default=0, description="times the job was run again by a retry")
    runAt: str | None = Field(default=None, description="a delayed job's start time")
    hasWebhook: bool = Field(
        default=False,
        description="the job sends a webhook (POST /jobs/{jobId}/webhook sends it again)",
    )
    scheduleId: str | None = Field(
        default=None, description="the schedule that created the job (POST /schedules)"
    )
    scheduledFor: str | None = Field(
        default=None, description="the schedule's fire time the job was created for"
    )
    pool: str | None = Field(
        default=None, description="the worker pool whose remote workers run the job, if any"
    )
    attempt: int = Field(
        default=0,
        description="the attempt running or last run: 1 for the first, 0 before any started",
    )
    priority: int = Field(default=model.DEFAULT_PRIORITY, description="0 (lowest) to 9")
    concurrency: JobConcurrency | None = Field(
        default=None, description="the job's concurrency key and its limit"
    )
    waitingFor: str | None = Field(
        default=None,
        description="why a job that has not started waits (owner limit, type limit, pool "
        "limit, key limit, rate); null when nothing holds it back",
    )


class JobList(Schema):
    jobs: list[JobDocument]
    nextCursor: str | None


class FieldError(Schema):
    field: str
    message: str


class ErrorDetail(Schema):
    code: str
    message: str
    errors: list[FieldError] | None = None


class ErrorBody(Schema):
    """Every native error: `{"error": {"code", "message"}, "requestId", "timestamp"}`."""

    error: ErrorDetail
    requestId: str
    timestamp: str


class BatchJobRequest(JobRequest):
    """One item of `POST /jobs/batch`: a job request and its own idempotency key."""

    idempotencyKey: str | None = Field(
        default=None, min_length=1, max_length=255, pattern="^[!-~]+$"
    )


class BatchRequest(Schema):
    """Body of `POST /jobs/batch`. Each item is answered on its own: a bad one is a 4xx
    result beside the others' 202."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[BatchJobRequest] = Field(min_length=1, max_length=100)


class BatchResult(Schema):
    index: int
    status: int = Field(
        description="202, or the 4xx/5xx `POST /jobs` would answer for this item; 503 also "
        "when the batch's time for webhook lookups ran out before this item's (send it again)"
    )
    job: JobDocument | None = None
    error: ErrorDetail | None = None
    replayed: bool | None = Field(
        default=None, description="with an idempotencyKey: the job is an earlier one's"
    )


class BatchResponse(Schema):
    results: list[BatchResult]


class Delivery(Schema):
    eventId: str
    eventType: str
    attempt: int
    at: str
    statusCode: int | None
    latencyMs: int
    error: str | None
    state: Literal["delivered", "retrying", "failed", "exhausted"]
    manual: bool = False


class DeliveryList(Schema):
    deliveries: list[Delivery]


class Redelivery(Schema):
    triggered: bool
    eventId: str | None = None
    message: str | None = None


class WebhookSecrets(Schema):
    secret: str = Field(description="whsec_... secret that signs your deliveries")
    previousSecret: str | None = Field(
        default=None, description="while the stage rotates, the secret being retired"
    )


class Health(Schema):
    status: Literal["ok"]


# -- seeds 000/001: Task Processor API ----------------------------------------------------------


class TaskProcessorTask(Schema):
    """`GET /task/{task_id}`: the object keys and buckets always (`""` without objects, and
    no target on a deblindwatermark task), the rest left out when absent, as in the seeds.
    Timestamps as the origin wrote them: `2025-01-21T13:44:58.159007+00:00`."""

    TaskId: str
    Status: Literal["processing", "completed", "failed"]
    Result: Any = None
    TargetObjectURL: str | None = None
    SourceKey: str | None = None
    TargetKey: str | None = None
    SourceBucket: str | None = None
    TargetBucket: str | None = None
    ResultURL: str | None = None
    TaskType: str
    Created_at: str
    Updated_at: str
    ErrorMessage: str | None = None


class TaskProcessorError(Schema):
    error: str


class TaskProcessorListItem(Schema):
    """An item of `GET /task/list?operations=`; files as `S3://bucket/key`, as the origin has."""

    TaskId: str
    Status: Literal["processing", "completed", "failed"]
    TaskType: str
    Created_at: str
    Updated_at: str
    SourceFile: str | None = None
    TargetFile: str | None = None


class TaskProcessorList(Schema):
    tasks: list[TaskProcessorListItem]


# -- seed 002: auto-vid -----------------------------------------------------------------------


class AutoVidJob(Schema):
    """`POST /submit`, `GET /status/{jobId}`: the origin's job document and its five statuses."""

    jobId: str
    type: str
    status: Literal["submitted", "processing", "completed", "failed", "retrying"]
    submittedAt: str
    updatedAt: str
    completedAt: str | None
    processingTime: float | None
    progress: JobProgress | None
    result: Any = None
    output: JobOutput
    error: str | None
    jobInfo: dict[str, Any]
    metadata: dict[str, Any]


class AutoVidError(Schema):
    error: str
    timestamp: str


# -- seed 004: task status -------------------------------------------------------------------


class TaskStatus(Schema):
    """Seed 004's TaskStatus, plus the task's `version` in WebSocket pushes."""

    task_id: str
    operation: str
    status: Literal[
        "started", "processing", "error", "completed", "completed_with_errors", "failed"
    ]
    progress: JobProgress | None = None
    result: dict[str, Any] | None = Field(
        default=None,
        description="the origin's TaskResult: `success`, `message` and the result's own fields "
        "(a result that is not an object is under `value`)",
    )
    resultUrl: str | None = None
    error: str | None = None
    created_at: int
    updated_at: int
    version: int | None = None
    truncated: bool | None = None


# -- seed 003: Status Lambda -------------------------------------------------------------------


class AssemblyFile(Schema):
    """The origin's file object, in `uploads` and in each `results` step."""

    id: str
    name: str
    basename: str
    ext: str
    size: int
    mime: str
    field: str
    ssl_url: str
    bucket: str
    key: str


class AssemblyUser(Schema):
    userId: str


class AssemblyStatus(Schema):
    """Seed 003's AssemblyStatus; optional fields that are unknown are left out, not null."""

    assembly_id: str
    ok: Literal["ASSEMBLY_COMPLETED"] | None = None
    error: str | None = None
    message: str
    type: str
    user: AssemblyUser
    uploads: list[AssemblyFile]
    results: dict[str, list[AssemblyFile]]
    result: Any = None
    result_url: str | None = None
    execution_start: str | None = None
    execution_duration: float | None = None
    progress_combined: int
    progress_pct: int
    steps_total: int | None = None
    steps_completed: int | None = None
    current_step: int | None = None
    current_step_name: str | None = None
    progress: JobProgress | None = None
    created_at: str
    updated_at: str
    webhook: Redelivery | None = None


class AssemblyError(Schema):
    """The origin's error bodies: `error` always, `assembly_id` on a 404, `message` on a 500."""

    error: str
    assembly_id: str | None = None
    message: str | None = None
