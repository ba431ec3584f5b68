"""Schedules under the local stack: a rate schedule fires each interval once, and stops when
paused. The stack's reaper (which runs the sweep) runs every few seconds here, as EventBridge
runs it every minute in AWS: a fire lands seconds after its time instead of up to a minute."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from local.launcher import local_stack as launch
from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT

SWEEP_EVERY_SECONDS = 5
INTERVAL = timedelta(minutes=1)
DEADLINE_SECONDS = 150  # for one fire: its minute, plus a very busy machine's slack


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log: Path = tmp_path_factory.mktemp("schedules-stack") / "dev.log"
    env = {"REAPER_INTERVAL_SECONDS": str(SWEEP_EVERY_SECONDS)}
    with launch(log, data_dir=log.parent / ".taskstatus", env=env) as endpoints:
        yield endpoints.api


def headers(user: str = "sam") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}"}


def scheduled_jobs(api: str, schedule_id: str) -> list[dict]:
    response = requests.get(f"{api}/jobs?limit=100", headers=headers(), timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return [job for job in response.json()["jobs"] if job.get("scheduleId") == schedule_id]


def wait_for_jobs(api: str, schedule_id: str, count: int) -> list[dict]:
    deadline = time.monotonic() + DEADLINE_SECONDS * count
    while time.monotonic() < deadline:
        jobs = scheduled_jobs(api, schedule_id)
        if len(jobs) >= count:
            return jobs
        time.sleep(1)
    raise AssertionError(f"{count} jobs of schedule {schedule_id} did not appear in time")


def test_a_rate_schedule_fires_each_interval_once_and_stops_when_paused(api):
    body = {"rate": "1 minute", "type": "demo/sleep", "input": {"seconds": 0}, "overlap": "allow"}
    created = requests.post(f"{api}/schedules", json=body, headers=headers(), timeout=HTTP_TIMEOUT)
    assert created.status_code == 201, created.text
    schedule = created.json()
    first_due = datetime.fromisoformat(schedule["nextRuns"][0])

    jobs = wait_for_jobs(api, schedule["scheduleId"], 2)
    fire_times = sorted(datetime.fromisoformat(job["scheduledFor"]) for job in jobs)
    assert fire_times[:2] == [first_due, first_due + INTERVAL]
    assert len(set(fire_times)) == len(fire_times)  # each fire time once

    path = f"{api}/schedules/{schedule['scheduleId']}"
    paused = requests.patch(path, json={"paused": True}, headers=headers(), timeout=HTTP_TIMEOUT)
    assert paused.status_code == 200, paused.text
    assert paused.json()["nextRuns"] == []
    count = len(scheduled_jobs(api, schedule["scheduleId"]))
    # Past the next fire time, with several sweeps after it: nothing more was created.
    time.sleep(INTERVAL.total_seconds() + 3 * SWEEP_EVERY_SECONDS)
    assert len(scheduled_jobs(api, schedule["scheduleId"])) == count


def march_sundays_at_0230(zone: ZoneInfo, year: int) -> list[datetime]:
    """When a `30 2 * 3 0` schedule in `zone` fires in March of `year`: 02:30 local each
    Sunday; on the night the clocks jump past 02:30, at the jump (03:00 local)."""
    fires = []
    for day in range(1, 32):
        if datetime(year, 3, day).weekday() != 6:  # Sunday
            continue
        wall = datetime(year, 3, day, 2, 30, tzinfo=zone)
        exists = wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(
            tzinfo=None
        )
        fire = wall if exists else datetime(year, 3, day, 3, 0, tzinfo=zone)
        fires.append(fire.astimezone(UTC))
    return fires


def test_a_cron_schedules_next_runs_are_right_across_a_dst_change(api):
    zone = ZoneInfo("America/New_York")
    now = datetime.now(UTC)
    year = now.year if now.month < 3 else now.year + 1  # the next March
    body = {"cron": "30 2 * 3 0", "timezone": zone.key, "type": "demo/sleep", "paused": False}
    created = requests.post(f"{api}/schedules", json=body, headers=headers(), timeout=HTTP_TIMEOUT)
    assert created.status_code == 201, created.text
    runs = [datetime.fromisoformat(run) for run in created.json()["nextRuns"]]
    expected = march_sundays_at_0230(zone, year) + march_sundays_at_0230(zone, year + 1)
    assert runs == expected[: len(runs)]
    assert any(run.astimezone(zone).hour == 3 for run in runs), "the DST night is among them"
    path = f"{api}/schedules/{created.json()['scheduleId']}"
    assert requests.delete(path, headers=headers(), timeout=HTTP_TIMEOUT).status_code in (200, 204)
