"""Models of the operations routes: a job's history, retry, bulk redrive and bulk cancel."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from chalicelib.model import TERMINAL, Status
from chalicelib.validation import Schema, UtcDatetime

TYPE_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


class EventProgress(Schema):
    current: int
    total: int
    message: str


class JobEvent(Schema):
    """One version of a job: what it became, when, and who wrote it."""

    version: int
    status: Status
    at: str = Field(description="when this version was written (ISO-8601 UTC, milliseconds)")
    by: str = Field(
        description="who wrote it: api, worker, reaper, dead-letters, scheduler, redrive, "
        "bulk-cancel, stream, stream-failures, ..."
    )
    progress: EventProgress | None = None
    error: str | None = None


class JobEventList(Schema):
    events: list[JobEvent]
    nextCursor: str | None


class BulkFilter(Schema):
    """Which of your jobs a bulk operation takes: by status, type and submission time."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, min_length=1, max_length=128, pattern=TYPE_PATTERN)
    since: UtcDatetime | None = Field(
        default=None, description="submitted at or after (ISO-8601 with a zone, e.g. ...Z)"
    )
    until: UtcDatetime | None = Field(default=None, description="submitted at or before")
    dryRun: bool = Field(default=False, description="count and list, change nothing")
    cursor: str | None = Field(
        default=None, max_length=512, description="nextCursor of the previous call"
    )

    @model_validator(mode="after")
    def _ordered(self) -> BulkFilter:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be later than until")
        return self


class RedriveRequest(BulkFilter):
    status: Literal["failed", "cancelled"]


class BulkCancelRequest(BulkFilter):
    status: Status | None = Field(
        default=None, description="one status that has not finished; all of them if omitted"
    )

    @field_validator("status")
    @classmethod
    def _not_finished(cls, value: Status | None) -> Status | None:
        if value is not None and value in TERMINAL:
            finished = value.value
            raise ValueError(f"{finished} jobs have finished: only unfinished ones are cancelled")
        return value


class BulkResult(Schema):
    dryRun: bool
    count: int = Field(description="jobs moved by this call (or, in a dry run, that would be)")
    jobIds: list[str]
    skipped: int = Field(description="jobs that changed meanwhile and were left as they are")
    nextCursor: str | None = Field(description="more jobs may match: call again with it")
