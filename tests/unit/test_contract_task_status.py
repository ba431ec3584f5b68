"""Seed 004, task status: `/task-status/{task_id}` and `/task-status[?operation=]`."""

import pytest

from chalicelib.model import Status
from tests.conftest import auth
from tests.unit.tasks import stored_task

# Seed 004's TaskStatus, with values of the documented types.
SEED_TASK_STATUS = {
    "task_id": "string",
    "operation": "string",
    "status": "string",
    "progress": {"current": 1, "total": 2, "message": "string"},
    "result": None,  # any
    "error": "string",
    "created_at": 1,
    "updated_at": 1,
}
SEED_STATUSES = {"started", "processing", "error", "completed", "completed_with_errors", "failed"}
EXPECTED_STATUS = {
    Status.SUBMITTED: "started",
    Status.STARTED: "started",
    Status.PROCESSING: "processing",
    Status.RETRYING: "processing",
    Status.ERROR: "error",
    Status.COMPLETED: "completed",
    Status.COMPLETED_WITH_ERRORS: "completed_with_errors",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}


def get(client, path, user="alice"):
    return client.http.get(path, headers=auth(user))


def assert_task_status(body):
    for key, value in body.items():
        assert key in SEED_TASK_STATUS, key
        if key != "result":
            assert isinstance(value, type(SEED_TASK_STATUS[key])), key
    assert {"task_id", "operation", "status", "created_at", "updated_at"} <= set(body)
    assert body["status"] in SEED_STATUSES


@pytest.mark.parametrize("status", list(Status))
def test_every_status_maps_to_a_seed_status(client, service, status):
    task = stored_task(service, status)
    response = get(client, f"/task-status/{task.id}")
    assert response.status_code == 200
    body = response.json_body
    assert_task_status(body)
    assert body["status"] == EXPECTED_STATUS[status]
    assert body["created_at"] == int(task.created_at.timestamp())
    assert response.headers["X-Request-Id"]


def test_a_processing_task_includes_progress(client, service):
    body = get(client, f"/task-status/{stored_task(service, Status.PROCESSING).id}").json_body
    assert body["progress"] == {"current": 2, "total": 5, "message": "working"}


def test_a_completed_task_includes_its_result(client, service):
    body = get(client, f"/task-status/{stored_task(service, Status.COMPLETED).id}").json_body
    assert body["result"] == {"pages": 3}


def test_a_failed_task_includes_its_error(client, service):
    body = get(client, f"/task-status/{stored_task(service, Status.FAILED).id}").json_body
    assert body["error"] == "Failed to process document: insufficient memory"


def test_all_tasks_is_a_bare_array_newest_first(client, service):
    ids = [stored_task(service, Status.SUBMITTED).id for _ in range(3)]
    response = get(client, "/task-status")
    assert isinstance(response.json_body, list)
    assert [t["task_id"] for t in response.json_body] == list(reversed(ids))
    for body in response.json_body:
        assert_task_status(body)


def test_tasks_by_operation_only_lists_that_operation(client, service):
    sleep = stored_task(service, Status.COMPLETED, type="demo/sleep")
    stored_task(service, Status.COMPLETED, type="image/watermark")
    body = get(client, "/task-status?operation=demo/sleep").json_body
    assert [t["task_id"] for t in body] == [sleep.id]


def test_long_lists_page_with_a_cursor_header(client, service):
    ids = [stored_task(service, Status.SUBMITTED).id for _ in range(5)]
    seen, path = [], "/task-status?limit=2"
    for _ in range(5):
        response = get(client, path)
        seen += [t["task_id"] for t in response.json_body]
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            break
        assert 'rel="next"' in response.headers["Link"]
        path = f"/task-status?limit=2&cursor={cursor}"
    assert seen == list(reversed(ids))


def test_another_users_task_is_not_found(client, service):
    task = stored_task(service, Status.COMPLETED, owner="alice")
    assert get(client, f"/task-status/{task.id}", user="bob").status_code == 404


def test_another_users_tasks_never_appear_in_lists(client, service):
    stored_task(service, Status.COMPLETED, owner="alice")
    assert get(client, "/task-status", user="bob").json_body == []
    assert get(client, "/task-status?operation=demo/sleep", user="bob").json_body == []


@pytest.mark.parametrize("task_id", ["not-a-uuid", "x" * 300])
def test_malformed_and_over_long_ids_are_400(client, task_id):
    response = get(client, f"/task-status/{task_id}")
    assert response.status_code == 400
    assert "task_id" in response.json_body["error"]["message"]


def test_an_unknown_operation_is_400(client):
    response = get(client, "/task-status?operation=video/transcode")
    assert response.status_code == 400
    assert "daily_sales" not in response.json_body["error"]["message"]
    assert "demo/sleep" in response.json_body["error"]["message"]


def test_a_bad_cursor_is_400(client):
    assert get(client, "/task-status?cursor=forged.cursor").status_code == 400


def test_a_cursor_of_another_operation_is_400(client, service):
    for _ in range(3):
        stored_task(service, Status.SUBMITTED)
    cursor = get(client, "/task-status?limit=1").headers["X-Next-Cursor"]
    assert get(client, f"/task-status?operation=demo/sleep&cursor={cursor}").status_code == 400
