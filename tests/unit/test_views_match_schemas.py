"""Every view builds its body as a plain dict (no pydantic on the read path); the schemas in
contracts/schemas.py document those bodies in the OpenAPI document and the Python client.
These tests hold the two together: each body, for a task in every status with every
optional part, is exactly what its schema validates and dumps."""

from typing import Any

import pytest

from chalicelib.contracts import assembly, autovid, jobs, task_processor, task_status
from chalicelib.contracts.schemas import (
    AssemblyStatus,
    AutoVidJob,
    ErrorBody,
    JobDocument,
    TaskProcessorListItem,
    TaskProcessorTask,
    TaskStatus,
)
from chalicelib.edge import middleware as edge
from chalicelib.model import ObjectRef, Output, Status, Task
from chalicelib.objects import Link, owner_prefix
from chalicelib.validation import Schema
from tests.unit.tasks import BUCKET, stored_task, with_objects

EVERY_STATUS = list(Status)


def full_task(service: Any, status: Status) -> Task:
    """A task with every optional part: objects, output, metadata, a result object, run_at."""
    prefix = owner_prefix("alice")
    return stored_task(
        service,
        status,
        **with_objects(
            output=Output(s3Uri=f"s3://{BUCKET}/{prefix}processed/document.png", size=3),
            metadata={"batch": 7, "note": None},
            result_object=ObjectRef(BUCKET, f"{prefix}results/result.json"),
            input={"seconds": 1},
        ),
    )


def as_schema_dumps(schema: type[Schema], body: dict[str, Any], leave_out_none: bool) -> dict:
    return schema.model_validate(body).model_dump(mode="json", exclude_none=leave_out_none)


@pytest.mark.parametrize("status", EVERY_STATUS)
def test_the_job_document_is_its_schema(service, status):
    for task in (stored_task(service, status), full_task(service, status)):
        body = jobs.job_document(task, with_input=True)
        assert body == as_schema_dumps(JobDocument, body, leave_out_none=False)


@pytest.mark.parametrize("status", EVERY_STATUS)
def test_the_task_status_view_is_its_schema(service, status):
    for task in (stored_task(service, status), full_task(service, status)):
        body = task_status.view(task, version=True)
        assert body == as_schema_dumps(TaskStatus, body, leave_out_none=True)


@pytest.mark.parametrize("status", EVERY_STATUS)
def test_the_task_processor_views_are_their_schemas(service, status):
    for task in (stored_task(service, status), full_task(service, status)):
        body = task_processor.view(task, Link(60))
        assert body == as_schema_dumps(TaskProcessorTask, body, leave_out_none=True)
        item = task_processor.list_item(task)
        assert item == as_schema_dumps(TaskProcessorListItem, item, leave_out_none=True)


@pytest.mark.parametrize("status", EVERY_STATUS)
def test_the_assembly_status_is_its_schema(service, status):
    for task in (stored_task(service, status), full_task(service, status)):
        body = assembly.view(task)
        assert body == as_schema_dumps(AssemblyStatus, body, leave_out_none=True)


@pytest.mark.parametrize("status", EVERY_STATUS)
def test_the_autovid_job_document_carries_its_schema(service, status):
    # The origin's document plus the native one's extras, which its schema does not list.
    for task in (stored_task(service, status), full_task(service, status)):
        body = autovid.job_document(task)
        dumped = as_schema_dumps(AutoVidJob, body, leave_out_none=False)
        assert dumped == {name: body[name] for name in AutoVidJob.model_fields}


@pytest.mark.parametrize(
    "errors", [None, [{"field": "input.seconds", "message": "must be between 0 and 100"}]]
)
def test_the_native_error_body_is_its_schema(errors):
    body = edge.error_body("unprocessable", "input is not valid", "rid-1", errors=errors)
    assert body == as_schema_dumps(ErrorBody, body, leave_out_none=True)
