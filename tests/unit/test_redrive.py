"""POST /jobs/redrive and POST /jobs/cancel: bulk retry and bulk cancel of your own jobs."""

import json
from datetime import timedelta

import pytest

from chalicelib import reruns
from chalicelib.model import Status, utcnow
from tests.conftest import auth
from tests.unit.tasks import stored_task


def post(client, path: str, body, user: str = "alice"):
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.http.post(path, headers=auth(user), body=raw)


def statuses(service, tasks) -> list[Status]:
    return [service.find(t.id).status for t in tasks]


@pytest.fixture
def scan_forbidden(monkeypatch):
    """Any Scan of the app's DynamoDB client fails the test."""
    from chalicelib import aws

    ddb = aws.client("dynamodb")

    def refuse(**kwargs):
        raise AssertionError("a bulk operation scanned the table")

    monkeypatch.setattr(ddb, "scan", refuse)


def test_a_redrive_resubmits_every_failed_job_of_the_caller(client, service, scan_forbidden):
    failed = [stored_task(service, Status.FAILED) for _ in range(3)]
    response = post(client, "/jobs/redrive", {"status": "failed"})
    assert response.status_code == 202
    body = response.json_body
    assert sorted(body["jobIds"]) == sorted(t.id for t in failed)
    assert (body["count"], body["skipped"], body["nextCursor"]) == (3, 0, None)
    assert statuses(service, failed) == [Status.SUBMITTED] * 3
    assert {service.find(t.id).retries for t in failed} == {1}


def test_a_redrive_of_failed_jobs_leaves_the_others(client, service):
    others = [stored_task(service, s) for s in (Status.CANCELLED, Status.COMPLETED, Status.STARTED)]
    post(client, "/jobs/redrive", {"status": "failed"})
    assert statuses(service, others) == [Status.CANCELLED, Status.COMPLETED, Status.STARTED]


def test_a_redrive_of_cancelled_jobs_takes_only_those(client, service):
    cancelled = stored_task(service, Status.CANCELLED)
    failed = stored_task(service, Status.FAILED)
    body = post(client, "/jobs/redrive", {"status": "cancelled"}).json_body
    assert body["jobIds"] == [cancelled.id]
    assert statuses(service, [cancelled, failed]) == [Status.SUBMITTED, Status.FAILED]


def test_a_dry_run_counts_and_changes_nothing(client, service):
    failed = [stored_task(service, Status.FAILED) for _ in range(2)]
    response = post(client, "/jobs/redrive", {"status": "failed", "dryRun": True})
    assert response.status_code == 200
    assert (response.json_body["dryRun"], response.json_body["count"]) == (True, 2)
    assert [service.find(t.id) for t in failed] == failed


def test_a_redrive_filters_by_type(client, service):
    mine = stored_task(service, Status.FAILED, type="demo/sleep")
    other = stored_task(service, Status.FAILED, type="image/watermark")
    body = post(client, "/jobs/redrive", {"status": "failed", "type": "demo/sleep"}).json_body
    assert body["jobIds"] == [mine.id]
    assert service.find(other.id).status is Status.FAILED


def test_a_redrive_filters_by_submission_time(client, service):
    old = stored_task(service, Status.FAILED, created_at=utcnow() - timedelta(days=2))
    recent = stored_task(service, Status.FAILED)
    since = (utcnow() - timedelta(days=1)).isoformat()
    body = post(client, "/jobs/redrive", {"status": "failed", "since": since}).json_body
    assert body["jobIds"] == [recent.id]
    until = post(client, "/jobs/redrive", {"status": "failed", "until": since}).json_body
    assert until["jobIds"] == [old.id]


def test_a_redrive_is_bounded_per_call_and_the_cursor_goes_on(client, service, monkeypatch):
    monkeypatch.setattr(reruns, "MAX_PER_CALL", 2)
    failed = [stored_task(service, Status.FAILED) for _ in range(5)]
    moved: list[str] = []
    body: dict = {"status": "failed"}
    calls = 0
    while True:
        answer = post(client, "/jobs/redrive", body).json_body
        calls += 1
        assert answer["count"] <= 2
        moved += answer["jobIds"]
        if answer["nextCursor"] is None:
            break
        body = {"status": "failed", "cursor": answer["nextCursor"]}
    assert sorted(moved) == sorted(t.id for t in failed)
    assert calls == 3


def test_a_redrive_skips_a_job_that_moved_since_the_index_was_read(service, monkeypatch):
    task = stored_task(service, Status.FAILED)
    selection = reruns.Selection(owner="alice", statuses=frozenset({Status.FAILED}))
    stale = reruns.select(service, selection, None)
    service.store.replace(task, reruns.retried(task, utcnow(), "api", 3600))  # retried meanwhile
    monkeypatch.setattr(reruns, "select", lambda *args: stale)  # the index's copy lags
    outcome = reruns.redrive(service, selection, None, dry_run=False)
    assert (outcome.job_ids, outcome.skipped) == ([], 1)
    assert service.find(task.id).retries == 1


def test_the_history_names_the_redrive_as_writer(client, service, stack):
    task = stored_task(service, Status.FAILED)
    post(client, "/jobs/redrive", {"status": "failed"})
    stack.run_stream()
    events = client.http.get(f"/jobs/{task.id}/events", headers=auth()).json_body["events"]
    assert (events[-1]["status"], events[-1]["by"]) == ("submitted", "redrive")


