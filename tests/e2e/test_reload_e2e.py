"""`make dev` reloads the app's code on change, as `chalice local` does: a processor added while
it runs is accepted and run, without a restart. Runs a copy of the checkout, which it edits."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from local.launcher import ROOT
from local.launcher import local_stack as launch
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.conftest import LocalStack

GREET = '''"""A processor added while `make dev` runs."""

from dataclasses import dataclass

from chalicelib.processors import processor


@dataclass(frozen=True)
class GreetInput:
    name: str


@processor("demo/greet", input=GreetInput)
def greet(task, ctx):
    return {"greeting": f"hello {ctx.input.name}"}
'''
COPIED = ("app.py", "chalicelib", "local", "infra", "taskstatus_client", ".chalice")


def copy_checkout(target: Path) -> Path:
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "deployed", "deployments", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def add_greet_processor(checkout: Path) -> None:
    processors = checkout / "chalicelib" / "processors"
    (processors / "greet.py").write_text(GREET)
    registry = processors / "__init__.py"
    known = '"demo/sleep": "chalicelib.processors.demo",'
    text = registry.read_text()
    assert known in text
    registry.write_text(
        text.replace(known, known + '\n        "demo/greet": "chalicelib.processors.greet",')
    )


def greet(stack: LocalStack) -> requests.Response:
    return requests.post(
        f"{stack.api}/jobs",
        json={"type": "demo/greet", "input": {"name": "ada"}},
        headers=stack.headers(),
        timeout=HTTP_TIMEOUT,
    )


def accepted_once_reloaded(stack: LocalStack, timeout: float = 90) -> dict:
    """Submit until the reloaded app accepts the type (each refusal is the old code's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = greet(stack)
        except (requests.ConnectionError, requests.Timeout):  # the old process winds down
            response = None
        if response is not None and response.status_code == 202:
            return response.json()
        if response is not None:  # only the old code's refusal, never another
            assert response.status_code == 422 and "registered" in response.text, response.text
        time.sleep(0.2)
    raise AssertionError(f"demo/greet was never accepted:\n{stack.log.read_text()[-3000:]}")


@pytest.mark.own_stack
def test_a_processor_added_while_make_dev_runs_is_accepted_and_runs(tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    with launch(tmp_path / "dev.log", env={"RELOAD": "1"}, root=checkout) as endpoints:
        stack = LocalStack(
            api=endpoints.api, ws=endpoints.ws, emulator=endpoints.emulator, log=endpoints.log
        )
        kept = stack.submit({"type": "demo/sleep", "input": {"seconds": 0}})
        refused = greet(stack)
        assert refused.status_code == 422 and "registered" in refused.text, refused.text
        add_greet_processor(checkout)
        job = accepted_once_reloaded(stack)
        final = stack.wait_until_finished(job["jobId"], timeout=30)[-1]
        assert final["status"] == "completed"
        assert final["result"] == {"greeting": "hello ada"}
        assert stack.get(kept["jobId"])["status"] == "completed"  # the state outlived it
    log = endpoints.log.read_text()
    assert "chalicelib/processors/__init__.py" in log and "reloading the app" in log
    assert "Traceback" not in log, log[-4000:]
