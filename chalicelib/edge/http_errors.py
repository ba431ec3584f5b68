"""HTTP errors: what the edge answers, each with its status and a stable code.

Raised by the REST handlers; `chalicelib.edge.middleware` turns them into the native error
shape. The domain errors every native surface answers alike (`chalicelib.errors`: a missing
job, a reused Idempotency-Key...) are mapped once, in `NATIVE_ANSWERS`, by `native_errors()`
around a handler's call into the service; a handler maps locally only what its route words
its own way ("only failed or cancelled jobs can be retried").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chalice import ChaliceUnhandledError

from chalicelib.errors import (
    DomainError,
    IdempotencyConflict,
    IdempotencyKeyInUse,
    IdempotentJobGone,
    JobIdTaken,
    NotAllowed,
    RedeliveryTooSoon,
    StateConflict,
    SubmitRejected,
    TaskNotFound,
)

# Retry-After of a 202 and of a key in use: when it is worth asking again.
RETRY_AFTER_SECONDS = "1"


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


def key_in_use() -> Conflict:
    """Another request holding the same Idempotency-Key is still being processed."""
    return Conflict(
        "another request with this Idempotency-Key is being processed; retry shortly",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def job_gone(job_id: str) -> Conflict:
    """The Idempotency-Key outlived the job it created: only a new key can submit again."""
    return Conflict(
        f"the job this Idempotency-Key created ({job_id}) has expired; "
        "send a new Idempotency-Key to submit again"
    )


def job_id_taken(job_id: str) -> Conflict:
    """A producer's chosen jobId in use: the same answer whoever holds it, and nothing of it."""
    return Conflict(f"jobId {job_id} is already taken; choose another")


def _too_soon(exc: RedeliveryTooSoon) -> ApiError:
    return TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)})


# The native API's answer to each domain error it answers the same way on every route.
NATIVE_ANSWERS: dict[type[DomainError], Callable[[Any], ApiError]] = {
    TaskNotFound: lambda exc: NotFound(f"job {exc.task_id} was not found"),
    SubmitRejected: lambda exc: Unprocessable(exc.message, errors=exc.errors),
    IdempotencyConflict: lambda exc: Unprocessable(str(exc)),
    IdempotencyKeyInUse: lambda exc: key_in_use(),
    IdempotentJobGone: lambda exc: job_gone(str(exc)),
    JobIdTaken: lambda exc: job_id_taken(exc.task_id),
    RedeliveryTooSoon: _too_soon,
    StateConflict: lambda exc: Conflict(str(exc)),
    NotAllowed: lambda exc: Forbidden(str(exc)),
}


def native_answer(exc: DomainError) -> ApiError:
    """The native answer to a domain error; one the table does not hold is raised again."""
    for kind in type(exc).__mro__:
        answer = NATIVE_ANSWERS.get(kind)
        if answer is not None:
            return answer(exc)
    raise exc


@contextmanager
def native_errors() -> Iterator[None]:
    """Answer the domain errors raised inside with `NATIVE_ANSWERS`; any other goes on."""
    try:
        yield
    except DomainError as exc:
        raise native_answer(exc) from None
