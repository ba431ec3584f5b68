"""No single job can stall the service: every derived write fits DynamoDB's item limit,
large results become objects, and one bad stream record never holds the others."""

import json

import pytest
import requests

from chalicelib import webhooks
from chalicelib.model import TRUNCATED, Progress, Status
from chalicelib.processors import processor
from chalicelib.processors.sdk import registered
from chalicelib.store import item_size
from tests.unit.aws_faults import aws_fails, sqs_refuses_messages
from tests.unit.helpers import get, sleep_job, submit
from tests.unit.tasks import stored_task

ITEM_LIMIT = 400 * 1024
BIG_RESULT_BYTES = 300 * 1024

if not registered("test/big-result"):

    @processor("test/big-result")
    def big_result(task, ctx):
        return {"rows": ["é" * 100] * (BIG_RESULT_BYTES // 200)}

    @processor("test/long-messages")
    def long_messages(task, ctx):
        ctx.progress(1, 2, "p" * 100_000)
        ctx.warn("w" * 100_000)
        return "done"


def largest_job(receiver_url: str) -> dict:
    """Near the body limit in UTF-8, all non-ASCII (6 bytes each once escaped as \\uXXXX)."""
    return {
        **sleep_job(),
        "metadata": {"notes": "ü" * 110_000},
        "webhook": {"url": receiver_url},
    }


def largest_items(stack) -> int:
    sizes = []
    for table in (stack.outputs["TasksTableName"], stack.outputs["RecordsTableName"]):
        for item in stack.ddb.scan(TableName=table)["Items"]:
            sizes.append(item_size(item))
    return max(sizes)


@pytest.fixture
def hook():
    from tests.receiver import Receiver

    receiver = Receiver([200])
    yield receiver
    receiver.close()


def test_the_largest_job_with_a_webhook_does_not_delay_another_users_job(client, stack, hook):
    body = json.dumps(largest_job(hook.url), ensure_ascii=False)
    assert 200 * 1024 < len(body.encode()) < 256 * 1024
    big = submit(client, raw=body, user="mallory")
    assert big.status_code == 202, big.body
    small = submit(client, sleep_job(), user="bob").json_body["jobId"]
    stack.settle()
    assert get(client, f"/jobs/{small}", user="bob").json_body["status"] == "completed"
    assert get(client, f"/jobs/{big.json_body['jobId']}", user="mallory").json_body["status"] == (
        "completed"
    )
    assert len(hook.deliveries) == 1
    assert json.loads(hook.deliveries[0].body)["metadata"]["notes"] == "ü" * 110_000
    assert largest_items(stack) < ITEM_LIMIT


def test_a_result_too_large_for_the_item_is_an_object_behind_result_url(client, stack):
    job_id = submit(client, {"type": "test/big-result"}).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "completed"
    assert job["result"] is None and job["resultUrl"]
    fetched = requests.get(job["resultUrl"], timeout=10).json()
    assert len(fetched["rows"]) == BIG_RESULT_BYTES // 200
    assert get(client, f"/task-status/{job_id}").json_body["resultUrl"]
    assert get(client, f"/assemblies/{job_id}").json_body["result_url"]
    assert largest_items(stack) < ITEM_LIMIT


def test_a_small_result_stays_inline(client, stack):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["result"] == {"slept": 0, "steps": 1} and job["resultUrl"] is None


def test_progress_messages_and_errors_are_cut_with_a_marker(client, stack):
    job_id = submit(client, {"type": "test/long-messages"}).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "completed_with_errors"
    assert job["error"].endswith(TRUNCATED) and len(job["error"]) == 4096
    assert len(Progress(current=1, total=1, message="x" * 5000).message) == 1024


def test_one_bad_stream_record_fails_its_task_and_the_batch_goes_on(client, stack):
    bad = submit(client, {**sleep_job(), "metadata": {"poison": True}}).json_body["jobId"]
    good = submit(client, sleep_job(), user="bob").json_body["jobId"]
    with sqs_refuses_messages(lambda body: bad in body, "InvalidParameterValue"):
        stack.settle()
    assert get(client, f"/jobs/{good}", user="bob").json_body["status"] == "completed"
    failed = get(client, f"/jobs/{bad}").json_body
    assert failed["status"] == "failed"
    assert "InvalidParameterValue" in failed["error"]


def test_a_transient_stream_failure_is_retried_not_failed(client, stack):
    job_id = submit(client).json_body["jobId"]
    with aws_fails("sqs", "SendMessageBatch", "ThrottlingException", times=1) as failed:
        assert stack.run_stream() == 0  # reported as failed: Lambda resumes at this record
    assert failed == ["SendMessageBatch"]
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "completed"


def test_the_webhook_event_of_a_huge_payload_is_kept_as_an_object(client, stack, hook):
    job = {**sleep_job(), "metadata": {"notes": "a" * 230_000}, "webhook": {"url": hook.url}}
    job_id = submit(client, job).json_body["jobId"]
    stack.settle()
    events = [
        item
        for item in stack.ddb.scan(TableName=stack.outputs["RecordsTableName"])["Items"]
        if item["sk"]["S"].startswith("event#")
    ]
    assert len(events) == 1 and "payload_key" in events[0] and "payload" not in events[0]
    assert job_id in events[0]["pk"]["S"]
    assert json.loads(hook.deliveries[0].body)["metadata"]["notes"] == "a" * 230_000
    assert webhooks.INLINE_PAYLOAD_BYTES < 230_000


def test_a_record_that_keeps_failing_goes_to_the_failures_queue_and_is_replayed_from_there(
    client, stack, monkeypatch
):
    from infra.package import EVENT_SOURCES

    job_id = submit(client).json_body["jobId"]
    other = submit(client, user="bob").json_body["jobId"]
    retries = EVENT_SOURCES["stream"].settings["MaximumRetryAttempts"]
    with sqs_refuses_messages(lambda body: job_id in body, "InternalError", sender_fault=False):
        for _ in range(retries):
            assert stack.run_stream() == 0  # the mapping retries the record, holding the shard
        assert stack.run_stream() >= 1  # retries exhausted: set aside, the shard moves on
        stack.settle()
        assert get(client, f"/jobs/{other}", user="bob").json_body["status"] == "completed"
    # the failure passes
    assert stack.stream_failures_pump.drain() == 1
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "completed"


LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def lambda_response_bytes(response) -> int:
    """The size of the response Lambda returns to API Gateway: the body as a JSON string."""
    envelope = {
        "statusCode": response.status_code,
        "headers": dict(response.headers),
        "body": response.body.decode(),
    }
    return len(json.dumps(envelope))


def test_a_list_page_of_large_jobs_fits_lambdas_response_and_its_cursor_goes_on(client):
    """The attack: 25 jobs near the body limit, listed in one page, made 6.4 MB. Ten of
    these (all non-ASCII: each character a 6-byte escape, 7 once in Lambda's string) make 7.7."""
    big = {**sleep_job(), "metadata": {"notes": "ü" * 110_000}}
    raw = json.dumps(big, ensure_ascii=False)  # 220 KB of UTF-8, under the body limit
    submitted = [submit(client, raw=raw).json_body["jobId"] for _ in range(10)]
    listed, cursor, pages = [], "", 0
    while True:
        response = get(client, f"/jobs?limit=10{cursor}")
        assert response.status_code == 200
        assert lambda_response_bytes(response) <= LAMBDA_RESPONSE_LIMIT
        pages += 1
        listed += [job["jobId"] for job in response.json_body["jobs"]]
        if not response.json_body["nextCursor"]:
            break
        cursor = f"&cursor={response.json_body['nextCursor']}"
    assert pages > 1
    assert listed == list(reversed(submitted))  # newest first, each once, none left out


def test_a_task_status_answer_of_large_results_fits_lambdas_response_and_pages_on(client, service):
    """Seed 004's list answers up to 1,000 tasks, results included: ten results near the
    item limit (all non-ASCII) would make 7.7 MB."""
    big = {"notes": "ü" * 110_000}
    stored = [stored_task(service, Status.COMPLETED, result=big).id for _ in range(10)]
    listed, cursor, pages = [], "", 0
    while True:
        response = get(client, f"/task-status{cursor}")
        assert response.status_code == 200
        assert lambda_response_bytes(response) <= LAMBDA_RESPONSE_LIMIT
        pages += 1
        listed += [task["task_id"] for task in response.json_body]
        if "X-Next-Cursor" not in response.headers:
            break
        cursor = f"?cursor={response.headers['X-Next-Cursor']}"
    assert pages > 1
    assert listed == list(reversed(stored))
