"""The first hour: the client and CLI find the running stack by themselves, on any ports."""

import io
import json

import pytest

from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import main
from taskstatus_client.models import JobDocument


@pytest.fixture
def in_checkout(local_stack, monkeypatch):
    """Working in the stack's checkout, with no TASKSTATUS_* variables set."""
    for name in ("TASKSTATUS_URL", "TASKSTATUS_TOKEN", "TASKSTATUS_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(local_stack.log.parent)
    return local_stack


def test_the_client_finds_the_stack_and_waits_over_its_websocket(in_checkout, monkeypatch):
    client = TaskStatusClient()
    assert (client.url, client.ws_url) == (in_checkout.api, in_checkout.ws)

    def no_polling(*args):
        raise AssertionError("polled instead of using the WebSocket")

    monkeypatch.setattr(client, "_wait_polling", no_polling)
    job = client.submit("demo/sleep", {"seconds": 0.5, "steps": 2})
    assert client.wait(job.jobId, timeout=20).status.value == "completed"


def test_cli_watch_json_prints_job_documents_with_the_subcommands_flag(in_checkout):
    out = io.StringIO()
    code = main(
        ["submit", "demo/sleep", "--input", '{"seconds": 0.5, "steps": 2}', "--watch", "--json"],
        out,
    )
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) >= 2
    for line in lines:
        JobDocument.model_validate(line)
    assert lines[-1]["status"] == "completed"
