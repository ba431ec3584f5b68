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
# transflow's type (src/core/types.ts, in every version that has it): `ok?: "ASSEMBLY_COMPLETED"`.
EXPECTED_OK = {
    Status.SCHEDULED: None,
    Status.SUBMITTED: None,
    Status.STARTED: None,
    Status.PROCESSING: None,
    Status.ERROR: None,
    Status.RETRYING: None,
    Status.COMPLETED: "ASSEMBLY_COMPLETED",
    Status.COMPLETED_WITH_ERRORS: "ASSEMBLY_COMPLETED",
    Status.CANCELLED: None,
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
    unknown = set() if EXPECTED_OK[status] else {"ok"}  # omitted, not null
    unknown |= {"execution_duration"} if status is Status.SUBMITTED else set()
    assert set(body) >= SEED_ASSEMBLY_KEYS - unknown
    assert body["assembly_id"] == task.id
    assert body.get("ok") == EXPECTED_OK[status]
    assert isinstance(body["uploads"], list) and isinstance(body["results"], dict)
    assert isinstance(body["message"], str) and body["message"]


def test_a_failed_assembly_sets_error_and_its_reason(invoke, service):
    """The origin: 'a failed one `error: "PROCESSING_ERROR"`-style code with `message`'."""
    task = stored_task(service, Status.FAILED)
    _, body = invoke({"assemblyId": task.id})
    assert body["error"] == "PROCESSING_ERROR"
    assert body["message"] == "Failed to process document: insufficient memory"


def test_a_running_assembly_says_its_state_and_progress(invoke, service):
    _, body = invoke({"assemblyId": stored_task(service, Status.PROCESSING).id})
    assert "processing" in body["message"] and "2/5" in body["message"]
    assert body["progress_combined"] == 40


def test_a_completed_assembly_keeps_the_processors_result_outside_results(invoke, service):
    """The origin: 'a processor's JSON result goes elsewhere ... never as a non-array value
    inside `results`'."""
    _, body = invoke({"assemblyId": stored_task(service, Status.COMPLETED, **with_objects()).id})
    assert body["result"] == {"pages": 3}
    assert isinstance(body["execution_duration"], float)


def test_another_users_assembly_is_the_origins_403(invoke, service):
    """The origin: '403 `{"error": "Access denied: You don't own this assembly"}`'."""
    code, body = invoke(
        {"assemblyId": stored_task(service, Status.COMPLETED, owner="alice").id, "userId": "bob"}
    )
    assert code == 403
    assert body == {"error": "Access denied: You don't own this assembly"}


@pytest.mark.parametrize(
    "assembly_id", ["00000000-0000-4000-8000-000000000000", "abc123", "x" * 100, "ASSEMBLY-1"]
)
def test_an_unknown_assembly_of_any_format_is_the_origins_404(invoke, assembly_id):
    """The origin: '404 `{"error": "Assembly not found", "assembly_id": <id>}` ... An id that is
    not one of ours (any format) is 404, not 400.'"""
    code, body = invoke({"assemblyId": assembly_id})
    assert code == 404
    assert body == {"error": "Assembly not found", "assembly_id": assembly_id}


@pytest.mark.parametrize(
    "event", ["not an object", ["assemblyId"], None, {}, {"assemblyId": ""}, {"assemblyId": 42}]
)
def test_a_missing_assembly_id_is_the_origins_400(invoke, event):
    """The origin: 'Error bodies are the origin's: 400 `{"error": "assemblyId is required"}`'."""
    code, body = invoke(event)
    assert code == 400
    assert body == {"error": "assemblyId is required"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"triggerWebhook": "yes"}, "triggerWebhook must be true or false"),
        ({"triggerWebhook": 3}, "triggerWebhook must be true or false"),
        ({"userId": 7}, "userId must be a string"),
    ],
)
def test_other_bad_events_are_400_in_the_origins_shape(invoke, service, extra, message):
    task = stored_task(service, Status.COMPLETED)
    code, body = invoke({"assemblyId": task.id, **extra})
    assert (code, body) == (400, {"error": message})


