"""The live dashboard: one HTML page with its script and style inline, served by the app itself.

The page is a shell without data: `GET /dashboard` needs no credentials, and every call
the page makes for data sends the token the user gave it (pasted, or `#token=` in the URL
fragment, which a browser never sends to a server), from the tab's session storage.

Its Content-Security-Policy allows this page's own script and style only (by their
SHA-256: no inline event handler, no injected script can run), calls to this API and
to the WebSocket API, images from this origin, and nothing else. The WebSocket URL is
rendered into the page as a JSON data block, from `WS_PUBLIC_URL` or else the API
Gateway management endpoint (`WS_ENDPOINT_URL`, https -> wss: the same API serves
both); `make dev` sets `WS_PUBLIC_URL` to its gateway's port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalice.app import Response

from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalice.app import Request

    from chalicelib.bootstrap import Container

ASSETS = Path(__file__).parent
_SLOT = re.compile(r"\{\{(style|config|script)\}\}")


def websocket_url(settings: Settings) -> str:
    """The URL a browser opens its WebSocket to (without the `/?token=` part); "" if none."""
    if settings.ws_public_url:
        return settings.ws_public_url.rstrip("/")
    endpoint = settings.ws_endpoint_url.rstrip("/")
    for http_scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
        if endpoint.startswith(http_scheme):
            return ws_scheme + endpoint[len(http_scheme) :]
    return ""


def _source_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@cache
def _assets() -> tuple[str, str, str]:
    # The operator's console (ops.js) is a second script in the same element: one hash.
    script = "\n".join((ASSETS / name).read_text(encoding="utf-8") for name in ("app.js", "ops.js"))
    style = (ASSETS / "app.css").read_text(encoding="utf-8")
    # The script and style are inlined verbatim, so neither may close its own element.
    if "</script" in script.lower() or "</style" in style.lower():
        raise ValueError("the dashboard's script or style closes its own element")
    template = (ASSETS / "page.html").read_text(encoding="utf-8")
    return template, script, style


def _data_block(value: object) -> str:
    """JSON that cannot end its <script type="application/json"> element, whatever it holds."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _origin(url: str) -> str:
    """The scheme, host and port of a URL, as a CSP source; "" for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return ""
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def content_security_policy(script: str, style: str, ws_url: str) -> str:
    connect = " ".join(filter(None, ["'self'", _origin(ws_url)]))
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_source_hash(script)}",
            f"style-src {_source_hash(style)}",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page(container: Container, request: Request) -> Response:
    """The dashboard's page: a shell without data, public (the token stays in the browser)."""
    settings = container.settings
    template, script, style = _assets()
    ws_url = websocket_url(settings)
    if not _origin(ws_url):
        ws_url = ""  # the page then says that live updates are not configured
    parts = {"style": style, "config": _data_block({"wsUrl": ws_url}), "script": script}
    html = _SLOT.sub(lambda match: parts[match.group(1)], template)  # one pass: no slot in a part
    return Response(
        body=html,
        status_code=200,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": content_security_policy(script, style, ws_url),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )
