"""`POST /jobs/batch`: each item validated, stored and queued on its own, in few transactions."""

import json
import socket

import pytest

from chalicelib import aws
from chalicelib.contracts import batches
from chalicelib.webhooks import ssrf
from tests.conftest import auth
from tests.unit.helpers import get, sleep_job, submit


def batch(client, jobs, user: str = "alice", headers: dict | None = None):
    return client.http.post(
        "/jobs/batch",
        headers={**auth(user), **(headers or {})},
        body=json.dumps(jobs if not isinstance(jobs, list) else {"jobs": jobs}),
    )


def statuses(response) -> list[int]:
    return [result["status"] for result in response.json_body["results"]]


@pytest.fixture
def transactions(stack):
    """How many TransactWriteItems calls the app makes."""
    calls = []
    aws.client("dynamodb").meta.events.register(
        "before-call.dynamodb.TransactWriteItems", lambda **_: calls.append(1)
    )
    return calls


def test_a_batch_stores_and_queues_every_job(client, stack):
    response = batch(client, [sleep_job(), sleep_job(), sleep_job()])
    assert response.status_code == 207
    assert statuses(response) == [202, 202, 202]
    stack.run_stream()
    assert stack.queued_messages() == 3
    stack.settle()
    for result in response.json_body["results"]:
        assert get(client, f"/jobs/{result['job']['jobId']}").json_body["status"] == "completed"


def test_results_are_in_the_order_of_the_items_with_their_index(client):
    jobs = [{**sleep_job(), "metadata": {"n": n}} for n in range(5)]
    results = batch(client, jobs).json_body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["job"]["metadata"]["n"] for r in results] == [0, 1, 2, 3, 4]


def test_a_bad_item_does_not_block_the_others(client, stack):
    jobs = [sleep_job(), {"type": "no/such-type"}, sleep_job(seconds=-1), sleep_job()]
    response = batch(client, jobs)
    assert statuses(response) == [202, 422, 422, 202]
    results = response.json_body["results"]
    assert "not a registered processor" in results[1]["error"]["message"]
    assert results[2]["error"]["errors"][0]["field"] == "input.seconds"
    stack.run_stream()
    assert stack.task_count() == 2 and stack.queued_messages() == 2


def test_a_non_object_item_is_refused_alone(client, stack):
    response = batch(client, [sleep_job(), 7, "x", None])
    assert statuses(response) == [202, 422, 422, 422]
    assert "jobs[1] must be a JSON object" in response.json_body["results"][1]["error"]["message"]
    assert stack.task_count() == 1


def test_jobs_are_owned_by_the_caller(client):
    job_id = batch(client, [sleep_job()], user="bob").json_body["results"][0]["job"]["jobId"]
    assert get(client, f"/jobs/{job_id}", user="alice").status_code == 404
    assert get(client, f"/jobs/{job_id}", user="bob").status_code == 200


def test_a_batch_item_can_be_delayed(client):
    result = batch(client, [{**sleep_job(), "delaySeconds": 600}]).json_body["results"][0]
    assert result["job"]["status"] == "scheduled" and result["job"]["runAt"]


# -- idempotency, per item -------------------------------------------------------------------


def test_an_item_with_a_used_key_replays_its_earlier_job(client, stack):
    first = batch(client, [{**sleep_job(), "idempotencyKey": "k1"}]).json_body["results"][0]
    again = batch(client, [{**sleep_job(), "idempotencyKey": "k1"}, sleep_job()])
    assert statuses(again) == [202, 202]
    replay = again.json_body["results"][0]
    assert replay["job"]["jobId"] == first["job"]["jobId"]
    assert (first["replayed"], replay["replayed"]) == (False, True)
    assert stack.task_count() == 2


def test_an_item_reusing_a_key_with_another_body_is_422_alone(client, stack):
    batch(client, [{**sleep_job(), "idempotencyKey": "k2"}])
    response = batch(client, [{**sleep_job(seconds=1), "idempotencyKey": "k2"}, sleep_job()])
    assert statuses(response) == [422, 202]
    assert "with a different request" in response.json_body["results"][0]["error"]["message"]
    assert stack.task_count() == 2


