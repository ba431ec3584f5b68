"""The Lambda Invoke API for `make dev`: every function of the app, on 127.0.0.1:$LAMBDA_PORT.

`POST /2015-03-31/functions/{FunctionName}/invocations` runs the function's
handler in this process, as Lambda would: the payload is the event (`{}` when
empty), the context carries the function's name, ARN and a request id. So the
AWS CLI and SDKs reach it with only an endpoint URL:

    aws lambda invoke --endpoint-url http://127.0.0.1:8003 \\
        --function-name taskstatus-local-status --payload '{"assemblyId": "..."}' out.json
    (AWS CLI v2 also needs --cli-binary-format raw-in-base64-out)

Names are Chalice's: `taskstatus-local-<name>` for each function (`status`,
`worker`, `stream`, `ws_connect`, ...) and `taskstatus-local` for the REST API
handler; a function ARN or `name:$LATEST` works too. Like Lambda: a handler
that raises answers 200 with `X-Amz-Function-Error: Unhandled` and the error as
the payload; `InvocationType: Event` answers 202 and runs in the background,
`DryRun` 204; `X-Amz-Log-Type: Tail` returns the invocation's log lines
(base64, last 4 KB) in `X-Amz-Log-Result`; an unknown function is a 404
`ResourceNotFoundException`, a payload that is not JSON a 400
`InvalidRequestContentException`. Signatures are not checked (local only).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from local.events import ACCOUNT, REGION, LambdaContext

log = logging.getLogger("taskstatus_svc.local")

Handler = Callable[[Any, Any], Any]
_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
_ARN = re.compile(r"^arn:aws:lambda:[^:]*:[^:]*:function:(?P<name>[^:]+)(?::.+)?$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's limit for a synchronous invocation
LOG_TAIL_BYTES = 4096


def functions(app_module: Any, app_name: str, stage: str) -> dict[str, Handler]:
    """Every Lambda function of the Chalice app, by its deployed name."""
    app = app_module.app
    configs = [*app.pure_lambda_functions, *app.event_sources]
    configs += list({id(c): c for c in app.websocket_handlers.values()}.values())
    lock = threading.Lock()

    def rest_api(event: Any, context: Any) -> Any:
        with lock:  # one app object, whose current request is not per thread
            return app(event, context)

    found: dict[str, Handler] = {f"{app_name}-{stage}": rest_api}
    for config in configs:
        attribute = config.handler_string.rsplit(".", 1)[-1]
        found[f"{app_name}-{stage}-{config.name}"] = getattr(app_module, attribute)
    return found


def function_name(raw: str) -> str:
    """`name`, `name:qualifier`, a partial or a full ARN -> the function's name."""
    raw = unquote(raw)
    match = _ARN.match(raw)
    if match:
        return match["name"]
    if raw.startswith(f"{ACCOUNT}:function:"):
        raw = raw.split(":function:", 1)[1]
    return raw.split(":", 1)[0]


class _TailCapture(logging.Handler):
    """Log lines of one invocation (its thread), for `X-Amz-Log-Type: Tail`."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.buffer = io.StringIO()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.buffer.write(self.format(record) + "\n")


class LambdaApi:
    def __init__(self, handlers: dict[str, Handler], port: int) -> None:
        self.handlers = handlers
        self.port = port
        self.server: ThreadingHTTPServer | None = None

    def invoke(self, name: str, event: Any) -> tuple[Any, LambdaContext, str | None]:
        """(result or error payload, context, function error kind or None)."""
        context = LambdaContext(name)
        try:
            return self.handlers[name](event, context), context, None
        except Exception as exc:
            log.exception("function %s failed", name)
            error = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return error, context, "Unhandled"

    def _server(self) -> ThreadingHTTPServer:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _send(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, kind: str, message: str) -> None:
                body = json.dumps({"Type": "User", "message": message}).encode()
                headers = {"Content-Type": "application/json", "x-amzn-ErrorType": kind}
                self._send(status, body, headers)

            def do_POST(self) -> None:
                match = _PATH.match(urlsplit(self.path).path)
                if not match:
                    self._error(404, "UnknownOperationException", f"no route for {self.path}")
                    return
                name = function_name(match["name"])
                length = int(self.headers.get("Content-Length", "0"))
                if length > MAX_PAYLOAD_BYTES:
                    self._error(413, "RequestTooLargeException", "the payload is over 6 MB")
                    return
                raw = self.rfile.read(length)
                if name not in api.handlers:
                    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
                    self._error(404, "ResourceNotFoundException", f"Function not found: {arn}")
                    return
                try:
                    event = json.loads(raw) if raw.strip() else {}
                except (ValueError, UnicodeDecodeError) as exc:
                    self._error(
                        400,
                        "InvalidRequestContentException",
                        f"Could not parse request body into json: {exc}",
                    )
                    return
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                if kind == "DryRun":
                    self._send(204)
                elif kind == "Event":
                    threading.Thread(target=api.invoke, args=(name, event), daemon=True).start()
                    self._send(202)
                else:
                    self._run(name, event, self.headers.get("X-Amz-Log-Type") == "Tail")

            def _run(self, name: str, event: Any, tail: bool) -> None:
                capture = _TailCapture() if tail else None
                # The app's own loggers do not propagate to the root logger.
                loggers = [logging.getLogger(), logging.getLogger("taskstatus_svc")]
                for logger in loggers if capture else []:
                    logger.addHandler(capture)
                try:
                    result, context, error = api.invoke(name, event)
                finally:
                    for logger in loggers if capture else []:
                        logger.removeHandler(capture)
                headers = {
                    "Content-Type": "application/json",
                    "X-Amz-Executed-Version": "$LATEST",
                    "x-amzn-RequestId": context.aws_request_id,
                }
                if error:
                    headers["X-Amz-Function-Error"] = error
                if capture:
                    lines = capture.buffer.getvalue().encode()[-LOG_TAIL_BYTES:]
                    headers["X-Amz-Log-Result"] = base64.b64encode(lines).decode()
                self._send(200, json.dumps(result, default=str).encode(), headers)

            def log_message(self, *args: Any) -> None:
                pass

        return ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    def start(self) -> None:
        self.server = self._server()
        threading.Thread(target=self.server.serve_forever, name="lambda-api", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
