"""The remote worker's image (infra/worker/Dockerfile): what it installs runs `taskstatus worker`
with a user's package and no AWS credentials. Docker cannot build here (no engine), so the
image's install steps run in a venv instead: wheels of the client and of the example package
(samples/worker), installed from those wheels alone, then the installed `taskstatus worker`
against a scripted service."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scripted_server import Reply, ScriptedServer

DOCKERFILE = ROOT / "infra" / "worker" / "Dockerfile"
CLAIM = {
    "job": {"jobId": "j-1", "type": "acme/shout", "status": "started", "input": {"text": "hi"}},
    "leaseToken": "lease-1",
    "leaseSeconds": 60,
    "attempt": 1,
}


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_the_image_runs_taskstatus_worker_as_a_non_root_user_on_python_3_11_slim():
    steps = instructions()
    bases = [args.split()[0] for op, args in steps if op == "FROM"]
    assert set(bases) == {"scratch", "python:3.11-slim"}
    [user] = [args for op, args in steps if op == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    assert [args for op, args in steps if op == "ENTRYPOINT"] == ['["taskstatus", "worker"]']


def test_the_image_holds_no_aws_credentials():
    for op, args in instructions():
        if op in {"ENV", "ARG"}:
            assert "AWS_" not in args, args


@pytest.mark.slow  # builds two wheels and a venv (`make unit-fast` leaves it out)
def test_the_images_install_gives_a_worker_that_runs_the_users_package(tmp_path):
    wheels = tmp_path / "wheels"
    package = tmp_path / "package"  # a copy: a build leaves build/ and *.egg-info beside it
    shutil.copytree(ROOT / "samples" / "worker", package)
    for source in (_client_source(tmp_path), package):
        build = ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
        subprocess.run([sys.executable, "-m", "pip", *build, str(source)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Their dependencies from this venv (no network); the client and the package from wheels.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = ["--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run(
        [sys.executable, "-m", "pip", *install, *map(str, wheels.glob("*.whl"))], check=True
    )
    server = ScriptedServer([Reply(200, CLAIM), Reply(200, {}), Reply(204)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(TASKSTATUS_URL=server.url, TASKSTATUS_API_KEY="tsk_worker", PYTHONPATH="")
    command = [str(venv / "bin" / "taskstatus"), "worker", "--pool", "remote"]
    command += ["--processors", "acme_tasks.tasks", "--concurrency", "1"]
    worker = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        report = _wait_for_report(server)
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    finally:
        worker.kill()
        server.close()
    assert report == {"status": "completed", "result": {"shouted": "HI"}, "leaseToken": "lease-1"}
    assert worker.returncode == 0, out
    assert "working pool remote with 1 threads: acme/render, acme/shout" in out
    assert "done acme/shout j-1 completed" in out


def _client_source(tmp_path: Path) -> Path:
    """The client as the image's COPY lines give it: pyproject.toml and taskstatus_client."""
    source = tmp_path / "client"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "taskstatus_client", source / "taskstatus_client", ignore=ignore)
    return source


def _wait_for_report(server: ScriptedServer, deadline: float = 60) -> dict:
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        for request in list(server.requests):
            if request["path"] == "/jobs/j-1/report":
                return json.loads(request["body"])
        time.sleep(0.05)
    raise AssertionError(f"no report within {deadline} s: {server.requests[:5]}")
