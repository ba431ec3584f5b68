"""A job's history (GET /jobs/{jobId}/events): one entry per version, from the stream."""

from datetime import timedelta

import pytest

from chalicelib.bootstrap import container
from chalicelib.history import History
from chalicelib.model import Status, utcnow
from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit
from tests.unit.tasks import stored_task


def events(client, job_id: str, user: str = "alice", query: str = "") -> list[dict]:
    response = get(client, f"/jobs/{job_id}/events{query}", user)
    assert response.status_code == 200, response.json_body
    return response.json_body["events"]


def stream_record(service, task, event_name: str = "MODIFY") -> dict:
    return {
        "eventID": f"e{task.version}",
        "eventName": event_name,
        "dynamodb": {
            "Keys": {"id": {"S": task.id}},
            "NewImage": service.store.attributes(task),
            "SequenceNumber": str(task.version),
        },
    }


def test_every_version_of_a_run_has_one_entry_oldest_first(client, stack):
    job_id = submit(client, sleep_job(steps=2)).json_body["jobId"]
    stack.settle()
    final = get(client, f"/jobs/{job_id}").json_body
    entries = events(client, job_id)
    assert entries[0]["status"] == "submitted"
    assert entries[-1]["status"] == final["status"] == "completed"
    assert [e["version"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[-1]["progress"] == {"current": 2, "total": 2, "message": "step 2 of 2"}


def test_each_entry_names_its_writer(client, stack):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    stack.settle()
    by = {e["status"]: e["by"] for e in events(client, job_id)}
    assert by["submitted"] == "api"
    assert by["started"] == by["completed"] == "worker"


def test_a_cancel_is_written_by_the_api(client, stack):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    client.http.delete(f"/jobs/{job_id}", headers=auth())
    stack.run_stream()
    assert [(e["status"], e["by"]) for e in events(client, job_id)] == [
        ("submitted", "api"),
        ("cancelled", "api"),
    ]


def test_a_timeout_is_written_by_the_reaper(client, stack, service):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    service.claim(job_id, "demo/sleep", 1)  # then its worker died
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert service.reap() == [job_id]
    service.clock = utcnow
    stack.run_stream()
    last = events(client, job_id)[-1]
    assert (last["status"], last["by"]) == ("failed", "reaper")
    assert "timed out" in last["error"]


def test_a_dead_letter_is_written_by_its_handler(client, stack, service):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    container().worker.handle_dead_letters(
        [{"body": f'{{"taskId": "{job_id}", "type": "demo/sleep", "owner": "alice"}}'}]
    )
    stack.run_stream()
    assert events(client, job_id)[-1]["by"] == "dead-letters"


def test_a_replayed_stream_record_adds_no_entry(client, service):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    task = service.find(job_id)
    c = container()
    handler = c.stream_handler
    record = stream_record(service, task, "INSERT")
    assert handler.handle_batch([record, record]) == {"batchItemFailures": []}
    handler.handle_batch([record])
    assert len(events(client, job_id)) == 1


def test_an_entry_expires_with_its_task(service, stack):
    task = stored_task(service, Status.FAILED)
    stack.run_stream()
    item = stack.ddb.get_item(
        TableName=service.settings.records_table,
        Key={"pk": {"S": f"task#{task.id}"}, "sk": {"S": "history#0000000001"}},
    )["Item"]
    assert int(item["expires_at"]["N"]) == task.expires_at


def test_pages_follow_the_cursor_without_repeating_an_entry(client, stack):
    job_id = submit(client, sleep_job(steps=3)).json_body["jobId"]
    stack.settle()
    everything = events(client, job_id)
    seen: list[dict] = []
    query = "?limit=2"
    for _ in range(10):
        body = get(client, f"/jobs/{job_id}/events{query}").json_body
        seen += body["events"]
        if body["nextCursor"] is None:
            break
        query = f"?limit=2&cursor={body['nextCursor']}"
    assert seen == everything
    assert len(everything) > 2


def test_bob_cannot_read_alices_history(client, stack):
    job_id = submit(client, sleep_job(), user="alice").json_body["jobId"]
    stack.run_stream()
    response = get(client, f"/jobs/{job_id}/events", user="bob")
    assert response.status_code == 404
    assert "events" not in response.json_body


def test_a_cursor_of_another_job_is_refused(client, stack):
    first = submit(client, sleep_job(steps=3)).json_body["jobId"]
    second = submit(client, sleep_job()).json_body["jobId"]
    stack.settle()
    cursor = get(client, f"/jobs/{first}/events?limit=1").json_body["nextCursor"]
    response = get(client, f"/jobs/{second}/events?cursor={cursor}")
    assert response.status_code == 400
    assert "cursor" in response.json_body["error"]["message"]


def test_a_malformed_job_id_is_a_400(client):
    response = get(client, "/jobs/not~a~uuid/events")
    assert response.status_code == 400


def test_an_unknown_query_parameter_is_a_400_that_names_it(client, stack):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    response = get(client, f"/jobs/{job_id}/events?since=1")
    assert response.status_code == 400
    assert "since" in response.json_body["error"]["message"]


@pytest.mark.parametrize("limit", ["0", "101", "x"])
def test_a_limit_out_of_range_is_a_400(client, limit):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    response = get(client, f"/jobs/{job_id}/events?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json_body["error"]["message"]


def test_recording_a_version_twice_reports_the_duplicate(service):
    task = stored_task(service, Status.SUBMITTED)
    history = History(service.settings.records_table)
    assert history.record(task) is True
    assert history.record(task) is False


def test_a_change_the_stream_cannot_handle_is_failed_by_the_stream(client, stack):
    from tests.unit.aws_faults import sqs_refuses_messages

    job_id = submit(client, sleep_job()).json_body["jobId"]
    with sqs_refuses_messages(lambda body: job_id in body, "InvalidParameterValue"):
        stack.run_stream()
        stack.run_stream()
    last = events(client, job_id)[-1]
    assert (last["status"], last["by"]) == ("failed", "stream")


def test_public_reads_by_id_do_not_open_a_history(client, stack, container):
    job_id = submit(client, sleep_job()).json_body["jobId"]
    container(public_read_by_id=True)
    assert client.http.get(f"/jobs/{job_id}").status_code == 200
    assert client.http.get(f"/jobs/{job_id}/events").status_code == 401


def test_a_delayed_run_come_due_is_written_by_the_scheduler(client, stack, service):
    job = {**sleep_job(), "delaySeconds": 3600}
    job_id = submit(client, job).json_body["jobId"]
    later = utcnow() + timedelta(seconds=3601)
    service.clock = lambda: later
    assert service.release_due() == [job_id]
    service.clock = utcnow
    stack.run_stream()
    story = [(e["status"], e["by"]) for e in events(client, job_id)]
    assert story == [("scheduled", "api"), ("submitted", "scheduler")]
