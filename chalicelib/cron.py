"""When a schedule fires: 5-field cron and EventBridge-style rate expressions, in a time zone.

Hand-written rather than croniter (7.0.0: 55 ms to import with dateutil, 720 KB installed,
and its DST behaviour has changed between releases): the grammar is small, and owning it lets
a bad expression be refused with the exact part at fault, and fixes the DST rules below.

Cron: `minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a
step `*/n` or `a-b/n` or `a/n`, or a list of those; months `jan`..`dec`, days `sun`..`sat`
(0 or 7 is Sunday). As in Vixie cron, when both day fields are restricted a day matches
either of them.

Time zones and DST, for a wall-clock time the zone's clocks give twice or never:
- skipped (02:30 on the night clocks jump from 02:00 to 03:00): the fire happens once, at
  the moment the clocks jumped (03:00 local), so a daily job runs that day, as soon as it can;
- repeated (01:30 on the night clocks go back from 02:00 to 01:00): the fire happens once,
  at the first 01:30.
A rate counts its interval in absolute time from an anchor (the schedule's creation), so DST
never stretches or shrinks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, lowest, highest, names (index + lowest)
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_RATE = re.compile(r"^\s*(\d{1,6})\s+([a-z]+)\s*$")
# No schedule's next fire lies further than this many days of search (Feb 29 is within 8 years).
SEARCH_DAYS = 366 * 8 + 2


class BadRecurrence(ValueError):
    """The expression or zone cannot be used; the message says which part and why."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (e.g. Europe/Berlin); BadRecurrence if there is none."""
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise BadRecurrence(f"{name!r} is not an IANA time zone such as Europe/Berlin or UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRecurrence(
            f"{name!r} is not an IANA time zone such as Europe/Berlin or UTC"
        ) from None


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool
    tz: ZoneInfo

    @classmethod
    def parse(cls, expression: str, tz: ZoneInfo) -> Cron:
        parts = expression.split() if isinstance(expression, str) else []
        if len(parts) != 5:
            raise BadRecurrence(
                f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                f"e.g. '30 2 * * *'; got {len(parts)}"
            )
        values = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in values[4])
        return cls(
            minutes=values[0],
            hours=values[1],
            days=values[2],
            months=values[3],
            weekdays=weekdays,
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
            tz=tz,
        )

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def after(self, moment: datetime) -> datetime | None:
        """The first fire strictly after `moment` (UTC), or None if it never fires again."""
        return next(self.fires_after(moment), None)

    def fires_after(self, moment: datetime) -> Iterator[datetime]:
        """The fires strictly after `moment`, in order (days without one are skipped; the
        search ends after SEARCH_DAYS without any, e.g. for February 30)."""
        day = moment.astimezone(self.tz).date()
        idle = 0
        while idle < SEARCH_DAYS:
            found = False
            if self.day_matches(day):
                for fire in self._fires_on(day):
                    if fire > moment:
                        found = True
                        yield fire
            idle = 0 if found else idle + 1
            day += timedelta(days=1)

    def _fires_on(self, day: date) -> Iterator[datetime]:
        """The day's fires in UTC, in order; each wall-clock time once (see the module doc)."""
        previous: datetime | None = None
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                fire = _wall_to_utc(day, hour, minute, self.tz)
                if previous is not None and fire <= previous:
                    continue  # two skipped wall times land on the same jump: fire once
                previous = fire
                yield fire


def _wall_to_utc(day: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC moment of a local wall-clock time: the first of two, or the jump of none."""
    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)  # fold=0: the first
    instant = wall.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    # A time the clocks skipped: fire at the jump, the first wall time after it that exists.
    earlier = wall.replace(fold=1).astimezone(UTC)  # the same wall time read with the new offset
    return _jump_between(min(instant, earlier), max(instant, earlier), tz)


def _jump_between(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (low, high] whose UTC offset is the later one (minute precision)."""
    offset_after = high.astimezone(tz).utcoffset()
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle <= low:
            break
        if middle.astimezone(tz).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high


def _field(text: str, name: str, lowest: int, highest: int, names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        values |= _item(item, text, name, lowest, highest, names)
    return frozenset(values)


def _item(item: str, text: str, name: str, lowest: int, highest: int, names: list[str]) -> set[int]:
    def fail(why: str) -> BadRecurrence:
        return BadRecurrence(f"{name} field {text!r}: {why}")

    def number(token: str) -> int:
        if token in names:
            return names.index(token) + (1 if names is MONTHS else 0)
        if not token.isdigit():
            raise fail(f"{token!r} is not a number from {lowest} to {highest}")
        value = int(token)
        if not lowest <= value <= highest:
            raise fail(f"{value} is outside {lowest}-{highest}")
        return value

    span, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise fail(f"step {step_text!r} must be a whole number of at least 1")
        step = int(step_text)
    if span == "*":
        start, end = lowest, highest
    elif "-" in span:
        first, _, last = span.partition("-")
        start, end = number(first), number(last)
        if start > end:
            raise fail(f"range {span!r} runs backwards")
    else:
        start = number(span)
        end = highest if step_text else start
    return set(range(start, end + 1, step))


@dataclass(frozen=True)
class Rate:
    seconds: int
    anchor: datetime  # a fire time; the others are whole intervals from it

    @classmethod
    def parse(cls, expression: str, anchor: datetime) -> Rate:
        match = _RATE.match(expression.lower()) if isinstance(expression, str) else None
        if match is None or match.group(2) not in RATE_UNITS:
            raise BadRecurrence(
                "a rate is '<n> minute(s)|hour(s)|day(s)', e.g. '5 minutes' or '1 day'; "
                f"got {expression!r}"
            )
        count, unit = int(match.group(1)), match.group(2)
        if count == 0:
            raise BadRecurrence("a rate's interval must be at least 1")
        singular = unit.rstrip("s")
        spelled = f"{count} {singular}" if count == 1 else f"{count} {singular}s"
        if f"{count} {unit}" != spelled:
            raise BadRecurrence(f"write {spelled!r} (EventBridge's spelling); got {expression!r}")
        return cls(seconds=count * RATE_UNITS[unit], anchor=anchor.replace(microsecond=0))

    def after(self, moment: datetime) -> datetime | None:
        return next(self.fires_after(moment))

    def fires_after(self, moment: datetime) -> Iterator[datetime]:
        elapsed = (moment - self.anchor).total_seconds()
        intervals = 0 if elapsed < 0 else int(elapsed // self.seconds) + 1
        while True:
            yield self.anchor + timedelta(seconds=intervals * self.seconds)
            intervals += 1


Recurrence = Cron | Rate


def fires_between(
    recurrence: Recurrence, start: datetime, end: datetime, limit: int
) -> tuple[list[datetime], int]:
    """Fire times in [start, end], oldest first: at most `limit` of the newest, and how many
    older ones were left out."""
    found: list[datetime] = []
    dropped = 0
    for moment in recurrence.fires_after(start - timedelta(microseconds=1)):
        if moment > end:
            break
        found.append(moment)
        if len(found) > limit:
            found.pop(0)
            dropped += 1
    return found, dropped


def next_runs(recurrence: Recurrence, after: datetime, count: int) -> list[datetime]:
    """The next `count` fires strictly after `after` (fewer if it stops firing)."""
    runs: list[datetime] = []
    for moment in recurrence.fires_after(after):
        runs.append(moment)
        if len(runs) == count:
            break
    return runs
