"""Processors from the user's own package: written with taskstatus_client.worker, named in
PROCESSOR_MODULES, run by the worker Lambda (here the in-process moto stack)."""

import subprocess
import sys
import textwrap
import uuid

import pytest

from chalicelib.processors import sdk
from taskstatus_client import worker as client_sdk
from tests.conftest import ROOT
from tests.unit.helpers import get, submit

USER_MODULE = """
from dataclasses import dataclass

from taskstatus_client.worker import PermanentError, TransientError, processor


@dataclass
class RepeatInput:
    text: str
    times: int = 2


@processor("acme/shout")
def shout(task, ctx):
    ctx.progress(1, 2, "read the input")
    ctx.progress(2, 2, "shouted")
    return {"shouted": ctx.input["text"].upper(), "inputType": type(ctx.input).__name__}


@processor("acme/repeat", input=RepeatInput)
def repeat(task, ctx):
    return {"repeated": ctx.input.text * ctx.input.times}


@processor("acme/refuse")
def refuse(task, ctx):
    raise PermanentError("this input can never work")


@processor("acme/flaky")
def flaky(task, ctx):
    raise TransientError("the dependency is down")


@processor("acme/careful")
def careful(task, ctx):
    ctx.warn("one page was blank")
    return {"pages": 3}
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A module of the user's, outside the repository, importable and named in
    PROCESSOR_MODULES; its processors are unregistered after the test."""
    before = set(sdk.registered_types())
    name = f"acme_tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PROCESSOR_MODULES", f"{name}")
    monkeypatch.setattr(sdk, "_USER_MODULES", {})
    yield name
    for added in set(sdk.registered_types()) - before:
        sdk.unregister(added)
    sys.modules.pop(name, None)


def run(client, stack, job):
    response = submit(client, job)
    assert response.status_code == 202, response.json_body
    stack.settle()
    return get(client, f"/jobs/{response.json_body['jobId']}").json_body


def test_a_user_processor_runs_on_the_worker_through_processor_modules(client, stack, user_package):
    job = run(client, stack, {"type": "acme/shout", "input": {"text": "hi"}})
    assert job["status"] == "completed", job
    assert job["result"] == {"shouted": "HI", "inputType": "dict"}
    assert job["progress"] == {"current": 2, "total": 2, "message": "shouted"}


def test_a_user_processor_input_model_builds_ctx_input(client, stack, user_package):
    job = run(client, stack, {"type": "acme/repeat", "input": {"text": "ab", "times": 3}})
    assert job["status"] == "completed", job
    assert job["result"] == {"repeated": "ababab"}


def test_input_a_user_processor_model_refuses_is_a_422_naming_the_field(client, user_package):
    response = submit(client, {"type": "acme/repeat", "input": {"times": 3}})
    assert response.status_code == 422
    assert "input.text" in str(response.json_body)


def test_a_permanent_error_from_the_client_sdk_fails_the_task_at_once(
    client, stack, service, user_package
):
    job = run(client, stack, {"type": "acme/refuse", "input": {}})
    assert job["status"] == "failed"
    assert job["error"] == "this input can never work"
    assert service.find(job["jobId"]).attempts == 1


def test_a_transient_error_from_the_client_sdk_is_retried(client, stack, user_package):
    job = run(client, stack, {"type": "acme/flaky", "input": {}})
    assert job["status"] == "retrying"
    assert "the dependency is down" in job["error"]


def test_a_warning_ends_a_user_processor_completed_with_errors(client, stack, user_package):
    job = run(client, stack, {"type": "acme/careful", "input": {}})
    assert job["status"] == "completed_with_errors"
    assert job["error"] == "one page was blank"
    assert job["result"] == {"pages": 3}


def test_built_in_processors_keep_working_beside_user_modules(client, stack, user_package):
    job = run(client, stack, {"type": "demo/sleep", "input": {"seconds": 0, "steps": 2}})
    assert job["status"] == "completed", job


def test_an_unknown_type_lists_the_user_processors_among_the_known(client, user_package):
    response = submit(client, {"type": "acme/nothing", "input": {}})
    assert response.status_code == 422
    assert "acme/shout" in str(response.json_body)
    assert "demo/sleep" in str(response.json_body)


def test_the_service_and_the_client_sdk_mark_processors_by_the_same_attribute():
    assert sdk.PROCESSOR_ATTRIBUTE == client_sdk.PROCESSOR_ATTRIBUTE


def test_the_processor_sdk_imports_without_the_server():
    script = textwrap.dedent(
        """
        import sys
        from taskstatus_client.worker import PermanentError, TransientError, processor
        server = {"chalicelib", "boto3", "botocore"}
        server = sorted(m for m in sys.modules if m.split(".")[0] in server)
        assert not server, server
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
