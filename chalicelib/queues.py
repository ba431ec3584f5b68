"""The service's queues: their one delay limit, the tasks' retry policy, the bodies of the
service's own messages (the tasks queue's and the webhooks queue's), and the tasks queue's
sender.

Only this service writes the messages, so they are read with plain checks, not pydantic (the
worker reads one on its first event). A body that is not one of them raises ValueError.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from chalicelib import aws, jsonsafe

TASK_ID_LENGTH = 36
OWNER_LENGTH = 256  # the longest owner a credential may name (edge.auth.MAX_OWNER_LENGTH)
SQS_MAX_DELAY_SECONDS = 900
"""SQS's limit on a message's DelaySeconds and on a visibility timeout used as a backoff."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a task that failed for a passing reason is run again: at most `max_attempts` runs,
    the next one after `backoff(attempt)` seconds (2, 4, 8... up to `max_backoff_seconds`).

    `max_attempts` is the setting MAX_ATTEMPTS, which must equal the tasks queue's
    `maxReceiveCount` (infra/resources.json): SQS counts each delivery of the message, and past
    that count the message goes to the dead-letter queue and its task is failed. The backoff is
    the message's visibility timeout, so it is capped at SQS's limit.
    """

    max_attempts: int
    max_backoff_seconds: int = SQS_MAX_DELAY_SECONDS

    def backoff(self, attempt: int) -> int:
        """Seconds before the run after attempt `attempt` (1 for the first run)."""
        return min(self.max_backoff_seconds, 2 ** min(attempt, 10))

    def exhausted(self, attempt: int) -> bool:
        """Whether attempt `attempt` was the last one allowed."""
        return attempt >= self.max_attempts


def _object(body: str) -> dict[str, Any]:
    data = jsonsafe.loads(body)  # UnsafeJson (bad, too deep) is a ValueError
    if not isinstance(data, dict):
        raise ValueError("a message body is a JSON object")
    return data


def _text(data: dict[str, Any], name: str, low: int, high: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise ValueError(f"{name} must be a text of {low} to {high} characters")
    return value


def _count(data: dict[str, Any], name: str, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a text")
    return value


def _without_defaults(message: Any) -> str:
    values = asdict(message)
    kept = {f.name: values[f.name] for f in fields(message) if values[f.name] != f.default}
    return json.dumps(kept, separators=(",", ":"))


@dataclass
class TaskMessage:
    """The tasks queue's message: sent by `TaskService.send`, read by the worker."""

    taskId: str
    type: str
    owner: str  # for fair concurrency's slots, without a read of the task
    # A task waiting for a slot is sent again (chalicelib/fairness.py): the attempts its
    # earlier messages made, and how often it has waited.
    priorAttempts: int = 0
    deferrals: int = 0
    # How often AWS throttled this task's claim in a row (the worker's backoff grows with it).
    throttled: int = 0
    # The job's own concurrency key and its limit, for the worker's slots (fairness.py).
    concurrencyKey: str | None = None
    concurrencyLimit: int = 0

    @classmethod
    def from_json(cls, body: str) -> TaskMessage:
        data = _object(body)
        return cls(
            taskId=_text(data, "taskId", TASK_ID_LENGTH, TASK_ID_LENGTH),
            type=_text(data, "type", 1, 128),
            owner=_text(data, "owner", 1, OWNER_LENGTH),
            priorAttempts=_count(data, "priorAttempts", 0),
            deferrals=_count(data, "deferrals", 0),
            throttled=_count(data, "throttled", 0),
            concurrencyKey=_optional_text(data, "concurrencyKey"),
            concurrencyLimit=_count(data, "concurrencyLimit", 0),
        )

    def to_json(self) -> str:
        return _without_defaults(self)


class TaskQueue:
    """The tasks queue: the service sends a task's message to it (or to a pool's queue, by
    url), and the worker sends a task's next try and puts a received message back in view
    after a wait. One per container (chalicelib/bootstrap.py)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, message: TaskMessage, delay_seconds: int = 0, url: str | None = None) -> None:
        aws.client("sqs").send_message(
            QueueUrl=url or self.url, MessageBody=message.to_json(), DelaySeconds=delay_seconds
        )

    def show_again(self, receipt_handle: str, after_seconds: int) -> None:
        """A received message comes back in view after `after_seconds` (not deleted)."""
        aws.client("sqs").change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=after_seconds
        )


@dataclass(frozen=True)
class DeliveryMessage:
    """The webhooks queue's message: one delivery attempt of a task version's event."""

    taskId: str
    version: int
    attempt: int
    notBefore: float = 0
    manual: str | None = None  # a manual redelivery's own id: it is logged as its own attempt

    @classmethod
    def from_json(cls, body: str) -> DeliveryMessage:
        data = _object(body)
        not_before = data.get("notBefore", 0)
        if isinstance(not_before, bool) or not isinstance(not_before, int | float):
            raise ValueError("notBefore must be a number")
        return cls(
            taskId=_text(data, "taskId", 1, 128),
            version=_count(data, "version"),
            attempt=_count(data, "attempt"),
            notBefore=float(not_before),
            manual=_optional_text(data, "manual"),
        )

    def to_json(self) -> str:
        return _without_defaults(self)