def test_a_key_used_on_post_jobs_replays_in_a_batch(client):
    job_id = submit(client, sleep_job(), headers={"Idempotency-Key": "k3"}).json_body["jobId"]
    result = batch(client, [{**sleep_job(), "idempotencyKey": "k3"}]).json_body["results"][0]
    assert result["job"]["jobId"] == job_id and result["replayed"] is True


def test_the_same_key_twice_in_one_batch_makes_one_job(client, stack):
    item = {**sleep_job(), "idempotencyKey": "k4"}
    results = batch(client, [item, sleep_job(), item]).json_body["results"]
    assert results[0]["job"]["jobId"] == results[2]["job"]["jobId"]
    assert [r.get("replayed") for r in results] == [False, None, True]
    assert stack.task_count() == 2


def test_the_same_job_id_twice_in_one_batch_stores_the_first_and_refuses_the_second(client, stack):
    """Two identical items, made at the same time: the second is not the first's own write."""
    item = {"type": "media/convert", "runner": "external", "jobId": "local-twice"}
    response = batch(client, [item, item])
    assert statuses(response) == [202, 409]
    assert stack.task_count() == 1


def test_keys_are_per_user(client, stack):
    item = {**sleep_job(), "idempotencyKey": "k5"}
    mine = batch(client, [item]).json_body["results"][0]
    theirs = batch(client, [item], user="bob").json_body["results"][0]
    assert mine["job"]["jobId"] != theirs["job"]["jobId"]
    assert theirs["replayed"] is False


def test_a_bad_item_key_is_422_alone(client, stack):
    response = batch(client, [{**sleep_job(), "idempotencyKey": "has space"}, sleep_job()])
    assert statuses(response) == [422, 202]
    assert "idempotencyKey must be" in response.json_body["results"][0]["error"]["message"]


# -- calls per batch -------------------------------------------------------------------------


def test_a_hundred_jobs_are_one_transaction(client, stack, transactions):
    assert statuses(batch(client, [sleep_job()] * 100)) == [202] * 100
    assert len(transactions) == 1
    assert stack.task_count() == 100


def test_a_hundred_keyed_jobs_are_two_transactions(client, stack, transactions):
    jobs = [{**sleep_job(), "idempotencyKey": f"key-{n}"} for n in range(100)]
    assert statuses(batch(client, jobs)) == [202] * 100
    assert len(transactions) == 2


def test_a_replayed_item_is_taken_out_and_the_rest_written_again(client, stack, transactions):
    batch(client, [{**sleep_job(), "idempotencyKey": "k6"}])
    transactions.clear()
    jobs = [{**sleep_job(), "idempotencyKey": "k6"}, *[sleep_job()] * 3]
    assert statuses(batch(client, jobs)) == [202] * 4
    # refused, then the rest again; the replay is read from what the refusal returned
    assert len(transactions) == 2
    assert stack.task_count() == 4


# -- bad batches: a clear 4xx, nothing stored or queued ---------------------------------------


@pytest.fixture
def refused(client, stack):
    def check(response, status: int, phrase: str) -> None:
        assert response.status_code == status, response.body
        assert phrase in response.json_body["error"]["message"]
        stack.run_stream()
        assert stack.task_count() == 0 and stack.queued_messages() == 0

    return check


def test_a_batch_over_a_hundred_jobs_is_422(client, refused):
    refused(batch(client, [sleep_job()] * 101), 422, "at most 100 jobs; got 101: split it")


def test_an_empty_batch_is_422(client, refused):
    refused(batch(client, []), 422, "non-empty array")


def test_jobs_that_are_not_an_array_is_422(client, refused):
    refused(batch(client, {"jobs": {"type": "demo/sleep"}}), 422, "non-empty array")


def test_a_body_without_jobs_is_422(client, refused):
    refused(batch(client, {"job": [sleep_job()]}), 422, '{"jobs": [<job request>, ...]}')


def test_a_batch_of_only_non_objects_stores_nothing(client, stack):
    response = batch(client, [1, "two", [3]])
    assert statuses(response) == [422, 422, 422]
    stack.run_stream()
    assert stack.task_count() == 0 and stack.queued_messages() == 0


def test_an_idempotency_key_header_on_a_batch_is_400(client, refused):
    response = batch(client, [sleep_job()], headers={"Idempotency-Key": "whole"})
    refused(response, 400, "idempotencyKey per job")


