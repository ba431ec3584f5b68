"""Warm "Lambda containers" for the local REST API: each serves one request at a time.

Chalice keeps the request being handled on the app object (`app.current_request`,
`app.lambda_context`). In Lambda that is safe, since one container runs one invocation at a
time. Chalice's local server (`LocalDevServer`) handles requests in threads against one app
object, so under concurrent requests a view could read another request's `current_request`:
a job stored under another user's identity, or a request without the edge middleware's state
(`KeyError: 'taskstatus'`).

Here each container is its own copy of app.py (its own `Chalice` object); a request checks
out a free container, runs, and gives it back. Requests beyond the pool's size wait for a
container, as Lambda would queue them at its concurrency limit.
"""

from __future__ import annotations

import importlib.util
import queue
from pathlib import Path
from types import ModuleType
from typing import Any

from chalice.local import LocalGateway

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"


def load_app_copy(index: int) -> ModuleType:
    """A fresh copy of app.py under its own module name (chalicelib stays shared, as in a
    container its modules are imported once)."""
    spec = importlib.util.spec_from_file_location(f"taskstatus_app_container_{index}", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PooledGateway:
    """Looks like chalice.local.LocalGateway to the request handler; runs each request in a
    free container."""

    def __init__(self, apps: list[Any], config: Any) -> None:
        if not apps:
            raise ValueError("the pool needs at least one app")
        self.size = len(apps)
        self._free: queue.LifoQueue[LocalGateway] = queue.LifoQueue()
        for app in apps:
            self._free.put(LocalGateway(app, config))

    @classmethod
    def of_copies(cls, first: ModuleType, size: int, config: Any) -> PooledGateway:
        """`first` (the already imported app module) and `size - 1` fresh copies of it."""
        modules = [first] + [load_app_copy(i) for i in range(1, size)]
        return cls([m.app for m in modules], config)

    def handle_request(
        self, method: str, path: str, headers: dict[str, Any], body: bytes | None
    ) -> dict[str, Any]:
        gateway = self._free.get()
        try:
            return gateway.handle_request(method=method, path=path, headers=headers, body=body)
        finally:
            self._free.put(gateway)
