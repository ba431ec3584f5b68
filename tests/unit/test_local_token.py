"""`make token`: a local token for any user, with any extra claims a local stage may read."""

from __future__ import annotations

import json
import subprocess
import sys

import jwt
import pytest

from local.token import local_secret, main
from tests.e2e.conftest import ROOT


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, local_secret(), algorithms=["HS256"])


def minted(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    main(list(argv))
    return claims_of(capsys.readouterr().out.strip())


def test_a_token_names_the_user(capsys):
    assert minted(capsys, "alice")["sub"] == "alice"


def test_claims_are_added_to_the_token(capsys):
    claims = minted(capsys, "ann", "--claims", '{"tid": "acme", "scope": "taskstatus.access"}')
    assert (claims["sub"], claims["tid"], claims["scope"]) == ("ann", "acme", "taskstatus.access")


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ('{"tid": acme}', "CLAIMS is not JSON"),
        ('["tid", "acme"]', "CLAIMS must be a JSON object"),
        ('{"sub": "bob"}', "CLAIMS may not set sub"),
        ('{"exp": 99999999999}', "CLAIMS may not set exp"),
    ],
)
def test_bad_claims_are_refused_with_the_reason_and_mint_nothing(capsys, claims, says):
    with pytest.raises(SystemExit) as refused:
        main(["ann", "--claims", claims])
    output = capsys.readouterr()
    assert refused.value.code == 2 and says in output.err and output.out == ""


def test_help_explains_and_mints_no_token(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    output = capsys.readouterr().out
    assert done.value.code == 0 and "--claims" in output and "eyJ" not in output


def test_make_token_passes_claims_through_as_typed():
    command = ["make", "-s", "token", "NAME=ann", 'CLAIMS={"tid": "acme", "scope": "a b"}']
    token = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    claims = claims_of(token.strip())
    assert (claims["sub"], claims["tid"], claims["scope"]) == ("ann", "acme", "a b")


def test_the_module_runs_as_a_program():
    argv = [sys.executable, "-m", "local.token", "carol", "--claims", '{"tid": "acme"}']
    token = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert json.dumps(claims_of(token.strip())["tid"]) == '"acme"'


def test_an_unknown_option_is_refused_not_minted_as_a_user(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["--user=alice"])
    output = capsys.readouterr()
    assert refused.value.code == 2
    assert "unrecognized arguments: --user=alice" in output.err and output.out == ""
