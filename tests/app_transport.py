"""A `requests` transport that hands each request to the app through Chalice's test client:
the SDKs' own HTTP code runs against the real app (moto in-process), with no socket."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

APP_URL = "http://taskstatus.test"
# The app serves one request at a time, as a Lambda does: Chalice keeps the request being
# handled in one place (`app.current_request`), so two threads in it at once would mix their
# requests. Every transport, and a test that calls the client while a worker's threads run,
# holds this lock.
APP_LOCK = threading.Lock()


class AppTransport(BaseAdapter):
    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client
        self.lock = APP_LOCK
        self.sent: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        with self.lock:
            self.sent.append((request.method or "GET", parts.path))
            answer = self.client.http.request(
                request.method, path, headers=dict(request.headers), body=body
            )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.body if isinstance(answer.body, bytes) else answer.body.encode()
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass
