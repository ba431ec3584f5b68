"""The Python client's retry rules and polling, against a scripted server on 127.0.0.1."""

import json
import threading

import pytest

from taskstatus_client import (
    ConnectionFailed,
    NotFound,
    ServerError,
    StatusLambdaClient,
    TaskStatusClient,
    Unprocessable,
)
from tests.scripted_server import Reply, ScriptedServer
from tests.unit.tasks import stored_task


def job(status="processing", **extra):
    return {
        "jobId": "5b0c9f3e-0000-4000-8000-000000000000",
        "type": "demo/sleep",
        "status": status,
        "submittedAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
        "completedAt": None,
        "processingTime": None,
        "progress": None,
        "result": None,
        "output": {
            "url": None,
            "urlExpiresAt": None,
            "s3Uri": None,
            "duration": None,
            "size": None,
        },
        "error": None,
        "metadata": {},
        **extra,
    }


ERROR = {"error": {"code": "x", "message": "it broke"}, "requestId": "r", "timestamp": "t"}


@pytest.fixture
def scripted():
    servers = []

    def make(*replies):
        servers.append(ScriptedServer(list(replies)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def client_for(server, sleeps=None, **kwargs):
    sleeps = sleeps if sleeps is not None else []
    return TaskStatusClient(server.url, "token", ws_url=None, sleep=sleeps.append, **kwargs)


def test_a_5xx_is_retried_until_it_succeeds(scripted):
    server = scripted(Reply(500, ERROR), Reply(503, ERROR), Reply(200, job()))
    assert client_for(server).get(job()["jobId"]).status.value == "processing"
    assert len(server.requests) == 3


def test_a_5xx_that_persists_raises_server_error_after_the_retries(scripted):
    server = scripted(Reply(502, ERROR))
    with pytest.raises(ServerError):
        client_for(server, max_retries=2).get(job()["jobId"])
    assert len(server.requests) == 3


def test_a_404_is_not_retried(scripted):
    server = scripted(Reply(404, ERROR))
    with pytest.raises(NotFound, match="it broke"):
        client_for(server).get(job()["jobId"])
    assert len(server.requests) == 1


def test_a_422_is_not_retried_and_keeps_the_body(scripted):
    server = scripted(Reply(422, ERROR))
    with pytest.raises(Unprocessable) as refused:
        client_for(server).submit("demo/sleep", {"seconds": -1})
    assert refused.value.body == ERROR
    assert len(server.requests) == 1


def test_a_429_waits_at_least_its_retry_after(scripted):
    sleeps = []
    server = scripted(Reply(429, ERROR, {"Retry-After": "7"}), Reply(200, job()))
    client_for(server, sleeps).get(job()["jobId"])
    assert sleeps and sleeps[0] >= 7


def test_backoff_grows_and_is_capped(scripted):
    sleeps = []
    server = scripted(Reply(500, ERROR))
    with pytest.raises(ServerError):
        client_for(server, sleeps, max_retries=6, backoff=1, max_backoff=4).get(job()["jobId"])
    assert all(0.5 <= s <= 4 for s in sleeps)
    assert max(sleeps[3:]) <= 4 and sleeps[0] <= 1


def test_a_retried_submit_sends_the_same_idempotency_key(scripted):
    server = scripted(Reply(503, ERROR), Reply(202, job("submitted")))
    client_for(server).submit("demo/sleep", {"seconds": 1})
    keys = [r["headers"]["idempotency-key"] for r in server.requests]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_connection_errors_are_retried_then_raised():
    sleeps = []
    client = TaskStatusClient(
        "http://127.0.0.1:9", "token", ws_url=None, sleep=sleeps.append, max_retries=2
    )
    with pytest.raises(ConnectionFailed):
        client.get(job()["jobId"])
    assert len(sleeps) == 2


def test_polling_honours_retry_after_with_capped_backoff(scripted):
    sleeps = []
    running = Reply(200, job(), {"Retry-After": "2"})
    server = scripted(running, running, running, Reply(200, job("completed", result={"ok": True})))
    updates = []
    done = client_for(server, sleeps, max_backoff=3).wait(job()["jobId"], on_update=updates.append)
    assert done.status.value == "completed" and done.result == {"ok": True}
    assert sleeps == [2, 3, 3]
    assert [u["status"] for u in updates] == ["processing", "completed"]


@pytest.fixture
def websocket_that_lost_the_connection():
    """A WebSocket endpoint on 127.0.0.1 that answers a subscribe as the service answers on a
    connection it has no record of."""
    from websockets.sync.server import serve

    def lost(connection):
        json.loads(connection.recv())  # the subscribe
        connection.send(json.dumps({"type": "error", "message": "unknown connection; reconnect"}))
        for _ in connection:
            pass

    with serve(lost, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        server.shutdown()
    thread.join()


def test_a_wait_whose_websocket_the_service_lost_goes_on_by_polling(
    scripted, websocket_that_lost_the_connection
):
    server = scripted(Reply(200, job()), Reply(200, job("completed", result={"ok": True})))
    client = TaskStatusClient(
        server.url, "token", ws_url=websocket_that_lost_the_connection, sleep=lambda s: None
    )
    assert client.wait(job()["jobId"], timeout=60).status.value == "completed"


# -- the 003 status Lambda, through boto3's invoke interface ---------------------------------


class ChaliceLambda:
    """boto3's `lambda` client interface over Chalice's test client, which runs the real handler."""

    def __init__(self, test_client):
        self.test_client = test_client

    def invoke(self, FunctionName, InvocationType, Payload):
        import io
        import json

        result = self.test_client.lambda_.invoke(FunctionName, json.loads(Payload))
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result.payload).encode())}


