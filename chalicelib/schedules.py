"""Schedules: a cron or rate recurrence that creates one task per fire time.

Layout in the records table (design and the reasons: docs/schedules.md):
  pk schedule#<owner>, sk <id>                  -> the schedule (an owner's list: one Query)
  pk schedule-count#<owner>, sk count           -> how many the owner has (the limit's guard)
  gpk schedule-due#<shard>, gsk <next fire>#<id> -> GSI by_target: the sweep's due index (sparse:
                                                  a paused schedule has no gpk)

The reaper's once-a-minute sweep queries each shard for schedules due by now and fires them.
A fire creates its task with an id derived from (schedule, fire time), written only if absent:
a sweep that runs twice, late, or races another finds the task there and creates nothing.
Advancing the schedule is a write conditional on its version; a lost race is harmless (the
next sweep recomputes from what is stored, and the task ids make its fires no-ops).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from chalicelib import aws, cron, jsonsafe, timefmt
from chalicelib.errors import JobIdTaken, SubmitRejected
from chalicelib.records import RecordsTable
from chalicelib.store import DEADLINE_SHARDS, owner_scoped

if TYPE_CHECKING:
    from chalicelib.service import TaskService

log = logging.getLogger(__name__)

Overlap = Literal["skip", "queue", "allow"]
CatchUp = Literal["none", "latest", "all"]
OVERLAPS: tuple[str, ...] = ("skip", "queue", "allow")
CATCH_UPS: tuple[str, ...] = ("none", "latest", "all")
# catchUp "all" fires at most this many missed times; older ones are skipped and counted.
CATCH_UP_LIMIT = 10
# A fire this late is on time (the sweep runs once a minute, and may stop early on a backlog);
# older, it was missed, and catchUp decides.
ON_TIME_SECONDS = 300
NEXT_RUNS_SHOWN = 5
DUE_INDEX = "by_target"
# Fire ids are UUIDs (the task id format), derived from the schedule and the fire time.
FIRE_NAMESPACE = uuid.UUID("5c4e2f7e-9d1b-4c38-8a5e-2a7f0c6b1d90")


class ScheduleRejected(ValueError):
    """A schedule that cannot be stored; `errors` name each field and why (a 422)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class ScheduleNotFound(LookupError):
    pass


class TooManySchedules(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"you have {limit} schedules, the most allowed; delete one to create another"
        )
        self.limit = limit


class ScheduleChanged(ValueError):
    """The schedule changed since it was read (another PATCH, or a sweep's fire)."""


@dataclass(frozen=True)
class Schedule:
    id: str
    owner: str
    type: str
    timezone: str
    created_at: datetime
    updated_at: datetime
    anchor: datetime  # a rate counts its intervals from here
    cron: str | None = None
    rate: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    overlap: Overlap = "skip"
    catch_up: CatchUp = "none"
    paused: bool = False
    next_fire: datetime | None = None  # the oldest fire time not yet handled; None: paused/done
    held: bool = False  # overlap "queue": next_fire waits for the previous task to finish
    version: int = 1
    last_task_id: str | None = None
    last_fire: datetime | None = None
    last_outcome: str | None = None  # fired | skipped (overlap) | missed (catch-up)
    fired: int = 0
    skipped: int = 0
    # A create with an Idempotency-Key: a digest of its body, to tell a retry from a reuse.
    request_digest: str | None = None

    def recurrence(self) -> cron.Recurrence:
        tz = cron.zone(self.timezone)
        if self.cron is not None:
            return cron.Cron.parse(self.cron, tz)
        return cron.Rate.parse(self.rate or "", self.anchor)

    def next_runs(self, now: datetime, count: int = NEXT_RUNS_SHOWN) -> list[datetime]:
        if self.paused:
            return []
        if self.next_fire is None:
            return []
        first = min(self.next_fire, now) if self.held else self.next_fire
        return cron.next_runs(self.recurrence(), first - timedelta(microseconds=1), count)


def fire_id(schedule_id: str, fire_time: datetime) -> str:
    """The task id of one fire: the same schedule and time give the same id, always."""
    return str(uuid.uuid5(FIRE_NAMESPACE, f"{schedule_id}|{int(fire_time.timestamp())}"))


