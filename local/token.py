"""Mint a development token for the `local` stage: `python -m local.token alice`.

The dev runner and the tests mint with it; the client's CLI has its own small minter
(`taskstatus_client/cli.py` `_local_token`), since the client cannot import `local/`.
`make token NAME=ann CLAIMS='{"tid": "acme", "scope": "taskstatus.access"}'` adds claims, for
trying identity mapping (`OWNER_CLAIM`) and required scopes (`JWT_REQUIRED_SCOPES`) locally.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
# Claims the minter sets itself: given in CLAIMS they would make a token that says other
# than what was asked for (another user, or a lifetime other than the TTL).
OWN_CLAIMS = ("sub", "iat", "exp")


def mint_token(subject: str, secret: str, ttl_seconds: int = 86400, **claims: Any) -> str:
    """An HS256 token for development and tests (never used by the service itself)."""
    import jwt

    now = int(time.time())
    payload = {"sub": subject, "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(payload, secret, "HS256")


def local_secret() -> str:
    stage = json.loads(CONFIG.read_text())["stages"]["local"]
    return stage["environment_variables"]["JWT_SECRET"]


def parse_claims(text: str) -> dict[str, Any]:
    """CLAIMS as given: a JSON object of extra claims, none of the minter's own."""
    try:
        claims = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CLAIMS is not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(claims, dict):
        raise ValueError(f'CLAIMS must be a JSON object, e.g. {{"tid": "acme"}}; got {text!r}')
    taken = [name for name in OWN_CLAIMS if name in claims]
    if taken:
        raise ValueError(f"CLAIMS may not set {', '.join(taken)}: use NAME (sub) and the TTL")
    return claims


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.token",
        description="Print a token the local stage (make dev) accepts. Never for a deployed stage.",
    )
    parser.add_argument("user", nargs="?", default="dev-user", help="the token's sub (dev-user)")
    parser.add_argument(
        "ttl", nargs="?", type=int, default=7 * 86400, help="lifetime in seconds (7 days)"
    )
    parser.add_argument(
        "--claims",
        default="{}",
        metavar="JSON",
        help='extra claims, e.g. \'{"tid": "acme", "scope": "taskstatus.access"}\'',
    )
    return parser


def main(argv: list[str]) -> None:
    parser = arguments()
    args = parser.parse_args(argv)
    try:
        claims = parse_claims(args.claims)
    except ValueError as exc:
        parser.error(str(exc))
    print(mint_token(args.user, local_secret(), args.ttl, **claims))


if __name__ == "__main__":
    main(sys.argv[1:])
