"""The response models the client reads, as the service's OpenAPI document describes them.

The client ships its own copy (it must not install the server's `chalicelib`, which
would shadow a Chalice project's own); tests/unit/test_client_models.py keeps every
model here equal to its component in the service's `/openapi.json`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Status(StrEnum):
    SCHEDULED = "scheduled"
    SUBMITTED = "submitted"
    STARTED = "started"
    PROCESSING = "processing"
    ERROR = "error"
    RETRYING = "retrying"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED}
)


class JobOutput(Model):
    url: str | None = None
    urlExpiresAt: str | None = None
    s3Uri: str | None = None
    duration: float | None = None
    size: int | None = None


class JobProgress(Model):
    current: int
    total: int
    message: str


class JobConcurrency(Model):
    key: str  # at most `limit` of the owner's jobs with this key run at once
    limit: int


class JobDocument(Model):
    jobId: str
    type: str
    status: Status
    submittedAt: str
    updatedAt: str
    completedAt: str | None
    processingTime: float | None
    progress: JobProgress | None
    result: Any = None
    resultUrl: str | None = None  # a presigned GET of a result too large to inline
    output: JobOutput
    error: str | None
    metadata: dict[str, Any]
    version: int | None = None  # rises by one on every change, as in WebSocket pushes
    input: Any = None  # on GET /jobs/{jobId} only
    retries: int = 0
    runAt: str | None = None  # a delayed job's start time
    hasWebhook: bool = False  # POST /jobs/{jobId}/webhook sends it again
    scheduleId: str | None = None  # the schedule that created the job
    scheduledFor: str | None = None  # that schedule's fire time
    pool: str | None = None  # the worker pool whose remote workers run it
    attempt: int = 0  # the attempt running or last run: 0 before any started
    priority: int = 5  # 0 (lowest) to 9: orders the jobs that wait for a slot
    concurrency: JobConcurrency | None = None  # the job's concurrency key and its limit
    waitingFor: str | None = None  # why it has not started (owner limit, rate, ...)


class JobList(Model):
    jobs: list[JobDocument]
    nextCursor: str | None


class EventProgress(Model):
    current: int
    total: int
    message: str


class FlowEvent(Model):
    event: Literal["parked", "admitted"]
    at: str
    reason: str | None = None  # a park's: owner limit, type limit, pool limit or key limit


class JobEvent(Model):
    version: int
    status: Status
    at: str
    by: str
    progress: EventProgress | None = None
    error: str | None = None
    flow: list[FlowEvent] | None = None  # waits for a slot and the admission, of this version


class JobEventList(Model):
    events: list[JobEvent]
    nextCursor: str | None


class BulkResult(Model):
    dryRun: bool
    count: int
    jobIds: list[str]
    skipped: int
    nextCursor: str | None


class FieldError(Model):
    field: str
    message: str


class ErrorDetail(Model):
    code: str
    message: str
    errors: list[FieldError] | None = None


class BatchResult(Model):
    """One item's answer in `POST /jobs/batch`: 202 and its `job`, or a 4xx/5xx and `error`."""

    index: int
    status: int
    job: JobDocument | None = None
    error: ErrorDetail | None = None
    replayed: bool | None = None


class BatchResponse(Model):
    results: list[BatchResult]


class Delivery(Model):
    eventId: str
    eventType: str
    attempt: int
    at: str
    statusCode: int | None
    latencyMs: int
    error: str | None
    state: Literal["delivered", "retrying", "failed", "exhausted"]
    manual: bool = False


class DeliveryList(Model):
    deliveries: list[Delivery]


class Redelivery(Model):
    triggered: bool
    eventId: str | None = None
    message: str | None = None


class WebhookSecrets(Model):
    secret: str
    previousSecret: str | None = None


class AssemblyFile(Model):
    """Seed 003's file object, in `uploads` and in each `results` step."""

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


class AssemblyUser(Model):
    userId: str


class AssemblyStatus(Model):
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


# The models kept equal to the service's components of the same name.
MIRRORED: tuple[type[Model], ...] = (
    JobConcurrency,
    JobOutput,
    JobProgress,
    JobDocument,
    JobList,
    EventProgress,
    FlowEvent,
    JobEvent,
    JobEventList,
    BulkResult,
    FieldError,
    ErrorDetail,
    BatchResult,
    BatchResponse,
    Delivery,
    DeliveryList,
    Redelivery,
    WebhookSecrets,
    AssemblyFile,
    AssemblyUser,
    AssemblyStatus,
)