def test_a_store_failure_is_the_origins_500(invoke, monkeypatch):
    """The origin: '500 `{"error": "Failed to fetch assembly status", "message": ...}`'."""

    def broken(self, task_id, now):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "GetItem")

    monkeypatch.setattr(TaskStore, "get", broken)
    code, body = invoke({"assemblyId": "00000000-0000-4000-8000-000000000000"})
    assert code == 500
    assert body["error"] == "Failed to fetch assembly status" and "boom" in body["message"]


UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
EVERY_ANSWER = {
    "found": lambda task: {"assemblyId": task.id},
    "not an object": lambda task: ["a list"],
    "refused": lambda task: {"assemblyId": task.id, "n": float("nan")},
    "no id": lambda task: {},
    "bad userId": lambda task: {"assemblyId": task.id, "userId": 7},
    "bad triggerWebhook": lambda task: {"assemblyId": task.id, "triggerWebhook": "maybe"},
    "not found": lambda task: {"assemblyId": UNKNOWN_ID},
    "forbidden": lambda task: {"assemblyId": task.id, "userId": "bob"},
}


@pytest.mark.parametrize("event_of", EVERY_ANSWER.values(), ids=EVERY_ANSWER)
def test_every_answer_carries_the_invocations_request_id(stack, service, event_of):
    from local.events import LambdaContext

    task = stored_task(service, Status.COMPLETED, owner="alice")
    context = LambdaContext("status")
    response = stack.app.status(event_of(task), context)
    assert response["headers"]["X-Request-Id"] == context.aws_request_id


def test_an_answer_without_a_request_id_has_no_request_id_header(service):
    from chalicelib.contracts.assembly import handle

    task = stored_task(service, Status.COMPLETED)
    response = handle(service, lambda task: "msg_x", {"assemblyId": task.id}, user=None)
    assert "X-Request-Id" not in response["headers"]


def test_a_query_without_trigger_webhook_triggers_none(invoke, service, stack):
    task = stored_task(service, Status.COMPLETED, webhook=Webhook(url="http://127.0.0.1:9/hook"))
    code, body = invoke({"assemblyId": task.id})
    assert code == 200 and "webhook" not in body


def test_a_failure_to_sign_the_links_is_the_origins_500(invoke, service, monkeypatch):
    from chalicelib.contracts import assembly

    def broken(task, link):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "Sign")

    monkeypatch.setattr(assembly, "view", broken)
    task = stored_task(service, Status.COMPLETED)
    code, body = invoke({"assemblyId": task.id})
    assert (code, body["error"]) == (500, "Failed to fetch assembly status")
    assert "boom" in body["message"]


def test_an_empty_user_id_is_treated_as_absent(invoke, service):
    """The origin: '`userId: ""` is treated as absent.'"""
    task = stored_task(service, Status.COMPLETED, owner="alice")
    code, _ = invoke({"assemblyId": task.id, "userId": ""})
    assert code == 200


@pytest.mark.parametrize("flag", [True, "true"])
def test_trigger_webhook_accepts_true_and_the_string_true(invoke, service, flag):
    """The origin: '`triggerWebhook` accepts `true`/`"true"`.'"""
    task = stored_task(service, Status.COMPLETED)
    code, body = invoke({"assemblyId": task.id, "triggerWebhook": flag})
    assert code == 200 and body["webhook"]["triggered"] is False


def test_trigger_webhook_without_a_webhook_says_so(invoke, service):
    _, body = invoke(
        {"assemblyId": stored_task(service, Status.COMPLETED).id, "triggerWebhook": True}
    )
    assert body["webhook"] == {
        "triggered": False,
        "message": "no webhook is configured for this job",
    }


