"""Worker pools: a task for a pool goes to that pool's queue and is never run by the worker
Lambda; a pool the service does not declare is a 422 that changes nothing."""

import pytest

from chalicelib.pools import Pools, UnknownPool, pool_queue_url
from tests.unit.helpers import get, sleep_job, submit


def queued(stack, url: str) -> list[dict]:
    return stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])


def remote_queue(stack) -> str:
    return stack.outputs["RemotePoolQueueUrl"]


def test_the_pool_queue_is_where_the_service_sends_a_pools_tasks(stack):
    assert pool_queue_url(stack.queue_url, "remote") == remote_queue(stack)


def test_a_job_naming_a_pool_waits_on_its_queue_and_the_worker_lambda_never_runs_it(client, stack):
    response = submit(client, {**sleep_job(), "pool": "remote"})
    assert response.status_code == 202, response.json_body
    stack.settle()
    job = get(client, f"/jobs/{response.json_body['jobId']}").json_body
    assert job["status"] == "submitted"
    assert queued(stack, stack.queue_url) == []
    [message] = queued(stack, remote_queue(stack))
    assert response.json_body["jobId"] in message["Body"]


def test_a_type_routed_by_pool_types_goes_to_the_pool(client, stack, monkeypatch):
    monkeypatch.setenv("POOL_TYPES", "video/*=remote")
    response = submit(client, {"type": "video/render", "input": {"frames": 10}})
    assert response.status_code == 202, response.json_body
    stack.settle()
    assert queued(stack, stack.queue_url) == []
    assert len(queued(stack, remote_queue(stack))) == 1


def test_a_pool_job_of_a_type_only_its_workers_know_keeps_its_input_as_given(client, stack):
    body = {"type": "gpu/upscale", "input": {"factor": 4, "model": "x"}, "pool": "remote"}
    response = submit(client, body)
    assert response.status_code == 202, response.json_body
    job = get(client, f"/jobs/{response.json_body['jobId']}").json_body
    assert job["input"] == {"factor": 4, "model": "x"}


def test_a_pool_job_of_a_type_the_service_knows_is_validated_as_any_other(client):
    response = submit(client, {**sleep_job(seconds=-1), "pool": "remote"})
    assert response.status_code == 422
    assert "input.seconds" in str(response.json_body)


def test_an_unknown_pool_is_a_422_naming_it_and_stores_nothing(client, stack):
    response = submit(client, {**sleep_job(), "pool": "gpu"})
    assert response.status_code == 422
    assert "'gpu'" in str(response.json_body) and "remote" in str(response.json_body)
    assert stack.task_count() == 0


def test_an_external_job_cannot_name_a_pool(client):
    response = submit(client, {"type": "acme/x", "runner": "external", "pool": "remote"})
    assert response.status_code == 422
    assert "pool" in str(response.json_body)


def test_routes_take_the_first_matching_pattern():
    pools = Pools(("remote", "gpu"), (("video/gpu-*", "gpu"), ("video/*", "remote")))
    assert pools.pool_for("video/gpu-render", None) == "gpu"
    assert pools.pool_for("video/cut", None) == "remote"
    assert pools.pool_for("image/resize", None) is None


def test_a_route_to_an_undeclared_pool_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("WORKER_POOLS", "remote")
    monkeypatch.setenv("POOL_TYPES", "video/*=gpu")
    with pytest.raises(ValueError, match="POOL_TYPES"):
        Pools.from_environment()


def test_asking_for_an_undeclared_pool_raises_unknown_pool():
    with pytest.raises(UnknownPool):
        Pools(("remote",)).pool_for("demo/sleep", "elsewhere")
