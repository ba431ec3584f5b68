"""Domain errors: what the service, store and webhooks refuse, in their own words.

They know nothing of HTTP; each entry point maps them to its contract
(`chalicelib.edge.http_errors` for the native API, the seed views to their own shapes).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Raised by the service layer; entry points map it to their own contract."""


class StateConflict(DomainError):
    """A request the task's present state refuses, said in the error's own words: every
    native route answers it 409 with that message (`edge.http_errors.NATIVE_ANSWERS`)."""


class NotAllowed(DomainError):
    """A credential asked for what it may not do, said in the error's own words: 403."""


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


class JobIdTaken(DomainError):
    """A producer chose a task id that is already in use (by anyone: it says no more)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"jobId {task_id} is already taken")
        self.task_id = task_id


class FieldError(ValueError):
    """A value refused by a check of its own (a dataclass input's `__post_init__`, a
    validator): the field at fault and why. The 422 names that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def describe(errors: list[dict[str, Any]]) -> str:
    """Field errors on one line: `field: why; field: why`."""
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors)


class SubmitRejected(DomainError):
    """The submission is well-formed JSON but not a runnable job; `errors` say why."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class IdempotencyConflict(DomainError):
    """The Idempotency-Key was used before with another request body."""


class IdempotencyKeyInUse(DomainError):
    """Another request with the same Idempotency-Key is being stored right now."""


class IdempotentJobGone(DomainError):
    """The Idempotency-Key is still kept, but the job it created has expired."""


class NoWebhook(StateConflict):
    """A redelivery was asked for a task that has no webhook."""

    def __init__(self) -> None:
        super().__init__("no webhook is configured for this job")


class JobNotFinished(StateConflict):
    """A webhook resend was asked for a job that has not finished.

    A webhook is the event of a finished job (`job.completed`, `job.failed`, ...): before
    then there is nothing to send again, and a resend would invent an event (`job.submitted`)
    that receivers were never told about.
    """

    def __init__(self, status: str) -> None:
        super().__init__(
            f"the job is {status}: its webhook is sent when it finishes; ask again after that"
        )


class RedeliveryTooSoon(DomainError):
    """A manual redelivery of this task was asked for moments ago."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"a redelivery was triggered moments ago; retry in {retry_after} s")
        self.retry_after = retry_after
