"""Keys that cannot collide across users, idempotency that never answers 500, honest state."""

import json

from botocore.exceptions import ClientError

from chalicelib.model import Status
from tests.unit.helpers import get, sleep_job, submit
from tests.unit.tasks import stored_task

# -- composite keys --------------------------------------------------------------------


def test_a_sub_with_a_separator_cannot_list_another_users_tasks_by_type(client, stack):
    victim = submit(client, sleep_job(), user="v#w").json_body["jobId"]
    stack.run_stream()
    # "v" + type "w#demo/sleep" spells the same text as "v#w" + type "demo/sleep".
    response = get(client, "/jobs?type=w%23demo/sleep", user="v")
    assert response.status_code == 200
    assert victim not in [job["jobId"] for job in response.json_body["jobs"]]
    assert response.json_body["jobs"] == []


def test_a_sub_with_a_separator_cannot_replay_another_users_idempotent_job(client, stack):
    victim = submit(client, sleep_job(), user="v#w", headers={"Idempotency-Key": "k"})
    attacker = submit(client, sleep_job(), user="v", headers={"Idempotency-Key": "w#k"})
    assert attacker.status_code == 202
    assert attacker.json_body["jobId"] != victim.json_body["jobId"]
    assert attacker.headers["Idempotent-Replayed"] == "false"


# -- idempotency never answers 500 ------------------------------------------------------


def test_a_key_whose_job_has_expired_is_a_409_saying_to_use_a_new_key(client, stack):
    first = submit(client, headers={"Idempotency-Key": "old-order"}).json_body["jobId"]
    stack.ddb.delete_item(
        TableName=stack.outputs["TasksTableName"], Key={"id": {"S": first}}
    )  # what TTL does once the job expires, while the key is still kept
    response = submit(client, headers={"Idempotency-Key": "old-order"})
    assert response.status_code == 409
    assert "new Idempotency-Key" in response.json_body["error"]["message"]


def test_a_concurrent_request_with_the_same_key_is_a_409_with_retry_after(
    client, stack, monkeypatch
):
    from chalicelib import aws

    ddb = aws.client("dynamodb")

    def conflicting(**kwargs):
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(ddb, "transact_write_items", conflicting)
    response = submit(client, headers={"Idempotency-Key": "racing"})
    assert response.status_code == 409
    assert response.headers["Retry-After"]
    assert stack.task_count() == 0


# -- state ---------------------------------------------------------------------------------


def test_a_job_that_succeeds_on_retry_does_not_keep_the_old_error(client, stack, no_backoff):
    from tests.unit import test_worker  # noqa: F401  (registers test/flaky)

    job_id = submit(client, {"type": "test/flaky"}).json_body["jobId"]
    stack.run_stream()
    stack.worker_pump.run_once()
    assert get(client, f"/jobs/{job_id}").json_body["error"] == "dependency throttled"
    stack.run_worker()
    final = get(client, f"/jobs/{job_id}").json_body
    assert final["status"] == "completed"
    assert final["error"] is None


def test_a_status_filter_returns_full_pages_while_matches_remain(client, service):
    failed = [stored_task(service, Status.FAILED).id for _ in range(3)]
    for _ in range(12):
        stored_task(service, Status.COMPLETED)  # newer than the failed ones
    seen: list[str] = []
    cursor = ""
    while True:
        page = get(client, f"/jobs?status=failed&limit=2{cursor}").json_body
        assert page["jobs"] or page["nextCursor"] is None, "an empty page with a cursor"
        seen += [job["jobId"] for job in page["jobs"]]
        if not page["nextCursor"]:
            break
        assert len(page["jobs"]) == 2, "a short page while matches remain"
        cursor = f"&cursor={page['nextCursor']}"
    assert sorted(seen) == sorted(failed)


def test_a_page_cut_inside_a_query_resumes_at_the_next_task(client, service):
    ids = [stored_task(service, Status.COMPLETED).id for _ in range(5)]
    first = get(client, "/jobs?limit=3").json_body
    second = get(client, f"/jobs?limit=3&cursor={first['nextCursor']}").json_body
    listed = [job["jobId"] for job in first["jobs"] + second["jobs"]]
    assert sorted(listed) == sorted(ids)
    assert len(set(listed)) == 5
    assert json.dumps(second).count("jobId") == 2