# -- checking what is asked ---------------------------------------------------------------


def check_spec(
    *, cron_text: str | None, rate: str | None, timezone: str, anchor: datetime, now: datetime
) -> datetime:
    """The first fire after `now` of the recurrence asked; ScheduleRejected naming the field."""
    if (cron_text is None) == (rate is None):
        raise ScheduleRejected([{"field": "cron", "message": "give exactly one of cron or rate"}])
    try:
        tz = cron.zone(timezone)
    except cron.BadRecurrence as exc:
        raise ScheduleRejected([{"field": "timezone", "message": str(exc)}]) from None
    name = "cron" if cron_text is not None else "rate"
    try:
        recurrence: cron.Recurrence = (
            cron.Cron.parse(cron_text, tz)
            if cron_text is not None
            else cron.Rate.parse(rate or "", anchor)
        )
    except cron.BadRecurrence as exc:
        raise ScheduleRejected([{"field": name, "message": str(exc)}]) from None
    first = recurrence.after(now)
    if first is None:
        raise ScheduleRejected([{"field": name, "message": f"{cron_text!r} never fires"}])
    return first


def new_schedule_id() -> str:
    return "sch_" + uuid.uuid4().hex


def keyed_schedule_id(owner: str, idempotency_key: str) -> str:
    """The id of the schedule an owner's create with this Idempotency-Key makes: the same
    key gives the same id, so a retried create finds the schedule its first try stored
    (the item is put only if absent) instead of making a second one."""
    digest = hashlib.sha256(owner_scoped(owner, idempotency_key).encode()).hexdigest()
    return "sch_" + digest[:32]


# -- the store ------------------------------------------------------------------------------


def _pk(owner: str) -> str:
    return "schedule#" + owner_scoped(owner)


def _count_key(owner: str) -> dict[str, Any]:
    return {"pk": {"S": "schedule-count#" + owner_scoped(owner)}, "sk": {"S": "count"}}


def _shard(schedule_id: str) -> str:
    return uuid.uuid5(FIRE_NAMESPACE, schedule_id).hex[0]


def _due_key(epoch: int, schedule_id: str) -> str:
    return f"{epoch:012d}#{schedule_id}"


def to_item(s: Schedule) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": _pk(s.owner)},
        "sk": {"S": s.id},
        "kind": {"S": "schedule"},
        "id": {"S": s.id},
        "owner": {"S": s.owner},
        "type": {"S": s.type},
        "timezone": {"S": s.timezone},
        "input": {"S": jsonsafe.compact(s.input)},
        "overlap": {"S": s.overlap},
        "catch_up": {"S": s.catch_up},
        "paused": {"BOOL": s.paused},
        "held": {"BOOL": s.held},
        "created_at": {"S": timefmt.item(s.created_at)},
        "updated_at": {"S": timefmt.item(s.updated_at)},
        "anchor": {"S": timefmt.item(s.anchor)},
        "version": {"N": str(s.version)},
        "fired": {"N": str(s.fired)},
        "skipped": {"N": str(s.skipped)},
    }
    for name in ("cron", "rate", "last_task_id", "last_outcome", "request_digest"):
        value = getattr(s, name)
        if value is not None:
            item[name] = {"S": value}
    if s.last_fire is not None:
        item["last_fire"] = {"S": timefmt.item(s.last_fire)}
    if s.next_fire is not None:
        epoch = int(s.next_fire.timestamp())
        item["next_fire"] = {"N": str(epoch)}
        if not s.paused:
            item["gpk"] = {"S": "schedule-due#" + _shard(s.id)}
            item["gsk"] = {"S": _due_key(epoch, s.id)}
    return item


