"""REST handlers of /schedules: create, list, read, change, delete an owner's schedules.

Owner-scoped like the jobs: another user's schedule is a 404 like a missing one. A schedule's
task is checked as `POST /jobs` would check it (type, input) when the schedule is stored, so a
schedule that could never create its task is a 422 at once, not a silent failure each fire.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from chalice.app import Request, Response
from pydantic import ConfigDict, Field

from chalicelib import timefmt
from chalicelib.contracts.jobs import idempotency_key
from chalicelib.contracts.schemas import TYPE_PATTERN
from chalicelib.edge import http
from chalicelib.edge.http_errors import BadRequest, Conflict, NotFound, Unprocessable, native_errors
from chalicelib.schedules import (
    Schedule,
    ScheduleChanged,
    ScheduleNotFound,
    ScheduleRejected,
    TooManySchedules,
    check_spec,
    keyed_schedule_id,
    new_schedule_id,
)
from chalicelib.service import SubmitJob, TaskService
from chalicelib.validation import Schema

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

SCHEDULE_ID_LENGTH = len(new_schedule_id())
PATCH_ATTEMPTS = 3


class ScheduleRequest(Schema):
    """Body of `POST /schedules`."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, max_length=256, examples=["30 2 * * *"])
    rate: str | None = Field(default=None, max_length=32, examples=["5 minutes"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Berlin"])
    type: str = Field(min_length=1, max_length=128, pattern=TYPE_PATTERN)
    input: dict[str, Any] = Field(default_factory=dict)
    overlap: Literal["skip", "queue", "allow"] = "skip"
    catchUp: Literal["none", "latest", "all"] = "none"
    paused: bool = False


class SchedulePatch(Schema):
    """Body of `PATCH /schedules/{id}`: the fields to change (cron or rate replaces both)."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, max_length=256)
    rate: str | None = Field(default=None, max_length=32)
    timezone: str | None = Field(default=None, max_length=64)
    type: str | None = Field(default=None, min_length=1, max_length=128, pattern=TYPE_PATTERN)
    input: dict[str, Any] | None = None
    overlap: Literal["skip", "queue", "allow"] | None = None
    catchUp: Literal["none", "latest", "all"] | None = None
    paused: bool | None = None


class LastRun(Schema):
    scheduledFor: str = Field(description="the fire time")
    jobId: str | None = Field(description="the job it created (none if skipped or refused)")
    outcome: Literal["fired", "skipped", "missed", "refused"] | None = Field(
        description="fired; skipped (overlap); missed (catchUp); refused (the job was not valid)"
    )


class ScheduleDocument(Schema):
    """A schedule (`POST /schedules`, `GET /schedules/{scheduleId}`)."""

    scheduleId: str
    cron: str | None
    rate: str | None
    timezone: str
    type: str
    input: dict[str, Any]
    overlap: Literal["skip", "queue", "allow"]
    catchUp: Literal["none", "latest", "all"]
    paused: bool
    nextRuns: list[str] = Field(description="the next fire times (UTC), none while paused")
    lastRun: LastRun | None
    fired: int = Field(description="jobs created so far")
    skipped: int = Field(description="fire times skipped by overlap or catchUp")
    createdAt: str
    updatedAt: str
    version: int


class ScheduleList(Schema):
    schedules: list[ScheduleDocument]


def schedule_document(schedule: Schedule, now: datetime) -> dict[str, Any]:
    """A schedule as the API shows it, with its next fire times and its last outcome."""
    last = None
    if schedule.last_fire is not None:
        last = {
            "scheduledFor": timefmt.wire(schedule.last_fire),
            "jobId": schedule.last_task_id,
            "outcome": schedule.last_outcome,
        }
    return {
        "scheduleId": schedule.id,
        "cron": schedule.cron,
        "rate": schedule.rate,
        "timezone": schedule.timezone,
        "type": schedule.type,
        "input": schedule.input,
        "overlap": schedule.overlap,
        "catchUp": schedule.catch_up,
        "paused": schedule.paused,
        "nextRuns": [timefmt.wire(t) for t in schedule.next_runs(now)],
        "lastRun": last,
        "fired": schedule.fired,
        "skipped": schedule.skipped,
        "createdAt": timefmt.wire(schedule.created_at),
        "updatedAt": timefmt.wire(schedule.updated_at),
        "version": schedule.version,
    }


def _rejected(exc: ScheduleRejected) -> Unprocessable:
    errors = [{"field": "body." + e["field"], "message": e["message"]} for e in exc.errors]
    return Unprocessable(f"the schedule is not valid: {exc}", errors=errors)


def _check_task(service: TaskService, owner: str, schedule: Schedule, now: datetime) -> None:
    """Refuse a schedule whose task `POST /jobs` would refuse (unknown type, bad input)."""
    with native_errors():
        service.new_task(owner, SubmitJob(type=schedule.type, input=schedule.input), now)


def _first_fire(schedule: Schedule, now: datetime) -> datetime:
    try:
        return check_spec(
            cron_text=schedule.cron,
            rate=schedule.rate,
            timezone=schedule.timezone,
            anchor=schedule.anchor,
            now=now,
        )
    except ScheduleRejected as exc:
        raise _rejected(exc) from None


def create_schedule(container: Container, request: Request) -> Response:
    service = container.service
    body = http.body_model(
        http.json_body(request),
        ScheduleRequest,
        "the schedule",
        "request body must be a JSON object with a `type` and a `cron` or a `rate`",
    )
    owner = http.current_user(request)
    key = idempotency_key(request)
    now = service.clock()
    digest = _digest(body) if key is not None else None
    schedule = Schedule(
        id=new_schedule_id() if key is None else keyed_schedule_id(owner, key),
        owner=owner,
        type=body.type,
        timezone=body.timezone,
        created_at=now,
        updated_at=now,
        anchor=now,
        cron=body.cron,
        rate=body.rate,
        input=body.input,
        overlap=body.overlap,
        catch_up=body.catchUp,
        paused=body.paused,
        request_digest=digest,
    )
    schedule = replace(schedule, next_fire=_first_fire(schedule, now))
    _check_task(service, owner, schedule, now)
    limit = service.settings.max_schedules_per_owner
    headers = {"Location": f"/schedules/{schedule.id}"}
    try:
        container.schedule_store.create(schedule, limit)
    except TooManySchedules as exc:
        if key is not None and (earlier := _earlier_create(container, owner, schedule)):
            headers["Idempotent-Replayed"] = "true"
            return http.json_response(schedule_document(earlier, now), 200, headers)
        raise Conflict(str(exc), limit=limit) from None
    if key is not None:
        headers["Idempotent-Replayed"] = "false"
    return http.json_response(schedule_document(schedule, now), 201, headers)


def _digest(body: ScheduleRequest) -> str:
    canonical = json.dumps(body.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _earlier_create(container: Container, owner: str, schedule: Schedule) -> Schedule | None:
    """The schedule an earlier create with the same Idempotency-Key stored, if it exists (a
    refused create found it there, not the limit); 422 if that create asked for another
    schedule."""
    try:
        earlier = container.schedule_store.get(owner, schedule.id)
    except ScheduleNotFound:
        return None
    if earlier.request_digest != schedule.request_digest:
        raise Unprocessable(
            "this Idempotency-Key was used with another schedule; send a new key to create this one"
        )
    return earlier


def list_schedules(container: Container, request: Request) -> Response:
    service = container.service
    owner = http.current_user(request)
    now = service.clock()
    schedules = sorted(container.schedule_store.list(owner), key=lambda s: (s.created_at, s.id))
    return http.json_response({"schedules": [schedule_document(s, now) for s in schedules]})


def _schedule_id(value: str) -> str:
    if not (value.startswith("sch_") and len(value) == SCHEDULE_ID_LENGTH and value.isascii()):
        raise BadRequest(
            f"scheduleId must be a schedule's id, sch_ and 32 hex digits; got {value[:64]!r}"
        )
    return value


def _owned(container: Container, request: Request, schedule_id: str) -> Schedule:
    try:
        return container.schedule_store.get(http.current_user(request), _schedule_id(schedule_id))
    except ScheduleNotFound:
        raise NotFound(f"schedule {schedule_id} was not found") from None


def get_schedule(container: Container, request: Request, schedule_id: str) -> Response:
    service = container.service
    schedule = _owned(container, request, schedule_id)
    return http.json_response(schedule_document(schedule, service.clock()))


def delete_schedule(container: Container, request: Request, schedule_id: str) -> Response:
    """Delete it: no fire after this; the tasks it created stay."""
    owner = http.current_user(request)
    try:
        container.schedule_store.delete(owner, _schedule_id(schedule_id))
    except ScheduleNotFound:
        raise NotFound(f"schedule {schedule_id} was not found") from None
    return Response(body="", status_code=204)


def patch_schedule(container: Container, request: Request, schedule_id: str) -> Response:
    service = container.service
    patch = http.body_model(
        http.json_body(request), SchedulePatch, "the change", "request body must be a JSON object"
    )
    for _ in range(PATCH_ATTEMPTS):  # a sweep's fire may move the version between read and write
        current = _owned(container, request, schedule_id)
        now = service.clock()
        changed = changed_schedule(current, patch, now)
        if changed.type != current.type or changed.input != current.input:
            _check_task(service, current.owner, changed, now)
        try:
            container.schedule_store.replace(changed, current.version)
        except ScheduleChanged:
            continue
        return http.json_response(schedule_document(changed, now))
    raise Conflict("the schedule kept changing while this change was written; try again")


def changed_schedule(current: Schedule, patch: SchedulePatch, now: datetime) -> Schedule:
    """`current` with `patch` applied. A new recurrence or zone, or a resume, starts from now:
    fires missed while paused are not caught up (pausing means: not those)."""
    asked = patch.model_dump(exclude_unset=True)
    if "cron" in asked and "rate" in asked:
        raise _rejected(
            ScheduleRejected([{"field": "cron", "message": "give cron or rate, not both"}])
        )
    new_recurrence = "cron" in asked or "rate" in asked or "timezone" in asked
    resumed = current.paused and asked.get("paused") is False
    changed = replace(
        current,
        cron=asked.get("cron", None if "rate" in asked else current.cron),
        rate=asked.get("rate", None if "cron" in asked else current.rate),
        timezone=asked.get("timezone") or current.timezone,
        type=asked.get("type") or current.type,
        input=asked["input"] if asked.get("input") is not None else current.input,
        overlap=asked.get("overlap") or current.overlap,
        catch_up=asked.get("catchUp") or current.catch_up,
        paused=asked["paused"] if asked.get("paused") is not None else current.paused,
        updated_at=now,
        version=current.version + 1,
    )
    if "rate" in asked:
        changed = replace(changed, anchor=now)
    if new_recurrence or resumed:
        changed = replace(changed, next_fire=_first_fire(changed, now), held=False)
    return changed
