"""A real webhook receiver on 127.0.0.1 that answers from a script and records every delivery."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.scripted_server import SHUTDOWN_POLL_SECONDS


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"


class Receiver:
    """Answers each POST with the next scripted status (the last one repeats)."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        delays: list[float] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.statuses = list(statuses or [200])
        self.delays = list(delays or [0])
        self.extra_headers = headers or {}
        self.deliveries: list[Delivery] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                index = len(receiver.deliveries)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.deliveries.append(Delivery(headers, body, time.time(), self.command))
                receiver.arrived.set()
                time.sleep(receiver.delays[min(index, len(receiver.delays) - 1)])
                status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                try:
                    self.send_response(status)
                    for name, value in receiver.extra_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_PUT = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/taskstatus"
        threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True
        ).start()

    def ids(self) -> list[str]:
        return [d.headers["webhook-id"] for d in self.deliveries]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
