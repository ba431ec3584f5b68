"""Producers: external jobs that a service elsewhere runs, and its reports and heartbeats."""

import json
import uuid
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from chalicelib.model import utcnow
from chalicelib.service import TaskService
from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit, webhook_secret


def external(**extra):
    return {"type": "media/convert", "runner": "external", **extra}


def create(client, user="alice", **extra):
    response = submit(client, external(**extra), user=user)
    assert response.status_code == 202, response.json_body
    return response.json_body


def post(client, path, body=None, user="alice", headers=None):
    return client.http.post(
        path,
        headers={**auth(user), "Content-Type": "application/json", **(headers or {})},
        body=json.dumps(body) if body is not None else "",
    )


def report(client, job_id, user="alice", headers=None, **body):
    return post(client, f"/jobs/{job_id}/report", body, user, headers)


def heartbeat(client, job_id, user="alice"):
    return post(client, f"/jobs/{job_id}/heartbeat", None, user)


def events(client, job_id, user="alice"):
    return get(client, f"/jobs/{job_id}/events", user=user).json_body["events"]


# -- tracked tasks ------------------------------------------------------------------------


def test_an_external_job_is_stored_and_never_queued_to_the_worker(client, stack):
    job = create(client)
    stack.run_stream()
    assert stack.queued_messages() == 0
    stack.settle()
    assert get(client, f"/jobs/{job['jobId']}").json_body["status"] == "submitted"


def test_an_external_job_may_have_any_well_formed_type(client):
    assert create(client, type="image/deblindwatermark-v2")["type"] == "image/deblindwatermark-v2"
    assert submit(client, {"type": "media/convert"}).status_code == 422  # the service runs none


def test_a_producer_chooses_its_own_job_id(client):
    job_id = f"local-{uuid.uuid4()}"
    assert create(client, jobId=job_id)["jobId"] == job_id
    assert get(client, f"/jobs/{job_id}").json_body["jobId"] == job_id
    assert get(client, f"/task-status/{job_id}").status_code == 200


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_a_job_id_already_taken_is_409_for_anyone_and_says_nothing_of_the_task(client, user):
    create(client, jobId="req-1", metadata={"secret": "s3cr3t"})
    response = submit(client, external(jobId="req-1"), user=user)
    assert response.status_code == 409
    message = response.json_body["error"]["message"]
    assert "s3cr3t" not in message and "alice" not in message and "media" not in message


@pytest.mark.parametrize("job_id", ["", "x" * 129, "has space", "a/b", "é"])
def test_a_malformed_job_id_is_422_and_stores_nothing(client, stack, job_id):
    response = submit(client, external(jobId=job_id))
    assert response.status_code == 422
    assert response.json_body["error"]["errors"][0]["field"] == "body.jobId"
    assert stack.task_count() == 0


@pytest.mark.parametrize("field,value", [("jobId", "mine"), ("heartbeatSeconds", 60)])
def test_producer_fields_are_refused_on_a_job_the_service_runs(client, field, value):
    response = submit(client, {**sleep_job(), field: value})
    assert response.status_code == 422
    assert response.json_body["error"]["errors"][0]["field"] == f"body.{field}"


@pytest.mark.parametrize("seconds", [0, 4, 86401, "60"])
def test_heartbeat_seconds_out_of_bounds_is_422(client, seconds):
    assert submit(client, external(heartbeatSeconds=seconds)).status_code == 422


def test_heartbeat_seconds_defaults_to_the_stage_setting(client, service):
    job = create(client)
    assert service.find(job["jobId"]).heartbeat_seconds == 900


def test_a_batch_takes_external_jobs_and_answers_a_repeated_job_id_per_item(client, stack):
    body = {"jobs": [external(jobId="b-1"), external(jobId="b-1"), sleep_job()]}
    response = post(client, "/jobs/batch", body)
    assert [r["status"] for r in response.json_body["results"]] == [202, 409, 202]
    stack.run_stream()
    assert stack.queued_messages() == 1  # the service's own job only


# -- reports ----------------------------------------------------------------------------------


def test_reports_move_the_job_as_the_worker_would_and_the_history_lists_each(client, stack):
    job_id = create(client)["jobId"]
    assert report(client, job_id, status="started").status_code == 200
    progress = {"current": 1, "total": 2, "message": "half"}
    assert report(client, job_id, status="processing", progress=progress).status_code == 200
    done = report(client, job_id, status="completed", result={"pages": 2})
    assert done.status_code == 200
    job = done.json_body
    shown = {**progress, "current": 2}  # a completed job shows its progress full, as ever
    assert (job["status"], job["result"], job["progress"]) == ("completed", {"pages": 2}, shown)
    assert job["completedAt"] and job["processingTime"] is not None
    stack.run_stream()
    history = events(client, job_id)
    assert [(e["status"], e["by"]) for e in history] == [
        ("submitted", "api"),
        ("started", "producer"),
        ("processing", "producer"),
        ("completed", "producer"),
    ]


def test_a_repeated_report_is_200_and_writes_nothing(client, stack):
    job_id = create(client)["jobId"]
    first = report(client, job_id, status="started")
    again = report(client, job_id, status="started")
    assert again.status_code == 200
    assert again.json_body["version"] == first.json_body["version"] == 2
    assert again.headers["ETag"] == first.headers["ETag"]


def test_a_report_with_a_stale_if_match_is_412_and_changes_nothing(client):
    job_id = create(client)["jobId"]
    etag = report(client, job_id, status="started").headers["ETag"]
    report(client, job_id, status="processing")
    stale = report(client, job_id, headers={"If-Match": etag}, status="failed", error="x")
    assert stale.status_code == 412
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "processing"


def test_a_report_with_the_current_if_match_is_written(client):
    job_id = create(client)["jobId"]
    etag = report(client, job_id, status="started").headers["ETag"]
    response = report(client, job_id, headers={"If-Match": etag}, status="processing")
    assert response.status_code == 200 and response.json_body["status"] == "processing"


def test_a_transition_the_table_refuses_is_409_naming_the_current_status(client):
    job_id = create(client)["jobId"]
    report(client, job_id, status="started")
    report(client, job_id, status="completed")
    response = report(client, job_id, status="processing")
    assert response.status_code == 409
    assert "completed" in response.json_body["error"]["message"]


def test_a_report_on_a_cancelled_job_is_409_coded_cancelled(client):
    job_id = create(client)["jobId"]
    report(client, job_id, status="started")
    assert client.http.delete(f"/jobs/{job_id}", headers=auth()).status_code == 200
    response = report(client, job_id, status="processing")
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "cancelled"


def test_a_report_on_a_job_the_service_runs_is_409_and_changes_nothing(client):
    job_id = submit(client).json_body["jobId"]
    response = report(client, job_id, status="completed", result="forged")
    assert response.status_code == 409
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "submitted"


def test_a_report_on_a_missing_job_is_404(client):
    assert report(client, "no-such-job", status="started").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "done"},
        {"status": "processing", "progress": {"current": -1, "total": 2}},
        {"status": "processing", "owner": "bob"},
        {"status": "failed", "error": ""},
        {"status": "completed", "output": {"s3Uri": 7}},
    ],
)
def test_a_bad_report_is_422_and_changes_nothing(client, body):
    job_id = create(client)["jobId"]
    assert report(client, job_id, **body).status_code == 422
    assert get(client, f"/jobs/{job_id}").json_body["version"] == 1


def test_a_big_result_is_kept_as_an_object_with_a_result_url(client, container):
    container(result_inline_max_bytes=1024)
    job_id = create(client)["jobId"]
    report(client, job_id, status="started")
    job = report(client, job_id, status="completed", result={"text": "x" * 4096}).json_body
    assert job["result"] is None and job["resultUrl"]


def test_a_terminal_report_sends_the_signed_webhook(client, stack, receiver):
    hook = receiver([200])
    job_id = create(client, webhook={"url": hook.url})["jobId"]
    report(client, job_id, status="started")
    report(client, job_id, status="completed", result={"ok": True})
    stack.settle()
    assert len(hook.deliveries) == 1
    delivery = hook.deliveries[0]
    payload = Webhook(webhook_secret(client)).verify(delivery.body, delivery.headers)
    assert (payload["jobId"], payload["status"], payload["result"]) == (
        job_id,
        "completed",
        {"ok": True},
    )


