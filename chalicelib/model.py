"""The canonical Task: one model, every client contract is a view of it.

Plain dataclasses, no pydantic: every function reads tasks on its first event, and
importing pydantic and building a model's schema would cost more than boto3's own import
(bench/cold.py). What comes from outside is validated at the edge (contracts/schemas.py)
before it becomes one of these; what comes from the table was valid when it was written.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Self


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


# A task id the service makes (`new_task_id`): a lowercase UUID, version 4.
TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# A task id a producer may choose for a task it runs itself (chalicelib/reports.py): UUIDs,
# Lambda request ids, `local-<uuid>`. Every service-made id is one of these too.
JOB_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JOB_ID_RULE = "1 to 128 letters, digits or -._:"


def is_task_id(value: str | None) -> bool:
    """Whether `value` can name a task: a service-made UUID or a producer's own id."""
    return bool(value) and bool(JOB_ID.match(value or ""))


# Who runs a task: the service's worker (queued), or a producer elsewhere that reports.
SERVICE, EXTERNAL = "service", "external"
Runner = Literal["service", "external"]
# The heartbeat window of an external task: no report or heartbeat for this long fails it.
MIN_HEARTBEAT_SECONDS, MAX_HEARTBEAT_SECONDS = 5, 86400


def heartbeat_window(asked: int | None, default: int) -> int:
    """The heartbeat window a new external task gets: as asked (checked at the edge), else
    the stage's default, kept within the bounds."""
    window = asked if asked is not None else default
    return max(MIN_HEARTBEAT_SECONDS, min(MAX_HEARTBEAT_SECONDS, window))


TRUNCATED = "…[truncated]"
PROGRESS_MESSAGE_LIMIT = 1024
ERROR_MESSAGE_LIMIT = 4096


def bounded(value: str, limit: int) -> str:
    """A text a processor or a dependency produced, cut to `limit` characters with a marker:
    no message may grow a task's item past DynamoDB's 400 KB limit."""
    if len(value) > limit:
        return value[: limit - len(TRUNCATED)] + TRUNCATED
    return value


def whole_number(value: Any, name: str) -> int:
    """An int, or a float with nothing after the point (what a processor may pass); else
    ValueError. Clients read these fields as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return value


def optional_number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {value!r}")
    return value


class Part:
    """A part of a task stored as one JSON attribute: its fields as a dict, and back."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """A part as written by `as_dict`; a field it lacks takes its default."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Progress(Part):
    current: int
    total: int
    message: str = ""

    def __post_init__(self) -> None:
        current = whole_number(self.current, "progress current")
        total = whole_number(self.total, "progress total")
        if current < 0 or total < 0:
            raise ValueError(f"progress must not be negative: {current}/{total}")
        object.__setattr__(self, "current", current)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "message", bounded(str(self.message), PROGRESS_MESSAGE_LIMIT))


@dataclass(frozen=True, slots=True)
class ObjectRef(Part):
    """An S3 object: checked at the edge (contracts/schemas.ObjectRef) before it gets here."""

    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class Output(Part):
    s3Uri: str | None = None
    duration: float | None = None
    size: int | None = None
    url: str | None = None  # an external job's own link to its output, as its producer reported

    def __post_init__(self) -> None:
        for name in ("s3Uri", "url"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"output {name} must be a text, not {value!r}")
        object.__setattr__(self, "duration", optional_number(self.duration, "output duration"))
        if self.size is not None:
            object.__setattr__(self, "size", whole_number(self.size, "output size"))


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
MAX_WEBHOOK_EXTRAS_BYTES = 1024  # auto-vid's limit on each of headers and metadata
WebhookFormat = Literal["standard", "transflow", "autovid"]


@dataclass(frozen=True, slots=True)
class Webhook(Part):
    """Where and how a task's webhook is sent; checked at the edge (contracts/schemas.Webhook).

    format: `standard` (the job document, Standard Webhooks signature), `transflow` (seed 003's
    AssemblyStatus, `X-Transflow-Signature`), `autovid` (seed 002's job document).
    method, headers, metadata: auto-vid's `notifications.webhook`.
    """

    url: str
    format: WebhookFormat = "standard"
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)


# Priorities: 0 (lowest) to 9 (highest); a job that names none has DEFAULT_PRIORITY. They
# order the tasks that wait for a slot (chalicelib/fairness.py).
MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5


