"""auto-vid's `JobManager` (layers/shared/job_manager.py), on taskstatus.

    from taskstatus_client.compat.autovid import JobManager

The submit Lambda's `create_job` stores an external job of the type auto-vid's jobs have on
taskstatus (`AUTOVID_TASK_TYPE`, default `video/auto-vid`) under the origin's job id; the
processor Lambda's `update_status` and `update_job_completion` move it; `get_job` and the
origin's readers read it at `GET /status/{jobId}` (so the key needs jobs:read for `get_job`).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from taskstatus_client.compat import advance, reporter
from taskstatus_client.errors import TaskStatusError

DEFAULT_TASK_TYPE = "video/auto-vid"


def _output(output: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of auto-vid's output taskstatus records: its own presigned `url` as given,
    `s3Uri`, `duration` and `size` (its `urlExpiresAt` is the URL's own business)."""
    if not output:
        return None
    kept = {name: output.get(name) for name in ("url", "s3Uri", "duration", "size")}
    return {name: value for name, value in kept.items() if value is not None} or None


class JobManager:
    def __init__(self) -> None:
        self.task_type = os.environ.get("AUTOVID_TASK_TYPE", DEFAULT_TASK_TYPE)

    def create_job(self, job_id: str, job_info: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new job, `submitted`; the origin's standardized response."""
        job = reporter().create(self.task_type, job_id=job_id, input={"jobInfo": job_info or {}})
        return {
            "jobId": job_id,
            "status": "submitted",
            "submittedAt": job.get("submittedAt"),
            "updatedAt": job.get("updatedAt"),
            "completedAt": None,
            "processingTime": None,
            "output": {name: None for name in ("url", "urlExpiresAt", "s3Uri", "duration", "size")},
            "error": None,
            "jobInfo": job_info or {},
        }

    def update_job_completion(
        self,
        job_id: str,
        status: str,
        processing_time: float,
        output: dict[str, Any],
        error: str | None = None,
    ) -> None:
        """End the job (`completed` or `failed`) with its output and error. The processing
        time is the service's own (from start to end); the origin's figure is not sent."""
        fields: dict[str, Any] = {}
        if (kept := _output(output)) is not None:
            fields["output"] = kept
        if error:
            fields["error"] = error
        elif status == "failed":
            fields["error"] = "failed"
        advance(job_id, status, **fields)

    def update_status(self, job_id: str, status: str, **kwargs: Any) -> None:
        """Move the job to `status` (`processing`, `retrying`, ...); of the other fields,
        `error` is recorded."""
        error = kwargs.get("error")
        advance(job_id, status, **({"error": str(error)} if error else {}))

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as auto-vid's status API shows it, or None."""
        try:
            return reporter().read(f"/status/{quote(job_id, safe='')}")
        except TaskStatusError:
            return None
