"""The REST edge: the middleware around every route, and the native error shape.

The middleware (`app.py` hands each request to `serve`) runs around every REST route (Lambda,
`chalice local` and the test client alike), so a bad token is a 401 with our error
shape everywhere, and each seed contract's routes answer in that contract's shape.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from chalice.app import Request, Response

from chalicelib import timefmt
from chalicelib.edge import contract_errors, cors, http
from chalicelib.edge.auth import (
    OPERATE,
    READ,
    REPORT,
    WRITE,
    InsufficientScope,
    InvalidToken,
    Principal,
    credential_from_headers,
)
from chalicelib.edge.http_errors import ApiError, Forbidden
from chalicelib.observability import configure_logging, request_id_var
from chalicelib.settings import Settings

# The dashboard's page is a shell without data: the token stays in the browser, and every
# call the page makes for data carries it.
# Routes that answer anyone: 000/001's `GET /task` is the origin's fixed 400 (no id, so
# nothing to read), which its callers got without credentials; /dashboard/sign-in's one-time
# code is its credential (chalicelib/contracts/dashboard/links.py).
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/dashboard", "/dashboard/sign-in", "/task"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_ROUTES = frozenset({"/webhooks/secret"})
# A producer's routes (chalicelib/reports.py): their own scope, neither read nor write.
REPORT_ROUTES = frozenset(
    {
        "/jobs/{jobId}/report",
        "/jobs/{jobId}/heartbeat",
        "/jobs/{jobId}/release",
        "/pools/{pool}/claim",
    }
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CHALICE_STATUS_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    415: "unsupported_media_type",
    500: "internal_error",
}


def error_body(
    code: str, message: str, rid: str, errors: list[dict[str, Any]] | None = None, **_: Any
) -> dict[str, Any]:
    """The native error (schema: `ErrorBody`): code, message and any field errors."""
    error: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        error["errors"] = [{"field": e["field"], "message": e["message"]} for e in errors]
    return {"error": error, "requestId": rid, "timestamp": timefmt.wire_now()}


def error_response(exc: ApiError, rid: str) -> Response:
    """The native error response; a seed contract's routes reshape it after (contract_errors)."""
    body = error_body(exc.code, exc.message, rid, **exc.details)
    return http.json_response(body, exc.status_code, exc.headers)


def _is_chalice_error(response: Response) -> bool:
    body = response.body
    return (
        response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}
    )


def _reshape_chalice_error(response: Response, rid: str) -> Response:
    code = _CHALICE_STATUS_CODES.get(response.status_code, "error")
    message = str(response.body["Message"])
    if response.status_code == 415:
        message += "; send the body as JSON with `Content-Type: application/json`"
    response.body = error_body(code, message, rid)
    response.headers["Content-Type"] = "application/json"
    return response


# A credential's principal (`chalicelib.edge.credentials.Authenticator.authenticate`).
Authenticate = Callable[[str], Principal]


def serve(
    request: Request,
    get_response: Callable[[Request], Response],
    settings: Settings,
    authenticate: Authenticate,
) -> Response:
    """The middleware of every REST route."""
    configure_logging()
    incoming = request.headers.get("x-request-id", "")
    rid = (
        incoming
        if _REQUEST_ID.match(incoming)
        else request.context.get("requestId") or uuid.uuid4().hex
    )
    scope = request_id_var.set(rid)
    try:
        return _handle(request, get_response, rid, settings, authenticate)
    finally:
        request_id_var.reset(scope)


def _handle(
    request: Request,
    get_response: Callable[[Request], Response],
    rid: str,
    settings: Settings,
    authenticate: Authenticate,
) -> Response:
    http.begin(request, rid, settings)
    origin = request.headers.get("origin")
    if request.method == "OPTIONS":
        response = cors.preflight(
            request.path, origin, settings.cors_allow_origins, settings.cors_max_age_seconds
        )
    else:
        try:
            _authorize(request, authenticate)
            response = get_response(request)
        except ApiError as exc:
            response = error_response(exc, rid)
        if _is_chalice_error(response):
            response = _reshape_chalice_error(response, rid)
        response = contract_errors.reshape(request.path, response)
    response.headers["X-Request-Id"] = rid
    return cors.decorate(response, origin, settings.cors_allow_origins)


def _authorize(request: Request, authenticate: Authenticate) -> None:
    if request.path in PUBLIC_PATHS:
        return
    try:
        credential = credential_from_headers(request.headers)
        if credential is None and http.public_read(request):
            return
        if credential is None:
            raise InvalidToken(
                "missing credentials; send `Authorization: Bearer <JWT>` or `X-API-Key: tsk_...`"
            )
        principal = authenticate(credential)
        principal.require(required_scope(request))
    except InsufficientScope as exc:
        raise _forbidden(str(exc)) from None
    except InvalidToken as exc:
        raise http.unauthorized(str(exc)) from None
    http.set_principal(request, principal)


def is_operator_route(path: str) -> bool:
    """The operator's console: every owner's tasks, the queues, the service's metrics."""
    return path == "/metrics" or path.startswith("/ops/")


def required_scope(request: Request) -> str:
    """operator for the console's routes; jobs:report for a producer's reports and heartbeats;
    jobs:write for anything else that changes state (003's triggerWebhook too) or reads a
    secret that could sign on the owner's behalf; else jobs:read."""
    if is_operator_route(request.path):
        return OPERATE
    if request.path in REPORT_ROUTES:
        return REPORT
    params = request.query_params or {}
    if request.method in WRITE_METHODS or "triggerWebhook" in params:
        return WRITE
    if request.path in SECRET_ROUTES:
        return WRITE
    return READ


def _forbidden(message: str) -> ApiError:
    return Forbidden(message, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
