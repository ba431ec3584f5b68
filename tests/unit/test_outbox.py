"""A task is queued from the table's stream, so a failed SQS send can never strand it."""

from unittest import mock

from chalicelib.service import TaskService
from tests.unit.aws_faults import aws_fails
from tests.unit.helpers import get, submit


def test_submit_makes_no_sqs_call(client, stack):
    with mock.patch.object(TaskService, "send") as send:
        assert submit(client).status_code == 202
    send.assert_not_called()


def test_the_stream_queues_each_new_task_once(client, stack):
    submit(client)
    stack.run_stream()
    assert stack.queued_messages() == 1


def test_a_failed_send_is_retried_from_the_stream_until_it_succeeds(client, stack):
    job_id = submit(client).json_body["jobId"]
    with aws_fails("sqs", "SendMessageBatch", "ServiceUnavailable"):
        stack.run_stream()
    assert stack.queued_messages() == 0
    # The record was reported as failed, so the next poll delivers it again.
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "completed"


def test_a_duplicate_stream_record_queues_a_duplicate_that_runs_once(client, stack):
    job_id = submit(client).json_body["jobId"]
    stack.run_stream()
    stack.stream_pump.positions.clear()  # replay the shard from the start: duplicate records
    stack.run_stream()
    assert stack.queued_messages() == 2
    stack.run_worker()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "completed"
    assert stack.queued_messages() == 0
