"""Idempotency keys (chalicelib/store/keys.py): one home for submit, retry and batches."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.errors import IdempotencyConflict
from chalicelib.model import Status
from chalicelib.store import KeyRecord
from tests.conftest import auth
from tests.unit.helpers import sleep_job, submit
from tests.unit.tasks import stored_task

REUSED = "this Idempotency-Key was already used with a different request"


def _reused_on_submit(client) -> str:
    submit(client, sleep_job(seconds=1), headers={"Idempotency-Key": "on-submit"})
    response = submit(client, sleep_job(seconds=2), headers={"Idempotency-Key": "on-submit"})
    assert response.status_code == 422
    return response.json_body["error"]["message"]


def _reused_on_retry(client, service) -> str:
    first, second = (stored_task(service, Status.FAILED) for _ in range(2))
    headers = {**auth(), "Idempotency-Key": "on-retry"}
    client.http.post(f"/jobs/{first.id}/retry", headers=headers, body="")
    response = client.http.post(f"/jobs/{second.id}/retry", headers=headers, body="")
    assert response.status_code == 422
    return response.json_body["error"]["message"]


def _reused_in_a_batch(client) -> str:
    def batch(seconds: float):
        job = {**sleep_job(seconds=seconds), "idempotencyKey": "in-batch"}
        body = json.dumps({"jobs": [job]})
        return client.http.post("/jobs/batch", headers=auth(), body=body)

    batch(1)
    [result] = batch(2).json_body["results"]
    assert result["status"] == 422
    return result["error"]["message"]


def test_a_key_reused_for_another_request_is_told_the_same_on_submit_retry_and_batch(
    client, service
):
    told = {
        _reused_on_submit(client),
        _reused_on_retry(client, service),
        _reused_in_a_batch(client),
    }
    assert told == {REUSED}


def test_a_key_is_live_until_the_second_it_expires_then_free(client, service):
    submit(client, sleep_job(), headers={"Idempotency-Key": "short-lived"})
    record = service.store.keys.read("alice", "short-lived")
    expiry = datetime.fromtimestamp(record.expires_at, UTC)
    assert service.store.keys.live("alice", "short-lived", expiry) == record
    assert service.store.keys.live("alice", "short-lived", expiry + timedelta(seconds=1)) is None


def test_a_key_of_one_owner_is_not_anothers(client, service):
    submit(client, sleep_job(), headers={"Idempotency-Key": "shared-name"})
    assert service.store.keys.read("bob", "shared-name") is None


def test_a_key_answers_its_own_request_with_its_task_and_refuses_another():
    record = KeyRecord("task-1", fingerprint="abc", expires_at=1)
    assert record.replay_or_conflict("abc") == "task-1"
    with pytest.raises(IdempotencyConflict, match=REUSED):
        record.replay_or_conflict("abd")