def test_trigger_webhook_of_an_unfinished_assembly_says_it_has_not_finished(invoke, service):
    task = stored_task(service, Status.PROCESSING, webhook=Webhook(url="http://127.0.0.1:9/hook"))
    _, body = invoke({"assemblyId": task.id, "triggerWebhook": True})
    assert body["webhook"] == {
        "triggered": False,
        "message": "the job is processing: its webhook is sent when it finishes; "
        "ask again after that",
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


def test_rest_an_id_that_is_not_ours_is_404(client):
    response = client.http.get("/assemblies/nope", headers=auth())
    assert response.status_code == 404
    assert response.json_body == {"error": "Assembly not found", "assembly_id": "nope"}


def test_rest_bad_trigger_flag_is_400(client, service):
    task = stored_task(service, Status.COMPLETED)
    assert (
        client.http.get(f"/assemblies/{task.id}?triggerWebhook=maybe", headers=auth()).status_code
        == 400
    )


# -- what the origin's clients read ----------------------------------------------------------------

FILE_FIELDS = {"id", "name", "basename", "ext", "size", "mime", "ssl_url"}


def put_objects(stack, task_fields):
    for ref in (task_fields["source"], task_fields["target"]):
        stack.s3.put_object(
            Bucket=ref.bucket, Key=ref.key, Body=b"x" * 2048, ContentType="image/png"
        )


def test_results_values_are_arrays_of_file_objects(invoke, service, stack):
    """The origin: '`results` is `Record<string, Array<File>>`: every value an array of file
    objects with at least `id`, `name`, `basename`, `ext`, `size`, `mime`, `ssl_url` (the
    example page does `results.map` and `(file.size/1024)`)'."""
    fields = with_objects()
    put_objects(stack, fields)
    _, body = invoke({"assemblyId": stored_task(service, Status.COMPLETED, **fields).id})
    assert body["results"]
    for files in body["results"].values():
        assert isinstance(files, list) and files
        for file in files:
            assert set(file) >= FILE_FIELDS
            assert file["size"] / 1024 == 2.0
    [target] = body["results"]["target"]
    assert (target["name"], target["basename"], target["ext"]) == (
        "document.png",
        "document",
        "png",
    )
    assert target["mime"] == "image/png" and "X-Amz-Signature" in target["ssl_url"]


def test_uploads_items_have_the_same_file_fields(invoke, service, stack):
    """The origin: '`uploads[]` items have the same file fields.'"""
    fields = with_objects()
    put_objects(stack, fields)
    _, body = invoke({"assemblyId": stored_task(service, Status.PROCESSING, **fields).id})
    [upload] = body["uploads"]
    assert set(upload) >= FILE_FIELDS and upload["name"] == "document.pdf"


def test_a_missing_object_is_left_out_rather_than_listed_without_a_size(invoke, service):
    _, body = invoke({"assemblyId": stored_task(service, Status.COMPLETED, **with_objects()).id})
    assert body["results"] == {} and body["uploads"] == []


def test_a_cancelled_assembly_carries_a_truthy_error(invoke, service):
    """The origin: 'Polling clients stop on `ok === "ASSEMBLY_COMPLETED"` or a truthy `error`: a
    cancelled assembly must carry a truthy `error` (e.g. `"ASSEMBLY_CANCELED"`)'."""
    _, body = invoke({"assemblyId": stored_task(service, Status.CANCELLED).id})
    assert body["error"] == "ASSEMBLY_CANCELED"
    assert body["message"] == "The assembly was cancelled."


# -- `ok` within the origin's type; transflow HEAD's step fields -----------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_ok_never_takes_a_value_outside_the_origins_type(invoke, service, status):
    """Closed gap: '`ok` takes values outside the origin's type for running and cancelled tasks:
    check what its consumers switch on and serve a value they handle'. The type is
    `ok?: "ASSEMBLY_COMPLETED"`; the Uploader polls `if (assembly.ok === "ASSEMBLY_COMPLETED" ||
    assembly.error)`, the example page's StatusBadge shows Error on `error`, Completed on
    `status === "ASSEMBLY_COMPLETED"`, Processing otherwise."""
    _, body = invoke({"assemblyId": stored_task(service, status).id})
    assert body.get("ok") in (None, "ASSEMBLY_COMPLETED")
    assert "ok" in body or status not in (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)


def test_a_cancelled_assembly_leaves_ok_out_and_stops_the_poller(invoke, service):
    _, body = invoke({"assemblyId": stored_task(service, Status.CANCELLED).id})
    assert "ok" not in body
    assert body["error"]  # `assembly.ok === "ASSEMBLY_COMPLETED" || assembly.error` stops polling


@pytest.mark.parametrize("status", [Status.SUBMITTED, Status.STARTED, Status.PROCESSING])
def test_a_running_assembly_leaves_ok_out_and_keeps_the_poller_going(invoke, service, status):
    _, body = invoke({"assemblyId": stored_task(service, status).id})
    assert "ok" not in body and "error" not in body


def test_a_running_assembly_has_the_origins_step_fields(invoke, service):
    """Closed gap: '`progress_pct`, `current_step`, `steps_total` are missing, so the HEAD
    example page shows 0 % while a task runs'. The page: `if (typeof a.progress_pct ===
    "number") return a.progress_pct;` and `a.current_step && a.steps_total ? Step
    ${a.current_step} of ${a.steps_total}: ${a.current_step_name || "Processing"}`; the
    origin's handler writes `progress_pct` as `Math.floor((stepIndex / totalSteps) * 100)`."""
    _, body = invoke({"assemblyId": stored_task(service, Status.PROCESSING).id})  # 2 of 5
    assert body["progress_pct"] == 40
    assert (body["current_step"], body["steps_total"]) == (2, 5)
    assert body["steps_completed"] == 2 and body["current_step_name"] == "working"


def test_progress_pct_is_floored_as_the_origin_computes_it(invoke, service):
    from chalicelib.model import Progress

    task = stored_task(service, Status.PROCESSING, progress=Progress(2, 3, "two of three"))
    _, body = invoke({"assemblyId": task.id})
    assert body["progress_pct"] == 66  # Math.floor(66.67); progress_combined rounds to 67


def test_an_assembly_without_progress_is_at_zero_percent_without_step_fields(invoke, service):
    """The origin writes `progress_pct: 0` when processing starts; the page then shows the
    `message`, since `a.current_step && a.steps_total` is falsy."""
    _, body = invoke({"assemblyId": stored_task(service, Status.SUBMITTED).id})
    assert body["progress_pct"] == 0
    assert not {"current_step", "steps_total", "steps_completed"} & set(body)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_a_finished_assembly_is_at_100_percent(invoke, service, status):
    """The origin sets `progress_pct: 100` on completion and on failure alike."""
    _, body = invoke({"assemblyId": stored_task(service, status).id})
    assert body["progress_pct"] == 100


# -- how long `ssl_url` lives ----------------------------------------------------------------------


def completed_with_files(service, stack):
    fields = with_objects()
    put_objects(stack, fields)
    return stored_task(service, Status.COMPLETED, **fields)


def test_ssl_url_lives_as_long_as_presigning_allows(invoke, service, stack):
    """Closed gap: '003's `ssl_url` lives 1 h where transflow served non-expiring object URLs.
    Users store, mail and reopen these links.' The origin: `ssl_url: buildS3PublicUrl(bucket,
    key, region, endpoint)`, an object URL with no expiry; SigV4 presigning allows 7 days."""
    _, body = invoke({"assemblyId": completed_with_files(service, stack).id})
    [target] = body["results"]["target"]
    [upload] = body["uploads"]
    assert "X-Amz-Expires=604800" in target["ssl_url"]
    assert "X-Amz-Expires=604800" in upload["ssl_url"]


def test_ssl_url_lifetime_is_configurable(invoke, service, stack, container):
    container(assembly_url_expires_seconds=7200)
    _, body = invoke({"assemblyId": completed_with_files(service, stack).id})
    [target] = body["results"]["target"]
    assert "X-Amz-Expires=7200" in target["ssl_url"]


@pytest.mark.parametrize("status", [Status.SUBMITTED, Status.PROCESSING, Status.FAILED])
def test_unknown_optional_fields_are_omitted_not_null(invoke, service, status):
    """The origin: 'Optional fields that are unknown are omitted, not `null`.'"""
    _, body = invoke({"assemblyId": stored_task(service, status).id})
    assert None not in body.values()


def test_the_fields_the_origins_consumers_read_are_there(invoke, service):
    """The origin: 'Fields the origin's consumers read: `user: {userId}`, `execution_start`,
    `execution_duration`.'"""
    task = stored_task(service, Status.COMPLETED, owner="alice")
    _, body = invoke({"assemblyId": task.id})
    assert body["user"] == {"userId": "alice"}
    assert body["execution_start"] == task.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert isinstance(body["execution_duration"], float)


def test_a_completed_assemblys_progress_is_complete(invoke, service):
    """The origin: '`progress` on a completed task is complete (current = total), on every
    surface.'"""
    from chalicelib.model import Progress

    progress = Progress(current=2, total=5, message="working")
    _, body = invoke({"assemblyId": stored_task(service, Status.COMPLETED, progress=progress).id})
    assert body["progress"]["current"] == body["progress"]["total"] == 5


def test_rest_serves_the_origins_query_string_form(client, service):
    """The origin: 'The origin's REST variant is `GET /api/status-lambda?assemblyId=...` style:
    serve `GET /assemblies?assemblyId=` besides the path form.'"""
    task = stored_task(service, Status.COMPLETED)
    response = client.http.get(f"/assemblies?assemblyId={task.id}", headers=auth())
    assert response.status_code == 200 and response.json_body["assembly_id"] == task.id


def test_rest_query_form_without_an_id_is_the_origins_400(client):
    response = client.http.get("/assemblies", headers=auth())
    assert (response.status_code, response.json_body) == (400, {"error": "assemblyId is required"})


def test_rest_auth_failures_take_the_origins_error_shape(client, service):
    task = stored_task(service, Status.COMPLETED)
    for path in (f"/assemblies/{task.id}", f"/assemblies?assemblyId={task.id}"):
        response = client.http.get(path)
        assert response.status_code == 401
        assert response.json_body["error"] == "UNAUTHORIZED" and response.json_body["message"]


def test_a_transflow_webhook_is_signed_the_origins_way(client, stack):
    """The origin: 'Webhooks for this contract can be signed the origin's way:
    `X-Transflow-Signature: sha256=<hex HMAC of the body>` with the body the AssemblyStatus,
    when the task's webhook asks for that format'."""
    import hashlib
    import hmac

    from tests.receiver import Receiver
    from tests.unit.helpers import sleep_job, submit, webhook_secret

    hook = Receiver([200])
    try:
        job = {**sleep_job(), "webhook": {"url": hook.url, "format": "transflow"}}
        job_id = submit(client, job).json_body["jobId"]
        stack.settle()
        [delivery] = hook.deliveries
    finally:
        hook.close()
    secret = webhook_secret(client).encode()
    expected = hmac.new(secret, delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["x-transflow-signature"] == f"sha256={expected}"
    body = json.loads(delivery.body)
    assert body["assembly_id"] == job_id and body["ok"] == "ASSEMBLY_COMPLETED"


def test_standard_webhooks_stay_the_default(client, stack):
    from tests.receiver import Receiver
    from tests.unit.helpers import sleep_job, submit

    hook = Receiver([200])
    try:
        submit(client, {**sleep_job(), "webhook": {"url": hook.url}})
        stack.settle()
        [delivery] = hook.deliveries
    finally:
        hook.close()
    assert "x-transflow-signature" not in delivery.headers
    assert delivery.headers["webhook-signature"].startswith("v1,")


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
