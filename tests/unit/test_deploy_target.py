"""`make infra` / `make deploy` refuse to deploy a real stage into `make dev`'s emulator, and say
in one line what to set when there are no AWS credentials."""

import os
import subprocess
import sys

import boto3
import pytest

from infra.ports import free_port
from infra.target import check_target
from tests.conftest import ROOT

NO_CREDENTIALS = {
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata lookup: no network
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **NO_CREDENTIALS, **extra}


def _run(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config = (ROOT / ".chalice" / "config.json").read_text()
    result = subprocess.run(
        [sys.executable, "-m", module, "dev"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (ROOT / ".chalice" / "config.json").read_text() == config  # nothing was written
    return result


def _with_credentials(**extra: str) -> dict[str, str]:
    return _environment(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", **extra)


@pytest.mark.parametrize("module", ["infra.stage", "infra.deploy"])
def test_a_stage_aimed_at_the_emulator_left_exported_by_try_it_is_refused(module):
    emulator = f"http://127.0.0.1:{free_port()}"
    result = _run(module, _with_credentials(AWS_ENDPOINT_URL=emulator))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"refusing to deploy stage 'dev': AWS_ENDPOINT_URL={emulator} points at a local emulator"
        " (exported for `make dev`?): `unset AWS_ENDPOINT_URL` to deploy stage 'dev' to AWS,"
        " or set DEPLOY_TO_EMULATOR=1 to deploy it to the emulator"
    ]


@pytest.mark.parametrize("module", ["infra.stage", "infra.deploy"])
def test_without_credentials_one_line_says_what_to_set(module):
    result = _run(module, _environment())
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "refusing to deploy stage 'dev': no AWS credentials found: set AWS_PROFILE"
        " (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or run `aws configure`"
    ]


@pytest.mark.parametrize(
    "endpoint", ["http://localhost:5000", "http://[::1]:5000", "http://127.0.0.2:4566"]
)
def test_every_loopback_endpoint_counts_as_an_emulator(endpoint):
    with pytest.raises(SystemExit, match="points at a local emulator"):
        check_target("dev", {"AWS_ENDPOINT_URL_CLOUDFORMATION": endpoint}, _session())


def test_deploying_to_the_emulator_is_allowed_when_asked_for():
    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "DEPLOY_TO_EMULATOR": "1"}
    check_target("dev", environ, _session())


def test_an_endpoint_on_aws_itself_is_allowed():
    environ = {"AWS_ENDPOINT_URL": "https://cloudformation.us-east-1.amazonaws.com"}
    check_target("dev", environ, _session())


def test_without_a_region_one_line_says_what_to_set(monkeypatch):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    assert session.region_name is None
    with pytest.raises(SystemExit, match="set AWS_DEFAULT_REGION"):
        check_target("dev", {}, session)


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
