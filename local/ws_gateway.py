"""A local API Gateway WebSocket API, since `chalice local` serves no WebSockets.

Clients connect to ws://127.0.0.1:$WS_PORT/?token=...; each connect, message and
disconnect is handed to the app's own handlers as API Gateway's event
(`requestContext.routeKey`, `connectionId`, `queryStringParameters`, ...).
A `$connect` answer other than 200 refuses the handshake with that status.

The management API the app pushes through (`POST/GET/DELETE /@connections/{id}`)
is served on $WS_MANAGEMENT_PORT (websockets serves only GET), and answers 410
GoneException for a connection that is closed, as API Gateway does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from local.events import LambdaContext, ws_event

log = logging.getLogger("taskstatus_svc.local")


class WebSocketGateway:
    def __init__(self, app_module: Any, port: int, management_port: int) -> None:
        self.app = app_module
        self.port = port
        self.management_port = management_port
        self.connections: dict[str, ServerConnection] = {}
        self.connected_at: dict[str, float] = {}
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.management: ThreadingHTTPServer | None = None

    # -- WebSocket side ----------------------------------------------------------------

    def _invoke(self, handler: Any, event: dict[str, Any]) -> dict[str, Any]:
        try:
            return handler(event, LambdaContext(getattr(handler, "__name__", "ws")))
        except Exception:
            log.exception("WebSocket handler failed for %s", event["requestContext"]["routeKey"])
            return {"statusCode": 500}

    async def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        connection_id = base64.urlsafe_b64encode(os.urandom(9)).decode()
        pairs = parse_qsl(urlsplit(request.path).query)
        multi: dict[str, list[str]] = {}
        for key, value in pairs:
            multi.setdefault(key, []).append(value)
        connected_at = time.time()
        event = ws_event(
            "$connect",
            connection_id,
            self.port,
            connected_at,
            queryStringParameters=dict(pairs) or None,
            multiValueQueryStringParameters=multi or None,
            headers=dict(request.headers.raw_items()),
            multiValueHeaders={k: request.headers.get_all(k) for k in request.headers},
        )
        result = await self.loop.run_in_executor(None, self._invoke, self.app.ws_connect, event)
        status = int((result or {}).get("statusCode", 200))
        if status != 200:
            return connection.respond(
                HTTPStatus(status), str((result or {}).get("body", "refused")) + "\n"
            )
        connection.taskstatus_id = connection_id  # type: ignore[attr-defined]
        self.connected_at[connection_id] = connected_at
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        connection_id: str = connection.taskstatus_id  # type: ignore[attr-defined]
        self.connections[connection_id] = connection
        since = self.connected_at.setdefault(connection_id, time.time())
        try:
            async for message in connection:
                body = message if isinstance(message, str) else message.decode("utf-8", "replace")
                event = ws_event("$default", connection_id, self.port, since, body=body)
                await self.loop.run_in_executor(None, self._invoke, self.app.ws_message, event)
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(connection_id, None)
            self.connected_at.pop(connection_id, None)
            event = ws_event("$disconnect", connection_id, self.port, since)
            await self.loop.run_in_executor(None, self._invoke, self.app.ws_disconnect, event)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(
            self._handler,
            "127.0.0.1",
            self.port,
            process_request=self._process_request,
            max_size=128 * 1024,
        ):
            self._ready.set()
            await self._stop.wait()

    # -- management API (what the app's apigatewaymanagementapi client talks to) ------------

    def push(self, connection_id: str, data: bytes) -> bool:
        connection = self.connections.get(connection_id)
        if connection is None:
            return False
        future = asyncio.run_coroutine_threadsafe(connection.send(data.decode()), self.loop)
        try:
            future.result(timeout=5)
        except (ConnectionClosed, TimeoutError):
            return False
        return True

    def close(self, connection_id: str) -> bool:
        connection = self.connections.get(connection_id)
        if connection is None:
            return False
        asyncio.run_coroutine_threadsafe(connection.close(), self.loop).result(timeout=5)
        return True

    def _management_server(self) -> ThreadingHTTPServer:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _connection_id(self) -> str | None:
                path = urlsplit(self.path).path
                prefix = "/@connections/"
                return path[len(prefix) :] if path.startswith(prefix) else None

            def _answer(
                self, status: int, body: dict[str, Any] | None = None, error: str = ""
            ) -> None:
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _gone(self) -> None:
                self._answer(410, {"message": "the connection is gone"}, "GoneException")

            def do_POST(self) -> None:
                connection_id = self._connection_id()
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if connection_id and gateway.push(connection_id, data):
                    self._answer(200)
                else:
                    self._gone()

            def do_GET(self) -> None:
                connection_id = self._connection_id()
                if not connection_id or connection_id not in gateway.connections:
                    self._gone()
                    return
                since = gateway.connected_at.get(connection_id, time.time())
                moment = datetime.fromtimestamp(since, UTC).isoformat()
                self._answer(
                    200,
                    {
                        "ConnectedAt": moment,
                        "LastActiveAt": moment,
                        "Identity": {"SourceIp": "127.0.0.1"},
                    },
                )

            def do_DELETE(self) -> None:
                connection_id = self._connection_id()
                if connection_id and gateway.close(connection_id):
                    self._answer(204)
                else:
                    self._gone()

            def log_message(self, *args: Any) -> None:
                pass

        return ThreadingHTTPServer(("127.0.0.1", self.management_port), Handler)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.management = self._management_server()
        threading.Thread(
            target=self.management.serve_forever, name="ws-management", daemon=True
        ).start()
        threading.Thread(target=self._run, name="ws-gateway", daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the WebSocket gateway did not start on port {self.port}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self.management is not None:
            self.management.shutdown()
