"""The Python client and the CLI against the running local stack."""

import io
import json

import pytest

from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import main
from taskstatus_client.models import JobDocument
from tests.conftest import token_for


@pytest.fixture
def client(local_stack):
    return TaskStatusClient(local_stack.api, token_for("dora"), ws_url=local_stack.ws)


def test_the_same_idempotency_key_returns_the_same_job(client):
    first = client.submit("demo/sleep", {"seconds": 0}, idempotency_key="order-77")
    again = client.submit("demo/sleep", {"seconds": 0}, idempotency_key="order-77")
    assert first.jobId == again.jobId


def test_list_follows_every_page(local_stack):
    client = TaskStatusClient(local_stack.api, token_for("erin"), ws_url=None)
    submitted = [client.submit("demo/sleep", {"seconds": 0}).jobId for _ in range(5)]
    listed = [job.jobId for job in client.list(page_size=2)]
    assert listed == list(reversed(submitted))


def test_get_revalidates_with_the_etag(client):
    job = client.submit("demo/sleep", {"seconds": 0})
    final = client.wait(job.jobId, timeout=20)
    statuses = []
    client.session.hooks["response"].append(
        lambda response, **_: statuses.append(response.status_code)
    )
    assert client.get(job.jobId) == final
    assert client.get(job.jobId) == final
    assert statuses[-1] == 304


def test_wait_follows_websocket_pushes(client, monkeypatch):
    def no_polling(*args):
        raise AssertionError("polled")

    monkeypatch.setattr(client, "_wait_polling", no_polling)
    job = client.submit("demo/sleep", {"seconds": 1, "steps": 4})
    updates = []
    final = client.wait(job.jobId, timeout=20, on_update=updates.append)
    assert final.status.value == "completed"
    # job documents, the same shape as when polling
    assert updates and all(set(u) == set(JobDocument.model_fields) for u in updates)
    progress = [u["progress"]["current"] for u in updates if u["progress"]]
    assert progress == sorted(progress) and updates[-1]["status"] == "completed"


def test_wait_over_the_websocket_shows_each_state_as_the_jobs_history_records_it(
    client, monkeypatch
):
    def no_polling(*args):
        raise AssertionError("polled")

    monkeypatch.setattr(client, "_wait_polling", no_polling)
    job = client.submit("demo/sleep", {"seconds": 1, "steps": 3})
    updates = []
    client.wait(job.jobId, timeout=20, on_update=updates.append)
    recorded = {event.version: event.status.value for event in client.events(job.jobId)}
    seen = [(update["version"], update["status"]) for update in updates]
    assert [version for version, _ in seen] == sorted({version for version, _ in seen})
    assert seen[-1] == (max(recorded), "completed")
    assert all(recorded[version] == status for version, status in seen), (seen, recorded)


def test_wait_falls_back_to_polling_without_a_websocket(local_stack):
    client = TaskStatusClient(local_stack.api, token_for("dora"), ws_url="ws://127.0.0.1:9")
    job = client.submit("demo/sleep", {"seconds": 0.5, "steps": 2})
    updates = []
    final = client.wait(job.jobId, timeout=30, on_update=updates.append)
    assert final.status.value == "completed"
    assert updates and all("jobId" in u for u in updates)  # job documents: it polled


def cli(local_stack, *args, user="dora"):
    out = io.StringIO()
    code = main(
        ["--url", local_stack.api, "--token", token_for(user), "--ws-url", local_stack.ws, *args],
        out,
    )
    return code, out.getvalue()


def test_cli_submit_watch_shows_progress_to_completion(local_stack):
    code, output = cli(
        local_stack, "submit", "demo/sleep", "--input", '{"seconds": 3, "steps": 6}', "--watch"
    )
    assert code == 0
    lines = output.splitlines()
    steps = [
        int(line.split("[")[1].split("/")[0]) for line in lines if line.startswith("processing [")
    ]
    assert steps == sorted(steps) and len(steps) >= 3 and steps[-1] == 6
    assert "completed" in lines[-2] and '"slept": 3.0' in lines[-1]


def test_cli_watch_of_a_failing_job_exits_1(local_stack):
    code, output = cli(
        local_stack,
        "submit",
        "demo/sleep",
        "--input",
        '{"seconds": 0.2, "steps": 2, "fail_at": 2}',
        "--watch",
    )
    assert code == 1
    assert "failed at step 2" in output


def test_cli_json_output_is_one_object_per_line(local_stack):
    cli(local_stack, "submit", "demo/sleep", "--input", '{"seconds": 0}', user="fay")
    code, output = cli(local_stack, "--json", "list", user="fay")
    assert code == 0
    jobs = [json.loads(line) for line in output.splitlines()]
    assert jobs and all(job["type"] == "demo/sleep" for job in jobs)


def test_cli_refused_input_exits_2(local_stack):
    code, _ = cli(local_stack, "submit", "demo/sleep", "--input", '{"seconds": -1}')
    assert code == 2


def test_cli_unreachable_service_exits_3(local_stack):
    out = io.StringIO()
    code = main(
        [
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "get",
            "5b0c9f3e-0000-4000-8000-000000000000",
        ],
        out,
    )
    assert code == 3


def test_cli_token_mints_a_token_the_stack_accepts(local_stack):
    out = io.StringIO()
    assert main(["token", "token-minted-by-the-cli"], out) == 0  # a user with no task yet
    client = TaskStatusClient(local_stack.api, out.getvalue().strip(), ws_url=None)
    assert list(client.list()) == []


def test_cli_webhook_secret_prints_the_secret_that_verifies_your_deliveries(local_stack):
    code, output = cli(local_stack, "webhook-secret", user="hal")
    assert code == 0
    secret = output.strip()
    assert secret.startswith("whsec_")
    assert secret == TaskStatusClient(local_stack.api, token_for("hal")).webhook_secrets().secret
    assert secret != cli(local_stack, "webhook-secret", user="ivy")[1].strip()
