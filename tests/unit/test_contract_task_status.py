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
    Status.SCHEDULED: "started",
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
    assert body["result"]["pages"] == 3


# -- results as the origin standardised them -------------------------------------------------------
# The origin (src/websocket_manager.py, _standardize_result_format), applied to every result it
# stored or pushed:
#     success = status in ["completed", "completed_with_errors"]
#     standardized = {"success": success, "message": result.get("summary", "Operation completed")}
# Its dashboard's type: `interface TaskResult { success: boolean; message: string; ... }`, and its
# cards render `{task.result.message && <p>{task.result.message}</p>}`.


def result_of(client, service, status, result):
    task = stored_task(service, status, result=result)
    return get(client, f"/task-status/{task.id}").json_body["result"]


def test_a_result_without_success_or_message_gets_the_origins(client, service):
    """Closed gap: 'result cards are empty because results carry no `message`; the origin
    standardised results to `{success, message, ...}` (`_standardize_result_format`): do the
    same on this surface for results that lack them.'"""
    result = result_of(client, service, Status.COMPLETED, {"pages": 3})
    assert result == {"success": True, "message": "Operation completed", "pages": 3}


def test_the_message_is_the_results_summary_as_at_the_origin(client, service):
    summary = "Processed 12 of 12 stores"
    result = result_of(client, service, Status.COMPLETED, {"summary": summary})
    assert result == {"success": True, "message": summary, "summary": summary}


def test_a_result_of_a_task_completed_with_errors_is_a_success_as_at_the_origin(client, service):
    result = result_of(client, service, Status.COMPLETED_WITH_ERRORS, {"failed_stores": ["20400"]})
    assert result["success"] is True and result["failed_stores"] == ["20400"]


@pytest.mark.parametrize("status", [Status.FAILED, Status.ERROR, Status.PROCESSING])
def test_a_result_of_a_task_that_has_not_succeeded_is_not_a_success(client, service, status):
    assert result_of(client, service, status, {"partial": 1})["success"] is False


def test_a_results_own_success_and_message_are_kept(client, service):
    own = {"success": False, "message": "2 stores need a retry", "successful_stores": ["1"]}
    assert result_of(client, service, Status.COMPLETED, own) == own


def test_a_result_that_is_not_an_object_becomes_one(client, service):
    """TaskResult is always an object: a list is kept as `value`, a text is the message."""
    assert result_of(client, service, Status.COMPLETED, [1, 2]) == {
        "success": True,
        "message": "Operation completed",
        "value": [1, 2],
    }
    assert result_of(client, service, Status.COMPLETED, "generated by Dianshi") == {
        "success": True,
        "message": "generated by Dianshi",
        "value": "generated by Dianshi",
    }


def test_a_task_without_a_result_has_none(client, service):
    body = get(client, f"/task-status/{stored_task(service, Status.PROCESSING).id}").json_body
    assert "result" not in body


def test_the_websocket_push_carries_the_standardised_result(service):
    """The origin's push and its stored item carried the same standardised result."""
    import json

    from chalicelib.contracts.task_status import push_message

    task = stored_task(service, Status.COMPLETED, result={"pages": 3})
    payload = json.loads(push_message(task))["payload"]
    assert payload["result"] == {"success": True, "message": "Operation completed", "pages": 3}


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


@pytest.mark.parametrize("task_id", ["not~a~uuid", "x" * 300])
def test_malformed_and_over_long_ids_are_400(client, task_id):
    response = get(client, f"/task-status/{task_id}")
    assert response.status_code == 400
    assert response.json_body["error"].startswith("task_id must be ")


@pytest.mark.parametrize("operation", ["daily_sales", "invoice_sync", "video/transcode"])
def test_an_operation_without_tasks_is_an_empty_list(client, operation):
    """The origin: '`GET /task-status?operation=X` for an operation with no tasks (or no registered
    processor) is `200 []`, never an error; the origin's operations (`daily_sales`,
    `invoice_sync`, ...) are just names.'"""
    response = get(client, f"/task-status?operation={operation}")
    assert (response.status_code, response.json_body) == (200, [])


def test_a_bad_cursor_is_400(client):
    assert get(client, "/task-status?cursor=forged.cursor").status_code == 400


