"""Client-side helpers for taskstatus users: the API client, the CLI, webhook verification."""

from taskstatus_client.client import Job, TaskStatusClient
from taskstatus_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TaskStatusError,
    Unauthorized,
    Unprocessable,
    WaitTimeout,
)
from taskstatus_client.reporter import Cancelled, Reporter, TrackedTask, current_task
from taskstatus_client.status_lambda import StatusLambdaClient, StatusResult

__all__ = [
    "BadRequest",
    "Cancelled",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "Job",
    "NotFound",
    "RateLimited",
    "Reporter",
    "ServerError",
    "StatusLambdaClient",
    "StatusResult",
    "TaskStatusClient",
    "TaskStatusError",
    "TrackedTask",
    "Unauthorized",
    "Unprocessable",
    "WaitTimeout",
    "current_task",
]
