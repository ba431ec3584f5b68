"""Domain and API errors. API errors carry their HTTP status and a stable code."""

from __future__ import annotations

from typing import Any

from chalice import ChaliceUnhandledError


class DomainError(Exception):
    """Raised by the service layer; entry points map it to their own contract."""


class TaskNotFound(DomainError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task not found: {task_id}")
        self.task_id = task_id


class TransitionRefused(DomainError):
    """The task is not in the status (or version) the write expected."""

    def __init__(self, task_id: str, current: str | None, wanted: str) -> None:
        super().__init__(f"task {task_id} cannot move from {current or 'absent'} to {wanted}")
        self.task_id = task_id
        self.current = current
        self.wanted = wanted


class IdempotencyConflict(DomainError):
    """The Idempotency-Key was used before with another request body."""


class IdempotencyKeyInUse(DomainError):
    """Another request with the same Idempotency-Key is being stored right now."""


class IdempotentJobGone(DomainError):
    """The Idempotency-Key is still kept, but the job it created has expired."""


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


class TooManyRequests(ApiError):
    status_code = 429
    code = "too_many_requests"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class Unprocessable(ApiError):
    status_code = 422
    code = "validation_failed"
