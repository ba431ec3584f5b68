"""`pip install .` gives a client that works inside someone else's Chalice project."""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scripted_server import Reply, ScriptedServer
from tests.unit.test_client import job

pytestmark = pytest.mark.slow  # builds a wheel and a venv (`make unit-fast` leaves it out)

USE_THE_CLIENT = """
import chalicelib, sys
from taskstatus_client import TaskStatusClient
from taskstatus_client.models import JobDocument
assert chalicelib.OWNER == "their project", chalicelib.__file__
found = TaskStatusClient(sys.argv[1], "token", ws_url=None).get(sys.argv[2])
assert isinstance(found, JobDocument) and found.status.value == "completed"
print("ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "taskstatus_client", source / "taskstatus_client")
    shutil.copytree(ROOT / "chalicelib", source / "chalicelib")  # present, as in the checkout
    out = tmp_path_factory.mktemp("wheel")
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)]
    subprocess.run(
        [sys.executable, "-m", "pip", *build],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("taskstatus_client-*.whl")
    return built


def test_the_wheel_ships_no_top_level_package_but_the_client(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"taskstatus_client"}


def test_the_installed_client_works_beside_a_projects_own_chalicelib(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The client's dependencies from this venv (no network); the client itself from the wheel.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = ["--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(
        [sys.executable, "-m", "pip", *install],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "their-project"
    (project / "chalicelib").mkdir(parents=True)
    (project / "chalicelib" / "__init__.py").write_text('OWNER = "their project"\n')
    server = ScriptedServer([Reply(200, job("completed"))])
    try:
        result = subprocess.run(
            [python, "-c", USE_THE_CLIENT, server.url, job()["jobId"]],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
