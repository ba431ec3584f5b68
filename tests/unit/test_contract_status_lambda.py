"""Seed 003, the Status Lambda, invoked directly and over REST."""

import json

import pytest
from botocore.exceptions import ClientError

from chalicelib.model import Status, Webhook
from chalicelib.store import TaskStore
from tests.conftest import auth
from tests.unit.tasks import stored_task, with_objects

# The seed's success body, verbatim where it is concrete.
SEED_ASSEMBLY_KEYS = {
    "assembly_id",
    "ok",
    "message",
    "uploads",
    "results",
    "execution_duration",
    "created_at",
    "updated_at",
}
EXPECTED_OK = {
    Status.SUBMITTED: "ASSEMBLY_EXECUTING",
    Status.STARTED: "ASSEMBLY_EXECUTING",
    Status.PROCESSING: "ASSEMBLY_EXECUTING",
    Status.ERROR: "ASSEMBLY_EXECUTING",
    Status.RETRYING: "ASSEMBLY_EXECUTING",
    Status.COMPLETED: "ASSEMBLY_COMPLETED",
    Status.COMPLETED_WITH_ERRORS: "ASSEMBLY_COMPLETED",
    Status.CANCELLED: "ASSEMBLY_CANCELED",
    Status.FAILED: None,
}


@pytest.fixture
def invoke(stack):
    from local.events import LambdaContext

    def call(event):
        response = stack.app.status(event, LambdaContext("status"))
        assert set(response) == {"statusCode", "body", "headers"}
        assert isinstance(response["body"], str)
        return response["statusCode"], json.loads(response["body"])

    return call


@pytest.mark.parametrize("status", list(Status))
def test_every_status_maps_to_an_assembly_state(invoke, service, status):
    task = stored_task(service, status, **with_objects())
    code, body = invoke({"assemblyId": task.id, "userId": "alice"})
    assert code == 200
    assert set(body) >= SEED_ASSEMBLY_KEYS
    assert body["assembly_id"] == task.id
    assert body["ok"] == EXPECTED_OK[status]
    assert isinstance(body["uploads"], list) and isinstance(body["results"], dict)
    assert isinstance(body["message"], str) and body["message"]


def test_a_failed_assembly_sets_error_and_its_reason(invoke, service):
    task = stored_task(service, Status.FAILED)
    _, body = invoke({"assemblyId": task.id})
    assert body["error"] == "ASSEMBLY_FAILED"
    assert body["message"] == "Failed to process document: insufficient memory"


def test_a_running_assembly_says_its_state_and_progress(invoke, service):
    _, body = invoke({"assemblyId": stored_task(service, Status.PROCESSING).id})
    assert "processing" in body["message"] and "2/5" in body["message"]
    assert body["progress_combined"] == 40


def test_a_completed_assembly_lists_results_and_duration(invoke, service):
    _, body = invoke({"assemblyId": stored_task(service, Status.COMPLETED, **with_objects()).id})
    assert body["results"]["result"] == {"pages": 3}
    assert "X-Amz-Signature" in body["results"]["target"][0]["ssl_url"]
    assert isinstance(body["execution_duration"], float)


def test_another_users_assembly_is_403(invoke, service):
    code, body = invoke(
        {"assemblyId": stored_task(service, Status.COMPLETED, owner="alice").id, "userId": "bob"}
    )
    assert code == 403
    assert body["error"] == "FORBIDDEN"


def test_an_unknown_assembly_is_404(invoke):
    code, _ = invoke({"assemblyId": "00000000-0000-4000-8000-000000000000"})
    assert code == 404


@pytest.mark.parametrize(
    "event",
    [
        "not an object",
        ["assemblyId"],
        None,
        {},
        {"assemblyId": ""},
        {"assemblyId": 42},
        {"assemblyId": "abc123"},
        {"assemblyId": "x" * 500},
        {"assemblyId": "00000000-0000-4000-8000-000000000000", "triggerWebhook": "yes"},
        {"assemblyId": "00000000-0000-4000-8000-000000000000", "userId": 7},
    ],
)
def test_bad_events_are_400(invoke, event):
    code, body = invoke(event)
    assert code == 400
    assert body["error"] and body["message"]


def test_a_store_failure_is_500(invoke, monkeypatch):
    def broken(self, task_id, now):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "GetItem")

    monkeypatch.setattr(TaskStore, "get", broken)
    code, _ = invoke({"assemblyId": "00000000-0000-4000-8000-000000000000"})
    assert code == 500


def test_trigger_webhook_without_a_webhook_says_so(invoke, service):
    _, body = invoke(
        {"assemblyId": stored_task(service, Status.COMPLETED).id, "triggerWebhook": True}
    )
    assert body["webhook"] == {
        "triggered": False,
        "message": "no webhook is configured for this job",
    }


def test_trigger_webhook_queues_a_delivery(invoke, service, stack):
    task = stored_task(service, Status.COMPLETED, webhook=Webhook(url="http://127.0.0.1:9/hook"))
    _, body = invoke({"assemblyId": task.id, "triggerWebhook": True})
    assert body["webhook"]["triggered"] is True
    assert body["webhook"]["eventId"].startswith("msg_")


# -- over REST ----------------------------------------------------------------------


def test_rest_answers_with_the_lambda_body(client, service):
    task = stored_task(service, Status.COMPLETED)
    response = client.http.get(f"/assemblies/{task.id}", headers=auth("alice"))
    assert response.status_code == 200
    assert response.json_body["ok"] == "ASSEMBLY_COMPLETED"
    assert response.headers["X-Request-Id"]


def test_rest_always_checks_the_owner_from_the_token(client, service):
    task = stored_task(service, Status.COMPLETED, owner="alice")
    response = client.http.get(f"/assemblies/{task.id}?userId=alice", headers=auth("bob"))
    assert response.status_code == 403


def test_rest_needs_a_token(client, service):
    task = stored_task(service, Status.COMPLETED)
    assert client.http.get(f"/assemblies/{task.id}").status_code == 401


def test_rest_bad_id_is_400(client):
    assert client.http.get("/assemblies/nope", headers=auth()).status_code == 400


def test_rest_bad_trigger_flag_is_400(client, service):
    task = stored_task(service, Status.COMPLETED)
    assert (
        client.http.get(f"/assemblies/{task.id}?triggerWebhook=maybe", headers=auth()).status_code
        == 400
    )


def _nested(levels: int) -> dict:
    event: dict = {}
    inner = event
    for _ in range(levels):
        inner["x"] = {}
        inner = inner["x"]
    return event


@pytest.mark.parametrize(
    "extra",
    [{"nested": _nested(2000)}, {"meta": float("nan")}, {"n": float("inf")}],
    ids=["2000-levels", "nan", "infinity"],
)
def test_a_hostile_event_is_400(invoke, service, extra):
    task = stored_task(service, Status.COMPLETED)
    code, body = invoke({"assemblyId": task.id, **extra})
    assert code == 400
    assert body["error"]
