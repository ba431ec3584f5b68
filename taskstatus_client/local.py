"""Find a running `make dev` from inside its checkout: `.taskstatus/local.json`.

`make dev` writes its URLs and a development token there (and removes the file when it
stops); the CLI and `TaskStatusClient()` read it when run in the checkout or below it.
Explicit arguments and the TASKSTATUS_* environment variables win over it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOCAL_FILE = Path(".taskstatus") / "local.json"


def find_local(start: Path | None = None) -> dict[str, Any] | None:
    """The endpoints file of the checkout `start` (default: the working directory) is in."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / LOCAL_FILE
        if candidate.is_file():
            try:
                found = json.loads(candidate.read_text())
            except (OSError, ValueError):
                return None
            return found if isinstance(found, dict) else None
    return None
