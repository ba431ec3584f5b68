"""The Lambda Invoke API for `make dev`: the functions clients invoke, on 127.0.0.1:$LAMBDA_PORT.

A development surface, never deployed: it stands in for `lambda:InvokeFunction`, which
IAM guards in AWS. Only the functions a client invokes are served: seed 003's `status`
(its `StatusLambdaClient` calls it through the AWS SDK). The others (worker, stream,
webhooks, reaper, WebSocket handlers, the REST handler) trust their events, because in
AWS only their event sources can call them: served here, any local caller could forge a
stream record and have a webhook signed with another owner's secret.

`POST /2015-03-31/functions/{FunctionName}/invocations` runs the handler in this
process, as Lambda would: the payload is the event (`{}` when empty), the context
carries the function's name, ARN and a request id. So the AWS CLI and SDKs reach it
with only an endpoint URL:

    aws lambda invoke --endpoint-url http://127.0.0.1:8003 \\
        --function-name taskstatus-local-status --payload '{"assemblyId": "..."}' out.json
    (AWS CLI v2 also needs --cli-binary-format raw-in-base64-out)

What it refuses, before reading the payload (docs/local-lambda-api.md says why):
  - a request a browser sent (an `Origin` or a `Sec-Fetch-*` header): 403;
  - a `Host` that is not 127.0.0.1, localhost or [::1] (DNS rebinding): 403;
  - a request that is not SigV4-signed (no `Authorization: AWS4-HMAC-SHA256 ...`): 403
    `MissingAuthenticationTokenException`; the signature itself is not verified;
  - a content type other than what the SDKs send (none, `application/octet-stream`,
    `application/json`): 415 `UnsupportedMediaTypeException`. Browsers post forms and
    `text/plain` without asking first; those are exactly what this refuses.

Like Lambda: a handler that raises answers 200 with `X-Amz-Function-Error: Unhandled`
and the error as the payload; `InvocationType: Event` answers 202 and runs in the
background, `DryRun` 204; `X-Amz-Log-Type: Tail` returns the invocation's log lines
(base64, last 4 KB) in `X-Amz-Log-Result`; a function that is not served is a 404
`ResourceNotFoundException`, a payload that is not JSON a 400
`InvalidRequestContentException`. A function ARN or `name:$LATEST` works too.
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
from dataclasses import dataclass
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
# The functions a client invokes by name: seed 003's Status Lambda. Every other function
# is called only by its event source in AWS, and trusts what that source sends.
CLIENT_FUNCTIONS = ("status",)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
# What the SDKs send: botocore none, the JavaScript SDK v3 application/octet-stream.
SDK_CONTENT_TYPES = frozenset({"", "application/octet-stream", "application/json"})
SIGV4 = "AWS4-HMAC-SHA256 "


def functions(app_module: Any, app_name: str, stage: str) -> dict[str, Handler]:
    """The functions a client invokes (CLIENT_FUNCTIONS), by their deployed names."""
    configs = {config.name: config for config in app_module.app.pure_lambda_functions}
    return {
        f"{app_name}-{stage}-{name}": getattr(
            app_module, configs[name].handler_string.rsplit(".", 1)[-1]
        )
        for name in CLIENT_FUNCTIONS
    }


@dataclass(frozen=True)
class Refusal:
    """Why a request is not run: an HTTP status, Lambda's error type, and what to do."""

    status: int
    kind: str
    message: str


def host_name(host: str) -> str:
    """`Host` without its port, lowercased: `LocalHost:8003` -> `localhost`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refusal(headers: Any) -> Refusal | None:
    """The reason to refuse a request from its headers, or None: it is an SDK's, on this machine.

    A browser on any web page can send a POST to 127.0.0.1 (a form, or a `fetch` that
    needs no preflight), and a page whose name re-resolves to 127.0.0.1 can read the
    answers (DNS rebinding). Browsers always add `Origin` to a POST, and `Sec-Fetch-*` to
    every request; a rebound page's requests carry its own name as `Host`.
    """
    if headers.get("Origin") is not None or any(
        name.lower().startswith("sec-fetch-") for name in headers
    ):
        return Refusal(
            403,
            "AccessDeniedException",
            "browsers may not call the local Lambda API (the request has an Origin or "
            "Sec-Fetch header); invoke it with the AWS CLI or an SDK",
        )
    host = headers.get("Host") or ""
    if host_name(host) not in LOOPBACK_HOSTS:
        return Refusal(
            403,
            "AccessDeniedException",
            f"the local Lambda API answers only requests addressed to 127.0.0.1 or "
            f"localhost, not {host[:100]!r}",
        )
    if not (headers.get("Authorization") or "").startswith(SIGV4):
        return Refusal(
            403,
            "MissingAuthenticationTokenException",
            "the request is not signed: invoke it with the AWS CLI or an SDK (any "
            "credentials, e.g. AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing)",
        )
    content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type not in SDK_CONTENT_TYPES:
        return Refusal(
            415,
            "UnsupportedMediaTypeException",
            f"Content-Type {content_type!r} is not accepted: send the payload as the SDKs "
            "do (application/octet-stream, application/json or none)",
        )
    return None


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
                refused = refusal(self.headers)
                if refused is not None:
                    self._error(refused.status, refused.kind, refused.message)
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

    @property
    def url(self) -> str:
        """Where it listens (its port is known once started, when it was asked for port 0)."""
        port = self.server.server_address[1] if self.server else self.port
        return f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.server = self._server()
        threading.Thread(target=self.server.serve_forever, name="lambda-api", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
