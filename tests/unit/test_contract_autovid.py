"""Seed 002, auto-vid: `POST /submit` and `GET /status/{jobId}`, as the origin's clients use them.

Every test quotes the fact about the origin it holds the service to.
"""

import json
from datetime import datetime

import pytest
from standardwebhooks import Webhook

from chalicelib.model import Status
from tests.conftest import UNIT_ENV, auth
from tests.receiver import Receiver
from tests.unit.helpers import webhook_secret
from tests.unit.tasks import stored_task

ORIGIN_STATUSES = {"submitted", "processing", "completed", "failed", "retrying"}
EXPECTED_STATUS = {
    Status.SCHEDULED: "submitted",
    Status.SUBMITTED: "submitted",
    Status.STARTED: "processing",
    Status.PROCESSING: "processing",
    Status.ERROR: "processing",
    Status.RETRYING: "retrying",
    Status.COMPLETED: "completed",
    Status.COMPLETED_WITH_ERRORS: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}
# The origin's samples/production/00_api_demo_video.spec.json, shortened.
SPEC = {
    "jobInfo": {"projectId": "api_demo", "title": "API Test"},
    "assets": {
        "video": {"id": "main_video", "source": "s3://your-bucket-name/inputs/demo.mp4"},
        "audio": [{"id": "track", "source": "s3://your-bucket-name/assets/music/track.mp3"}],
    },
    "backgroundMusic": {"playlist": ["track"]},
    "timeline": [{"start": 4, "type": "tts", "data": {"text": "Welcome to Auto-Vid!"}}],
    "output": {"filename": "api_demo_video.mp4"},
}
JOB_FIELDS = {
    "jobId",
    "status",
    "submittedAt",
    "updatedAt",
    "completedAt",
    "processingTime",
    "output",
    "error",
    "jobInfo",
    "metadata",
}


def post(client, body, user="alice", raw=None, headers=None):
    payload = raw if raw is not None else json.dumps(body)
    return client.http.post("/submit", headers={**auth(user), **(headers or {})}, body=payload)


def assert_origin_error(response, status, message):
    assert response.status_code == status
    assert set(response.json_body) == {"error", "timestamp"}
    assert response.json_body["error"] == message
    datetime.fromisoformat(response.json_body["timestamp"].replace("Z", "+00:00"))


def test_an_auto_vid_spec_is_accepted_with_200_and_the_job_document(client, service):
    """The origin: '`POST /submit` accepts ... an auto-vid job spec (`jobInfo`, `assets`,
    `backgroundMusic`, `timeline`, `output`, `notifications`) which it stores whole as the input
    of a configurable task type (`AUTOVID_TASK_TYPE`) ... Answer **200** with the auto-vid job
    document (`jobId`, `status`, `submittedAt`, ...), including `jobInfo`'."""
    response = post(client, SPEC)
    assert response.status_code == 200
    body = response.json_body
    assert set(body) >= JOB_FIELDS and body["status"] == "submitted"
    assert body["jobInfo"] == SPEC["jobInfo"] and body["metadata"] == {}
    task = service.find(body["jobId"])
    assert task.type == UNIT_ENV["AUTOVID_TASK_TYPE"] and task.input == SPEC


def test_a_native_request_is_accepted_too(client, service):
    response = post(client, {"type": "demo/sleep", "input": {"seconds": 0}})
    assert response.status_code == 200 and response.json_body["status"] == "submitted"
    assert service.find(response.json_body["jobId"]).type == "demo/sleep"


def test_a_spec_without_a_registered_processor_is_a_400_saying_so(client, container):
    """The origin: 'when no processor is registered for that type the submit is a 400 saying
    so'."""
    container(autovid_task_type="video/auto-vid")
    response = post(client, SPEC)
    assert response.status_code == 400
    assert "video/auto-vid" in response.json_body["error"]
    assert "AUTOVID_TASK_TYPE" in response.json_body["error"]


