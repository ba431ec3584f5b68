"""Mint a development token for the `local` stage: `python -m local.token alice`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chalicelib.auth import mint_token

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"


def local_secret() -> str:
    stage = json.loads(CONFIG.read_text())["stages"]["local"]
    return stage["environment_variables"]["JWT_SECRET"]


def main(argv: list[str]) -> None:
    user = argv[0] if argv else "dev-user"
    ttl = int(argv[1]) if len(argv) > 1 else 7 * 86400
    print(mint_token(user, local_secret(), ttl))


if __name__ == "__main__":
    main(sys.argv[1:])
