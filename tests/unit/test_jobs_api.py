"""The native REST API (/jobs, /uploads, deliveries)."""

from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit

JOB_FIELDS = {
    "jobId",
    "type",
    "status",
    "submittedAt",
    "updatedAt",
    "completedAt",
    "processingTime",
    "progress",
    "result",
    "resultUrl",
    "output",
    "error",
    "metadata",
    "version",
    "input",
    "retries",
    "runAt",
    "hasWebhook",
    "scheduleId",
    "scheduledFor",
    "pool",
    "attempt",
    "priority",
    "concurrency",
    "waitingFor",
}


def test_submit_answers_202_with_location_and_retry_after(client):
    response = submit(client, {**sleep_job(), "metadata": {"projectId": "example"}})
    assert response.status_code == 202
    job = response.json_body
    assert set(job) == JOB_FIELDS
    assert job["status"] == "submitted"
    assert job["metadata"] == {"projectId": "example"}
    assert set(job["output"]) == {"url", "urlExpiresAt", "s3Uri", "duration", "size"}
    assert response.headers["Location"] == f"/jobs/{job['jobId']}"
    assert response.headers["Retry-After"] == "1"


def test_a_submitted_job_is_readable_at_its_location(client):
    location = submit(client).headers["Location"]
    response = get(client, location)
    assert response.status_code == 200
    assert response.json_body["status"] == "submitted"


def test_a_submitted_job_runs_to_completion(client, stack):
    job_id = submit(client, sleep_job(steps=2)).json_body["jobId"]
    stack.settle()
    job = get(client, f"/jobs/{job_id}").json_body
    assert job["status"] == "completed"
    assert job["progress"] == {"current": 2, "total": 2, "message": "step 2 of 2"}
    assert job["result"] == {"slept": 0.0, "steps": 2}
    assert job["completedAt"] and job["processingTime"] is not None


def test_a_read_by_id_carries_the_input_and_the_version_a_list_carries_the_version_only(client):
    job_id = submit(client, sleep_job(steps=2)).json_body["jobId"]
    read = get(client, f"/jobs/{job_id}").json_body
    assert read["input"] == sleep_job(steps=2)["input"]
    assert read["version"] == 1
    (listed,) = get(client, "/jobs").json_body["jobs"]
    assert listed["input"] is None and listed["version"] == read["version"]


def test_curl_default_content_type_is_accepted_for_a_json_body(client):
    headers = {**auth(), "Content-Type": "application/x-www-form-urlencoded"}
    response = client.http.post(
        "/jobs", headers=headers, body='{"type":"demo/sleep","input":{"seconds":1}}'
    )
    assert response.status_code == 202


def test_get_carries_an_etag_and_answers_304_when_unchanged(client):
    job_id = submit(client).json_body["jobId"]
    first = get(client, f"/jobs/{job_id}")
    etag = first.headers["ETag"]
    second = get(client, f"/jobs/{job_id}", headers={"If-None-Match": etag})
    assert second.status_code == 304
    assert second.body in (b"", "")


def test_the_etag_changes_when_the_job_changes(client, stack):
    job_id = submit(client).json_body["jobId"]
    etag = get(client, f"/jobs/{job_id}").headers["ETag"]
    stack.settle()
    response = get(client, f"/jobs/{job_id}", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["ETag"] != etag


def test_another_users_job_answers_like_a_missing_one(client):
    job_id = submit(client, user="alice").json_body["jobId"]
    theirs = get(client, f"/jobs/{job_id}", user="bob")
    missing = get(client, "/jobs/00000000-0000-4000-8000-000000000000", user="bob")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json_body["error"]["code"] == missing.json_body["error"]["code"] == "not_found"


def test_list_returns_only_the_callers_jobs_newest_first(client):
    mine = [submit(client).json_body["jobId"] for _ in range(3)]
    submit(client, user="bob")
    jobs = get(client, "/jobs").json_body["jobs"]
    assert [j["jobId"] for j in jobs] == list(reversed(mine))


def test_list_pages_with_a_cursor(client):
    submitted = [submit(client).json_body["jobId"] for _ in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        path = "/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = get(client, path).json_body
        seen += [j["jobId"] for j in page["jobs"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(submitted))


def test_list_filters_by_status_and_type(client, stack):
    done = submit(client).json_body["jobId"]
    stack.settle()
    waiting = submit(client).json_body["jobId"]
    completed = get(client, "/jobs?status=completed&type=demo/sleep").json_body["jobs"]
    submitted = get(client, "/jobs?status=submitted").json_body["jobs"]
    assert [j["jobId"] for j in completed] == [done]
    assert [j["jobId"] for j in submitted] == [waiting]
    assert get(client, "/jobs?type=image/watermark").json_body["jobs"] == []


def test_delete_cancels_an_unfinished_job(client, stack):
    job_id = submit(client).json_body["jobId"]
    response = client.http.delete(f"/jobs/{job_id}", headers=auth())
    assert response.status_code == 200
    assert response.json_body["status"] == "cancelled"
    stack.settle()
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "cancelled"


def test_delete_of_a_finished_job_is_a_conflict(client, stack):
    job_id = submit(client).json_body["jobId"]
    stack.settle()
    response = client.http.delete(f"/jobs/{job_id}", headers=auth())
    assert response.status_code == 409
    assert "completed" in response.json_body["error"]["message"]


def test_delete_of_another_users_job_is_not_found_and_changes_nothing(client):
    job_id = submit(client).json_body["jobId"]
    assert client.http.delete(f"/jobs/{job_id}", headers=auth("bob")).status_code == 404
    assert get(client, f"/jobs/{job_id}").json_body["status"] == "submitted"


def test_same_idempotency_key_and_body_returns_the_same_job(client, stack):
    headers = {"Idempotency-Key": "order-42"}
    first = submit(client, headers=headers)
    second = submit(client, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json_body["jobId"] == second.json_body["jobId"]
    assert second.headers["Idempotent-Replayed"] == "true"
    stack.run_stream()
    assert stack.task_count() == 1
    assert stack.queued_messages() == 1


def test_same_idempotency_key_with_another_body_is_422(client, stack):
    submit(client, sleep_job(seconds=1), headers={"Idempotency-Key": "order-43"})
    response = submit(client, sleep_job(seconds=2), headers={"Idempotency-Key": "order-43"})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json_body["error"]["message"]
    assert stack.task_count() == 1


def test_idempotency_keys_are_per_user(client, stack):
    alice = submit(client, headers={"Idempotency-Key": "k1"}, user="alice").json_body["jobId"]
    bob = submit(client, headers={"Idempotency-Key": "k1"}, user="bob").json_body["jobId"]
    assert alice != bob
    assert stack.task_count() == 2


def test_every_response_carries_a_request_id(client):
    assert submit(client).headers["X-Request-Id"]
    assert get(client, "/jobs").headers["X-Request-Id"]
    assert get(client, "/jobs/not-a-uuid").headers["X-Request-Id"]


def test_a_job_document_says_whether_the_job_sends_a_webhook(client, receiver):
    hooked = {**sleep_job(), "webhook": {"url": receiver([200]).url}}
    with_hook = submit(client, hooked).json_body
    without = submit(client).json_body
    assert (with_hook["hasWebhook"], without["hasWebhook"]) == (True, False)
    assert get(client, f"/jobs/{with_hook['jobId']}").json_body["hasWebhook"] is True
    listed = {job["jobId"]: job["hasWebhook"] for job in get(client, "/jobs").json_body["jobs"]}
    assert listed == {with_hook["jobId"]: True, without["jobId"]: False}