# -- webhook lookups: one time budget for the whole batch --------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slow_dns(monkeypatch):
    """Hosts under .slow.test answer a public address after 0.2 s of the batch's clock
    (fail.slow.test: no answer); the batch's lookup budget is 0.5 s of that clock, so the
    test does not depend on how fast this machine is. Returns the hosts looked up."""
    real = socket.getaddrinfo
    clock = FakeClock()
    lookups: list[str] = []

    def slow(host, port, *args, **kwargs):
        if not host.endswith(".slow.test"):
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        clock.now += 0.2
        if host == "fail.slow.test":
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", slow)
    monkeypatch.setattr(batches, "BATCH_LOOKUP_SECONDS", 0.5)
    monkeypatch.setattr(batches, "LookupBudget", lambda seconds: ssrf.LookupBudget(seconds, clock))
    return lookups


def hooked(host: str) -> dict:
    return {**sleep_job(), "webhook": {"url": f"https://{host}/hook"}}


def test_a_batch_of_slow_webhook_hosts_answers_within_its_lookup_budget(client, slow_dns):
    response = batch(client, [hooked(f"h{n}.slow.test") for n in range(40)])
    assert len(slow_dns) == 3  # lookups at 0, 0.2 and 0.4 s of 0.5: not 40 of 0.2 s
    results = response.json_body["results"]
    accepted = [r for r in results if r["status"] == 202]
    late = [r for r in results if r["status"] == 503]
    assert len(accepted) == 3 and len(late) == 37
    assert all("for webhook lookups ran out" in r["error"]["message"] for r in late)
    listed = get(client, "/jobs?limit=100").json_body["jobs"]
    assert {j["jobId"] for j in listed} == {r["job"]["jobId"] for r in accepted}


def test_a_webhook_host_named_by_many_jobs_is_looked_up_once(client, slow_dns):
    response = batch(client, [hooked("same.slow.test") for _ in range(30)])
    assert statuses(response) == [202] * 30
    assert slow_dns == ["same.slow.test"]


def test_a_webhook_host_that_does_not_resolve_is_looked_up_once(client, slow_dns):
    response = batch(client, [hooked("fail.slow.test") for _ in range(10)])
    assert statuses(response) == [422] * 10
    assert slow_dns == ["fail.slow.test"]


def test_a_single_job_is_not_held_to_a_batch_budget(client, slow_dns):
    assert submit(client, hooked("one.slow.test")).status_code == 202


def test_a_lookup_is_given_no_more_than_the_budget_left(monkeypatch):
    clock, timeouts = FakeClock(), []

    def resolve(host, port, timeout):
        timeouts.append(timeout)
        clock.now += 3
        return ["93.184.216.34"]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    budget = ssrf.LookupBudget(8, clock)
    budget("a.example", 443)
    budget("b.example", 443)
    budget("c.example", 443)
    assert timeouts == [ssrf.DNS_TIMEOUT_SECONDS, 5, 2]
    with pytest.raises(ssrf.LookupTimeSpent, match="8 s for webhook lookups ran out"):
        budget("d.example", 443)
    assert len(timeouts) == 3  # refused without a lookup


def test_a_lookup_cut_short_by_the_budget_is_time_spent_not_a_host_that_does_not_resolve(
    monkeypatch,
):
    clock = FakeClock()

    def resolve(host, port, timeout):
        clock.now += timeout
        raise OSError(f"no answer within {timeout:g} s")

    monkeypatch.setattr(ssrf, "resolve", resolve)
    budget = ssrf.LookupBudget(7, clock)
    with pytest.raises(OSError, match="within 5 s"):  # the host's own timeout
        budget("slow.example", 443)
    with pytest.raises(ssrf.LookupTimeSpent):  # 2 s left: the budget's, not the host's
        budget("other.example", 443)


def test_no_lookup_is_started_once_the_budget_is_spent_to_the_second(monkeypatch):
    clock, asked = FakeClock(), []

    def resolve(host, port, timeout):
        asked.append((host, port))
        clock.now += 3
        return ["93.184.216.34"]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    budget = ssrf.LookupBudget(6, clock)
    budget("a.example", 8443)
    budget("b.example", 443)
    with pytest.raises(ssrf.LookupTimeSpent):
        budget("c.example", 443)  # exactly 0 s left
    assert asked == [("a.example", 8443), ("b.example", 443)]
