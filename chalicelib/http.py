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
from typing import Any

from chalice.app import Request, Response

from chalicelib import jsonsafe
from chalicelib.auth import InvalidToken, bearer_token, verify_token
from chalicelib.errors import ApiError, BadRequest, PayloadTooLarge, UnsupportedMediaType
from chalicelib.observability import configure_logging, request_id_var
from chalicelib.settings import get_settings

configure_logging()

PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})
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


def current_user(request: Request) -> str:
    return request.context[_STATE]["user"]


def error_body(code: str, message: str, rid: str, **details: Any) -> dict[str, Any]:
    from chalicelib.contracts.models import ErrorBody

    error = {"code": code, "message": message, **details}
    body = ErrorBody(error=error, requestId=rid, timestamp=timestamp())
    return body.model_dump(mode="json", exclude_none=True)


def error_response(exc: ApiError, rid: str) -> Response:
    return Response(
        body=error_body(exc.code, exc.message, rid, **exc.details),
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
    state: dict[str, Any] = {"request_id": rid}
    request.context[_STATE] = state
    try:
        if request.path not in PUBLIC_PATHS:
            try:
                state["user"] = verify_token(bearer_token(request.headers.get("authorization")))
            except InvalidToken as exc:
                raise _unauthorized(str(exc)) from None
        response = get_response(request)
    except ApiError as exc:
        response = error_response(exc, rid)
    if _is_chalice_error(response):
        response = _reshape_chalice_error(response, rid)
    response.headers["X-Request-Id"] = rid
    return response


def _unauthorized(message: str) -> ApiError:
    from chalicelib.errors import Unauthorized

    return Unauthorized(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


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
