"""CORS for every REST route, its preflight and its errors, from `CORS_ALLOW_ORIGINS`.

Chalice's own `cors=` is one fixed origin per route, answered for preflights by a
mock integration in API Gateway. We need several origins and port patterns
(`http://localhost:*`), so the app itself answers: `register_preflights` gives
every route an OPTIONS method (a Lambda proxy method in API Gateway, a route in
`chalice local`), and `edge_middleware` answers it and decorates every response.

An origin that is not allowed gets no CORS headers at all, so the browser
blocks the response. No credentials mode (cookies) is ever allowed: callers
authenticate with a header, so `Access-Control-Allow-Credentials` is never sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from chalice.app import Response

# Every request header a browser client sends, and every response header it reads.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-API-Key",
    "If-None-Match",
    "X-Request-Id",
)
EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-Id",
    "X-Next-Cursor",
    "Link",
    "Idempotent-Replayed",
    "RateLimit-Limit",  # SUBMIT_RATE's bucket (chalicelib/contracts/jobs.py)
    "RateLimit-Remaining",
    "RateLimit-Policy",
)
_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::(\d{1,5}))?$")

# resource path -> its methods, filled by register_preflights (the app's route table).
ROUTE_METHODS: dict[str, tuple[str, ...]] = {}


def allowed_origin(origin: str | None, patterns: Iterable[str]) -> str | None:
    """The Access-Control-Allow-Origin value for `origin`, or None if it is not allowed.

    A pattern is `*`, an exact origin (`https://app.example.com`), or an origin
    with any port (`http://localhost:*`).
    """
    if not origin:
        return None
    parsed = _ORIGIN.match(origin)
    for pattern in patterns:
        if pattern == "*":
            return "*"
        if parsed is None:
            continue
        if pattern == origin:
            return origin
        if pattern.endswith(":*") and pattern[:-2] == f"{parsed[1]}://{parsed[2]}":
            return origin
    return None


def decorate(response: Response, origin: str | None, patterns: Iterable[str]) -> Response:
    """Add the CORS grant to every answer, a preflight's too (the edge middleware's last step):
    `Vary: Origin` whenever origins are configured, and the origin's grant if it is allowed."""
    patterns = tuple(patterns)
    if not patterns:
        return response
    _vary(response)
    allowed = allowed_origin(origin, patterns)
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    return response


def preflight(
    resource_path: str, origin: str | None, patterns: Iterable[str], max_age: int
) -> Response:
    """The answer to `OPTIONS` on a route: 204, with what the route allows if the origin is
    (`decorate` then adds the origin's grant, as to every answer)."""
    methods = ", ".join((*ROUTE_METHODS.get(resource_path, ()), "OPTIONS"))
    response = Response(body="", status_code=204, headers={"Allow": methods})
    if allowed_origin(origin, patterns) is not None:
        response.headers.update(
            {
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": str(max_age),
            }
        )
    return response


def _vary(response: Response) -> None:
    # The answer depends on Origin: a shared cache must not hand one origin's grant to another.
    vary = response.headers.get("Vary", "")
    if "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"


def _preflight_view() -> None:
    """CORS preflight, answered by the app's edge middleware (chalicelib/edge/cors.py)."""


def register_preflights(app: Any) -> None:
    """Give every route declared so far an OPTIONS method; call it after the last route."""
    for path, views in list(app.routes.items()):
        methods = tuple(sorted(m for m in views if m != "OPTIONS"))
        ROUTE_METHODS[path] = methods
        if "OPTIONS" not in views:
            app.route(path, methods=["OPTIONS"], name="preflight")(_preflight_view)
