"""The canonical Task: one model, every client contract is a view of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Schema(BaseModel):
    """Base of every model here: schemas are built on first use, not at import (cold start)."""

    model_config = ConfigDict(defer_build=True)


class Status(StrEnum):
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
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def can_transition(current: Status, new: Status) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    return str(uuid.uuid4())


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


class Webhook(Schema):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)


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
    ) -> Task:
        now = now or utcnow()
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
            expires_at=int(now.timestamp()) + ttl_seconds,
        )
