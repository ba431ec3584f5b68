"""The origins' status writers as drop-ins: each origin's call sequence replayed through
taskstatus_client.compat, and read back through that origin's reader contract."""

import json
import uuid
from decimal import Decimal
from enum import Enum

import pytest

from taskstatus_client import Reporter, compat
from taskstatus_client.compat import media_processor as mp
from taskstatus_client.compat.autovid import JobManager
from taskstatus_client.compat.pychromeless import WebSocketManager
from tests.app_transport import APP_URL, AppTransport
from tests.conftest import auth
from tests.unit.helpers import get

SCOPES = ["jobs:read", "jobs:write", "jobs:report"]


@pytest.fixture
def producer(client, monkeypatch):
    """The origin's producer, configured as the README says: a key and the service's URL."""
    body = {"name": "producer", "scopes": SCOPES}
    key = client.http.post("/api-keys", headers=auth(), body=json.dumps(body)).json_body["key"]
    monkeypatch.setenv("TASKSTATUS_URL", APP_URL)
    monkeypatch.setenv("TASKSTATUS_API_KEY", key)
    monkeypatch.setenv("S3_BUCKET_NAME", "media-processor-bucket")
    monkeypatch.delenv("TASKSTATUS_TOKEN", raising=False)
    transport = AppTransport(client)
    compat.use(Reporter(transport=transport, sleep=lambda s: None))
    yield transport
    compat.use(None)


def history(client, stack, job_id):
    stack.run_stream()
    return [e["status"] for e in get(client, f"/jobs/{job_id}/events").json_body["events"]]


# -- serverless-media-processor: ddb_operations, read at GET /task/{task_id} (000/001) --------


def test_media_processor_watermark_replay_reads_as_the_origin(client, stack, producer):
    task_id = str(uuid.uuid4())
    mp.create_task_record(
        task_id=task_id,
        source_key="photo.png",
        target_key="watermark/photo.png",
        task_type="image/watermark",
        conversion_params={"operations": ["watermark,text_aGk"]},
    )
    running = get(client, f"/task/{task_id}").json_body
    assert (running["Status"], running["SourceKey"], running["TargetKey"]) == (
        "processing",
        "photo.png",
        "watermark/photo.png",
    )
    assert running["SourceBucket"] == "media-processor-bucket"
    mp.update_task_status(task_id, "image/watermark", mp.TaskStatus.COMPLETED)
    assert get(client, f"/task/{task_id}").json_body["Status"] == "completed"
    assert history(client, stack, task_id) == ["submitted", "started", "completed"]


def test_media_processor_deblindwatermark_result_is_the_message(client, producer):
    task_id = str(uuid.uuid4())
    mp.create_task_record(task_id, "photo.png", "", "image/deblindwatermark", {})
    mp.update_task_status(task_id, "image/deblindwatermark", mp.TaskStatus.COMPLETED, "hidden text")
    read = get(client, f"/task/{task_id}").json_body
    assert (read["Status"], read["Result"]) == ("completed", "hidden text")


def test_media_processor_failure_message_is_the_error_message(client, producer):
    task_id = str(uuid.uuid4())
    mp.create_task_record(task_id, "doc.docx", "doc.pdf", "document/convert", {})
    mp.update_task_status(task_id, "document/convert", mp.TaskStatus.PROCESSING)
    mp.update_task_status(task_id, "document/convert", mp.TaskStatus.FAILED, "bad docx")
    read = get(client, f"/task/{task_id}").json_body
    assert (read["Status"], read["ErrorMessage"]) == ("failed", "bad docx")


def test_media_processor_refusals_raise_the_origins_processing_error(client, producer):
    with pytest.raises(mp.ProcessingError) as raised:
        mp.update_task_status("no-such-task", "image/resize", mp.TaskStatus.COMPLETED)
    assert raised.value.status_code == 404


# -- auto-vid: JobManager, read at GET /status/{jobId} (002) -----------------------------------


