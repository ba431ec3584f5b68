"""Canonical status -> each client contract's status, in one place."""

from __future__ import annotations

from chalicelib.model import Status

# Seeds 000/001, Task Processor API: processing | completed | failed.
TASK_PROCESSOR: dict[Status, str] = {
    Status.SCHEDULED: "processing",
    Status.SUBMITTED: "processing",
    Status.STARTED: "processing",
    Status.PROCESSING: "processing",
    Status.ERROR: "processing",
    Status.RETRYING: "processing",
    Status.COMPLETED: "completed",
    Status.COMPLETED_WITH_ERRORS: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}

# Seed 004, task status: started | processing | error | completed | completed_with_errors | failed.
TASK_STATUS: dict[Status, str] = {
    Status.SCHEDULED: "started",
    Status.SUBMITTED: "started",
    Status.STARTED: "started",
    Status.PROCESSING: "processing",
    Status.RETRYING: "processing",
    Status.ERROR: "error",
    Status.COMPLETED: "completed",
    Status.COMPLETED_WITH_ERRORS: "completed_with_errors",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}

# Seed 003, Status Lambda: the `ok` field of an AssemblyStatus (None: failed, `error` is set).
ASSEMBLY_OK: dict[Status, str | None] = {
    Status.SCHEDULED: "ASSEMBLY_EXECUTING",
    Status.SUBMITTED: "ASSEMBLY_EXECUTING",
    Status.STARTED: "ASSEMBLY_EXECUTING",
    Status.PROCESSING: "ASSEMBLY_EXECUTING",
    Status.ERROR: "ASSEMBLY_EXECUTING",
    Status.RETRYING: "ASSEMBLY_EXECUTING",
    Status.COMPLETED: "ASSEMBLY_COMPLETED",
    Status.COMPLETED_WITH_ERRORS: "ASSEMBLY_COMPLETED",
    Status.FAILED: None,
    Status.CANCELLED: "ASSEMBLY_CANCELED",
}

# Seed 002, auto-vid: submitted | processing | completed | failed | retrying.
AUTOVID: dict[Status, str] = {
    Status.SCHEDULED: "submitted",
    Status.SUBMITTED: "submitted",
    Status.STARTED: "processing",
    Status.PROCESSING: "processing",
    Status.ERROR: "processing",
    Status.RETRYING: "retrying",
    Status.COMPLETED: "completed",
    Status.COMPLETED_WITH_ERRORS: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}