# -- heartbeats and the reaper -----------------------------------------------------------------


def deadline(stack, job_id):
    item = stack.ddb.get_item(TableName=stack.outputs["TasksTableName"], Key={"id": {"S": job_id}})
    return int(item["Item"]["deadline"]["N"])


def test_a_heartbeat_answers_the_state_and_moves_the_deadline_without_a_version(
    client, stack, service, monkeypatch
):
    job_id = create(client, heartbeatSeconds=60)["jobId"]
    before = deadline(stack, job_id)
    later = utcnow() + timedelta(seconds=30)
    monkeypatch.setattr(service, "clock", lambda: later)
    response = heartbeat(client, job_id)
    assert response.status_code == 200
    body = response.json_body
    assert (body["jobId"], body["status"], body["cancelRequested"], body["version"]) == (
        job_id,
        "submitted",
        False,
        1,
    )
    assert deadline(stack, job_id) >= before + 29


def test_a_heartbeat_is_no_news_to_the_history(client, stack):
    job_id = create(client)["jobId"]
    heartbeat(client, job_id)
    stack.run_stream()
    assert [e["version"] for e in events(client, job_id)] == [1]


def test_a_heartbeat_after_a_cancel_says_cancel_requested(client):
    job_id = create(client)["jobId"]
    client.http.delete(f"/jobs/{job_id}", headers=auth())
    body = heartbeat(client, job_id).json_body
    assert (body["status"], body["cancelRequested"]) == ("cancelled", True)


def test_a_heartbeat_on_a_job_the_service_runs_is_409(client):
    assert heartbeat(client, submit(client).json_body["jobId"]).status_code == 409


def test_a_heartbeat_on_a_missing_job_is_404(client):
    assert heartbeat(client, "nothing-here").status_code == 404


def reap_at(service, moment):
    return TaskService(
        service.store, service.settings, service.slots, service.queue, clock=lambda: moment
    ).reap()


def test_the_reaper_fails_a_silent_external_job_saying_why(client, service):
    job_id = create(client, heartbeatSeconds=60)["jobId"]
    report(client, job_id, status="started")
    assert reap_at(service, utcnow() + timedelta(seconds=30)) == []
    assert reap_at(service, utcnow() + timedelta(seconds=120)) == [job_id]
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "failed"
    assert "no report or heartbeat from its producer for 60 s" in job["error"]


def test_a_heartbeat_keeps_the_reaper_away(client, service, monkeypatch):
    job_id = create(client, heartbeatSeconds=60, jobId="local-keepalive")["jobId"]
    later = utcnow() + timedelta(seconds=50)
    monkeypatch.setattr(service, "clock", lambda: later)
    heartbeat(client, job_id)
    assert reap_at(service, utcnow() + timedelta(seconds=90)) == []
    assert reap_at(service, utcnow() + timedelta(seconds=130)) == [job_id]


# -- credentials: each rule written as the attack ---------------------------------------------


def new_key(client, scopes, user="alice"):
    body = {"name": "producer", "scopes": scopes}
    response = client.http.post("/api-keys", headers=auth(user), body=json.dumps(body))
    assert response.status_code == 201, response.json_body
    return response.json_body["key"]


def with_key(key):
    return {"X-API-Key": key, "Content-Type": "application/json"}


def test_a_report_key_reports_on_its_owners_job(client):
    job_id = create(client)["jobId"]
    key = new_key(client, ["jobs:report"])
    response = client.http.post(
        f"/jobs/{job_id}/report", headers=with_key(key), body='{"status": "started"}'
    )
    assert response.status_code == 200


def test_a_read_key_cannot_report(client):
    job_id = create(client)["jobId"]
    key = new_key(client, ["jobs:read"])
    response = client.http.post(
        f"/jobs/{job_id}/report", headers=with_key(key), body='{"status": "completed"}'
    )
    assert response.status_code == 403
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "submitted"