def test_autovid_success_replay_reads_as_the_origin(client, stack, producer):
    manager = JobManager()
    job_id = str(uuid.uuid4())
    created = manager.create_job(job_id, {"project": "demo"})
    assert (created["jobId"], created["status"], created["jobInfo"]) == (
        job_id,
        "submitted",
        {"project": "demo"},
    )
    assert get(client, f"/status/{job_id}").json_body["status"] == "submitted"
    manager.update_status(job_id, "processing")
    assert manager.get_job(job_id)["status"] == "processing"
    output = {
        "url": "https://bucket.s3.amazonaws.com/out.mp4?X-Amz-Signature=x",
        "urlExpiresAt": "2030-01-01T00:00:00Z",
        "s3Uri": "s3://autovid-bucket/out.mp4",
        "duration": 12.5,
        "size": 1048576,
    }
    manager.update_job_completion(job_id, "completed", 8.25, output)
    read = get(client, f"/status/{job_id}").json_body
    assert (read["status"], read["jobInfo"]) == ("completed", {"project": "demo"})
    assert (read["output"]["s3Uri"], read["output"]["url"]) == (output["s3Uri"], output["url"])
    assert (read["output"]["duration"], read["output"]["size"]) == (12.5, 1048576)
    assert read["completedAt"] and read["processingTime"] is not None


def test_autovid_transient_failure_then_retry_replay(client, stack, producer):
    manager = JobManager()
    job_id = str(uuid.uuid4())
    manager.create_job(job_id)
    manager.update_status(job_id, "processing")
    manager.update_status(job_id, "retrying", error="throttled")
    assert get(client, f"/status/{job_id}").json_body["status"] == "retrying"
    manager.update_status(job_id, "processing")  # the next delivery of the message
    manager.update_job_completion(job_id, "failed", 0, {}, "the font is missing")
    read = get(client, f"/status/{job_id}").json_body
    assert (read["status"], read["error"]) == ("failed", "the font is missing")
    assert history(client, stack, job_id) == [
        "submitted",
        "started",
        "processing",
        "retrying",
        "started",
        "processing",
        "failed",
    ]


def test_autovid_get_job_of_an_unknown_job_is_none(producer):
    assert JobManager().get_job(str(uuid.uuid4())) is None


# -- pychromeless: WebSocketManager.broadcast_status, read at /task-status/{id} (004) ---------


class OperationType(str, Enum):  # noqa: UP042  (the origin passes its own str enum)
    DAILY_SALES = "daily_sales"


def test_pychromeless_daily_sales_replay_reads_as_the_origin(client, stack, producer):
    task_id = f"local-{uuid.uuid4()}"
    manager = WebSocketManager()
    manager.broadcast_status(task_id=task_id, operation=OperationType.DAILY_SALES, status="started")
    manager.broadcast_status(
        task_id=task_id,
        operation=OperationType.DAILY_SALES,
        status="processing",
        progress={"current": Decimal("0"), "total": Decimal("3"), "message": "Starting"},
    )
    manager.broadcast_status(task_id, OperationType.DAILY_SALES, "error", error="store 2 timed out")
    manager.broadcast_status(
        task_id,
        OperationType.DAILY_SALES,
        "completed_with_errors",
        result={"summary": "2 of 3 stores", "success_count": 2, "failure_count": 1, "x": 1},
    )
    read = get(client, f"/task-status/{task_id}").json_body
    assert (read["task_id"], read["operation"], read["status"]) == (
        task_id,
        "daily_sales",
        "completed_with_errors",
    )
    assert read["result"] == {
        "success": True,
        "message": "2 of 3 stores",
        "summary": "2 of 3 stores",
        "success_count": 2,
        "failure_count": 1,
    }
    assert isinstance(read["created_at"], int)
    assert history(client, stack, task_id) == [
        "submitted",
        "started",
        "processing",
        "error",
        "completed_with_errors",
    ]


def test_pychromeless_first_call_for_an_id_creates_it_even_when_it_is_not_started(client, producer):
    task_id = str(uuid.uuid4())  # a Lambda request id
    WebSocketManager().broadcast_status(task_id, "online_cc_fee", "failed", error="no login")
    read = get(client, f"/task-status/{task_id}").json_body
    assert (read["status"], read["error"]) == ("failed", "no login")


def test_pychromeless_a_second_manager_reports_on_the_same_task(client, producer):
    task_id = str(uuid.uuid4())
    WebSocketManager().broadcast_status(task_id, "daily_sales", "started")
    WebSocketManager().broadcast_status(task_id, "daily_sales", "completed", result={})
    assert get(client, f"/task-status/{task_id}").json_body["status"] == "completed"
