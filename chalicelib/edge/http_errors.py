"""HTTP errors: what the edge answers, each with its status and a stable code.

Raised by the REST handlers (and mapped there from `chalicelib.errors`);
`chalicelib.edge.middleware` turns them into the native error shape.
"""

from __future__ import annotations

from typing import Any

from chalice import ChaliceUnhandledError


class ApiError(ChaliceUnhandledError):
    """An error answered to an HTTP client with the native error shape.

    Derives from ChaliceUnhandledError so that Chalice lets it reach our middleware.
    """

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class PreconditionFailed(ApiError):
    status_code = 412
    code = "precondition_failed"


class TooManyRequests(ApiError):
    status_code = 429
    code = "too_many_requests"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "unavailable"


class Unprocessable(ApiError):
    status_code = 422
    code = "validation_failed"