def test_bob_redriving_moves_nothing_of_alices(client, service):
    alices = [stored_task(service, Status.FAILED, owner="alice") for _ in range(2)]
    body = post(client, "/jobs/redrive", {"status": "failed"}, user="bob").json_body
    assert (body["count"], body["jobIds"]) == (0, [])
    assert [service.find(t.id) for t in alices] == alices


def test_bob_cannot_continue_alices_redrive_with_her_cursor(client, service, monkeypatch):
    monkeypatch.setattr(reruns, "MAX_PER_CALL", 1)
    alices = [stored_task(service, Status.FAILED, owner="alice") for _ in range(3)]
    cursor = post(client, "/jobs/redrive", {"status": "failed", "dryRun": True}).json_body[
        "nextCursor"
    ]
    response = post(client, "/jobs/redrive", {"status": "failed", "cursor": cursor}, user="bob")
    assert response.status_code == 400
    assert [service.find(t.id) for t in alices] == alices


def test_bob_bulk_cancelling_cancels_nothing_of_alices(client, service):
    alices = [stored_task(service, Status.SUBMITTED, owner="alice") for _ in range(2)]
    body = post(client, "/jobs/cancel", {}, user="bob").json_body
    assert body["jobIds"] == []
    assert [service.find(t.id) for t in alices] == alices


def test_a_bulk_cancel_cancels_every_unfinished_job_and_no_finished_one(client, service):
    unfinished = [stored_task(service, s) for s in (Status.SUBMITTED, Status.PROCESSING)]
    finished = [stored_task(service, s) for s in (Status.COMPLETED, Status.FAILED)]
    response = post(client, "/jobs/cancel", {})
    assert response.status_code == 200
    assert sorted(response.json_body["jobIds"]) == sorted(t.id for t in unfinished)
    assert statuses(service, unfinished) == [Status.CANCELLED] * 2
    assert statuses(service, finished) == [Status.COMPLETED, Status.FAILED]


def test_a_bulk_cancel_by_status_takes_only_that_status(client, service):
    submitted = stored_task(service, Status.SUBMITTED)
    running = stored_task(service, Status.PROCESSING)
    body = post(client, "/jobs/cancel", {"status": "submitted"}).json_body
    assert body["jobIds"] == [submitted.id]
    assert statuses(service, [submitted, running]) == [Status.CANCELLED, Status.PROCESSING]


def test_a_bulk_cancel_dry_run_changes_nothing(client, service):
    task = stored_task(service, Status.SUBMITTED)
    body = post(client, "/jobs/cancel", {"dryRun": True}).json_body
    assert (body["count"], body["jobIds"]) == (1, [task.id])
    assert service.find(task.id) == task


def test_the_history_names_the_bulk_cancel_as_writer(client, service, stack):
    task = stored_task(service, Status.SUBMITTED)
    post(client, "/jobs/cancel", {})
    stack.run_stream()
    events = client.http.get(f"/jobs/{task.id}/events", headers=auth()).json_body["events"]
    assert (events[-1]["status"], events[-1]["by"]) == ("cancelled", "bulk-cancel")


# -- bad input: a 4xx that says what to fix, and nothing moves ---------------------------


@pytest.fixture
def untouched(service):
    tasks = [stored_task(service, Status.FAILED), stored_task(service, Status.SUBMITTED)]
    yield
    assert [service.find(t.id) for t in tasks] == tasks


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/jobs/redrive", "[1]", "JSON object"),
        ("/jobs/redrive", "{", "JSON"),
        ("/jobs/redrive", {}, "status"),
        ("/jobs/redrive", {"status": "completed"}, "status"),
        ("/jobs/redrive", {"status": "failed", "type": "no spaces"}, "type"),
        ("/jobs/redrive", {"status": "failed", "since": "yesterday"}, "since"),
        ("/jobs/redrive", {"status": "failed", "since": "2026-01-01T00:00:00"}, "since"),
        (
            "/jobs/redrive",
            {"status": "failed", "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "since must not be later than until",
        ),
        ("/jobs/redrive", {"status": "failed", "dryrun": True}, "dryrun"),
        ("/jobs/redrive", {"status": "failed", "cursor": "forged.cursor"}, "cursor"),
        ("/jobs/cancel", {"status": "failed"}, "only unfinished"),
        ("/jobs/cancel", {"status": "sleeping"}, "status"),
    ],
    ids=[
        "not-an-object",
        "not-json",
        "no-status",
        "status-not-retryable",
        "bad-type",
        "since-not-a-date",
        "since-without-zone",
        "since-after-until",
        "unknown-field",
        "forged-cursor",
        "cancel-a-finished-status",
        "cancel-an-unknown-status",
    ],
)
def test_bad_bulk_input_is_a_4xx_naming_the_problem(client, untouched, path, body, named):
    response = post(client, path, body)
    assert 400 <= response.status_code < 500
    error = response.json_body["error"]
    assert named in json.dumps(error)


def test_a_cursor_of_another_filter_is_refused(client, service, monkeypatch, untouched):
    monkeypatch.setattr(reruns, "MAX_PER_CALL", 1)
    stored_task(service, Status.FAILED)
    cursor = post(client, "/jobs/redrive", {"status": "failed", "dryRun": True}).json_body[
        "nextCursor"
    ]
    response = post(client, "/jobs/redrive", {"status": "cancelled", "cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json_body["error"]["message"]
