"""Flow control: priorities, limits per type group and per concurrency key, and rates."""

import json
from datetime import timedelta

import pytest

from chalicelib import aws
from chalicelib.bootstrap import container
from chalicelib.fairness import Slots, TokenBuckets, Waiting
from chalicelib.flow import Rate
from chalicelib.model import Status, Task, utcnow
from chalicelib.settings import ConfigurationError, get_settings
from tests.conftest import auth, reset_caches
from tests.unit.helpers import get, hold_slot, sleep_job, submit
from tests.unit.tasks import submitted_record


def service_with(monkeypatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    from chalicelib.bootstrap import container

    return container().service


def new_task(service, owner: str = "alice", minutes_ago: float = 0, **fields) -> Task:
    now = utcnow() - timedelta(minutes=minutes_ago)
    task = Task.new(
        owner=owner, type="demo/sleep", ttl_seconds=3600, input={"seconds": 0}, now=now, **fields
    )
    service.store.create(task)
    return task


def queued_ids(stack) -> list[str]:
    """The ids of the messages on the tasks queue now (each received once, then hidden)."""
    ids = []
    while True:
        found = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
        if not found.get("Messages"):
            return ids
        ids += [json.loads(m["Body"])["taskId"] for m in found["Messages"]]


def finish(service, stack, task: Task) -> None:
    """The task ends (cancelled while it ran), and the stream frees its slots."""
    service.cancel(task.owner, task.id)
    stack.run_stream()


# -- priorities ---------------------------------------------------------------------------------


@pytest.fixture
def one_at_a_time(stack, monkeypatch):
    return service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")


def test_a_high_priority_task_submitted_behind_waiting_low_ones_starts_next(one_at_a_time, stack):
    service = one_at_a_time
    running = new_task(service)
    stack.run_stream()
    low = [new_task(service, priority=1) for _ in range(50)]
    high = new_task(service, priority=9)
    stack.run_stream()
    assert queued_ids(stack) == [running.id]
    finish(service, stack, running)
    assert queued_ids(stack) == [high.id]
    assert all(service.find(t.id).status is Status.SUBMITTED for t in low)


def test_equal_priorities_start_first_in_first_out(one_at_a_time, stack):
    service = one_at_a_time
    running = new_task(service)
    stack.run_stream()
    first = new_task(service, minutes_ago=0.02)
    new_task(service)
    stack.run_stream()
    queued_ids(stack)
    finish(service, stack, running)
    assert queued_ids(stack) == [first.id]


def test_a_low_priority_task_that_waited_long_enough_goes_before_a_new_high_one(
    one_at_a_time, stack
):
    """Each priority level is worth PRIORITY_AGING_SECONDS (60) of waiting: a priority 0 task
    waiting 10 minutes is ahead of a priority 9 task (9 levels: 9 minutes) submitted now."""
    service = one_at_a_time
    running = new_task(service, minutes_ago=20)
    stack.run_stream()
    old_low = new_task(service, minutes_ago=10, priority=0)
    new_task(service, priority=9)
    stack.run_stream()
    queued_ids(stack)
    finish(service, stack, running)
    assert queued_ids(stack) == [old_low.id]


def test_a_low_priority_task_that_waited_less_than_its_levels_lets_a_high_one_pass(
    one_at_a_time, stack
):
    service = one_at_a_time
    running = new_task(service, minutes_ago=20)
    stack.run_stream()
    new_task(service, minutes_ago=5, priority=0)
    new_high = new_task(service, priority=9)
    stack.run_stream()
    queued_ids(stack)
    finish(service, stack, running)
    assert queued_ids(stack) == [new_high.id]


def test_priority_is_part_of_the_job_document_and_defaults_to_5(client):
    default = submit(client).json_body
    urgent = submit(client, {**sleep_job(), "priority": 9}).json_body
    assert default["priority"] == 5 and urgent["priority"] == 9
    assert get(client, f"/jobs/{urgent['jobId']}").json_body["priority"] == 9


@pytest.mark.parametrize("priority", [-1, 10, "9", 4.5, True])
def test_a_priority_outside_0_to_9_is_a_422_naming_the_field(client, priority):
    response = submit(client, {**sleep_job(), "priority": priority})
    assert response.status_code == 422
    assert response.json_body["error"]["errors"][0]["field"] == "body.priority"


# -- concurrency per type group ------------------------------------------------------------------


@pytest.fixture
def demo_one_at_a_time(stack, monkeypatch):
    return service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0", TYPE_CONCURRENCY="demo/*=1")


def test_a_type_limit_holds_across_owners(demo_one_at_a_time, stack):
    service = demo_one_at_a_time
    alices, bobs = new_task(service), new_task(service, owner="bob")
    stack.run_stream()
    assert queued_ids(stack) == [alices.id]
    assert service.find(bobs.id).status is Status.SUBMITTED
    finish(service, stack, alices)
    assert queued_ids(stack) == [bobs.id]


def test_a_type_limit_of_2_holds_under_30_submits_and_every_task_runs(stack, monkeypatch):
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0", TYPE_CONCURRENCY="demo/*=2")
    slots = Slots.of(service.settings)
    tasks = [new_task(service, owner=f"user-{n % 3}") for n in range(30)]
    gate = slots.gates(Waiting.of(tasks[0]))[0]
    most = 0
    for _ in range(100):
        moved = stack.run_stream() + stack.run_worker()
        most = max(most, len(slots.holders(gate)))
        if not moved:
            break
    assert most == 2
    assert all(service.find(t.id).status is Status.COMPLETED for t in tasks)


def test_types_a_limit_leaves_out_are_not_held(demo_one_at_a_time, stack):
    service = demo_one_at_a_time
    new_task(service)
    other = Task.new(owner="alice", type="image/thumbnail", ttl_seconds=3600)
    assert Slots.of(service.settings).gates(Waiting.of(other)) == []


def test_parked_tasks_are_queued_by_the_reaper_once_the_type_limit_is_removed(
    demo_one_at_a_time, stack, monkeypatch
):
    service = demo_one_at_a_time
    new_task(service)
    waiting = [new_task(service), new_task(service)]
    stack.run_stream()
    queued_ids(stack)
    unlimited = service_with(monkeypatch, TYPE_CONCURRENCY="")
    assert unlimited.admit_parked() == sorted(t.id for t in waiting)
    assert Slots.of(unlimited.settings).parked_gates() == []


@pytest.mark.parametrize(
    "raw", ["demo/*", "demo/*=0", "demo/*=x", "demo/ *=2", "=3"], ids=str.strip
)
def test_a_type_concurrency_that_cannot_be_read_stops_the_start_with_the_fix(monkeypatch, raw):
    monkeypatch.setenv("TYPE_CONCURRENCY", raw)
    reset_caches()
    with pytest.raises(ConfigurationError, match="TYPE_CONCURRENCY"):
        get_settings()


def test_a_type_takes_the_first_pattern_that_matches(monkeypatch):
    monkeypatch.setenv("TYPE_CONCURRENCY", "image/thumb*=1, image/*=5")
    reset_caches()
    slots = Slots.of(get_settings())
    thumb = Waiting("t", "image/thumbnail", "alice")
    resize = Waiting("r", "image/resize", "alice")
    assert [g.limit for g in slots.gates(thumb) if g.kind == "type"] == [1]
    assert [g.limit for g in slots.gates(resize) if g.kind == "type"] == [5]


# -- concurrency per key -------------------------------------------------------------------------


@pytest.fixture
def no_owner_limit(stack, monkeypatch):
    return service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0")


def keyed(service, key: str = "customer-42", limit: int = 1, owner: str = "alice") -> Task:
    return new_task(service, owner=owner, concurrency_key=key, concurrency_limit=limit)


def test_two_tasks_with_one_key_and_limit_1_never_run_at_once(no_owner_limit, stack):
    service = no_owner_limit
    first, second = keyed(service), keyed(service)
    other_key = keyed(service, key="customer-7")
    stack.run_stream()
    assert sorted(queued_ids(stack)) == sorted([first.id, other_key.id])
    finish(service, stack, first)
    assert queued_ids(stack) == [second.id]


def test_one_key_of_two_owners_is_two_keys(no_owner_limit, stack):
    service = no_owner_limit
    alices, bobs = keyed(service), keyed(service, owner="bob")
    stack.run_stream()
    assert sorted(queued_ids(stack)) == sorted([alices.id, bobs.id])


def test_a_key_limit_holds_when_the_worker_takes_its_slots(no_owner_limit, stack):
    """A retry's message takes the slots again at the worker: a full key makes it wait."""
    service = no_owner_limit
    running, other = keyed(service), keyed(service)
    stack.run_stream()
    queued_ids(stack)
    body = {
        "taskId": other.id,
        "type": "demo/sleep",
        "owner": "alice",
        "priorAttempts": 1,
        "concurrencyKey": "customer-42",
        "concurrencyLimit": 1,
    }
    record = {"messageId": "m", "receiptHandle": "", "body": json.dumps(body), "attributes": {}}
    assert container().worker.handle_message(record) is True
    assert service.find(other.id).status is Status.SUBMITTED
    assert service.find(running.id).status is Status.SUBMITTED  # queued, not yet run


def owner_and_type_held(stack, monkeypatch) -> tuple:
    """One slot per owner and one for demo/*: alice's holds her slot with a task of another
    type, bob's holds demo's. (service, alice's task, bob's task)"""
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1", TYPE_CONCURRENCY="demo/*=1")
    alices_other = Task.new(owner="alice", type="other/kind", ttl_seconds=3600)
    service.store.create(alices_other)
    bobs = new_task(service, owner="bob")
    stack.run_stream()
    return service, alices_other, bobs


def test_a_task_let_through_by_its_owner_but_held_by_its_type_waits_in_the_types_line(
    stack, monkeypatch
):
    service, alices_other, bobs = owner_and_type_held(stack, monkeypatch)
    parked = new_task(service)
    stack.run_stream()
    assert service.find(parked.id).waits_for == "owner limit"
    queued_ids(stack)
    finish(service, stack, alices_other)
    assert queued_ids(stack) == []
    assert service.find(parked.id).waits_for == "type limit"
    finish(service, stack, bobs)
    assert queued_ids(stack) == [parked.id]


def test_a_concurrency_key_is_shown_on_the_job_and_checked_at_submit(client):
    job = submit(client, {**sleep_job(), "concurrency": {"key": "customer-42", "limit": 2}})
    assert job.json_body["concurrency"] == {"key": "customer-42", "limit": 2}
    for bad in ({"key": "k", "limit": 0}, {"key": "", "limit": 1}, {"key": "k"}):
        response = submit(client, {**sleep_job(), "concurrency": bad})
        assert response.status_code == 422, bad
        assert response.json_body["error"]["errors"][0]["field"].startswith("body.concurrency")


# -- rates -------------------------------------------------------------------------------------


def test_a_bucket_gives_its_count_then_one_token_per_interval(stack):
    now = [1000.0]
    buckets = TokenBuckets(get_settings().records_table, lambda: now[0])
    rate = Rate(10, 60)
    assert all(buckets.take("t", rate).allowed for _ in range(10))
    refused = buckets.take("t", rate)
    assert not refused.allowed and refused.retry_after == pytest.approx(6.0)
    now[0] += 6
    assert buckets.take("t", rate).allowed
    assert not buckets.take("t", rate).allowed


@pytest.fixture
def submit_rate_2(stack, monkeypatch):
    return service_with(monkeypatch, SUBMIT_RATE="2/min")


def test_a_submit_past_the_rate_is_a_429_with_retry_after_and_nothing_it_refused_exists(
    submit_rate_2, client, stack
):
    accepted = [submit(client) for _ in range(2)]
    assert [r.status_code for r in accepted] == [202, 202]
    assert accepted[0].headers["RateLimit-Limit"] == "2"
    assert accepted[1].headers["RateLimit-Remaining"] == "0"
    refused = submit(client)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert refused.headers["RateLimit-Limit"] == "2"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert stack.task_count() == 2


def idempotency(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def test_a_replayed_idempotency_key_takes_no_token(submit_rate_2, client, stack):
    first = submit(client, headers=idempotency("k1"))
    replays = [submit(client, headers=idempotency("k1")) for _ in range(2)]
    assert [r.json_body["jobId"] for r in replays] == [first.json_body["jobId"]] * 2
    assert submit(client, headers=idempotency("k2")).status_code == 202  # the second token
    assert submit(client, headers=idempotency("k3")).status_code == 429
    assert stack.task_count() == 2


def test_a_replay_is_answered_when_the_owner_has_no_token_left(submit_rate_2, client):
    first = submit(client, headers=idempotency("k1"))
    submit(client)
    assert submit(client).status_code == 429  # the bucket is empty
    replay = submit(client, headers=idempotency("k1"))
    assert replay.status_code == first.status_code
    assert replay.json_body["jobId"] == first.json_body["jobId"]


def test_a_new_key_past_the_rate_is_still_a_429(submit_rate_2, client, stack):
    submit(client)
    submit(client)
    assert submit(client, headers=idempotency("never-used")).status_code == 429
    assert stack.task_count() == 2


def test_a_refused_submit_takes_no_token(submit_rate_2, client, stack):
    bad = submit(client, {"type": "demo/sleep", "input": {"seconds": "soon"}})
    assert bad.status_code in (400, 422), bad.json_body
    assert [submit(client).status_code for _ in range(2)] == [202, 202]
    assert stack.task_count() == 2


def test_an_auto_vid_replay_takes_no_token(submit_rate_2, client, stack):
    body = json.dumps({"type": "demo/sleep", "input": {"seconds": 0}})
    headers = {**auth("alice"), **idempotency("v1")}
    answers = [client.http.post("/submit", headers=headers, body=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert post_submit(client).status_code == 200  # the second token
    assert stack.task_count() == 2


def test_one_owners_submit_rate_leaves_another_owner_alone(submit_rate_2, client):
    for _ in range(3):
        submit(client)
    assert submit(client, user="bob").status_code == 202


def test_a_batch_past_the_submit_rate_stores_none_of_its_jobs(submit_rate_2, client, stack):
    submit(client)
    body = json.dumps({"jobs": [sleep_job(), sleep_job()]})
    from tests.conftest import auth

    response = client.http.post("/jobs/batch", headers=auth("alice"), body=body)
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    assert stack.task_count() == 1


def post_submit(client, user: str = "alice"):
    """Seed 002's submit route (auto-vid's POST /submit), with a native job request."""
    body = json.dumps({"type": "demo/sleep", "input": {"seconds": 0}})
    return client.http.post("/submit", headers=auth(user), body=body)


def test_a_flood_of_auto_vid_submits_is_a_429_in_auto_vids_error_shape_storing_nothing(
    submit_rate_2, client, stack
):
    accepted = [post_submit(client) for _ in range(2)]
    assert [r.status_code for r in accepted] == [200, 200]
    assert accepted[1].headers["RateLimit-Remaining"] == "0"
    refused = post_submit(client)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert refused.headers["RateLimit-Limit"] == "2"
    assert set(refused.json_body) == {"error", "timestamp"}  # auto-vid's error body
    assert "SUBMIT_RATE" in refused.json_body["error"]
    assert stack.task_count() == 2


def test_post_jobs_and_post_submit_take_from_one_bucket(submit_rate_2, client, stack):
    assert submit(client).status_code == 202
    assert post_submit(client).status_code == 200
    assert post_submit(client).status_code == 429
    assert submit(client).status_code == 429
    assert stack.task_count() == 2


def test_an_owner_a_batch_is_refused_for_leaves_the_other_owners_their_tokens(
    submit_rate_2, client, stack, service
):
    """A service key submits one batch for two owners: bob has no token left, so none of the
    batch is stored, and alice's tokens, taken before bob's were counted, are given back."""
    from chalicelib.edge.service_keys import ServiceKeys

    key = ServiceKeys(service.settings.records_table).create(
        "importer", ["alice", "bob"], ["jobs:write"], utcnow()
    )[1]
    for _ in range(2):
        submit(client, user="bob")
    jobs = [{**sleep_job(), "owner": owner} for owner in ("alice", "alice", "bob")]
    response = client.http.post(
        "/jobs/batch",
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        body=json.dumps({"jobs": jobs}),
    )
    assert response.status_code == 429
    assert stack.task_count() == 2
    assert [submit(client).status_code for _ in range(2)] == [202, 202]


def test_a_bad_submit_rate_stops_the_start(monkeypatch):
    monkeypatch.setenv("SUBMIT_RATE", "ten a minute")
    reset_caches()
    with pytest.raises(ConfigurationError, match="SUBMIT_RATE"):
        get_settings()


def test_a_task_past_its_types_rate_waits_and_runs_later_never_failed(stack, monkeypatch):
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0", TYPE_RATE="demo/*=1/hour")
    first, second = new_task(service), new_task(service)
    stack.run_stream()
    stack.run_worker()
    assert service.find(first.id).status is Status.COMPLETED
    assert service.find(second.id).status is Status.SUBMITTED
    assert service.find(second.id).attempts == 0
    found = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    assert found.get("Messages", []) == []  # deferred: its new message is delayed


# -- where flow control acts: the job document and the history ---------------------------------


def test_a_parked_jobs_document_says_it_waits_for_its_owners_limit(stack, monkeypatch, client):
    service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    first = submit(client).json_body["jobId"]
    second = submit(client).json_body["jobId"]
    stack.run_stream()
    assert get(client, f"/jobs/{first}").json_body["waitingFor"] is None  # queued
    assert get(client, f"/jobs/{second}").json_body["waitingFor"] == "owner limit"


def test_a_jobs_document_says_it_waits_for_its_key_limit(stack, monkeypatch, client):
    service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0")
    keyed_job = {**sleep_job(), "concurrency": {"key": "customer-42", "limit": 1}}
    submit(client, keyed_job)
    second = submit(client, keyed_job).json_body["jobId"]
    stack.run_stream()
    assert get(client, f"/jobs/{second}").json_body["waitingFor"] == "key limit"


def test_a_jobs_document_says_it_waits_for_its_types_rate(stack, monkeypatch, client):
    service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0", TYPE_RATE="demo/*=1/hour")
    submit(client)
    second = submit(client).json_body["jobId"]
    stack.run_stream()
    stack.run_worker()
    assert get(client, f"/jobs/{second}").json_body["waitingFor"] == "rate"


def test_history_records_the_wait_and_the_admission_of_a_parked_job(stack, monkeypatch, client):
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    first = submit(client).json_body["jobId"]
    second = submit(client).json_body["jobId"]
    stack.run_stream()
    service.cancel("alice", first)
    stack.run_stream()
    [entry] = get(client, f"/jobs/{second}/events").json_body["events"]
    assert [step["event"] for step in entry["flow"]] == ["parked", "admitted"]
    assert entry["flow"][0]["reason"] == "owner limit"


def flow_steps(client, job_id: str) -> list[tuple[str, str | None]]:
    """What flow control did to the job's first version, as GET /jobs/{id}/events shows it."""
    entry = get(client, f"/jobs/{job_id}/events").json_body["events"][0]
    return [(step["event"], step.get("reason")) for step in entry.get("flow", [])]


PARKED_THEN_ADMITTED = [("parked", "owner limit"), ("admitted", None)]


def test_a_job_the_stream_and_the_reaper_admit_at_once_has_one_admitted_entry(
    stack, monkeypatch, client
):
    """The stream admits the job as a slot frees; the reaper's minute reads the line while the
    stream sends the job's message, before the stream takes it out of the line."""
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    first = submit(client).json_body["jobId"]
    second = submit(client).json_body["jobId"]
    stack.run_stream()
    reaper_ran: list[list[str]] = []

    def the_reaper_runs_while_the_stream_sends(**_: object) -> None:
        if not reaper_ran:  # the stream sends its batch's messages with SendMessageBatch
            reaper_ran.append(service.admit_parked())

    events = aws.client("sqs").meta.events
    event = "before-call.sqs.SendMessageBatch"
    events.register(event, the_reaper_runs_while_the_stream_sends, unique_id="reaper-beside")
    try:
        service.cancel("alice", first)
        stack.run_stream()
    finally:
        events.unregister(event, unique_id="reaper-beside")
    assert reaper_ran == [[second]]  # the reaper did admit it too
    assert flow_steps(client, second) == PARKED_THEN_ADMITTED


def one_waiting_behind_another(stack, monkeypatch, client):
    """With a limit of 1: the first job runs, the second waits; and the stream record that
    submitted the second, to hand over again."""
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    first = submit(client).json_body["jobId"]
    second = submit(client).json_body["jobId"]
    insert = submitted_record(service, service.find(second))
    stack.run_stream()
    return service, first, second, insert


def test_a_replayed_batch_parks_a_waiting_job_once_and_admits_it_once(stack, monkeypatch, client):
    service, first, second, insert = one_waiting_behind_another(stack, monkeypatch, client)
    handler = container().stream_handler
    handler.handle_batch([insert])  # the stream hands the batch over again: still waiting
    service.cancel("alice", first)
    stack.run_stream()
    handler.handle_batch([insert])  # and again: admitted, not yet started
    assert flow_steps(client, second) == PARKED_THEN_ADMITTED


def test_a_replayed_batch_does_not_park_again_a_job_that_has_run(stack, monkeypatch, client):
    service, first, second, insert = one_waiting_behind_another(stack, monkeypatch, client)
    service.cancel("alice", first)
    stack.settle()
    assert service.find(second).status is Status.COMPLETED
    third = submit(client).json_body["jobId"]  # holds the owner's one slot
    stack.run_stream()
    container().stream_handler.handle_batch([insert])  # the old batch again, hours late
    service.cancel("alice", third)
    stack.run_stream()
    assert flow_steps(client, second) == PARKED_THEN_ADMITTED
    assert second not in queued_ids(stack)


def test_parked_tasks_are_queued_by_the_reaper_once_the_type_limit_is_raised(
    demo_one_at_a_time, stack, monkeypatch
):
    service = demo_one_at_a_time
    new_task(service)
    waiting = [new_task(service, minutes_ago=0.01 * (3 - n)) for n in range(3)]
    stack.run_stream()
    queued_ids(stack)
    raised = service_with(monkeypatch, TYPE_CONCURRENCY="demo/*=3")
    assert raised.admit_parked() == sorted(t.id for t in waiting[:2])
    assert [g.kind for g, _ in Slots.of(raised.settings).parked_gates()] == ["type"]


def test_a_job_admitted_from_the_line_no_longer_says_it_waits(stack, monkeypatch, client):
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    first = submit(client).json_body["jobId"]
    second = submit(client).json_body["jobId"]
    stack.run_stream()
    service.cancel("alice", first)
    stack.run_stream()
    job = get(client, f"/jobs/{second}").json_body
    assert (job["status"], job["waitingFor"]) == ("submitted", None)


def test_a_reason_to_wait_is_retired_by_the_tasks_next_version(stack, monkeypatch):
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="1")
    new_task(service)
    parked = new_task(service)
    stack.run_stream()
    task = service.find(parked.id)
    assert task.waits_for == "owner limit"
    cancelled = service.cancel("alice", parked.id)
    assert cancelled.waits_for is None
    assert task.replace(version=task.version + 1).waits_for is None


# -- a task under several gates takes all its slots or none (the worker, the reaper) --------


@pytest.fixture
def two_gates(stack) -> Slots:
    """One slot per owner and one for the demo/* types, on the app's records table."""
    return Slots(get_settings().records_table, 1, (("demo/*", 1),))


def test_a_task_under_two_gates_takes_a_slot_of_each(two_gates):
    task = Waiting("t-1", "demo/sleep", "alice")
    two_gates.acquire(task)
    assert [two_gates.holders(gate) for gate in two_gates.gates(task)] == [{"t-1"}, {"t-1"}]


def test_a_task_one_of_whose_gates_is_full_takes_no_slot_and_is_told_which(two_gates):
    from chalicelib.fairness import Blocked

    two_gates.acquire(Waiting("t-1", "demo/sleep", "alice"))
    bobs = Waiting("t-2", "demo/convert", "bob")
    with pytest.raises(Blocked) as blocked:
        two_gates.acquire(bobs)
    assert blocked.value.gate.kind == "type"
    assert two_gates.holders("bob") == set()  # his own gate had room: nothing taken


def test_a_task_that_holds_its_slots_takes_them_again_without_being_blocked(two_gates):
    task = Waiting("t-1", "demo/sleep", "alice")
    two_gates.acquire(task)
    two_gates.acquire(task)  # a redelivered message, or the worker after the stream
    assert two_gates.holders("alice") == {"t-1"}


def test_the_reaper_moves_a_task_its_owner_lets_through_into_the_line_of_its_full_type(
    stack, monkeypatch
):
    """admit_next, as the reaper's minute runs it: a task whose owner's slot freed but whose
    type is full waits in the type's line, its owner's line left."""
    service, alices_other, _ = owner_and_type_held(stack, monkeypatch)
    parked = new_task(service)
    stack.run_stream()
    assert service.find(parked.id).waits_for == "owner limit"
    service.cancel("alice", alices_other.id)  # its slot is freed by the reaper, not the stream
    assert service.admit_parked() == []
    slots = container().slots
    (type_gate,) = [g for g in slots.gates(Waiting.of(parked)) if g.kind == "type"]
    assert [t.task_id for t in slots.parked(type_gate, 10)] == [parked.id]
    assert slots.parked(slots.owner_gate("alice"), 10) == []
    assert service.find(parked.id).waits_for == "type limit"


def test_a_duplicate_message_of_a_running_task_under_two_gates_leaves_it_both_slots(
    stack, monkeypatch
):
    """The worker cannot tell from a transaction whether it took the slots anew, so a claim
    refused for a live lease keeps them: the running task still holds both."""
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="2", TYPE_CONCURRENCY="demo/*=2")
    task = new_task(service)
    stack.run_stream()
    service.claim(task.id, task.type, 1)  # a worker runs it under a live lease
    body = {"taskId": task.id, "type": task.type, "owner": task.owner}
    record = {"messageId": "m", "receiptHandle": "", "body": json.dumps(body), "attributes": {}}
    assert container().worker.handle_message(record) is True
    slots = container().slots
    assert [slots.holders(g) for g in slots.gates(Waiting.of(task))] == [{task.id}, {task.id}]


def test_a_type_slot_whose_release_was_lost_is_given_back_by_the_reaper(stack, monkeypatch):
    """The listed line is read back as the type's gate with the type's limit, so the reaper's
    minute checks its holders: one that has gone frees its slot for the line."""
    service = service_with(monkeypatch, MAX_RUNNING_PER_OWNER="0", TYPE_CONCURRENCY="demo/*=1")
    slots = container().slots
    (gate,) = slots.gates(Waiting("gone", "demo/sleep", "alice"))
    hold_slot(stack, gate, "gone")  # a task that ended while its release was lost
    waiting = new_task(service)
    stack.run_stream()
    assert service.find(waiting.id).waits_for == "type limit"
    assert service.admit_parked() == [waiting.id]
    assert queued_ids(stack) == [waiting.id]


def test_the_reaper_goes_on_down_the_owners_line_past_a_task_its_full_type_holds(
    stack, monkeypatch
):
    """The slot the moved task could not use goes to the next in the owner's line."""
    service, alices_other, _ = owner_and_type_held(stack, monkeypatch)
    held_by_type = new_task(service, minutes_ago=0.02)
    next_in_line = Task.new(owner="alice", type="other/kind", ttl_seconds=3600)
    service.store.create(next_in_line)
    stack.run_stream()
    queued_ids(stack)
    service.cancel("alice", alices_other.id)  # its slot is freed by the reaper, not the stream
    assert service.admit_parked() == [next_in_line.id]
    assert service.find(held_by_type.id).waits_for == "type limit"
