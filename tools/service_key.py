"""`make service-key`: issue, list and revoke service keys (never over the REST API).

    make service-key NAME=transcoder OWNERS='tenant-a* user-42' [SCOPES='jobs:write jobs:report']
    make service-key NAME=gpu-box OWNERS='*' POOLS=remote     (a remote worker's credential)
    make service-key-list
    make service-key-revoke ID=ak_...

Against the local stack (`make dev`) by default; with STAGE=<stage> against that stage's
records table (RECORDS_TABLE, or taskstatus-records) with your AWS credentials. The key is
printed on the last line, once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_stage(stage: str) -> None:
    """The local stage's emulator and table names, as `make dev` runs them."""
    if stage != "local":
        return
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for name, value in config["stages"]["local"]["environment_variables"].items():
        os.environ.setdefault(name, value)


def _words(value: str) -> list[str]:
    return value.replace(",", " ").split()


def main(argv: list[str]) -> int:
    use_stage(os.environ.get("STAGE", "local"))
    sys.path.insert(0, str(ROOT))
    from chalicelib.edge.api_keys import KeyNotFound
    from chalicelib.edge.service_keys import DEFAULT_SCOPES, BadServiceKey, ServiceKeys
    from chalicelib.model import utcnow

    keys = ServiceKeys(os.environ.get("RECORDS_TABLE", "taskstatus-records"))
    command = argv[0] if argv else "create"
    if command == "list":
        for key in keys.all():
            owners = " ".join(key.acts_for)
            print(f"{key.id}  {key.name}  owners: {owners}  scopes: {' '.join(key.scopes)}")
        return 0
    if command == "revoke":
        try:
            keys.revoke_service_key(os.environ.get("ID", ""))
        except KeyNotFound:
            print(f"no service key {os.environ.get('ID', '')!r}", file=sys.stderr)
            return 1
        print("revoked (warm functions stop accepting it within API_KEY_CACHE_SECONDS)")
        return 0
    scopes = _words(os.environ.get("SCOPES", "")) or list(DEFAULT_SCOPES)
    try:
        key, secret = keys.create(
            os.environ.get("NAME", ""),
            _words(os.environ.get("OWNERS", "")),
            scopes,
            utcnow(),
            pools=tuple(_words(os.environ.get("POOLS", ""))),
        )
    except BadServiceKey as exc:
        print(f"service-key: {exc}", file=sys.stderr)
        return 2
    pools = f"; pools: {' '.join(key.pools)}" if key.pools else ""
    print(
        f"service key {key.id} ({key.name}) for {' '.join(key.acts_for)}: "
        f"{' '.join(key.scopes)}{pools}"
    )
    print(secret)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
