"""Mint a development token for the `local` stage: `python -m local.token alice`.

The one token minter of the repository (the dev runner and the tests use it too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"


def mint_token(subject: str, secret: str, ttl_seconds: int = 86400, **claims: Any) -> str:
    """An HS256 token for development and tests (never used by the service itself)."""
    import jwt

    now = int(time.time())
    payload = {"sub": subject, "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(payload, secret, "HS256")


def local_secret() -> str:
    stage = json.loads(CONFIG.read_text())["stages"]["local"]
    return stage["environment_variables"]["JWT_SECRET"]


def parser() -> argparse.ArgumentParser:
    """Options are parsed, never taken for a user name: `--help` prints the usage, not a token."""
    parser = argparse.ArgumentParser(
        prog="python -m local.token",
        description="Mint an HS256 token the local stage (`make dev`) accepts.",
    )
    parser.add_argument("user", nargs="?", default="dev-user", help="the token's subject")
    parser.add_argument(
        "ttl_seconds",
        nargs="?",
        type=int,
        default=7 * 86400,
        help="how long the token is valid (default: 7 days)",
    )
    return parser


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    print(mint_token(args.user, local_secret(), args.ttl_seconds))


if __name__ == "__main__":
    main(sys.argv[1:])
