"""Exceptions of the client: one per kind of answer a caller handles differently."""

from __future__ import annotations

from typing import Any


class TaskStatusError(Exception):
    """Any error answered by the service (or on the way to it)."""

    status_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code if status_code is not None else self.status_code
        self.body = body
        self.request_id = request_id


class BadRequest(TaskStatusError):
    status_code = 400


class Unauthorized(TaskStatusError):
    status_code = 401


class Forbidden(TaskStatusError):
    status_code = 403


class NotFound(TaskStatusError):
    status_code = 404


class Conflict(TaskStatusError):
    status_code = 409


class Unprocessable(TaskStatusError):
    status_code = 422


class RateLimited(TaskStatusError):
    status_code = 429


class ServerError(TaskStatusError):
    """5xx after every retry."""


class ConnectionFailed(TaskStatusError):
    """The service could not be reached after every retry."""


class WaitTimeout(TaskStatusError):
    """`wait` gave up before the job finished."""


BY_STATUS: dict[int, type[TaskStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: Unprocessable,
    429: RateLimited,
}


def error_for(status: int, body: Any, request_id: str | None) -> TaskStatusError:
    message = f"HTTP {status}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            message = str(error["message"])
        elif isinstance(error, str):
            message = error
    kind = BY_STATUS.get(status, ServerError if status >= 500 else TaskStatusError)
    return kind(message, status_code=status, body=body, request_id=request_id)
