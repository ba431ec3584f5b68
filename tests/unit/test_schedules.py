"""Schedules: POST/GET/PATCH/DELETE /schedules, and the reaper's sweep that fires them, each fire
time exactly once. The clock is the service's, injected: no test waits on wall time."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.bootstrap import container
from chalicelib.model import Status
from chalicelib.processors import processor
from chalicelib.processors.sdk import unregister
from chalicelib.schedules import ScheduleStore, Sweeper, fire_due, fire_id
from tests.conftest import auth

START = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)


def at(service, moment: datetime) -> None:
    service.clock = lambda: moment


def create(client, body: dict, user: str = "alice"):
    return client.http.post("/schedules", headers=auth(user), body=json.dumps(body))


def every_minute(**extra) -> dict:
    return {"rate": "1 minute", "type": "demo/sleep", "input": {"seconds": 0}, **extra}


def created(client, service, body: dict, user: str = "alice") -> dict:
    at(service, START)
    response = create(client, body, user)
    assert response.status_code == 201, response.body
    return response.json_body


def sweep(service, moment: datetime) -> int:
    at(service, moment)
    return fire_due(service, container().schedule_store, lambda: 900.0)


def tasks_of(service, schedule_id: str, user: str = "alice") -> list:
    tasks = service.list_owned(user, limit=100).tasks
    return [task for task in tasks if task.schedule_id == schedule_id]


def fired_times(service, schedule: dict) -> list[datetime]:
    return sorted(t.scheduled_for for t in tasks_of(service, schedule["scheduleId"]))


def end(service, task_id: str) -> None:
    """The previous run is over (cancelled: a terminal status like any other)."""
    service.cancel("alice", task_id)


# -- creating and reading -----------------------------------------------------------------


def test_a_new_schedule_shows_its_next_runs(client, service):
    schedule = created(client, service, every_minute())
    assert schedule["nextRuns"] == [
        "2026-12-07T10:01:00Z",
        "2026-12-07T10:02:00Z",
        "2026-12-07T10:03:00Z",
        "2026-12-07T10:04:00Z",
        "2026-12-07T10:05:00Z",
    ]
    assert schedule["scheduleId"].startswith("sch_")
    assert (schedule["overlap"], schedule["catchUp"], schedule["paused"]) == ("skip", "none", False)


def test_a_cron_schedules_next_runs_are_in_its_zone_across_dst(client, service):
    at(service, datetime(2026, 3, 6, 12, tzinfo=UTC))
    body = {"cron": "30 2 * * *", "timezone": "America/New_York", "type": "demo/sleep"}
    response = create(client, body)
    assert response.json_body["nextRuns"][:3] == [
        "2026-03-07T07:30:00Z",
        "2026-03-08T07:00:00Z",  # 02:30 does not exist that night: 03:00 EDT, the jump
        "2026-03-09T06:30:00Z",
    ]


def test_a_schedule_is_read_back_and_listed_by_its_owner_only(client, service):
    schedule = created(client, service, every_minute())
    path = f"/schedules/{schedule['scheduleId']}"
    assert client.http.get(path, headers=auth("alice")).json_body["type"] == "demo/sleep"
    assert client.http.get(path, headers=auth("mallory")).status_code == 404
    listed = client.http.get("/schedules", headers=auth("alice")).json_body["schedules"]
    assert [s["scheduleId"] for s in listed] == [schedule["scheduleId"]]
    assert client.http.get("/schedules", headers=auth("mallory")).json_body["schedules"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 * * * *", "type": "demo/sleep"}, "body.cron"),
        ({"cron": "0 0 30 feb *", "type": "demo/sleep"}, "body.cron"),
        ({"rate": "5 weeks", "type": "demo/sleep"}, "body.rate"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus", "type": "demo/sleep"}, "body.timezone"),
        ({"type": "demo/sleep"}, "body.cron"),
        ({"cron": "0 * * * *", "rate": "1 hour", "type": "demo/sleep"}, "body.cron"),
        ({"cron": "0 * * * *", "type": "demo/sleep", "overlap": "sometimes"}, "body.overlap"),
        ({"cron": "0 * * * *", "type": "demo/sleep", "catchUp": "everything"}, "body.catchUp"),
        ({"cron": "0 * * * *", "type": "no/such-type"}, "type"),
    ],
)
def test_a_bad_schedule_is_a_422_naming_the_field_and_nothing_is_stored(
    client, service, body, field
):
    at(service, START)
    response = create(client, body)
    assert response.status_code == 422, response.body
    assert field in [e["field"] for e in response.json_body["error"]["errors"]]
    assert client.http.get("/schedules", headers=auth("alice")).json_body["schedules"] == []


def test_an_owner_cannot_pass_the_schedule_limit_and_deleting_one_frees_its_place(
    client, service, monkeypatch
):
    monkeypatch.setattr(service, "settings", replace(service.settings, max_schedules_per_owner=2))
    first = created(client, service, every_minute())
    created(client, service, every_minute())
    refused = create(client, every_minute())
    assert refused.status_code == 409
    assert "2 schedules" in refused.json_body["error"]["message"]
    assert create(client, every_minute(), user="bob").status_code == 201  # per owner
    path = f"/schedules/{first['scheduleId']}"
    assert client.http.delete(path, headers=auth("alice")).status_code == 204
    assert create(client, every_minute()).status_code == 201


def test_deleting_another_owners_schedule_is_a_404_and_keeps_it(client, service):
    schedule = created(client, service, every_minute())
    path = f"/schedules/{schedule['scheduleId']}"
    assert client.http.delete(path, headers=auth("mallory")).status_code == 404
    assert client.http.get(path, headers=auth("alice")).status_code == 200


def test_a_malformed_schedule_id_is_a_400(client):
    response = client.http.get("/schedules/not-an-id", headers=auth("alice"))
    assert response.status_code == 400
    assert "scheduleId" in response.json_body["error"]["message"]


# -- firing ---------------------------------------------------------------------------------


def test_a_due_rate_schedule_creates_one_task_with_its_schedule_and_fire_time(client, service):
    schedule = created(client, service, every_minute())
    assert sweep(service, START + timedelta(minutes=1, seconds=20)) == 1
    [task] = tasks_of(service, schedule["scheduleId"])
    assert task.scheduled_for == START + timedelta(minutes=1)
    assert task.status is Status.SUBMITTED
    job = client.http.get(f"/jobs/{task.id}", headers=auth("alice")).json_body
    assert job["scheduleId"] == schedule["scheduleId"]
    assert job["scheduledFor"] == "2026-12-07T10:01:00Z"


def test_a_schedule_not_yet_due_does_not_fire(client, service):
    created(client, service, every_minute())
    assert sweep(service, START + timedelta(seconds=59)) == 0


def test_a_fire_time_creates_its_task_once_when_the_sweep_runs_twice(client, service):
    schedule = created(client, service, every_minute())
    moment = START + timedelta(minutes=1, seconds=5)
    assert sweep(service, moment) == 1
    assert sweep(service, moment) == 0
    assert fired_times(service, schedule) == [START + timedelta(minutes=1)]


def test_two_sweeps_reading_the_same_due_schedule_create_one_task(client, service):
    schedule = created(client, service, every_minute())
    moment = START + timedelta(minutes=1, seconds=5)
    at(service, moment)
    store = ScheduleStore(service.settings.records_table)
    [seen_by_first] = list(store.due(moment))
    [seen_by_second] = list(store.due(moment))
    first = Sweeper(store, service).fire(seen_by_first, moment)
    second = Sweeper(store, service).fire(seen_by_second, moment)
    assert len(first.fired) + len(second.fired) == 1
    assert fired_times(service, schedule) == [START + timedelta(minutes=1)]


def test_two_schedules_due_at_the_same_time_each_create_their_own_task(client, service):
    first = created(client, service, every_minute())
    second = created(client, service, every_minute())
    assert sweep(service, START + timedelta(minutes=1, seconds=5)) == 2
    assert fired_times(service, first) == [START + timedelta(minutes=1)]
    assert fired_times(service, second) == [START + timedelta(minutes=1)]


def test_a_fire_the_service_refuses_is_shown_refused_and_the_schedule_goes_on(client, service):
    processor("test/scheduled-then-gone")(lambda task, ctx: None)
    try:
        body = {**every_minute(), "type": "test/scheduled-then-gone", "input": {}}
        schedule = created(client, service, body)
    finally:
        unregister("test/scheduled-then-gone")
    assert sweep(service, START + timedelta(minutes=1, seconds=5)) == 0
    shown = client.http.get(f"/schedules/{schedule['scheduleId']}", headers=auth("alice"))
    assert shown.json_body["lastRun"] == {
        "scheduledFor": "2026-12-07T10:01:00Z",
        "jobId": None,
        "outcome": "refused",
    }
    assert shown.json_body["nextRuns"][0] == "2026-12-07T10:02:00Z"


def test_a_pause_made_while_a_sweep_fires_the_schedule_is_kept(client, service):
    schedule = created(client, service, every_minute())
    moment = START + timedelta(minutes=1, seconds=5)
    at(service, moment)
    store = ScheduleStore(service.settings.records_table)
    [read_by_the_sweep] = list(store.due(moment))
    path = f"/schedules/{schedule['scheduleId']}"
    paused = client.http.patch(path, headers=auth("alice"), body=json.dumps({"paused": True}))
    assert paused.status_code == 200, paused.body
    Sweeper(store, service).fire(read_by_the_sweep, moment)
    assert client.http.get(path, headers=auth("alice")).json_body["paused"] is True


def test_a_fire_raises_the_schedules_version(client, service):
    schedule = created(client, service, every_minute())
    sweep(service, START + timedelta(minutes=1, seconds=5))
    path = f"/schedules/{schedule['scheduleId']}"
    assert client.http.get(path, headers=auth("alice")).json_body["version"] > schedule["version"]


def test_a_schedules_task_carries_the_schedules_input(client, service):
    schedule = created(client, service, every_minute(input={"seconds": 2}))
    sweep(service, START + timedelta(minutes=1, seconds=5))
    [task] = tasks_of(service, schedule["scheduleId"])
    assert task.input == {"seconds": 2}


def test_a_schedules_task_says_in_its_history_that_the_schedule_created_it(client, service, stack):
    schedule = created(client, service, every_minute())
    sweep(service, START + timedelta(minutes=1, seconds=5))
    [task] = tasks_of(service, schedule["scheduleId"])
    stack.run_stream()
    events = client.http.get(f"/jobs/{task.id}/events", headers=auth("alice")).json_body
    assert [(e["status"], e["by"]) for e in events["events"]] == [("submitted", "schedule")]


def test_the_task_id_of_a_fire_depends_on_the_schedule_and_time_only():
    moment = START + timedelta(minutes=1)
    assert fire_id("sch_a", moment) == fire_id("sch_a", moment)
    assert fire_id("sch_a", moment) != fire_id("sch_b", moment)
    assert fire_id("sch_a", moment) != fire_id("sch_a", moment + timedelta(minutes=1))


def test_each_interval_fires_once_as_the_sweep_runs_each_minute(client, service):
    schedule = created(client, service, every_minute(overlap="allow"))
    for minute in range(1, 6):
        sweep(service, START + timedelta(minutes=minute, seconds=3))
    assert fired_times(service, schedule) == [START + timedelta(minutes=m) for m in range(1, 6)]


def test_a_paused_schedule_does_not_fire_and_shows_no_next_runs(client, service):
    schedule = created(client, service, every_minute(paused=True))
    assert schedule["nextRuns"] == []
    assert sweep(service, START + timedelta(minutes=5)) == 0


def test_pausing_stops_the_fires_and_resuming_starts_from_now_without_catching_up(client, service):
    schedule = created(client, service, every_minute(overlap="allow", catchUp="all"))
    path = f"/schedules/{schedule['scheduleId']}"
    at(service, START + timedelta(seconds=30))
    paused = client.http.patch(path, headers=auth("alice"), body=json.dumps({"paused": True}))
    assert paused.status_code == 200, paused.body
    assert sweep(service, START + timedelta(minutes=10)) == 0
    at(service, START + timedelta(minutes=10, seconds=30))
    resumed = client.http.patch(path, headers=auth("alice"), body=json.dumps({"paused": False}))
    assert resumed.json_body["nextRuns"][0] == "2026-12-07T10:11:00Z"
    sweep(service, START + timedelta(minutes=11, seconds=5))
    assert fired_times(service, schedule) == [START + timedelta(minutes=11)]


def test_a_patch_with_a_bad_cron_is_a_422_and_changes_nothing(client, service):
    schedule = created(client, service, every_minute())
    path = f"/schedules/{schedule['scheduleId']}"
    response = client.http.patch(path, headers=auth("alice"), body=json.dumps({"cron": "* *"}))
    assert response.status_code == 422
    assert response.json_body["error"]["errors"][0]["field"] == "body.cron"
    assert client.http.get(path, headers=auth("alice")).json_body["rate"] == "1 minute"


@pytest.mark.parametrize("body", [{"cron": None}, {"rate": None}, {"cron": None, "rate": None}])
def test_a_patch_that_leaves_no_recurrence_is_a_422_and_changes_nothing(client, service, body):
    schedule = created(client, service, every_minute())
    path = f"/schedules/{schedule['scheduleId']}"
    response = client.http.patch(path, headers=auth("alice"), body=json.dumps(body))
    assert response.status_code == 422, response.json_body
    assert client.http.get(path, headers=auth("alice")).json_body["rate"] == "1 minute"


def test_a_patch_to_a_cron_replaces_the_rate(client, service):
    schedule = created(client, service, every_minute())
    path = f"/schedules/{schedule['scheduleId']}"
    body = json.dumps({"cron": "0 12 * * *", "timezone": "Europe/Berlin"})
    changed = client.http.patch(path, headers=auth("alice"), body=body).json_body
    assert (changed["cron"], changed["rate"]) == ("0 12 * * *", None)
    assert changed["nextRuns"][0] == "2026-12-07T11:00:00Z"


# -- overlap --------------------------------------------------------------------------------


def test_overlap_skip_skips_a_fire_while_the_previous_task_runs(client, service):
    schedule = created(client, service, every_minute(overlap="skip"))
    sweep(service, START + timedelta(minutes=1, seconds=1))
    sweep(service, START + timedelta(minutes=2, seconds=1))
    assert fired_times(service, schedule) == [START + timedelta(minutes=1)]
    shown = client.http.get(f"/schedules/{schedule['scheduleId']}", headers=auth("alice"))
    assert shown.json_body["lastRun"]["outcome"] == "skipped"
    assert shown.json_body["skipped"] == 1


def test_overlap_skip_counts_each_fire_it_skips_and_shows_the_latest(client, service):
    schedule = created(client, service, every_minute(overlap="skip", catchUp="all"))
    sweep(service, START + timedelta(minutes=1, seconds=1))
    sweep(service, START + timedelta(minutes=5, seconds=1))  # 2, 3, 4 and 5 while 1 runs
    assert fired_times(service, schedule) == [START + timedelta(minutes=1)]
    shown = client.http.get(f"/schedules/{schedule['scheduleId']}", headers=auth("alice"))
    assert shown.json_body["skipped"] == 4
    assert shown.json_body["lastRun"]["scheduledFor"] == "2026-12-07T10:05:00Z"


def test_overlap_skip_fires_again_once_the_previous_task_finished(client, service):
    schedule = created(client, service, every_minute(overlap="skip"))
    sweep(service, START + timedelta(minutes=1, seconds=1))
    [first] = tasks_of(service, schedule["scheduleId"])
    end(service, first.id)
    sweep(service, START + timedelta(minutes=2, seconds=1))
    assert fired_times(service, schedule) == [START + timedelta(minutes=m) for m in (1, 2)]


def test_overlap_queue_holds_a_fire_until_the_previous_task_finished(client, service):
    schedule = created(client, service, every_minute(overlap="queue"))
    sweep(service, START + timedelta(minutes=1, seconds=1))
    sweep(service, START + timedelta(minutes=2, seconds=1))
    sweep(service, START + timedelta(minutes=3, seconds=1))
    assert fired_times(service, schedule) == [START + timedelta(minutes=1)]
    [first] = tasks_of(service, schedule["scheduleId"])
    end(service, first.id)
    sweep(service, START + timedelta(minutes=3, seconds=30))
    # The held fire runs with its own time; the next one waits in turn behind it.
    assert fired_times(service, schedule) == [START + timedelta(minutes=m) for m in (1, 2)]
    second = next(t for t in tasks_of(service, schedule["scheduleId"]) if t.id != first.id)
    end(service, second.id)
    sweep(service, START + timedelta(minutes=3, seconds=40))
    assert fired_times(service, schedule) == [START + timedelta(minutes=m) for m in (1, 2, 3)]


def test_overlap_allow_fires_while_the_previous_task_runs(client, service):
    schedule = created(client, service, every_minute(overlap="allow"))
    sweep(service, START + timedelta(minutes=1, seconds=1))
    sweep(service, START + timedelta(minutes=2, seconds=1))
    assert len(fired_times(service, schedule)) == 2


# -- catch-up after downtime ---------------------------------------------------------------


def down_an_hour(client, service, catch_up: str) -> dict:
    schedule = created(client, service, every_minute(overlap="allow", catchUp=catch_up))
    sweep(service, START + timedelta(hours=1, seconds=10))
    return schedule


def test_catch_up_none_fires_only_the_fire_that_is_on_time(client, service):
    schedule = down_an_hour(client, service, "none")
    assert fired_times(service, schedule) == [START + timedelta(hours=1)]


def test_catch_up_latest_fires_the_newest_missed_time_once(client, service):
    schedule = created(
        client,
        service,
        {**every_minute(overlap="allow"), "rate": "10 minutes", "catchUp": "latest"},
    )
    sweep(service, START + timedelta(minutes=55))
    assert fired_times(service, schedule) == [START + timedelta(minutes=50)]


def test_catch_up_all_fires_the_missed_times_up_to_its_bound(client, service):
    schedule = down_an_hour(client, service, "all")
    times = fired_times(service, schedule)
    assert times == [START + timedelta(minutes=m) for m in range(51, 61)]


def test_a_fire_missed_by_more_than_its_grace_with_catch_up_none_is_shown_missed_and_skipped(
    client, service
):
    hourly = {**every_minute(overlap="allow"), "rate": "1 hour", "catchUp": "none"}
    schedule = created(client, service, hourly)
    sweep(service, START + timedelta(hours=1, seconds=10))  # on time: fires
    sweep(service, START + timedelta(hours=3, minutes=10))  # 2 h and 3 h both 10 min late
    assert fired_times(service, schedule) == [START + timedelta(hours=1)]
    shown = client.http.get(f"/schedules/{schedule['scheduleId']}", headers=auth("alice"))
    assert shown.json_body["lastRun"]["outcome"] == "missed"
    assert (shown.json_body["fired"], shown.json_body["skipped"]) == (1, 2)


def test_after_catching_up_the_schedule_fires_on_its_next_time(client, service):
    schedule = down_an_hour(client, service, "all")
    shown = client.http.get(f"/schedules/{schedule['scheduleId']}", headers=auth("alice"))
    assert shown.json_body["nextRuns"][0] == "2026-12-07T11:01:00Z"


def test_a_schedule_with_a_last_run_matches_its_documented_schema(client, service):
    from chalicelib.contracts.schedules import ScheduleDocument

    schedule = created(client, service, every_minute())
    sweep(service, START + timedelta(minutes=1, seconds=1))
    shown = client.http.get(f"/schedules/{schedule['scheduleId']}", headers=auth("alice"))
    document = ScheduleDocument.model_validate(shown.json_body)
    assert document.lastRun is not None and document.lastRun.outcome == "fired"
    assert document.model_dump(mode="json") == shown.json_body


def test_a_schedule_that_can_no_longer_be_read_does_not_stop_the_others(client, service, stack):
    broken = created(client, service, every_minute())
    working = created(client, service, every_minute())
    key = {"pk": {"S": "schedule#5:alice"}, "sk": {"S": broken["scheduleId"]}}
    stack.ddb.update_item(
        TableName=service.settings.records_table,
        Key=key,
        UpdateExpression="SET #zone = :gone",
        ExpressionAttributeNames={"#zone": "timezone"},
        ExpressionAttributeValues={":gone": {"S": "Atlantis/Capital"}},
    )
    assert sweep(service, START + timedelta(minutes=1, seconds=1)) == 1
    assert fired_times(service, working) == [START + timedelta(minutes=1)]


# -- a retried create: Idempotency-Key ----------------------------------------------------------


def create_with_key(client, body: dict, key: str, user: str = "alice"):
    headers = {**auth(user), "Idempotency-Key": key}
    return client.http.post("/schedules", headers=headers, body=json.dumps(body))


def test_a_create_retried_after_a_lost_answer_makes_one_schedule(client, service):
    at(service, START)
    first = create_with_key(client, every_minute(), "nightly-1")
    again = create_with_key(client, every_minute(), "nightly-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json_body["scheduleId"] == first.json_body["scheduleId"]
    listed = client.http.get("/schedules", headers=auth("alice")).json_body["schedules"]
    assert len(listed) == 1


def test_a_key_used_with_another_schedule_is_a_422_and_changes_nothing(client, service):
    at(service, START)
    create_with_key(client, every_minute(), "nightly-1")
    other = create_with_key(client, every_minute(input={"seconds": 1}), "nightly-1")
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json_body["error"]["message"]
    listed = client.http.get("/schedules", headers=auth("alice")).json_body["schedules"]
    assert [s["input"] for s in listed] == [{"seconds": 0}]


def test_one_key_of_two_owners_makes_two_schedules(client, service):
    at(service, START)
    alices = create_with_key(client, every_minute(), "nightly-1")
    bobs = create_with_key(client, every_minute(), "nightly-1", user="bob")
    assert (alices.status_code, bobs.status_code) == (201, 201)
    assert alices.json_body["scheduleId"] != bobs.json_body["scheduleId"]


def test_a_retried_create_at_the_schedule_limit_still_answers_its_schedule(
    client, service, monkeypatch
):
    monkeypatch.setattr(service, "settings", replace(service.settings, max_schedules_per_owner=1))
    at(service, START)
    first = create_with_key(client, every_minute(), "nightly-1")
    assert create_with_key(client, every_minute(), "nightly-1").status_code == 200
    assert create_with_key(client, every_minute(), "nightly-2").status_code == 409
    assert first.status_code == 201
