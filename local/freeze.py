"""Stopping `make dev` freezes the invocations still running, as Lambda freezes a sandbox.

Ctrl-C must not wait for a long task, so the handlers' threads are abandoned while they run
(their SQS messages are released to be delivered again after the restart: local/pumps.py).
Left alone, they would go on calling AWS after the emulator stopped, and each failed call
would be logged with its traceback (about a hundred lines per task in flight), and a call
that got through after the messages were released would race their redelivery. Lambda never
shows that: a stopped sandbox makes no more calls and logs nothing. So at shutdown every AWS
call from another thread than the one stopping the stack blocks until the process exits.

Only daemon threads are frozen (the pumps' invocations, the schedules, the gateways): the
interpreter waits for the others at exit, so freezing one would keep `make dev` from ending.
"""

from __future__ import annotations

import threading
from typing import Any

_frozen = threading.Event()
_stopper: threading.Thread | None = None
_never = threading.Event()  # never set: a frozen call waits on it until the process exits


def _frozen_here() -> bool:
    current = threading.current_thread()
    return _frozen.is_set() and current is not _stopper and current.daemon


def install() -> None:
    """Route every botocore request of this process through the freeze check (once)."""
    from botocore.httpsession import URLLib3Session

    send = URLLib3Session.send
    if getattr(send, "freezes", False):
        return

    def send_unless_frozen(self: Any, request: Any) -> Any:
        if _frozen_here():
            _never.wait()
        return send(self, request)

    send_unless_frozen.freezes = True  # type: ignore[attr-defined]
    URLLib3Session.send = send_unless_frozen  # type: ignore[method-assign]


def freeze_all_but_this_thread() -> None:
    """From now on only the calling thread (the one stopping the stack) reaches AWS."""
    global _stopper
    _stopper = threading.current_thread()
    _frozen.set()