def from_item(item: dict[str, Any]) -> Schedule:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def moment(name: str) -> datetime | None:
        return datetime.fromisoformat(item[name]["S"]) if name in item else None

    next_fire = item.get("next_fire")
    return Schedule(
        id=item["id"]["S"],
        owner=item["owner"]["S"],
        type=item["type"]["S"],
        timezone=item["timezone"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        updated_at=datetime.fromisoformat(item["updated_at"]["S"]),
        anchor=datetime.fromisoformat(item["anchor"]["S"]),
        cron=text("cron"),
        rate=text("rate"),
        input=json.loads(item["input"]["S"]),
        overlap=item["overlap"]["S"],
        catch_up=item["catch_up"]["S"],
        paused=item["paused"]["BOOL"],
        held=item.get("held", {}).get("BOOL", False),
        next_fire=(
            datetime.fromtimestamp(int(next_fire["N"]), UTC) if next_fire is not None else None
        ),
        version=int(item["version"]["N"]),
        last_task_id=text("last_task_id"),
        last_fire=moment("last_fire"),
        last_outcome=text("last_outcome"),
        fired=int(item["fired"]["N"]),
        skipped=int(item["skipped"]["N"]),
        request_digest=text("request_digest"),
    )


class ScheduleStore:
    """Schedules in the records table; every write is conditional (module doc)."""

    def __init__(self, records_table: str) -> None:
        self.table = records_table

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def create(self, schedule: Schedule, limit: int) -> None:
        """Store a new schedule, counted against the owner's `limit` in the same transaction:
        two creates at once cannot both take the last place."""
        counter = _count_key(schedule.owner)
        if not RecordsTable(self.table).put_counted(to_item(schedule), counter, limit):
            raise TooManySchedules(limit)

    def get(self, owner: str, schedule_id: str) -> Schedule:
        found = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": _pk(owner)}, "sk": {"S": schedule_id}},
            ConsistentRead=True,
        ).get("Item")
        if found is None:
            raise ScheduleNotFound(schedule_id)
        return from_item(found)

    def list(self, owner: str) -> list[Schedule]:
        """The owner's schedules (at most the per-owner limit: one Query, paged by DynamoDB)."""
        schedules: list[Schedule] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _pk(owner)}},
        }
        while True:
            page = self._ddb.query(**query)
            schedules.extend(from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return schedules
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def replace(self, schedule: Schedule, expected_version: int) -> None:
        """Write `schedule` over the stored one if that is still `expected_version`."""
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item=to_item(schedule),
                ConditionExpression="attribute_exists(pk) AND version = :v",
                ExpressionAttributeValues={":v": {"N": str(expected_version)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ScheduleChanged(schedule.id) from None
            raise

    def delete(self, owner: str, schedule_id: str) -> None:
        """Delete the schedule and give its place back, together; ScheduleNotFound if absent."""
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": {"pk": {"S": _pk(owner)}, "sk": {"S": schedule_id}},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _count_key(owner),
                            "UpdateExpression": "ADD n :minus",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise ScheduleNotFound(schedule_id) from None
            raise

    def due(self, now: datetime) -> Iterable[Schedule]:
        """Schedules whose next fire is at or before `now`: one Query per shard of the index."""
        bound = _due_key(int(now.timestamp()), "~")
        for shard in DEADLINE_SHARDS:
            query: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "gpk = :gpk AND gsk <= :bound",
                "ExpressionAttributeValues": {
                    ":gpk": {"S": "schedule-due#" + shard},
                    ":bound": {"S": bound},
                },
            }
            while True:
                page = self._ddb.query(**query)
                for item in page.get("Items", []):
                    yield from_item(item)
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# -- firing ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    fired: list[str] = field(default_factory=list)  # task ids created
    skipped: int = 0


def fire_times(schedule: Schedule, now: datetime) -> tuple[list[datetime], int]:
    """The fire times to run now, oldest first, and how many due ones catchUp drops."""
    if schedule.next_fire is None:
        return [], 0
    held = [schedule.next_fire] if schedule.held else []
    start = schedule.next_fire + timedelta(seconds=1) if schedule.held else schedule.next_fire
    due, dropped = cron.fires_between(schedule.recurrence(), start, now, CATCH_UP_LIMIT)
    if schedule.catch_up == "all":
        return held + due, dropped
    if schedule.catch_up == "latest":
        return held + due[-1:], dropped + max(0, len(due) - 1)
    on_time = [t for t in due if (now - t).total_seconds() <= ON_TIME_SECONDS]
    return held + on_time[-1:], dropped + len(due) - len(on_time[-1:])


class Sweeper:
    """Fires the due schedules: creates their tasks through the task service's own checks."""

    def __init__(self, store: ScheduleStore, service: TaskService) -> None:
        self.store = store
        self.service = service

    def sweep(self, time_left: Callable[[], float], margin: float) -> int:
        """Fire every due schedule; stop with `margin` seconds left. Returns tasks created."""
        now = self.service.clock()
        created = 0
        for schedule in self.store.due(now):
            if time_left() < margin:
                break
            try:
                created += len(self.fire(schedule, now).fired)
            except cron.BadRecurrence:
                # Stored valid, unreadable now (a zone dropped from the system's tz data):
                # the others still fire; this one stays due, in the log until it is fixed.
                log.exception("schedule %s cannot be read", schedule.id)
        return created

    def fire(self, schedule: Schedule, now: datetime) -> Outcome:
        """Fire `schedule`'s due times as catchUp and overlap decide, then advance it to its
        next fire after `now` (or hold it at a queued fire): one conditional write."""
        outcome = Outcome()
        times, dropped = fire_times(schedule, now)
        outcome.skipped += dropped
        updated = replace(schedule, held=False)
        last_outcome = "missed" if dropped else schedule.last_outcome
        for fire_time in times:
            if schedule.overlap != "allow" and self._previous_running(updated):
                if schedule.overlap == "queue":
                    self._advance(schedule, updated, outcome, fire_time, held=True)
                    return outcome
                outcome.skipped += 1
                updated = replace(updated, last_fire=fire_time)
                last_outcome = "skipped"
                continue
            task_id, created = self._create_task(schedule, fire_time, now)
            if created:
                outcome.fired.append(task_id)
            last_outcome = "fired" if task_id else "refused"
            updated = replace(updated, last_task_id=task_id, last_fire=fire_time)
        updated = replace(updated, last_outcome=last_outcome)
        following = schedule.recurrence().after(now)
        self._advance(schedule, updated, outcome, following, held=False)
        return outcome

    def _previous_running(self, schedule: Schedule) -> bool:
        if schedule.last_task_id is None:
            return False
        task = self.service.store.get(schedule.last_task_id, self.service.clock())
        return task is not None and not task.is_terminal

    def _create_task(
        self, schedule: Schedule, fire_time: datetime, now: datetime
    ) -> tuple[str | None, bool]:
        """The fire's task id and whether this call created it: an earlier sweep may have.
        None if the service refuses the task (its type is no longer registered, say): the
        schedule goes on, and "refused" is its last outcome."""
        from chalicelib.service import SubmitJob

        task_id = fire_id(schedule.id, fire_time)
        job = SubmitJob(type=schedule.type, input=schedule.input)
        try:
            task = self.service.new_task(schedule.owner, job, now, task_id=task_id)
        except SubmitRejected:
            return None, False
        task = task.replace(schedule_id=schedule.id, scheduled_for=fire_time, updated_by="schedule")
        try:
            # Two sweeps that read the same due schedule build the same task (the fire's id,
            # their clock's time): one's task is not the other's own write, so no own retry.
            # Either way the fire's task is in, and the schedule moves on.
            self.service.store.create(task, own_retry=False)
        except JobIdTaken:
            return task_id, False
        return task_id, True

    def _advance(
        self,
        before: Schedule,
        updated: Schedule,
        outcome: Outcome,
        next_fire: datetime | None,
        held: bool,
    ) -> None:
        advanced = replace(
            updated,
            next_fire=next_fire,
            held=held,
            version=before.version + 1,
            fired=before.fired + len(outcome.fired),
            skipped=before.skipped + outcome.skipped,
        )
        # Changed meanwhile (a PATCH, another sweep): the next sweep starts from what is stored.
        with contextlib.suppress(ScheduleChanged):
            self.store.replace(advanced, before.version)


def fire_due(service: TaskService, schedules: ScheduleStore, time_left: Callable[[], float]) -> int:
    """The reaper's part: fire the schedules now due; returns the tasks created. Stops with
    the delayed-run sweep's margin left, so the reaping after it always has time."""
    from chalicelib.service import SWEEP_MARGIN_SECONDS

    sweeper = Sweeper(schedules, service)
    return sweeper.sweep(time_left, SWEEP_MARGIN_SECONDS)
