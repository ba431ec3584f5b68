"""`python -m local.token` (`make token`): a user name mints a token, an option is never one."""

import subprocess
import sys

import jwt

from local.token import local_secret
from tests.conftest import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.token", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_help_prints_the_usage_and_mints_no_token():
    result = _run("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m local.token")
    assert "eyJ" not in result.stdout


def test_an_unknown_option_is_refused_not_minted_as_a_user():
    result = _run("--user=alice")
    assert result.returncode == 2
    assert "unrecognized arguments: --user=alice" in result.stderr
    assert result.stdout == ""


def test_a_user_name_mints_a_token_for_that_user():
    result = _run("alice", "60")
    claims = jwt.decode(result.stdout.strip(), local_secret(), algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 60