@pytest.mark.parametrize("status", list(Status))
def test_status_uses_the_origins_five_statuses(client, service, status):
    """The origin: 'Statuses on this surface are the origin's five: `submitted`, `processing`,
    `completed`, `failed`, `retrying` (map the canonical ones; a cancelled job is `failed` with
    an error saying so).'"""
    task = stored_task(service, status)
    body = client.http.get(f"/status/{task.id}", headers=auth()).json_body
    assert body["status"] == EXPECTED_STATUS[status] and body["status"] in ORIGIN_STATUSES
    if status is Status.CANCELLED:
        assert "cancelled" in body["error"]


def test_status_answers_the_submitted_job_with_its_job_info(client):
    job = post(client, SPEC).json_body
    response = client.http.get(f"/status/{job['jobId']}", headers=auth())
    assert response.status_code == 200 and response.json_body["jobInfo"] == SPEC["jobInfo"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [("", "Missing request body"), ("{not json", "Invalid JSON in request body")],
)
def test_unreadable_bodies_are_the_origins_400s(client, raw, message):
    """The origin: 'Errors: `{"error": "<string>", "timestamp": "..."}` with 400 `Missing request
    body` / `Invalid JSON in request body` / `Invalid job specification: ...`'."""
    assert_origin_error(post(client, None, raw=raw), 400, message)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {**SPEC, "surprise": True},
        {"type": "demo/sleep", "input": {"seconds": -1}},
        {"type": "video/none"},
        {**SPEC, "notifications": {"webhook": {"url": "ftp://x"}}},
        {**SPEC, "notifications": {"webhook": {"url": "http://h/x", "headers": {"Host": "a"}}}},
    ],
)
def test_invalid_specs_are_the_origins_400(client, service, stack, body):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json_body["error"].startswith("Invalid job specification: ")
    assert set(response.json_body) == {"error", "timestamp"}
    assert stack.task_count() == 0


def test_an_unknown_job_is_the_origins_404(client, service):
    """The origin: '404 `Job <id> not found`'."""
    for job_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        response = client.http.get(f"/status/{job_id}", headers=auth())
        assert_origin_error(response, 404, f"Job {job_id} not found")
    task = stored_task(service, Status.COMPLETED, owner="alice")
    response = client.http.get(f"/status/{task.id}", headers=auth("bob"))
    assert_origin_error(response, 404, f"Job {task.id} not found")


def test_an_unexpected_failure_is_the_origins_500(client, monkeypatch):
    """The origin: '500 `Internal server error`'."""
    from chalicelib.store import TaskStore

    def broken(self, task_id, now):
        raise RuntimeError("boom")

    monkeypatch.setattr(TaskStore, "get", broken)
    response = client.http.get("/status/00000000-0000-4000-8000-000000000000", headers=auth())
    assert_origin_error(response, 500, "Internal server error")


def test_auth_failures_take_the_surfaces_error_shape(client):
    for response in (
        client.http.post("/submit", body=json.dumps(SPEC)),
        client.http.get("/status/00000000-0000-4000-8000-000000000000"),
    ):
        assert response.status_code == 401
        assert set(response.json_body) == {"error", "timestamp"}


def test_the_specs_webhook_is_honoured_with_metadata_headers_and_a_signature(client, stack):
    """The origin: '`notifications.webhook {url, method, headers, metadata}` in a spec is honoured:
    the payload is the job document plus `metadata`, with the user's headers, and (unlike the
    origin) Standard Webhooks signature headers added.'"""
    hook = Receiver([200])
    try:
        webhook = {
            "url": hook.url,
            "method": "PUT",
            "headers": {"X-Api-Token": "abc"},
            "metadata": {"campaign": "spring", "priority": 2},
        }
        spec = {**SPEC, "notifications": {"webhook": webhook}}
        job_id = post(client, spec).json_body["jobId"]
        stack.settle()
        [delivery] = hook.deliveries
    finally:
        hook.close()
    assert delivery.method == "PUT"
    assert delivery.headers["x-api-token"] == "abc"
    payload = Webhook(webhook_secret(client)).verify(delivery.body, delivery.headers)
    assert payload["jobId"] == job_id and payload["status"] == "completed"
    assert payload["jobInfo"] == SPEC["jobInfo"]
    assert payload["metadata"] == {"campaign": "spring", "priority": 2}