@dataclass(slots=True)
class Task:
    id: str
    owner: str
    type: str
    created_at: datetime
    updated_at: datetime
    expires_at: int
    status: Status = Status.SUBMITTED
    progress: Progress | None = None
    input: dict[str, Any] = field(default_factory=dict)
    source: ObjectRef | None = None
    target: ObjectRef | None = None
    result: Any = None
    result_object: ObjectRef | None = None  # a result too large to keep in the item
    error: str | None = None
    output: Output | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook: Webhook | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    version: int = 1
    attempts: int = 0
    lease_until: int | None = None
    retries: int = 0  # times a user ran the task again after it failed or was cancelled
    updated_by: str = "api"  # who wrote this version: api, worker, reaper, ...
    run_at: datetime | None = None  # a delayed run: not started before this time
    runner: Runner = SERVICE  # external: a producer runs it and reports (chalicelib/reports.py)
    heartbeat_seconds: int | None = None  # an external task's window between reports
    schedule_id: str | None = None  # the schedule that fired it (chalicelib/schedules.py)
    scheduled_for: datetime | None = None  # the fire time it was created for
    pool: str | None = None  # a worker pool's remote workers run it (chalicelib/pools.py)
    lease_token: str | None = None  # the remote worker holding it (chalicelib/claims.py)
    lease_receipt: str | None = None  # its pool message, invisible while the lease lasts
    priority: int = DEFAULT_PRIORITY  # among tasks waiting for a slot (chalicelib/fairness.py)
    concurrency_key: str | None = None  # at most concurrency_limit of the owner's tasks with
    concurrency_limit: int | None = None  # this key run at once
    # Why it waits to start (owner, type, pool or key limit, rate), said by flow control
    # (chalicelib/fairness.py) at the version it waited at: a later version retires it.
    waiting_for: str | None = None
    waiting_version: int | None = None

    @property
    def waits_for(self) -> str | None:
        """Why the task waits to start, if flow control said so at this version."""
        if self.status not in (Status.SUBMITTED, Status.RETRYING):
            return None
        return self.waiting_for if self.waiting_version == self.version else None

    @property
    def is_external(self) -> bool:
        return self.runner == EXTERNAL

    @property
    def silence_limit(self) -> int | None:
        """Seconds an external task may go without a report or heartbeat; None otherwise."""
        return self.heartbeat_seconds if self.is_external else None

    def __post_init__(self) -> None:
        if self.error is not None:
            self.error = bounded(self.error, ERROR_MESSAGE_LIMIT)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def processing_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at).total_seconds(), 3)

    def replace(self, **changes: Any) -> Task:
        """A copy with `changes`; the task itself is left as it was."""
        return replace(self, **changes)

    def without_run(self, **changes: Any) -> Task:
        """A copy with every field of RUN_FIELDS back to its default, and `changes`."""
        cleared = {f.name: _default(f) for f in fields(Task) if f.name in RUN_FIELDS}
        return replace(self, **{**cleared, **changes})

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
        id: str | None = None,
        runner: Runner = SERVICE,
        heartbeat_seconds: int | None = None,
        pool: str | None = None,
        priority: int = DEFAULT_PRIORITY,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> Task:
        """A new task; with a `run_at` in the future it is `scheduled`, and kept a full TTL
        after that time (a run next week must not expire the day after it ran)."""
        now = now or utcnow()
        delayed = run_at is not None and run_at > now
        starts = run_at if delayed and run_at is not None else now
        return cls(
            id=id or new_task_id(),
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
            runner=runner,
            heartbeat_seconds=heartbeat_seconds,
            pool=pool,
            priority=priority,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        )


# The fields of one run of a task: a retry starts them afresh (chalicelib/reruns.py). Every
# other field is the task's own and a retry keeps it. tests/unit/test_retry.py checks that
# each field of Task is on one side or the other, so a new one cannot slip through a retry.
RUN_FIELDS = frozenset(
    {
        "attempts",
        "progress",
        "result",
        "result_object",
        "output",
        "error",
        "started_at",
        "completed_at",
        "lease_until",
        "lease_token",  # a remote worker's lease of the last run fences nothing of the next
        "lease_receipt",
        "run_at",  # a retry runs now, whatever its first run waited for
        "waiting_for",
        "waiting_version",
    }
)


def _default(spec: Any) -> Any:
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return spec.default
