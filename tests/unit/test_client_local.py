"""The client and CLI find `make dev` by themselves; CLI flags and exit codes."""

import io
import json
import os

import pytest

from taskstatus_client import TaskStatusClient
from taskstatus_client.cli import EXIT_TIMEOUT, main, parser
from taskstatus_client.errors import TaskStatusError
from taskstatus_client.local import UntrustedLocalFile, find_local
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


# -- whose endpoints file: the checkout's own, pointing at this machine ------------------------


def plant(folder, local):
    (folder / ".taskstatus").mkdir(parents=True, exist_ok=True)
    (folder / ".taskstatus" / "local.json").write_text(json.dumps(local))
    return folder / ".taskstatus" / "local.json"


@pytest.fixture
def no_taskstatus_env(monkeypatch):
    for name in ("TASKSTATUS_URL", "TASKSTATUS_TOKEN", "TASKSTATUS_WS_URL"):
        monkeypatch.delenv(name, raising=False)


def test_a_file_planted_above_the_checkout_does_not_collect_the_token(
    tmp_path, monkeypatch, no_taskstatus_env
):
    """The attack: someone with write access to a parent folder (a shared /tmp, /srv) plants
    `.taskstatus/local.json` there, naming their server; the user's TASKSTATUS_TOKEN goes
    wherever the file says."""
    collector = ScriptedServer([Reply(200, {"jobs": [], "nextCursor": None})])
    try:
        plant(tmp_path, {"api": collector.url})
        checkout = tmp_path / "checkout"
        (checkout / ".git").mkdir(parents=True)
        (checkout / "scripts").mkdir()
        monkeypatch.chdir(checkout / "scripts")
        monkeypatch.setenv("TASKSTATUS_TOKEN", "the-users-own-token")
        client = TaskStatusClient(max_retries=0, timeout=2)
        assert client.url == "http://127.0.0.1:8000"
        with pytest.raises(TaskStatusError):
            list(client.list())  # nothing serves the default port here
        assert collector.requests == []
    finally:
        collector.close()


def test_the_checkouts_own_file_at_its_root_is_read(tmp_path, monkeypatch, no_taskstatus_env):
    plant(tmp_path, LOCAL)
    (tmp_path / ".git").mkdir()
    (tmp_path / "deep" / "below").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "below")
    assert TaskStatusClient().url == LOCAL["api"]


@pytest.mark.parametrize(
    "url", ["https://collector.example", "http://127.0.0.1@collector.example:8000", "file:///x"]
)
def test_a_file_whose_url_is_off_this_machine_is_ignored(
    checkout, url, monkeypatch, no_taskstatus_env
):
    plant(checkout, {**LOCAL, "api": url})
    monkeypatch.setenv("TASKSTATUS_TOKEN", "the-users-own-token")
    with pytest.warns(UntrustedLocalFile, match="not on this machine"):
        client = TaskStatusClient()
    assert client.url == "http://127.0.0.1:8000"


def test_a_file_whose_websocket_is_off_this_machine_is_ignored(checkout, no_taskstatus_env):
    plant(checkout, {**LOCAL, "ws": "wss://collector.example"})
    with pytest.warns(UntrustedLocalFile, match="ws URL"):
        assert find_local() is None


def test_a_file_other_users_can_write_is_ignored(checkout, no_taskstatus_env):
    (checkout / ".taskstatus" / "local.json").chmod(0o666)
    with pytest.warns(UntrustedLocalFile, match="can be written by other users"):
        assert find_local() is None


def test_a_file_in_a_folder_other_users_can_write_is_ignored(checkout, no_taskstatus_env):
    (checkout / ".taskstatus").chmod(0o777)
    with pytest.warns(UntrustedLocalFile, match="can be written by other users"):
        assert find_local() is None


def test_a_file_of_another_user_is_ignored(checkout, monkeypatch, no_taskstatus_env):
    """The client runs as someone other than the file's owner."""
    owner = (checkout / ".taskstatus" / "local.json").stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    with pytest.warns(UntrustedLocalFile, match="belongs to another user"):
        assert find_local() is None


def test_submit_takes_a_priority_and_a_concurrency_key_as_key_equals_limit():
    args = parser().parse_args(
        ["submit", "demo/sleep", "--priority", "8", "--concurrency", "customer-42=2"]
    )
    assert (args.priority, args.concurrency) == (8, ("customer-42", 2))
    with pytest.raises(SystemExit):
        parser().parse_args(["submit", "demo/sleep", "--concurrency", "customer-42"])
