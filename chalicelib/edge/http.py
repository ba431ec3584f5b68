"""What REST handlers read from a request: the caller, the body, cursors, ETags.

`chalicelib.edge.middleware` runs around every route and puts the request id, the settings and
the caller's principal in the request's context, where these helpers read them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import Request, Response

from chalicelib import jsonsafe
from chalicelib.edge.http_errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.edge.auth import Principal
    from chalicelib.settings import Settings

M = TypeVar("M", bound="BaseModel")

# Reads that a stage may open to callers without credentials (PUBLIC_READ_BY_ID): the
# origins of seeds 000/001 and 002 had no authentication, the id was the credential. The
# 000/001 list is among them as its origin's callers use it, but stays owner-scoped: a
# caller without credentials owns no task, so its list is empty (task_processor.list_tasks).
PUBLIC_READ_ROUTES = frozenset(
    {
        ("GET", "/task/{task_id}"),
        ("GET", "/task/list"),
        ("GET", "/jobs/{jobId}"),
        ("GET", "/status/{jobId}"),
    }
)
_STATE = "taskstatus"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Every JSON answer of the REST routes goes out through here."""
    return Response(
        body=body,
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def request_id(request: Request) -> str:
    return request.context.get(_STATE, {}).get("request_id") or ""


def current_principal(request: Request) -> Principal:
    principal = request.context[_STATE].get("principal")
    if principal is None:
        raise unauthorized("this route needs credentials")
    return principal


def current_user(request: Request) -> str:
    """The owner the caller acts for (fails closed on a request without credentials)."""
    return current_principal(request).owner


def reader(request: Request) -> str | None:
    """The owner whose tasks a read by id may return; None: any owner's (a public read)."""
    if request.context[_STATE].get("principal") is None and public_read(request):
        return None
    return current_user(request)


def begin(request: Request, rid: str, settings: Settings) -> None:
    """The edge's part: what the helpers below read (called first on every request)."""
    request.context[_STATE] = {"request_id": rid, "settings": settings}


def set_principal(request: Request, principal: Principal) -> None:
    request.context[_STATE]["principal"] = principal


def settings_of(request: Request) -> Settings:
    """The settings the edge put in the request's context."""
    return request.context[_STATE]["settings"]


def public_read(request: Request) -> bool:
    return (
        settings_of(request).public_read_by_id
        and (request.method, request.path) in PUBLIC_READ_ROUTES
    )


def unauthorized(message: str) -> ApiError:
    return Unauthorized(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


# -- request parsing -------------------------------------------------------------


JSON_CONTENT_TYPES = ("application/json",)
# curl's `-d` sends this type by default; a JSON body under it is accepted, nothing else is.
LENIENT_CONTENT_TYPES = ("application/x-www-form-urlencoded",)
ACCEPTED_CONTENT_TYPES = JSON_CONTENT_TYPES + LENIENT_CONTENT_TYPES


def json_body(request: Request) -> Any:
    """The parsed JSON body, with a clear 4xx for every way it can be wrong."""
    raw = request.raw_body or b""
    limit = settings_of(request).max_body_bytes
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

    from chalicelib.validation import validation_errors

    if not isinstance(body, dict):
        raise Unprocessable(not_an_object)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = validation_errors(exc, "body")
        fields = ", ".join(e["field"].removeprefix("body.") for e in errors)
        raise Unprocessable(f"{what} is not valid: check {fields}", errors=errors) from None


def task_id_param(value: str, name: str = "jobId") -> str:
    from chalicelib.model import JOB_ID_RULE, is_task_id

    if not is_task_id(value):
        raise BadRequest(
            f"{name} must be a job's id: a UUID such as 0f8b7d8e-..., or a producer's own id "
            f"of {JOB_ID_RULE}; got {value[:64]!r}"
        )
    return value


def query(request: Request) -> dict[str, str]:
    params = request.query_params or {}
    return {key: params[key] for key in params}


def limit_param(value: str | None, default: int = 20, maximum: int = 100) -> int:
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= maximum:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}; got {value[:32]!r}")
    return int(value)


# -- pages that fit a Lambda response ------------------------------------------------

# Lambda returns at most 6 MB (6,291,456 bytes) of response, and API Gateway's body is a JSON
# string inside it: a list page is cut where its items, encoded as they travel, reach this
# (the rest of the 6 MB is the envelope's: headers, the cursor, the page's own fields).
MAX_PAGE_BYTES = 5 * 1024 * 1024


def encoded_size(value: Any) -> int:
    """Bytes `value` takes in a Lambda response: JSON as Chalice writes a body (ASCII, so
    each non-ASCII character is a 6- or 12-byte escape), then escaped again as a string."""
    return len(json.dumps(json.dumps(value, separators=(",", ":")))) - 2


def fitting(items: list[Any], budget: int = MAX_PAGE_BYTES) -> int:
    """How many of `items`, from the first, fit in `budget` bytes; at least one, so that a
    page always moves on (one item is far below the limit: an item is at most 400 KB)."""
    used = 0
    for count, item in enumerate(items):
        used += encoded_size(item) + 1  # and its comma
        if used > budget and count > 0:
            return count
    return len(items)


# -- cursors: opaque, signed, bound to the caller and the query ----------------------


def _cursor_mac(request: Request, scope: str, payload: str) -> str:
    secret = settings_of(request).cursor_secret.encode()
    # The scope carries the caller's filters and path, which may hold any text, lone
    # surrogates included: "surrogatepass" gives every str one byte form instead of raising.
    message = f"{scope}|{payload}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def encode_cursor(request: Request, last_key: tuple[str, str] | None, scope: str) -> str | None:
    if last_key is None:
        return None
    payload = base64.urlsafe_b64encode(json.dumps(list(last_key)).encode()).decode().rstrip("=")
    return f"{payload}.{_cursor_mac(request, scope, payload)}"


def decode_cursor(request: Request, cursor: str | None, scope: str) -> tuple[str, str] | None:
    if not cursor:
        return None
    invalid = BadRequest(
        "cursor is invalid or belongs to another query; pass the nextCursor you were given, "
        "with the same filters"
    )
    payload, _, mac = cursor.partition(".")
    # Every cursor we give out is ASCII; compare_digest raises TypeError on anything else.
    if (
        len(cursor) > 512
        or not cursor.isascii()
        or not payload
        or not hmac.compare_digest(mac, _cursor_mac(request, scope, payload))
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
