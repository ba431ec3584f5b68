"""The producer SDK (taskstatus_client.Reporter) against the real app, and its retry rules."""

import json
import time
import types
import uuid

import pytest
import requests

from taskstatus_client import Cancelled, Reporter, current_task
from tests.app_transport import APP_URL, AppTransport
from tests.conftest import auth, token_for
from tests.scripted_server import Reply, ScriptedServer
from tests.unit.helpers import get

DEADLINE_SECONDS = 30


class LossyTransport(AppTransport):
    """Delivers every request, but loses the answer of the first one whose path ends so."""

    def __init__(self, client, lose: str) -> None:
        super().__init__(client)
        self.lose = lose

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if self.lose and request.url.endswith(self.lose):
            self.lose = ""
            raise requests.ConnectionError("the answer was lost on the way back")
        return response


@pytest.fixture
def transport(client):
    return AppTransport(client)


@pytest.fixture
def reporter(transport):
    return Reporter(APP_URL, token=token_for("alice"), transport=transport, sleep=lambda s: None)


def job(client, job_id):
    return get(client, f"/jobs/{job_id}").json_body


def history(client, stack, job_id):
    stack.run_stream()
    return [e["status"] for e in get(client, f"/jobs/{job_id}/events").json_body["events"]]


def wait_for(condition, what):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_tracked_block_reports_start_progress_and_completion(client, stack, reporter):
    with reporter.track("daily_sales", input={"day": "2030-01-01"}) as task:
        task.progress(1, 2, "store 1")
        task.complete(result={"stores": 2})
    done = job(client, task.job_id)
    assert (done["status"], done["result"], done["input"]) == (
        "completed",
        {"stores": 2},
        {"day": "2030-01-01"},
    )
    assert history(client, stack, task.job_id) == [
        "submitted",
        "started",
        "processing",
        "completed",
    ]


def test_leaving_the_block_completes_the_job_if_nothing_ended_it(client, reporter):
    with reporter.track("daily_sales") as task:
        pass
    assert job(client, task.job_id)["status"] == "completed"


def test_an_exception_in_the_block_fails_the_job_with_its_message_and_is_reraised(client, reporter):
    with pytest.raises(KeyError), reporter.track("daily_sales") as task:
        raise KeyError("store 7 is missing")
    failed = job(client, task.job_id)
    assert failed["status"] == "failed" and "store 7 is missing" in failed["error"]


def test_a_warning_goes_on_and_the_job_ends_completed_with_errors(client, reporter):
    with reporter.track("daily_sales") as task:
        task.warn("store 3 timed out")
        task.progress(2, 3)
    done = job(client, task.job_id)
    assert done["status"] == "completed_with_errors"
    assert done["error"] == "store 3 timed out"


def test_a_cancel_raises_cancelled_at_the_next_report(client, reporter):
    with pytest.raises(Cancelled), reporter.track("daily_sales") as task:
        client.http.delete(f"/jobs/{task.job_id}", headers=auth())
        task.progress(1, 2)
    assert job(client, task.job_id)["status"] == "cancelled"


def test_the_background_heartbeat_learns_of_a_cancel(client, reporter, transport):
    with pytest.raises(Cancelled), reporter.track("daily_sales", heartbeat_seconds=5) as task:
        client.http.delete(f"/jobs/{task.job_id}", headers=auth())
        wait_for(lambda: task.cancel_requested, "a heartbeat to see the cancel")
        assert ("POST", f"/jobs/{task.job_id}/heartbeat") in transport.sent
        task.progress(1, 2)


def test_a_lost_answer_is_retried_without_doubling_the_transition(client, stack):
    lossy = LossyTransport(client, "/report")
    reporter = Reporter(APP_URL, token=token_for("alice"), transport=lossy, sleep=lambda s: None)
    with reporter.track("daily_sales") as task:
        task.complete(result={"ok": True})
    assert history(client, stack, task.job_id) == ["submitted", "started", "completed"]


def test_a_lost_create_answer_is_retried_into_the_same_job(client, stack):
    lossy = LossyTransport(client, "/jobs")
    reporter = Reporter(APP_URL, token=token_for("alice"), transport=lossy, sleep=lambda s: None)
    with reporter.track("daily_sales", job_id="local-once"):
        pass
    assert stack.task_count() == 1
    assert job(client, "local-once")["status"] == "completed"


def test_the_decorator_tracks_a_lambda_handler_under_its_request_id(client, reporter):
    @reporter.tracked("daily_sales")
    def handler(event, context):
        current_task().progress(1, 1)
        return {"statusCode": 200, "body": json.dumps(event)}

    request_id = str(uuid.uuid4())
    answer = handler({"day": 1}, types.SimpleNamespace(aws_request_id=request_id))
    assert answer["statusCode"] == 200
    done = job(client, request_id)
    assert (done["status"], done["result"]) == ("completed", answer)


# -- the retry rules, against a scripted server ---------------------------------------------


@pytest.fixture
def scripted():
    servers = []

    def make(*replies):
        servers.append(ScriptedServer(list(replies)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


OK = {"jobId": "j-1", "status": "processing", "version": 3}


def test_transient_failures_are_retried_with_capped_jittered_backoff(scripted):
    server = scripted(Reply(503), Reply(429), Reply(500), Reply(200, OK))
    sleeps = []
    reporter = Reporter(server.url, api_key="tsk_x", sleep=sleeps.append, backoff=0.5)
    assert reporter.report("j-1", "processing")["version"] == 3
    assert len(server.requests) == 4
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [0.5, 1.0, 2.0], strict=True))


def test_retry_after_is_honoured(scripted):
    server = scripted(Reply(429, headers={"Retry-After": "3"}), Reply(200, OK))
    sleeps = []
    Reporter(server.url, api_key="tsk_x", sleep=sleeps.append).report("j-1", "processing")
    assert sleeps[0] >= 3


def test_a_refusal_is_not_retried(scripted):
    server = scripted(Reply(409, {"error": {"code": "conflict", "message": "is completed"}}))
    with pytest.raises(Exception, match="is completed"):
        Reporter(server.url, api_key="tsk_x", sleep=lambda s: None).report("j-1", "processing")
    assert len(server.requests) == 1


def test_an_api_key_is_sent_as_x_api_key(scripted, monkeypatch):
    server = scripted(Reply(200, OK))
    monkeypatch.setenv("TASKSTATUS_API_KEY", "tsk_from_env")
    monkeypatch.delenv("TASKSTATUS_TOKEN", raising=False)
    Reporter(server.url).report("j-1", "processing")
    assert server.requests[0]["headers"]["x-api-key"] == "tsk_from_env"