def test_a_write_key_cannot_report_or_heartbeat(client):
    job_id = create(client)["jobId"]
    key = new_key(client, ["jobs:read", "jobs:write"])
    for path in ("report", "heartbeat"):
        response = client.http.post(
            f"/jobs/{job_id}/{path}", headers=with_key(key), body='{"status": "started"}'
        )
        assert response.status_code == 403


def test_a_users_key_reporting_on_another_users_job_is_404_and_changes_nothing(client):
    job_id = create(client, user="bob")["jobId"]
    key = new_key(client, ["jobs:report"], user="alice")
    for path in ("report", "heartbeat"):
        response = client.http.post(
            f"/jobs/{job_id}/{path}", headers=with_key(key), body='{"status": "failed"}'
        )
        assert response.status_code == 404
    assert get(client, f"/jobs/{job_id}", user="bob").json_body["status"] == "submitted"


def test_a_users_token_reporting_on_another_users_job_is_404(client):
    job_id = create(client, user="bob")["jobId"]
    assert report(client, job_id, user="alice", status="failed").status_code == 404


def test_a_user_setting_owner_is_refused_and_nothing_is_stored_for_that_owner(client, stack):
    response = submit(client, external(owner="bob"), user="alice")
    assert response.status_code == 403
    assert stack.task_count() == 0


# -- objects of external jobs -----------------------------------------------------------------


def test_an_external_job_records_its_producers_objects_as_named(client):
    objects = {
        "source": {"bucket": "media-in", "key": "photo.png"},
        "target": {"bucket": "media-out", "key": "watermark/photo.png"},
    }
    job_id = create(client, **objects)["jobId"]
    read = get(client, f"/task/{job_id}").json_body
    assert (read["SourceBucket"], read["SourceKey"]) == ("media-in", "photo.png")
    assert (read["TargetBucket"], read["TargetKey"]) == ("media-out", "watermark/photo.png")


def test_an_object_in_a_producers_bucket_is_never_signed_even_under_the_owners_prefix(client):
    from chalicelib.objects import owner_prefix

    target = {"bucket": "producers-bucket", "key": f"{owner_prefix('alice')}out.png"}
    job_id = create(client, target=target)["jobId"]
    report(client, job_id, status="started")
    report(client, job_id, status="completed", output={"s3Uri": f"s3://{target['bucket']}/x"})
    assert "TargetObjectURL" not in get(client, f"/task/{job_id}").json_body
    assert get(client, f"/jobs/{job_id}").json_body["output"]["url"] is None


def test_the_reported_output_url_is_the_jobs_and_the_000_001_target_url(client):
    job_id = create(client, target={"bucket": "media-out", "key": "out.mp4"})["jobId"]
    report(client, job_id, status="started")
    url = "https://media-out.s3.amazonaws.com/out.mp4?X-Amz-Signature=abc"
    report(client, job_id, status="completed", output={"url": url, "size": 10})
    assert get(client, f"/jobs/{job_id}").json_body["output"]["url"] == url
    assert get(client, f"/task/{job_id}").json_body["TargetObjectURL"] == url


def test_an_output_url_that_is_not_http_is_422(client):
    job_id = create(client)["jobId"]
    report(client, job_id, status="started")
    response = report(client, job_id, status="completed", output={"url": "javascript:alert(1)"})
    assert response.status_code == 422


@pytest.mark.parametrize("route", ["report", "heartbeat"])
@pytest.mark.parametrize("job_id", ["not~an~id", "x" * 129])
def test_a_malformed_job_id_on_a_producer_route_is_400(client, route, job_id):
    response = post(client, f"/jobs/{job_id}/{route}", {"status": "started"})
    assert response.status_code == 400
    assert "jobId" in response.json_body["error"]["message"]


def test_a_report_that_is_not_json_is_a_4xx_and_changes_nothing(client):
    job_id = create(client)["jobId"]
    response = client.http.post(
        f"/jobs/{job_id}/report",
        headers={**auth(), "Content-Type": "application/json"},
        body="{not json",
    )
    assert response.status_code == 400
    assert get(client, f"/jobs/{job_id}").json_body["version"] == 1
