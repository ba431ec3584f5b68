"""The HTTP edge: request ids, authentication, the error shape, cursors, ETags.

`edge_middleware` runs around every REST route (Lambda, `chalice local` and the
test client alike), so a bad token is a 401 with our error shape everywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import Request, Response

from chalicelib import cors, jsonsafe
from chalicelib.auth import (
    READ,
    WRITE,
    InsufficientScope,
    InvalidToken,
    Principal,
    authenticate,
    credential_from_headers,
)
from chalicelib.contracts import errors as contract_errors
from chalicelib.errors import ApiError, BadRequest, PayloadTooLarge, UnsupportedMediaType
from chalicelib.observability import configure_logging, request_id_var
from chalicelib.settings import check_environment, get_settings

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

configure_logging()
# Every function of the app loads this module: an unsafe configuration stops it at start
# (a Lambda init error, `make dev` exits) with the reason, instead of failing per request.
check_environment()

PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})
# Reads by task id that a stage may open to callers without credentials (PUBLIC_READ_BY_ID):
# the origins of seeds 000/001 and 002 had no authentication, the id was the credential.
PUBLIC_READ_ROUTES = frozenset(
    {("GET", "/task/{task_id}"), ("GET", "/jobs/{jobId}"), ("GET", "/status/{jobId}")}
)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_ROUTES = frozenset({"/webhooks/secret"})
_STATE = "taskstatus"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_CHALICE_STATUS_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    415: "unsupported_media_type",
    500: "internal_error",
}


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_id(request: Request) -> str:
    return request.context.get(_STATE, {}).get("request_id") or ""


def register_preflights(app: Any) -> None:
    cors.register_preflights(app)


def current_principal(request: Request) -> Principal:
    principal = request.context[_STATE].get("principal")
    if principal is None:
        raise _unauthorized("this route needs credentials")
    return principal


def current_user(request: Request) -> str:
    """The owner the caller acts for (fails closed on a request without credentials)."""
    return current_principal(request).owner


def reader(request: Request) -> str | None:
    """The owner whose tasks a read by id may return; None: any owner's (a public read)."""
    if request.context[_STATE].get("principal") is None and _public_read(request):
        return None
    return current_user(request)


def _public_read(request: Request) -> bool:
    return get_settings().public_read_by_id and (request.method, request.path) in PUBLIC_READ_ROUTES


def error_body(code: str, message: str, rid: str, **details: Any) -> dict[str, Any]:
    from chalicelib.contracts.models import ErrorBody

    error = {"code": code, "message": message, **details}
    body = ErrorBody(error=error, requestId=rid, timestamp=timestamp())
    return body.model_dump(mode="json", exclude_none=True)


def _contract_error_body(path: str, exc: ApiError) -> dict[str, Any] | None:
    """A seed contract's own body for the errors the edge raises (401, 403) on its routes."""
    if path in ("/task", "/task/{task_id}"):  # 000/001
        return {"error": exc.message}
    if path == "/status/{jobId}":  # 002
        return {"error": exc.message, "timestamp": timestamp()}
    if path == "/assemblies/{assemblyId}":  # 003
        return {"error": exc.code.upper(), "message": exc.message}
    return None


def error_response(exc: ApiError, rid: str, path: str = "") -> Response:
    body = _contract_error_body(path, exc) if exc.status_code in (401, 403) else None
    return Response(
        body=body or error_body(exc.code, exc.message, rid, **exc.details),
        status_code=exc.status_code,
        headers={"Content-Type": "application/json", **exc.headers},
    )


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


def edge_middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
    incoming = request.headers.get("x-request-id", "")
    rid = (
        incoming
        if _REQUEST_ID.match(incoming)
        else request.context.get("requestId") or uuid.uuid4().hex
    )
    scope = request_id_var.set(rid)
    try:
        return _handle(request, get_response, rid)
    finally:
        request_id_var.reset(scope)


def _handle(request: Request, get_response: Callable[[Request], Response], rid: str) -> Response:
    settings = get_settings()
    request.context[_STATE] = {"request_id": rid}
    origin = request.headers.get("origin")
    if request.method == "OPTIONS":
        response = cors.preflight(
            request.path, origin, settings.cors_allow_origins, settings.cors_max_age_seconds
        )
    else:
        try:
            _authorize(request)
            response = get_response(request)
        except ApiError as exc:
            response = error_response(exc, rid, request.path)
        if _is_chalice_error(response):
            response = _reshape_chalice_error(response, rid)
        response = contract_errors.reshape(request.path, response)
    response.headers["X-Request-Id"] = rid
    return cors.decorate(response, origin, settings.cors_allow_origins)