def test_status_lambda_client_reads_an_assembly(client, service):
    from chalicelib.model import Status

    task = stored_task(service, Status.COMPLETED)
    result = StatusLambdaClient("status", lambda_client=ChaliceLambda(client)).get_status(
        task.id, "alice"
    )
    assert result.success and result.status.ok == "ASSEMBLY_COMPLETED"


def test_status_lambda_client_reports_a_foreign_assembly(client, service):
    from chalicelib.model import Status

    task = stored_task(service, Status.COMPLETED, owner="alice")
    result = StatusLambdaClient("status", lambda_client=ChaliceLambda(client)).get_status(
        task.id, "bob"
    )
    assert (result.success, result.status_code) == (False, 403)


def test_status_lambda_client_can_trigger_the_webhook(client, service):
    from chalicelib.model import Status

    task = stored_task(service, Status.COMPLETED)
    lambda_client = StatusLambdaClient("status", lambda_client=ChaliceLambda(client))
    result = lambda_client.get_status_with_webhook(task.id, "alice")
    assert result.success
    assert result.status.webhook.triggered is False
    assert result.status.webhook.message == "no webhook is configured for this job"


def test_submit_sends_a_priority_and_a_concurrency_key(scripted):
    server = scripted(Reply(202, job("submitted", priority=8)))
    submitted = client_for(server).submit(
        "demo/sleep", {}, priority=8, concurrency=("customer-42", 2)
    )
    sent = json.loads(server.requests[0]["body"])
    assert sent["priority"] == 8
    assert sent["concurrency"] == {"key": "customer-42", "limit": 2}
    assert submitted.priority == 8


def test_a_retried_schedule_create_sends_the_same_idempotency_key(scripted):
    created = {"scheduleId": "sch_" + "0" * 32}
    server = scripted(Reply(503, ERROR), Reply(201, created))
    client_for(server).create_schedule("demo/sleep", rate="5 minutes")
    keys = [r["headers"]["idempotency-key"] for r in server.requests]
    assert len(keys) == 2 and keys[0] == keys[1]
