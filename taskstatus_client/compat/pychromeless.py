"""pychromeless's `WebSocketManager.broadcast_status` (src/websocket_manager.py), on taskstatus.

    from taskstatus_client.compat.pychromeless import WebSocketManager

The first call for a task id creates the job (an external job of type `operation`, under
the Lambda's request id or `local-<uuid>`); each call reports the status, and taskstatus
stores it and pushes it to the owner's WebSocket subscribers (`/task-status/{task_id}` and
the WebSocket are the origin's reader contract). Results are stored in the shape the origin
gave them (`success`, `message`, and the fields its dashboard reads).
"""

from __future__ import annotations

from typing import Any

from taskstatus_client.compat import advance, ensure_created

# The result fields the origin's dashboard reads, kept as given.
RESULT_FIELDS = (
    "processed_dates",
    "successful_stores",
    "failed_stores",
    "total_stores",
    "success_count",
    "failure_count",
    "summary",
)


def standard_result(result: dict[str, Any], status: str) -> dict[str, Any]:
    """The origin's result shape: `success` (an ending that completed) and `message`."""
    shaped: dict[str, Any] = {
        "success": status in ("completed", "completed_with_errors"),
        "message": result.get("summary", "Operation completed"),
    }
    shaped.update({name: result[name] for name in RESULT_FIELDS if name in result})
    return shaped


def _progress(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    if not progress:
        return None
    shaped: dict[str, Any] = {
        "current": int(progress.get("current", 0)),
        "total": int(progress.get("total", 0)),
    }
    if progress.get("message") is not None:
        shaped["message"] = str(progress["message"])
    return shaped


class WebSocketManager:
    def __init__(self) -> None:
        self.created: set[str] = set()

    def broadcast_status(
        self,
        task_id: str,
        operation: str,
        status: str,
        progress: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Store the task's status and push it to its owner's subscribers."""
        operation = str(getattr(operation, "value", operation))
        if task_id not in self.created:
            ensure_created(task_id, operation)
            self.created.add(task_id)
        fields: dict[str, Any] = {}
        if (shaped := _progress(progress)) is not None:
            fields["progress"] = shaped
        if result is not None:
            fields["result"] = standard_result(result, status)
        if error:
            fields["error"] = error
        advance(task_id, status, **fields)
