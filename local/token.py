"""Mint a development token for the `local` stage: `python -m local.token alice`.

The one token minter of the repository (the dev runner and the tests use it too).
"""

from __future__ import annotations

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


def main(argv: list[str]) -> None:
    user = argv[0] if argv else "dev-user"
    ttl = int(argv[1]) if len(argv) > 1 else 7 * 86400
    print(mint_token(user, local_secret(), ttl))


if __name__ == "__main__":
    main(sys.argv[1:])