def test_a_cursor_of_another_operation_is_400(client, service):
    for _ in range(3):
        stored_task(service, Status.SUBMITTED)
    cursor = get(client, "/task-status?limit=1").headers["X-Next-Cursor"]
    assert get(client, f"/task-status?operation=demo/sleep&cursor={cursor}").status_code == 400


# -- what the origin's dashboard sends and reads ---------------------------------------------------


def backdate(service, task, hours):
    """Store the task as last updated `hours` ago."""
    from datetime import timedelta

    older = task.updated_at - timedelta(hours=hours)
    service.store._ddb.update_item(
        TableName=service.settings.tasks_table,
        Key={"id": {"S": task.id}},
        UpdateExpression="SET updated_at = :u, created_at = :u",
        ExpressionAttributeValues={":u": {"S": older.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
    )


def test_recent_lists_tasks_updated_in_the_last_hours_newest_first(client, service):
    """The origin: '`GET /task-status?recent=true&hours=H&limit=N` is how the dashboard loads its
    history: tasks updated in the last H hours, newest first, at most N'."""
    old = stored_task(service, Status.COMPLETED)
    backdate(service, old, hours=5)
    recent = [stored_task(service, Status.COMPLETED).id for _ in range(3)]
    body = get(client, "/task-status?recent=true&hours=2&limit=50").json_body
    assert [t["task_id"] for t in body] == list(reversed(recent))
    wider = get(client, "/task-status?recent=true&hours=6&limit=50").json_body
    assert old.id in [t["task_id"] for t in wider]


def test_recent_returns_at_most_limit_tasks(client, service):
    ids = [stored_task(service, Status.COMPLETED).id for _ in range(4)]
    body = get(client, "/task-status?recent=true&hours=1&limit=2").json_body
    assert [t["task_id"] for t in body] == list(reversed(ids))[:2]


def test_a_limit_up_to_1000_is_accepted_and_above_it_refused(client):
    """The origin: '(accept N up to 1000 on this route)'."""
    assert get(client, "/task-status?recent=true&hours=24&limit=1000").status_code == 200
    response = get(client, "/task-status?limit=1001")
    assert response.status_code == 400 and "1000" in response.json_body["error"]


@pytest.mark.parametrize("hours", ["0", "-1", "soon"])
def test_bad_hours_are_400(client, hours):
    response = get(client, f"/task-status?recent=true&hours={hours}")
    assert response.status_code == 400 and "hours" in response.json_body["error"]


def test_unknown_query_parameters_are_ignored(client, service):
    """The origin: 'Unknown query parameters on this surface are ignored, not refused.'"""
    task = stored_task(service, Status.COMPLETED)
    response = get(client, "/task-status?_=1718000000&tenant=acme&sort=desc")
    assert response.status_code == 200 and [t["task_id"] for t in response.json_body] == [task.id]


def test_without_limit_the_list_goes_well_past_one_page(client, service):
    """The origin: '`GET /task-status` without `limit` returns the caller's tasks up to a generous
    default (the client ignores paging headers)'."""
    for _ in range(120):
        stored_task(service, Status.SUBMITTED)
    response = get(client, "/task-status")
    assert len(response.json_body) == 120
    assert "X-Next-Cursor" not in response.headers


def test_a_cancelled_task_is_failed_with_a_cancellation_error(client, service):
    """The origin: 'A cancelled task shows `status: "failed"` with
    `error: "task was cancelled"`.'"""
    body = get(client, f"/task-status/{stored_task(service, Status.CANCELLED).id}").json_body
    assert (body["status"], body["error"]) == ("failed", "task was cancelled")


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.COMPLETED_WITH_ERRORS])
def test_a_completed_tasks_progress_is_complete(client, service, status):
    """The origin: '`progress` on a completed task is complete (current = total), on every
    surface.'"""
    from chalicelib.model import Progress

    task = stored_task(service, status, progress=Progress(current=3, total=7, message="m"))
    for path in (f"/task-status/{task.id}", f"/jobs/{task.id}", "/task-status"):
        body = get(client, path).json_body
        body = body[0] if isinstance(body, list) else body
        assert body["progress"]["current"] == body["progress"]["total"] == 7, path


def test_auth_failures_take_the_surfaces_error_shape(client):
    for path in ("/task-status", "/task-status/00000000-0000-4000-8000-000000000000"):
        response = client.http.get(path)
        assert response.status_code == 401 and set(response.json_body) == {"error"}