def _authorize(request: Request) -> None:
    if request.path in PUBLIC_PATHS:
        return
    try:
        credential = credential_from_headers(request.headers)
        if credential is None and _public_read(request):
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
        raise _unauthorized(str(exc)) from None
    request.context[_STATE]["principal"] = principal


def required_scope(request: Request) -> str:
    """jobs:write for anything that changes state (003's triggerWebhook too) or reads a
    secret that could sign on the owner's behalf; else jobs:read."""
    params = request.query_params or {}
    if request.method in WRITE_METHODS or "triggerWebhook" in params:
        return WRITE
    if request.path in SECRET_ROUTES:
        return WRITE
    return READ


def _unauthorized(message: str) -> ApiError:
    from chalicelib.errors import Unauthorized

    return Unauthorized(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _forbidden(message: str) -> ApiError:
    from chalicelib.errors import Forbidden

    return Forbidden(message, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})


# -- request parsing -------------------------------------------------------------


JSON_CONTENT_TYPES = ("application/json",)
# curl's `-d` sends this type by default; a JSON body under it is accepted, nothing else is.
LENIENT_CONTENT_TYPES = ("application/x-www-form-urlencoded",)
ACCEPTED_CONTENT_TYPES = JSON_CONTENT_TYPES + LENIENT_CONTENT_TYPES


def json_body(request: Request) -> Any:
    """The parsed JSON body, with a clear 4xx for every way it can be wrong."""
    raw = request.raw_body or b""
    limit = get_settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit}")
    content_type = request.headers.get("content-type", "application/json")
    media_type = content_type.split(";")[0].strip().lower()
    lenient = media_type in LENIENT_CONTENT_TYPES
    if media_type not in JSON_CONTENT_TYPES and not lenient:
        raise UnsupportedMediaType(
            f"Content-Type {content_type[:64]!r} is not supported; send application/json"
        )
    if not raw.strip():
        raise BadRequest("request body is empty; send a JSON object")
    try:
        return jsonsafe.loads(raw)
    except jsonsafe.UnsafeJson as exc:
        if lenient and not raw.lstrip().startswith((b"{", b"[")):
            raise UnsupportedMediaType(
                "the body is not JSON; send a JSON object with Content-Type: application/json"
            ) from None
        raise BadRequest(f"request body: {exc}") from None


def body_model(body: Any, model: type[M], what: str, not_an_object: str) -> M:
    """A JSON object body validated by `model`; a 422 naming the wrong fields otherwise."""
    from pydantic import ValidationError

    from chalicelib.errors import Unprocessable
    from chalicelib.service import validation_errors

    if not isinstance(body, dict):
        raise Unprocessable(not_an_object)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = validation_errors(exc, "body")
        fields = ", ".join(e["field"].removeprefix("body.") for e in errors)
        raise Unprocessable(f"{what} is not valid: check {fields}", errors=errors) from None


def task_id_param(value: str, name: str = "jobId") -> str:
    if not _UUID.match(value or ""):
        raise BadRequest(
            f"{name} must be a lowercase UUID such as 0f8b7d8e-...; got {value[:64]!r}"
        )
    return value


def is_task_id(value: str | None) -> bool:
    return bool(value) and bool(_UUID.match(value))


def query(request: Request) -> dict[str, str]:
    params = request.query_params or {}
    return {key: params[key] for key in params}


def limit_param(value: str | None, default: int = 20, maximum: int = 100) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}; got {value[:32]!r}")
    return int(value)


# -- cursors: opaque, signed, bound to the caller and the query ----------------------


def _cursor_mac(scope: str, payload: str) -> str:
    secret = get_settings().cursor_secret.encode()
    digest = hmac.new(secret, f"{scope}|{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def encode_cursor(last_key: tuple[str, str] | None, scope: str) -> str | None:
    if last_key is None:
        return None
    payload = base64.urlsafe_b64encode(json.dumps(list(last_key)).encode()).decode().rstrip("=")
    return f"{payload}.{_cursor_mac(scope, payload)}"


def decode_cursor(cursor: str | None, scope: str) -> tuple[str, str] | None:
    if not cursor:
        return None
    invalid = BadRequest(
        "cursor is invalid or belongs to another query; pass the nextCursor you were given, "
        "with the same filters"
    )
    payload, _, mac = cursor.partition(".")
    if (
        len(cursor) > 512
        or not payload
        or not hmac.compare_digest(mac, _cursor_mac(scope, payload))
    ):
        raise invalid
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        raise invalid from None
    if not (
        isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(v, str) for v in decoded)
    ):
        raise invalid
    return decoded[0], decoded[1]


# -- caching -----------------------------------------------------------------------


def etag(task_id: str, version: int) -> str:
    return f'W/"{task_id}-{version}"'


def not_modified(request: Request, tag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return any(candidate.strip() in (tag, "*") for candidate in header.split(","))
