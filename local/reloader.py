"""`make dev` reloads the app when its code changes, as `chalice local` does.

The stack runs in a child process (`python -m local.dev --serve`); this process owns the
emulator and watches the files the app is made of: app.py, chalicelib/ (processors too)
and .chalice/config.json. When one changes, the child is stopped as at Ctrl-C, after its
running invocations had `RELOAD_GRACE_SECONDS` (10) to finish (the messages of those that
did not are delivered again once their lease ran out), and a new child loads the new code.
The emulator, and so every task, object and queued message, stays up throughout.

Like a deploy, a reload never mixes code: each invocation runs the code of the process it
started in. Code that fails to load leaves the stack stopped, with its traceback, until the
next save. `RELOAD=0 make dev` (or `--no-reload`) runs the stack in one process, unwatched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WATCHED = (ROOT / "app.py", ROOT / "chalicelib", ROOT / ".chalice" / "config.json")
POLL_SECONDS = 0.5


def enabled(argv: list[str], environ: Any = os.environ) -> bool:
    return "--no-reload" not in argv and environ.get("RELOAD", "1") not in {"0", "false", "no"}


def snapshot(watched: Iterable[Path] = WATCHED) -> dict[Path, tuple[int, int]]:
    """Each watched file's modification time and size (Python sources under a folder)."""
    files: dict[Path, tuple[int, int]] = {}
    for path in watched:
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in found:
            try:
                stat = file.stat()
            except FileNotFoundError:
                continue
            files[file] = (stat.st_mtime_ns, stat.st_size)
    return files


def changes(before: dict[Path, Any], after: dict[Path, Any]) -> list[Path]:
    """Files added, removed or modified between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


class Supervisor:
    """Runs the stack in a child process and starts a new one whenever the code changes."""

    def __init__(self, stopped: threading.Event, watched: Iterable[Path] = WATCHED) -> None:
        self.stopped = stopped
        self.watched = tuple(watched)
        self.child: subprocess.Popen[bytes] | None = None

    def _start(self, reloaded: bool) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "local.dev", "--serve"]
        return subprocess.Popen(command + (["--reloaded"] if reloaded else []), cwd=ROOT)

    def _stop_child(self, signum: int) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signum)
        child.wait()

    def run(self) -> int:
        """Until stopped; the child's exit code (0 when it was stopped)."""
        files = snapshot(self.watched)
        self.child = self._start(reloaded=False)
        told_stopped = False
        while not self.stopped.wait(POLL_SECONDS):
            now = snapshot(self.watched)
            changed = changes(files, now)
            if not changed:
                if self.child.poll() is not None and not told_stopped:
                    told_stopped = True
                    print(
                        f"the stack stopped (exit code {self.child.returncode});"
                        " it starts again when a file of the app changes (Ctrl-C quits)",
                        flush=True,
                    )
                continue
            files = now
            names = ", ".join(str(p.relative_to(ROOT)) for p in changed[:3])
            print(f"{names} changed: reloading the app...", flush=True)
            self._stop_child(signal.SIGUSR1)  # stop after a grace for running invocations
            self.child = self._start(reloaded=True)
            told_stopped = False
        self._stop_child(signal.SIGTERM)
        return 0
