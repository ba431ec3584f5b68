"""Drop-ins for the origin systems' status writers: each origin's producer switches to
taskstatus by changing one import and setting TASKSTATUS_URL and TASKSTATUS_API_KEY (a key
with the jobs:write and jobs:report scopes; jobs:read too where the origin reads back).

    from taskstatus_client.compat.media_processor import create_task_record, ...  # 000/001
    from taskstatus_client.compat.autovid import JobManager                       # 002
    from taskstatus_client.compat.pychromeless import WebSocketManager            # 004

Each keeps its origin's names, signatures and status values; what the origin stored in its
own table is now an external job (`"runner": "external"`) whose id is the origin's id, read
through the origin's reader contract on taskstatus.
"""

from __future__ import annotations

from typing import Any

from taskstatus_client.errors import Conflict
from taskstatus_client.reporter import Reporter

_reporter: Reporter | None = None

# The statuses from which a job must be (re)started before it may go on: the transition
# table moves a job out of these only to `started` (or to an end).
_NOT_RUNNING = frozenset({"submitted", "retrying"})


def reporter() -> Reporter:
    """The Reporter the drop-ins share: built on first use from the environment."""
    global _reporter
    if _reporter is None:
        _reporter = Reporter()
    return _reporter


def use(chosen: Reporter | None) -> None:
    """Use this Reporter from now on (None: build one from the environment again)."""
    global _reporter
    _reporter = chosen


def ensure_created(job_id: str, type: str, **fields: Any) -> bool:
    """Create the external job `job_id` unless it exists; True if this call created it.

    A jobId in use is taken as this producer's own job (a report on anyone else's answers
    404, so nothing is written for them)."""
    try:
        reporter().create(type, job_id=job_id, **fields)
    except Conflict:
        return False
    return True


def advance(job_id: str, status: str, **fields: Any) -> dict[str, Any]:
    """Report `status`, starting the job first when the origin skips that step (its first
    write is `processing` or an end; a retried job goes on with `processing`)."""
    r = reporter()
    try:
        return r.report(job_id, status, **fields)
    except Conflict:
        if status == "started" or r.heartbeat(job_id)["status"] not in _NOT_RUNNING:
            raise
    r.report(job_id, "started")
    return r.report(job_id, status, **fields)
