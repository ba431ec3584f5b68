"""The AWS emulator of `make dev`: the moto server, whose state can outlive it.

`python -m local.emulator --port 5000 --state .taskstatus/state/emulator.pickle`
loads the state file if there is one, serves, and on SIGTERM (or when the process that
started it goes away) stops serving and writes the state back. moto has no persistence of
its own, so the state is its in-memory backends of the services the stack uses, pickled;
a state file that no longer loads (another moto version) is set aside, and the emulator
starts empty.

SQS messages keep their visibility: a message received before the stop comes back when
its visibility timeout runs out, as it would in AWS.
"""

from __future__ import annotations

import argparse
import copyreg
import io
import logging
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from local.moto_query import GlobalPartitions

SERVICES = ("cloudformation", "dynamodb", "sqs", "s3")
log = logging.getLogger("taskstatus_svc.emulator")


DERIVED = "derived"  # what the state leaves out, made again on first use


class _StatePickler(pickle.Pickler):
    # moto's SQS and CloudFormation models hold locks; a restored model gets new ones.
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[type(threading.RLock())] = lambda _: (threading.RLock, ())
    dispatch_table[type(threading.Lock())] = lambda _: (threading.Lock, ())

    def persistent_id(self, obj: Any) -> str | None:
        # a table's kept index partitions (local/moto_query.py) are made again from its
        # items, so a state file never depends on how this code keeps them
        return DERIVED if isinstance(obj, GlobalPartitions) else None


class _StateUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> None:
        if pid != DERIVED:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return None


def dump_state() -> bytes:
    from moto.backends import get_backend

    state = {
        name: {account: dict(regions) for account, regions in get_backend(name).items()}  # type: ignore[arg-type]
        for name in SERVICES
    }
    buffer = io.BytesIO()
    _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buffer.getvalue()


def load_state(data: bytes) -> None:
    from moto.backends import get_backend

    state: dict[str, dict[str, dict[str, Any]]] = _StateUnpickler(io.BytesIO(data)).load()  # ours
    for name, accounts in state.items():
        backends = get_backend(name)  # type: ignore[arg-type]
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backends[account][region] = backend


def save(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(dump_state())
    partial.replace(path)


def restore(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        load_state(path.read_bytes())
    except Exception as exc:  # an old or damaged file must not stop `make dev`
        aside = path.with_suffix(".unreadable")
        path.replace(aside)
        print(f"emulator: could not load {path} ({exc!r}); moved it to {aside}", file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    from infra.moto_cloudformation import patch_cloudformation
    from local.moto_dynamodb import patch_dynamodb

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    patch_dynamodb()  # DynamoDB under concurrent requests (local/moto_dynamodb.py)
    patch_cloudformation()  # what moto's CloudFormation lacks (infra/moto_cloudformation.py)

    if args.state is not None:
        restore(args.state)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    parent = os.getppid()
    while not stopped.wait(1):
        if os.getppid() != parent:  # `make dev` died without stopping us
            break
    server.stop()
    if args.state is not None:
        save(args.state)


if __name__ == "__main__":
    main(sys.argv[1:])
