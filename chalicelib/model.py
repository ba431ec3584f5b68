"""The canonical Task: one model, every client contract is a view of it."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator


class Schema(BaseModel):
    """Base of every model here: schemas are built on first use, not at import (cold start)."""

    model_config = ConfigDict(defer_build=True)


class Status(StrEnum):
    SCHEDULED = "scheduled"  # waits for its run_at (chalicelib/scheduling.py)
    SUBMITTED = "submitted"
    STARTED = "started"
    PROCESSING = "processing"
    ERROR = "error"
    RETRYING = "retrying"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[Status] = frozenset(
    {Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED}
)
ACTIVE: frozenset[Status] = frozenset(set(Status) - TERMINAL)
RUNNING: frozenset[Status] = frozenset({Status.STARTED, Status.PROCESSING, Status.ERROR})

_ENDINGS = {Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED}

# A running status may go back to `started` only when a worker reclaims a task
# whose lease expired (its previous worker crashed); the store enforces the lease.
ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    # Due: the sweep hands it to the queue (submitted), or its delayed message's worker claims it.
    Status.SCHEDULED: frozenset(
        {Status.SUBMITTED, Status.STARTED, Status.FAILED, Status.CANCELLED}
    ),
    Status.SUBMITTED: frozenset({Status.STARTED, Status.FAILED, Status.CANCELLED}),
    Status.STARTED: frozenset(
        {Status.STARTED, Status.PROCESSING, Status.ERROR, Status.RETRYING} | _ENDINGS
    ),
    Status.PROCESSING: frozenset(
        {Status.STARTED, Status.PROCESSING, Status.ERROR, Status.RETRYING} | _ENDINGS
    ),
    Status.ERROR: frozenset(
        {Status.STARTED, Status.PROCESSING, Status.ERROR, Status.RETRYING}
        | (_ENDINGS - {Status.COMPLETED})
    ),
    Status.RETRYING: frozenset({Status.STARTED, Status.FAILED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.COMPLETED_WITH_ERRORS: frozenset(),
    # A retry (POST /jobs/{id}/retry, or a redrive) runs a failed or cancelled task again.
    Status.FAILED: frozenset({Status.SUBMITTED}),
    Status.CANCELLED: frozenset({Status.SUBMITTED}),
}
RETRYABLE: frozenset[Status] = frozenset({Status.FAILED, Status.CANCELLED})


def can_transition(current: Status, new: Status) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    return str(uuid.uuid4())


# A task id is what `new_task_id` makes: a lowercase UUID, version 4.
TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def is_task_id(value: str | None) -> bool:
    return bool(value) and bool(TASK_ID.match(value or ""))


def validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """A pydantic error as the `errors` list every 422 carries: the field path and why."""
    return [
        {
            "field": ".".join([prefix, *(str(part) for part in error["loc"])]),
            "message": error["msg"],
        }
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


TRUNCATED = "…[truncated]"


def _bounded(limit: int) -> BeforeValidator:
    """Cut a text a processor or a dependency produced to `limit` characters, with a marker:
    no message may grow a task's item past DynamoDB's 400 KB limit."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > limit:
            return value[: limit - len(TRUNCATED)] + TRUNCATED
        return value

    return BeforeValidator(cut)


ProgressMessage = Annotated[str, _bounded(1024)]
ErrorMessage = Annotated[str, _bounded(4096)]


class Progress(Schema):
    model_config = ConfigDict(extra="forbid")

    current: int = Field(ge=0)
    total: int = Field(ge=0)
    message: ProgressMessage = ""


class ObjectRef(Schema):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)


class Output(Schema):
    s3Uri: str | None = None
    duration: float | None = None
    size: int | None = None


# Headers a caller may not set on a webhook: the transport's and the signature's own.
RESERVED_WEBHOOK_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-transflow-signature",
    }
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
MAX_WEBHOOK_EXTRAS_BYTES = 1024  # auto-vid's limit on each of headers and metadata


class Webhook(Schema):
    """Where and how a task's webhook is sent.

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


def _within_limit(value: dict[str, Any], name: str) -> None:
    size = len(json.dumps(value))
    if size > MAX_WEBHOOK_EXTRAS_BYTES:
        limit = MAX_WEBHOOK_EXTRAS_BYTES
        raise ValueError(f"webhook {name} are {size} bytes; the limit is {limit}")


class Task(Schema):
    id: str
    owner: str
    type: str
    status: Status = Status.SUBMITTED
    progress: Progress | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    source: ObjectRef | None = None
    target: ObjectRef | None = None
    result: Any = None
    result_object: ObjectRef | None = None  # a result too large to keep in the item
    error: ErrorMessage | None = None
    output: Output | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook: Webhook | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    version: int = 1
    expires_at: int
    attempts: int = 0
    lease_until: int | None = None
    retries: int = 0  # times a user ran the task again after it failed or was cancelled
    updated_by: str | None = None  # who wrote this version: api, worker, reaper, ...
    run_at: datetime | None = None  # a delayed run: not started before this time

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def processing_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at).total_seconds(), 3)

    @classmethod
    def new(
        cls,
        *,
        owner: str,
        type: str,
        ttl_seconds: int,
        input: dict[str, Any] | None = None,
        source: ObjectRef | None = None,
        target: ObjectRef | None = None,
        metadata: dict[str, Any] | None = None,
        webhook: Webhook | None = None,
        now: datetime | None = None,
        by: str = "api",
        run_at: datetime | None = None,
    ) -> Task:
        """A new task; with a `run_at` in the future it is `scheduled`, and kept a full TTL
        after that time (a run next week must not expire the day after it ran)."""
        now = now or utcnow()
        delayed = run_at is not None and run_at > now
        starts = run_at if delayed and run_at is not None else now
        return cls(
            id=new_task_id(),
            owner=owner,
            type=type,
            input=input or {},
            source=source,
            target=target,
            metadata=metadata or {},
            webhook=webhook,
            created_at=now,
            updated_at=now,
            status=Status.SCHEDULED if delayed else Status.SUBMITTED,
            run_at=run_at if delayed else None,
            expires_at=int(starts.timestamp()) + ttl_seconds,
            updated_by=by,
        )
