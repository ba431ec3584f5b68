"""Where `make infra` and `make deploy` would deploy, checked before anything is created.

"Try it" exports `AWS_ENDPOINT_URL=http://127.0.0.1:5000` for the AWS CLI against `make dev`'s
emulator. In that same shell, `make infra STAGE=dev` would deploy the stage into the emulator,
say the stack "is ready" and write the emulator's resource names into `.chalice/config.json`.
So a stage other than `local` aimed at a loopback endpoint is refused unless asked for
(`DEPLOY_TO_EMULATOR=1`, as the deploy rehearsal does), and missing credentials are named in
one line instead of a botocore traceback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

EMULATOR_OPT_IN = "DEPLOY_TO_EMULATOR"


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint_variables(environ: Mapping[str, str]) -> list[str]:
    """AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> that botocore reads."""
    return [
        name
        for name in sorted(environ)
        if name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_")
    ]


def endpoint_problem(stage: str, environ: Mapping[str, str]) -> str | None:
    """Why this stage must not be deployed where the environment points, if it must not."""
    if environ.get(EMULATOR_OPT_IN) == "1":
        return None
    for name in _endpoint_variables(environ):
        if _is_loopback(environ[name]):
            return (
                f"{name}={environ[name]} points at a local emulator (exported for `make dev`?):"
                f" `unset {name}` to deploy stage {stage!r} to AWS,"
                f" or set {EMULATOR_OPT_IN}=1 to deploy it to the emulator"
            )
    return None


def credentials_problem(session: Any) -> str | None:
    """What to set when boto3 finds no credentials (it would fail at the first call)."""
    if session.get_credentials() is None:
        return (
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY), or run `aws configure`"
        )
    if not session.region_name:
        return "no AWS region: set AWS_DEFAULT_REGION (e.g. AWS_DEFAULT_REGION=us-east-1)"
    return None


def check_target(stage: str, environ: Mapping[str, str] = os.environ, session: Any = None) -> None:
    """Stop with one line saying what to change if `stage` should not be deployed from here."""
    import boto3

    problem = endpoint_problem(stage, environ) or credentials_problem(session or boto3.Session())
    if problem:
        raise SystemExit(f"refusing to deploy stage {stage!r}: {problem}")
