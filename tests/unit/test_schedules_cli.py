"""`taskstatus schedules ...` and the client's schedule methods, against the app (no socket)."""

import io
import json

import pytest
import requests

from taskstatus_client import cli
from taskstatus_client.client import TaskStatusClient
from taskstatus_client.errors import NotFound
from tests.app_transport import APP_URL, AppTransport
from tests.conftest import token_for


@pytest.fixture
def sdk(client, monkeypatch):
    session = requests.Session()
    session.mount(APP_URL, AppTransport(client))
    made = TaskStatusClient(APP_URL, token_for("alice"), ws_url=None, session=session)
    monkeypatch.setattr(cli, "TaskStatusClient", lambda *a, **k: made)
    return made


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["--url", APP_URL, "--token", "t", *args], out)
    return code, out.getvalue()


def test_the_cli_creates_lists_pauses_resumes_and_deletes_a_schedule(sdk):
    code, output = run("--json", "schedules", "create", "demo/sleep", "--rate", "5 minutes")
    assert code == 0, output
    schedule_id = json.loads(output)["scheduleId"]
    code, listed = run("schedules", "list")
    assert schedule_id in listed and "5 minutes (UTC)" in listed
    code, paused = run("--json", "schedules", "pause", schedule_id)
    assert json.loads(paused)["paused"] is True
    code, resumed = run("--json", "schedules", "resume", schedule_id)
    assert json.loads(resumed)["nextRuns"]
    assert run("schedules", "delete", schedule_id) == (0, f"deleted {schedule_id}\n")
    assert run("schedules", "list") == (0, "no schedules\n")


def test_the_cli_refuses_a_bad_cron_with_the_servers_reason(sdk, capsys):
    code, _ = run("schedules", "create", "demo/sleep", "--cron", "61 * * * *")
    assert code == cli.EXIT_REFUSED
    assert "61 is outside 0-59" in capsys.readouterr().err


def test_the_client_raises_on_another_owners_schedule(sdk, client):
    from tests.conftest import auth

    body = json.dumps({"rate": "1 hour", "type": "demo/sleep"})
    theirs = client.http.post("/schedules", headers=auth("bob"), body=body).json_body
    with pytest.raises(NotFound):
        sdk.get_schedule(theirs["scheduleId"])
