"""The client and CLI find `make dev` by themselves; CLI flags and exit codes."""

import io
import json

import pytest

from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import EXIT_TIMEOUT, main, parser
from tests.scripted_server import Reply, ScriptedServer
from tests.unit.test_client import job

LOCAL = {
    "api": "http://127.0.0.1:18000",
    "ws": "ws://127.0.0.1:18001",
    "token": "dev-token",
}


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout with a running `make dev`'s endpoints file; we work in a folder below it."""
    for name in ("TASKSTATUS_URL", "TASKSTATUS_TOKEN", "TASKSTATUS_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".taskstatus").mkdir()
    (tmp_path / ".taskstatus" / "local.json").write_text(json.dumps(LOCAL))
    (tmp_path / "scripts").mkdir()
    monkeypatch.chdir(tmp_path / "scripts")
    return tmp_path


def test_the_client_finds_make_devs_urls_and_token_in_the_checkout(checkout):
    client = TaskStatusClient()
    assert (client.url, client.token, client.ws_url) == (LOCAL["api"], "dev-token", LOCAL["ws"])


def test_environment_variables_win_over_the_endpoints_file(checkout, monkeypatch):
    monkeypatch.setenv("TASKSTATUS_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("TASKSTATUS_TOKEN", "mine")
    client = TaskStatusClient()
    assert (client.url, client.token, client.ws_url) == ("http://127.0.0.1:9999", "mine", None)


def test_without_a_token_anywhere_the_client_says_where_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKSTATUS_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="make dev"):
        TaskStatusClient("http://127.0.0.1:8000")


def test_json_works_after_the_command_too():
    assert parser().parse_args(["list", "--json"]).json is True
    assert parser().parse_args(["--json", "list"]).json is True
    assert parser().parse_args(["list"]).json is False


def test_a_watch_that_times_out_has_its_own_exit_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = ScriptedServer([Reply(200, job("processing"), {"Retry-After": "1"})])
    try:
        code = main(
            ["--url", server.url, "--token", "t", "watch", job()["jobId"], "--timeout", "0.5"],
            io.StringIO(),
        )
    finally:
        server.close()
    assert code == EXIT_TIMEOUT != 2


def _list_output(*args: str, jobs: list) -> str:
    server = ScriptedServer([Reply(200, {"jobs": jobs, "nextCursor": None})])
    out = io.StringIO()
    try:
        code = main(["--url", server.url, "--token", "t", "list", *args], out)
    finally:
        server.close()
    assert code == 0
    return out.getvalue()


def test_list_says_there_are_no_jobs_rather_than_printing_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _list_output(jobs=[]) == "no jobs\n"


def test_list_with_a_filter_names_it_when_nothing_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _list_output("--status", "failed", jobs=[]) == "no jobs (status=failed)\n"


def test_list_in_json_prints_no_line_for_no_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _list_output("--json", jobs=[]) == ""


def test_list_prints_a_line_per_job_and_no_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "no jobs" not in _list_output(jobs=[job()])