def test_a_stage_with_public_reads_serves_status_without_credentials(client, service, container):
    """The origin's `GET /status/{jobId}` needed only the id (see PUBLIC_READ_BY_ID)."""
    container(public_read_by_id=True)
    task = stored_task(service, Status.COMPLETED, owner="alice")
    response = client.http.get(f"/status/{task.id}")
    assert response.status_code == 200 and response.json_body["jobId"] == task.id


def test_an_api_key_authenticates_the_origins_curl_client(client, service):
    """The origin: '`X-API-Key` authentication works here (see the credentials issue).'"""
    created = client.http.post(
        "/api-keys",
        headers=auth("alice"),
        body=json.dumps({"name": "auto-vid", "scopes": ["jobs:read", "jobs:write"]}),
    ).json_body
    headers = {"X-API-Key": created["key"], "Content-Type": "application/json"}
    response = client.http.post("/submit", headers=headers, body=json.dumps(SPEC))
    assert response.status_code == 200
    job_id = response.json_body["jobId"]
    assert service.find(job_id).owner == "alice"
    status = client.http.get(f"/status/{job_id}", headers={"X-API-Key": created["key"]})
    assert status.status_code == 200 and status.json_body["jobInfo"] == SPEC["jobInfo"]


# -- what auto-vid accepts, and how its webhook looks ----------------------------------------------

# auto-vid's docs/SCHEMA.md, "Background Music Only Example" (the webhook left out).
BACKGROUND_MUSIC_ONLY = {
    "jobInfo": {"projectId": "simple_example", "title": "Background Music Only Example"},
    "assets": {
        "video": {"id": "main_video", "source": "s3://auto-vid-s3-bucket/assets/input.mp4"},
        "audio": [{"id": "bgm_track", "source": "s3://auto-vid-s3-bucket/assets/background.mp3"}],
    },
    "backgroundMusic": {"playlist": ["bgm_track"], "volume": 0.4},
    "timeline": [],
    "output": {"filename": "video-with-music.mp4"},
}


def test_an_empty_timeline_is_accepted_as_auto_vid_accepts_it(client, stack):
    """Closed gap: 'under `make dev` the auto-vid stand-in refuses `timeline: []`, which auto-vid
    accepts (its README quick-start and the "Background Music Only" example then get 400)'.
    auto-vid's model: `timeline: List[TimelineEvent]`, no minimum."""
    response = post(client, BACKGROUND_MUSIC_ONLY)
    assert response.status_code == 200
    stack.settle()
    job = client.http.get(f"/status/{response.json_body['jobId']}", headers=auth()).json_body
    assert job["status"] == "completed"
    assert job["result"] == {"events": 0, "filename": "video-with-music.mp4"}


UNRESOLVABLE = "hooks.not-registered-yet.example"


@pytest.fixture
def dns(monkeypatch):
    """Names resolve as the test says, never through a real resolver: `{host: [addresses]}`,
    and any other host does not resolve."""
    import socket

    from chalicelib.webhooks import ssrf

    answers: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", getaddrinfo)
    return answers


def hooked(url):
    return {**SPEC, "notifications": {"webhook": {"url": url}}}


def test_a_webhook_host_that_does_not_resolve_is_accepted_at_submit(client, stack, strict, dns):
    """Closed gap: 'a webhook host that does not resolve at submit fails the whole submit, where
    auto-vid defers delivery problems to delivery: accept it ... and let delivery fail and log'.
    auto-vid validates `url: HttpUrl` at submit and resolves only in `requests.request(...)`."""
    response = post(client, hooked(f"https://{UNRESOLVABLE}/video-complete"))
    assert response.status_code == 200
    assert stack.task_count() == 1


