"""Tallies for the operator's console: tasks submitted, completed and failed per owner, and
how long tasks wait and run per type, counted by the table's stream (never a Scan to read).

Records table layout, one partition per UTC clock hour (kept two days):
  pk tally#<YYYY-MM-DDTHH>, sk owner#<len:owner>   owner, s (submitted), c (completed),
                                                     f (failed)
  pk tally#<YYYY-MM-DDTHH>, sk type#<type>          type, w0..wN (submit -> start) and
                                                     r0..rN (start -> end): histogram counts
                                                     over BOUNDS
  pk tally#<YYYY-MM-DDTHH>, sk host#<host>          host, a (webhook attempts), x (failed),
                                                     e (exhausted), last_error, last_error_at
A webhook attempt is counted by the webhooks handler when its log entry is new (a duplicate
message's attempt is not logged again, chalicelib/webhooks/__init__.py): one UpdateItem.
A version is counted once: only when its history entry is new (a record the stream delivers
again finds its entry there, chalicelib/history.py), so a replayed batch adds nothing. The
counts of a stream batch are added with one UpdateItem per (hour, owner) and (hour, type) at
its end; a batch that fails there is handed over again and its versions are not counted
twice (they may be lost: these are an operator's figures, not billing).

The last hour is read as the current clock hour plus the share of the previous one that
falls in the window (an estimate that assumes an hour's counts are spread evenly); the last
day as the last 24 clock hours and the current one. Quantiles are the upper bound of the
histogram bucket they fall in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib import aws
from chalicelib.model import RUNNING, Status, Task

PREFIX = "tally#"
KEEP_SECONDS = 2 * 86400
# Bucket upper bounds in seconds; the last catches everything longer (reported as a day).
BOUNDS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 86400)
COUNTS = {"s": "submitted", "c": "completed", "f": "failed"}


def hour_key(moment: datetime) -> str:
    return PREFIX + moment.strftime("%Y-%m-%dT%H")


def bucket(seconds: float) -> int:
    for index, bound in enumerate(BOUNDS):
        if seconds <= bound:
            return index
    return len(BOUNDS) - 1


def _owner_sk(owner: str) -> str:
    return f"owner#{len(owner)}:{owner}"


@dataclass
class Tallies:
    """Counts of one stream batch, added to the records table by `flush`."""

    table: str
    added: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    names: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def _add(self, moment: datetime, sk: str, name: tuple[str, str], counter: str) -> None:
        key = (hour_key(moment), sk)
        self.names[key] = name
        counters = self.added.setdefault(key, defaultdict(int))
        counters[counter] += 1

    def count(self, old: Status | None, inserted: bool, task: Task) -> None:
        """What this new version of `task` adds (called once per version)."""
        owner = (_owner_sk(task.owner), ("owner", task.owner))
        kind = (f"type#{task.type}", ("type", task.type))
        if inserted:
            self._add(task.created_at, *owner, "s")
        if task.status in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS):
            self._add(task.updated_at, *owner, "c")
        elif task.status is Status.FAILED:
            self._add(task.updated_at, *owner, "f")
        first_start = task.started_at is not None and task.started_at == task.updated_at
        if task.status in RUNNING and first_start and old not in RUNNING and not task.retries:
            since = max(task.created_at, task.run_at or task.created_at)
            waited = (task.started_at - since).total_seconds()
            self._add(task.updated_at, *kind, f"w{bucket(max(0.0, waited))}")
        if task.is_terminal and old is not None and not old.is_terminal and task.started_at:
            ran = ((task.completed_at or task.updated_at) - task.started_at).total_seconds()
            self._add(task.updated_at, *kind, f"r{bucket(max(0.0, ran))}")

    def flush(self) -> None:
        ddb = aws.client("dynamodb")
        for (pk, sk), counters in sorted(self.added.items()):
            name, value = self.names[(pk, sk)]
            names = {"#n": name, **{f"#{c}": c for c in counters}}
            values: dict[str, Any] = {
                ":name": {"S": value},
                ":ttl": {"N": str(_hour_start(pk) + KEEP_SECONDS)},
                **{f":{c}": {"N": str(n)} for c, n in counters.items()},
            }
            adds = ", ".join(f"#{c} :{c}" for c in counters)
            ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression=f"SET #n = :name, expires_at = :ttl ADD {adds}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        self.added.clear()
        self.names.clear()


def count_webhook_attempt(
    table: str, now: datetime, host: str, delivered: bool, state: str, error: str | None
) -> None:
    """One webhook attempt to `host`: failed unless delivered; exhausted if it was the last."""
    pk = hour_key(now)
    adds = {"a": 1, "x": 0 if delivered else 1, "e": 1 if state == "exhausted" else 0}
    values: dict[str, Any] = {
        ":host": {"S": host},
        ":ttl": {"N": str(_hour_start(pk) + KEEP_SECONDS)},
        **{f":{c}": {"N": str(n)} for c, n in adds.items()},
    }
    sets = "host = :host, expires_at = :ttl"
    if not delivered and error:
        values[":error"] = {"S": error[:300]}
        values[":at"] = {"S": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        sets += ", last_error = :error, last_error_at = :at"
    aws.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": pk}, "sk": {"S": f"host#{host}"}},
        UpdateExpression=f"SET {sets} ADD a :a, x :x, e :e",
        ExpressionAttributeValues=values,
    )


def last_errors(hours: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[str, str]]:
    """Per host, its latest error and when (ISO), over the hours read."""
    found: dict[str, tuple[str, str]] = {}
    for items in hours.values():
        for item in items:
            if not item["sk"]["S"].startswith("host#") or "last_error_at" not in item:
                continue
            host = item["host"]["S"]
            at, error = item["last_error_at"]["S"], item["last_error"]["S"]
            if host not in found or at > found[host][1]:
                found[host] = (error, at)
    return found


def _hour_start(pk: str) -> int:
    return int(datetime.fromisoformat(pk.removeprefix(PREFIX) + ":00:00+00:00").timestamp())


# -- reading ---------------------------------------------------------------------------------


def read_hours(table: str, now: datetime, hours: int) -> dict[str, list[dict[str, Any]]]:
    """The items of the current clock hour and the `hours` before it (one Query each)."""
    ddb = aws.client("dynamodb")
    found = {}
    for back in range(hours + 1):
        pk = hour_key(now - timedelta(hours=back))
        request = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        found[pk] = list(aws.query_items(ddb, request))
    return found


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


@dataclass
class Window:
    """Counts over the last hour (estimated, see above) and the last day."""

    hour: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    day: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def windows(hours: dict[str, list[dict[str, Any]]], now: datetime, kind: str) -> dict[str, Window]:
    """Per owner (kind "owner") or type ("type"): each counter over the hour and the day."""
    current = hour_key(now)
    previous = hour_key(now - timedelta(hours=1))
    share = 1 - now.minute / 60 - now.second / 3600  # of the previous hour still in the window
    found: dict[str, Window] = defaultdict(Window)
    for pk, items in hours.items():
        weight = 1.0 if pk == current else share if pk == previous else 0.0
        for item in items:
            if not item["sk"]["S"].startswith(f"{kind}#"):
                continue
            window = found[item[kind]["S"]]
            for name in item:
                if name in ("pk", "sk", kind, "expires_at") or "N" not in item[name]:
                    continue
                count = _number(item, name)
                window.day[name] += count
                window.hour[name] += count * weight
    return found


def quantile(counts: dict[str, float], prefix: str, q: float) -> float | None:
    """The upper bound of the bucket the q-quantile falls in; None without any count."""
    per_bucket = [counts.get(f"{prefix}{i}", 0.0) for i in range(len(BOUNDS))]
    total = sum(per_bucket)
    if total <= 0:
        return None
    running = 0.0
    for bound, count in zip(BOUNDS, per_bucket, strict=True):
        running += count
        if running >= q * total:
            return float(bound)
    return float(BOUNDS[-1])


def total(counts: dict[str, float], prefix: str) -> float:
    return sum(counts.get(f"{prefix}{i}", 0.0) for i in range(len(BOUNDS)))
