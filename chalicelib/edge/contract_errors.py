"""Each seed contract's own error shape, for errors raised on its routes in the native shape.

The edge middleware (chalicelib/edge/middleware.py) answers a bad token, a bad content type
or an unexpected failure in the native shape `{"error": {"code", "message"}, ...}`;
on a contract's routes the origin's clients read their own shape instead:

  /task*          000/001 and 004  {"error": "<message>"}
  /status, /submit     002         {"error": "<message>", "timestamp": "..."}
  /assemblies*         003         {"error": "<message>"} (401/403: a code and `message`;
                                   500: the origin's "Failed to fetch assembly status" + `message`)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Response

Shaper = Callable[[int, str, str], dict[str, Any]]


def _plain(status: int, message: str, timestamp: str) -> dict[str, Any]:
    return {"error": message}


def _autovid(status: int, message: str, timestamp: str) -> dict[str, Any]:
    return {"error": "Internal server error" if status == 500 else message, "timestamp": timestamp}


_ASSEMBLY_AUTH_CODES = {401: "UNAUTHORIZED", 403: "FORBIDDEN"}  # the origin's codes


def _assembly(status: int, message: str, timestamp: str) -> dict[str, Any]:
    if status >= 500:
        return {"error": "Failed to fetch assembly status", "message": message}
    if status in _ASSEMBLY_AUTH_CODES:
        return {"error": _ASSEMBLY_AUTH_CODES[status], "message": message}
    return {"error": message}


_SHAPERS: tuple[tuple[str, Shaper], ...] = (
    ("/task", _plain),  # /task, /task/{task_id}, /task/list, /task-status...
    ("/status/", _autovid),
    ("/submit", _autovid),
    ("/assemblies", _assembly),
)


def shaper_for(path: str) -> Shaper | None:
    for prefix, shaper in _SHAPERS:
        if path.startswith(prefix):
            return shaper
    return None


def reshape(path: str, response: Response) -> Response:
    """A native error on a contract's route, in that contract's shape; anything else as it is."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict):
        return response
    detail = body.get("error")
    shaper = shaper_for(path)
    if shaper is None or not isinstance(detail, dict) or "message" not in detail:
        return response
    response.body = shaper(response.status_code, str(detail["message"]), body.get("timestamp", ""))
    return response