def test_the_delivery_to_a_host_that_does_not_resolve_fails_and_logs(
    client, stack, strict, dns, caplog
):
    """auto-vid: `except (..., requests.exceptions.ConnectionError, ...) as e:
    logger.warning(f"Webhook attempt {attempt + 1} network error: {str(e)}")`."""
    job_id = post(client, hooked(f"https://{UNRESOLVABLE}/video-complete")).json_body["jobId"]
    with caplog.at_level("INFO", logger="taskstatus_svc.webhooks"):
        stack.settle()
    log = client.http.get(f"/jobs/{job_id}/deliveries", headers=auth()).json_body["deliveries"]
    assert log and log[0]["statusCode"] is None
    assert UNRESOLVABLE in log[0]["error"] and "does not resolve" in log[0]["error"]
    assert log[0]["state"] == "retrying"  # DNS may be fixed: retried on the usual schedule
    logged = [r.getMessage() for r in caplog.records if r.name == "taskstatus_svc.webhooks"]
    assert any("retrying" in line and UNRESOLVABLE in line for line in logged), logged


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.0.10", "127.0.0.1", "::1", "169.254.169.254", "fd00:ec2::254", "fe80::1"],
)
def test_a_webhook_host_that_resolves_to_a_forbidden_address_is_still_refused(
    client, stack, strict, dns, address
):
    """'(still refusing private, loopback, link-local and metadata addresses that do
    resolve)': the deferral is for a name that does not resolve, never for one that does."""
    dns["hooks.inside.example"] = [address]
    response = post(client, hooked("https://hooks.inside.example/video-complete"))
    assert response.status_code == 400
    assert "webhook" in response.json_body["error"] and "not public" in response.json_body["error"]
    assert stack.task_count() == 0


@pytest.mark.parametrize(
    "url", ["https://10.1.2.3/hook", "https://127.0.0.1/hook", "https://169.254.169.254/latest/"]
)
def test_a_webhook_url_naming_a_forbidden_address_is_still_refused(client, stack, strict, url):
    response = post(client, hooked(url))
    assert response.status_code == 400
    assert stack.task_count() == 0


def test_a_native_job_keeps_refusing_a_host_that_does_not_resolve(client, stack, strict, dns):
    """Only auto-vid's format defers the lookup: the native API tells its caller at once."""
    job = {"type": "demo/sleep", "webhook": {"url": f"https://{UNRESOLVABLE}/hook"}}
    response = client.http.post("/jobs", headers=auth(), body=json.dumps(job))
    assert response.status_code == 422
    assert stack.task_count() == 0


def test_the_auto_vid_webhook_sends_the_origins_user_agent(client, stack):
    """Closed gap: 'the webhook `User-Agent` is ours, auto-vid's receivers may filter on
    `Auto-Vid/1.0` (send the origin's on that format)'. auto-vid's webhook_notifier:
    `headers.setdefault("User-Agent", "Auto-Vid/1.0")`."""
    hook = Receiver([200])
    try:
        post(client, hooked(hook.url))
        stack.settle()
        [delivery] = hook.deliveries
    finally:
        hook.close()
    assert delivery.headers["user-agent"] == "Auto-Vid/1.0"


def test_other_formats_keep_the_services_user_agent(client, stack):
    hook = Receiver([200])
    try:
        job = {"type": "demo/sleep", "input": {"seconds": 0}, "webhook": {"url": hook.url}}
        client.http.post("/jobs", headers=auth(), body=json.dumps(job))
        stack.settle()
        [delivery] = hook.deliveries
    finally:
        hook.close()
    assert delivery.headers["user-agent"].startswith("taskstatus-webhooks/")


def test_a_key_that_outlived_its_job_is_the_origins_409_saying_to_use_a_new_key(client, stack):
    first = post(client, SPEC, headers={"Idempotency-Key": "old-render"}).json_body["jobId"]
    stack.ddb.delete_item(
        TableName=stack.outputs["TasksTableName"], Key={"id": {"S": first}}
    )  # what TTL does once the job expires, while the key is still kept
    response = post(client, SPEC, headers={"Idempotency-Key": "old-render"})
    assert response.status_code == 409, response.body
    assert set(response.json_body) == {"error", "timestamp"}
    assert "new Idempotency-Key" in response.json_body["error"]


def test_a_concurrent_submit_with_the_same_key_is_the_origins_409_with_retry_after(
    client, stack, monkeypatch
):
    from botocore.exceptions import ClientError

    from chalicelib import aws

    def conflicting(**kwargs):
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(aws.client("dynamodb"), "transact_write_items", conflicting)
    response = post(client, SPEC, headers={"Idempotency-Key": "racing"})
    assert response.status_code == 409, response.body
    assert set(response.json_body) == {"error", "timestamp"}
    assert response.headers["Retry-After"]
    assert stack.task_count() == 0
