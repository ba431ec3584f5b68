"""Find a running `make dev` from inside its checkout: `.taskstatus/local.json`.

`make dev` writes its URLs and a development token there (and removes the file when it
stops); the CLI and `TaskStatusClient()` read it when run in the checkout or below it.
Explicit arguments and the TASKSTATUS_* environment variables win over it.

The file decides where a token goes (TASKSTATUS_TOKEN too, when TASKSTATUS_URL is not
set), so one planted by someone else would collect it. It is read only when it is the
checkout's own and points at this machine:
  - the search goes up from the working directory to the checkout's root (the folder with
    `.git`) and never above it: a file in a shared parent (/tmp, a home, a mount) is not
    the checkout's;
  - the file and its folder belong to the user running the client, and no one else may
    write them (as ssh requires of ~/.ssh);
  - its URLs are on the loopback interface (127.0.0.1, localhost, ::1): `make dev` serves
    nowhere else.
A file that fails a check is ignored with a warning that says which check and where.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOCAL_FILE = Path(".taskstatus") / "local.json"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
URL_KEYS = ("api", "ws")


class UntrustedLocalFile(UserWarning):
    """A `.taskstatus/local.json` was found and not used."""


def find_local(start: Path | None = None) -> dict[str, Any] | None:
    """The endpoints file of the checkout `start` (default: the working directory) is in."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / LOCAL_FILE
        if candidate.is_file():
            return _trusted(candidate)
        if (folder / ".git").exists():
            return None  # the checkout's root: what is above it is not the checkout's
    return None


def _trusted(path: Path) -> dict[str, Any] | None:
    problem = _ownership_problem(path) or _ownership_problem(path.parent)
    if problem:
        return _ignored(path, problem)
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    for key in URL_KEYS:
        if key in found and not is_loopback(found[key]):
            return _ignored(path, f"its {key} URL {str(found[key])[:100]!r} is not on this machine")
    return found


def _ownership_problem(path: Path) -> str | None:
    """Why `path` may not be the user's own, or None."""
    if not hasattr(os, "getuid"):
        return None  # no POSIX owners (Windows): the loopback check still holds
    info = path.stat()
    if info.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} can be written by other users"
    return None


def is_loopback(url: Any) -> bool:
    """Whether `url` is an http(s) or ws(s) URL on this machine's loopback interface."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOOPBACK_HOSTS


def _ignored(path: Path, why: str) -> None:
    warnings.warn(
        f"ignoring {path}: {why}; set TASKSTATUS_URL (or pass --url) to choose a server",
        UntrustedLocalFile,
        stacklevel=3,
    )
    return None
