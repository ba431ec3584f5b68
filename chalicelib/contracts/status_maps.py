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

# Seed 003, Status Lambda: the `ok` field of an AssemblyStatus. transflow's type is
# `ok?: "ASSEMBLY_COMPLETED"`, and its consumers switch on `ok === "ASSEMBLY_COMPLETED"` or a
# truthy `error`: any other state leaves `ok` out (a failed or cancelled one sets `error`).
ASSEMBLY_OK: dict[Status, str | None] = {
    Status.SCHEDULED: None,
    Status.SUBMITTED: None,
    Status.STARTED: None,
    Status.PROCESSING: None,
    Status.ERROR: None,
    Status.RETRYING: None,
    Status.COMPLETED: "ASSEMBLY_COMPLETED",
    Status.COMPLETED_WITH_ERRORS: "ASSEMBLY_COMPLETED",
    Status.FAILED: None,
    Status.CANCELLED: None,
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
