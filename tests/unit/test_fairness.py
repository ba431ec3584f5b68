"""Fair concurrency: MAX_RUNNING_PER_OWNER running tasks per owner, slots that cannot leak."""

import json
import time
from datetime import timedelta

import pytest

from chalicelib.bootstrap import container
from chalicelib.fairness import Slots, Waiting
from chalicelib.model import Status, Task, utcnow
from tests.conftest import reset_caches

LIMIT = 2


@pytest.fixture
def service(stack, container):
    return container(max_running_per_owner=LIMIT).service


@pytest.fixture
def slots(service) -> Slots:
    return Slots(service.settings.records_table, LIMIT)


def take(slots: Slots, owner: str, task_id: str) -> bool:
    """Take the owner's slot for a task, as the worker does before it claims."""
    return slots.acquire(Waiting(task_id, "demo/sleep", owner))


def new_task(service, owner: str = "alice", seconds: float = 0) -> Task:
    task = Task.new(owner=owner, type="demo/sleep", ttl_seconds=3600, input={"seconds": seconds})
    service.store.create(task)
    return task


def record(body: dict, receives: int = 1) -> dict:
    return {
        "messageId": "m",
        "receiptHandle": "",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receives)},
    }


def message_for(task: Task, **extra) -> dict:
    return record({"taskId": task.id, "type": task.type, "owner": task.owner, **extra})


def crashed_task(service, owner: str = "alice") -> Task:
    """A task a worker claimed, then died without a word (no slot involved)."""
    task = new_task(service, owner)
    service.claim(task.id, task.type, 1)
    return task


def crash_while_running(service, slots, task: Task) -> None:
    """A worker took the slot and claimed the task, then died."""
    take(slots, task.owner, task.id)
    service.claim(task.id, task.type, 1)


def deferred_bodies(stack) -> list[dict]:
    """The delayed messages of tasks waiting for a slot (they are visible after ~1 s)."""
    time.sleep(1.4)
    found = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in found.get("Messages", [])]
    return [body for body in bodies if "deferrals" in body]


def test_a_task_over_the_limit_waits_and_stays_submitted(service, slots):
    first, second = new_task(service), new_task(service)
    crash_while_running(service, slots, first)
    crash_while_running(service, slots, second)
    third = new_task(service)
    assert container().worker.handle_message(message_for(third)) is True
    assert service.find(third.id).status is Status.SUBMITTED
    assert slots.holders("alice") == {first.id, second.id}


def test_waiting_is_a_new_message_that_burns_no_attempt(service, slots, stack):
    for _ in range(LIMIT):
        crash_while_running(service, slots, new_task(service))
    waiting = new_task(service)
    container().worker.handle_message(message_for(waiting, priorAttempts=1))
    [body] = deferred_bodies(stack)
    # no delivery counted against the dead-letter queue, the attempts already made carried on
    assert body == {
        "taskId": waiting.id,
        "type": "demo/sleep",
        "owner": "alice",
        "priorAttempts": 1,
        "deferrals": 1,
    }


def test_a_task_that_waited_runs_when_a_slot_frees_as_its_first_attempt(service, slots, stack):
    running = new_task(service)
    crash_while_running(service, slots, running)
    crash_while_running(service, slots, new_task(service))
    waiting = new_task(service)
    container().worker.handle_message(message_for(waiting))
    service.cancel("alice", running.id)
    stack.run_stream()  # the cancel leaves a running status: its slot is given back
    [body] = deferred_bodies(stack)
    assert container().worker.handle_message(record(body)) is True
    task = service.find(waiting.id)
    assert task.status is Status.COMPLETED and task.attempts == 1


def test_another_owner_is_not_held_by_a_full_owner(service, slots):
    for _ in range(LIMIT):
        crash_while_running(service, slots, new_task(service))
    bobs = new_task(service, owner="bob")
    container().worker.handle_message(message_for(bobs))
    assert service.find(bobs.id).status is Status.COMPLETED


def test_a_finished_task_gives_its_slot_back_through_the_stream(service, slots, stack):
    task = new_task(service)
    stack.run_stream()
    stack.run_worker()
    assert slots.holders("alice") == {task.id}  # until the stream sees it finish
    stack.run_stream()
    assert slots.holders("alice") == set()


def test_a_retrying_task_gives_its_slot_back(service, slots, stack):
    task = new_task(service)
    take(slots, "alice", task.id)
    claimed = service.claim(task.id, task.type, 1)
    service.transition(claimed, Status.RETRYING, by="worker", error="transient")
    stack.run_stream()
    assert slots.holders("alice") == set()


def test_a_duplicate_message_of_a_running_task_keeps_its_slot(service, slots):
    task = new_task(service)
    crash_while_running(service, slots, task)  # its lease is live: the duplicate cannot claim
    assert container().worker.handle_message(message_for(task)) is True
    assert slots.holders("alice") == {task.id}


def test_a_message_for_a_finished_task_gives_back_the_slot_it_took(service, slots):
    task = new_task(service)
    service.cancel("alice", task.id)
    container().worker.handle_message(message_for(task))
    assert slots.holders("alice") == set()


def test_a_crashed_workers_slots_are_freed_by_the_reaper(service, slots, stack):
    from chalicelib.fairness import Blocked

    crashed = [new_task(service), new_task(service)]
    for task in crashed:
        crash_while_running(service, slots, task)
    stack.run_stream()
    with pytest.raises(Blocked):
        take(slots, "alice", "another")
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert sorted(service.reap()) == sorted(t.id for t in crashed)
    stack.run_stream()
    assert slots.holders("alice") == set()
    service.clock = utcnow
    task = new_task(service)
    container().worker.handle_message(message_for(task))
    assert service.find(task.id).status is Status.COMPLETED


def test_slots_never_exceed_the_limit(slots):
    from chalicelib.fairness import Blocked

    taken = [take(slots, "carol", f"task-{n}") for n in range(LIMIT)]
    with pytest.raises(Blocked):
        take(slots, "carol", "task-over")
    assert taken == [True, True]
    assert take(slots, "carol", "task-0") is False  # held already: no second slot
    assert slots.holders("carol") == {"task-0", "task-1"}


def test_owners_slots_are_apart_whatever_their_names(slots):
    take(slots, "a#b", "t1")
    take(slots, "a#b", "t2")
    assert take(slots, "a", "t3") is True


def test_the_reaper_leaves_a_task_waiting_for_a_slot(service, slots, stack):
    for _ in range(LIMIT):
        crash_while_running(service, slots, new_task(service))
    waiting = new_task(service)
    stack.run_stream()  # it is parked until a slot frees
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert waiting.id not in service.reap()
    assert service.find(waiting.id).status is Status.SUBMITTED


def test_the_reaper_queues_a_lost_submitted_task_of_an_owner_with_free_slots(service, slots, stack):
    lost = new_task(service)
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert service.reap() == []
    assert queued_ids(stack) == [lost.id]


# -- admission: a backlog waits in the table, not in the queue --------------------------------


def queued_ids(stack) -> list[str]:
    found = stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["taskId"] for m in found.get("Messages", [])]


def test_a_full_owners_new_tasks_wait_off_the_queue(service, stack):
    tasks = [new_task(service) for _ in range(LIMIT + 3)]
    stack.run_stream()
    assert stack.queued_messages() == LIMIT
    assert sorted(queued_ids(stack)) == sorted(t.id for t in tasks[:LIMIT])


def test_a_slot_freed_beside_a_batch_that_parks_goes_to_the_parked_task(
    service, stack, monkeypatch
):
    """The container's one stream handler may run two batches at once (`make dev` replays
    stream failures beside the stream; Lambda runs ten batches of a shard at once). A batch
    that frees a slot while another parks a task behind it may read the line before the park
    is written: the batch that parks reads the gate again at its end and queues the task."""
    from chalicelib.bootstrap import container

    handler = container().stream_handler
    tasks = [new_task(service) for _ in range(LIMIT + 1)]  # the last one parks
    list_gate = handler.slots.list_gate

    def another_batch_frees_a_slot_meanwhile(gate):
        list_gate(gate)
        assert handler.handle_batch([]) == {"batchItemFailures": []}
        handler.slots.release_gate(gate, tasks[0].id)

    monkeypatch.setattr(handler.slots, "list_gate", another_batch_frees_a_slot_meanwhile)
    stack.run_stream()
    assert tasks[-1].id in queued_ids(stack)


def test_another_owners_task_is_queued_at_once_behind_any_backlog(service, stack):
    for _ in range(30):
        new_task(service)
    bobs = new_task(service, owner="bob")
    stack.run_stream()
    assert stack.queued_messages() == LIMIT + 1
    assert bobs.id in queued_ids(stack)


def test_a_parked_task_is_queued_when_a_slot_frees(service, stack):
    first, _, parked = new_task(service), new_task(service), new_task(service)
    stack.run_stream()
    service.cancel("alice", first.id)
    stack.run_stream()
    assert parked.id in queued_ids(stack)


def test_a_parked_task_whose_admission_is_throttled_is_queued_once_sqs_recovers(
    service, stack, slots
):
    from tests.unit.aws_faults import sqs_refuses_messages

    first, _, parked = new_task(service), new_task(service), new_task(service)
    stack.run_stream()
    service.cancel("alice", first.id)
    with sqs_refuses_messages(lambda body: parked.id in body, "InternalError", sender_fault=False):
        assert stack.run_stream() == 0  # handed back: the batch comes again
    assert parked.id not in queued_ids(stack)
    assert parked.id not in slots.holders("alice")  # no slot held by a task not queued
    stack.run_stream()
    assert parked.id in queued_ids(stack)
    assert service.find(parked.id).status is Status.SUBMITTED


def test_a_backlog_runs_to_the_end_limit_by_limit(service, stack, slots):
    tasks = [new_task(service) for _ in range(LIMIT * 3 + 1)]
    stack.settle()
    assert {service.find(t.id).status for t in tasks} == {Status.COMPLETED}
    assert slots.holders("alice") == set()


def test_a_cancelled_parked_task_is_never_queued(service, stack, slots):
    first, _, parked = new_task(service), new_task(service), new_task(service)
    stack.run_stream()
    service.cancel("alice", parked.id)
    service.cancel("alice", first.id)
    stack.run_stream()
    assert parked.id not in queued_ids(stack)
    assert parked.id not in slots.holders("alice")


# -- the reaper: a backlog of waiting tasks costs it little, and lost releases are repaired -----


def reaper_reads(service) -> list[str]:
    """The task GetItems the reaper makes from here on."""
    from chalicelib import aws

    made: list[str] = []

    def note(params, **_):
        if "id" in params.get("Key", {}):
            made.append(params["Key"]["id"]["S"])

    aws.client("dynamodb").meta.events.register("provide-client-params.dynamodb.GetItem", note)
    return made


def hold_every_slot(service, slots, until) -> list[Task]:
    """LIMIT running tasks that are alive (their deadlines far away)."""
    holders = [new_task(service) for _ in range(LIMIT)]
    for task in holders:
        crash_while_running(service, slots, task)
        service.store.postpone_deadline(service.find(task.id), until)
    return holders


def test_a_waiting_backlog_is_read_once_per_timeout_not_every_minute(service, slots, stack):
    """The attack: one owner parks thousands of tasks so that every reaper run reads them all."""
    timeout = service.settings.default_task_timeout_seconds
    later = utcnow() + timedelta(seconds=timeout + 60)
    hold_every_slot(service, slots, later + timedelta(days=1))
    waiting = [new_task(service) for _ in range(5)]
    stack.run_stream()  # the backlog is parked
    service.clock = lambda: later
    assert service.reap() == []
    reads = reaper_reads(service)
    service.clock = lambda: later + timedelta(minutes=1)
    assert service.reap() == []
    assert not set(reads) & {t.id for t in waiting}
    assert all(service.find(t.id).status is Status.SUBMITTED for t in waiting)


def test_another_owners_lost_task_is_reaped_behind_a_waiting_backlog(service, slots, stack):
    timeout = service.settings.default_task_timeout_seconds
    later = utcnow() + timedelta(seconds=timeout + 60)
    hold_every_slot(service, slots, later + timedelta(days=1))
    for _ in range(5):
        new_task(service)
    stack.run_stream()
    lost = crashed_task(service, owner="bob")
    service.clock = lambda: later
    assert service.reap() == [lost.id]


def test_the_reaper_stops_when_its_time_is_up_and_changes_nothing(service):
    lost = crashed_task(service)
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert service.reap(time_left=lambda: 1.0) == []
    assert service.find(lost.id).status is Status.STARTED
    assert service.reap() == [lost.id]


def test_a_slot_whose_release_was_lost_is_given_back_by_the_reaper(service, slots, stack):
    """The stream record that frees a slot can be lost for good; the owner is not stuck."""
    ended = [new_task(service) for _ in range(LIMIT)]
    for task in ended:
        crash_while_running(service, slots, task)
    waiting = new_task(service)
    stack.run_stream()  # `waiting` is parked
    for task in ended:  # they finish, and the stream never sees it
        service.transition(service.find(task.id), Status.COMPLETED, by="worker")
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    service.clock = lambda: later
    assert waiting.id not in service.reap()
    assert slots.holders("alice") == {waiting.id}
    assert waiting.id in queued_ids(stack)
    assert service.find(waiting.id).status is Status.SUBMITTED


# -- delayed runs: a due run over the limit waits in the line, not in the shared queue ---------


def due_delayed_run(service, owner: str = "alice") -> Task:
    """A delayed run (a short delay: its message is queued with it) whose time has come."""
    created = utcnow() - timedelta(seconds=5)
    task = Task.new(
        owner=owner,
        type="demo/sleep",
        ttl_seconds=3600,
        input={"seconds": 0},
        now=created,
        run_at=created + timedelta(seconds=2),
    )
    service.store.create(task)
    return task


def parked_ids(service, owner: str = "alice") -> list[str]:
    from chalicelib import aws
    from chalicelib.store import owner_scoped

    found = aws.client("dynamodb").query(
        TableName=service.settings.records_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "waiting#" + owner_scoped(owner)}},
    )
    return [item["task_id"]["S"] for item in found["Items"]]


def test_due_delayed_runs_over_the_limit_are_parked_not_bounced_through_the_queue(
    service, slots, stack
):
    """The attack: an owner at the limit schedules many short delayed runs; each one's message,
    when due, must not keep coming back to the shared workers (others' tasks wait behind)."""
    for _ in range(LIMIT):
        crash_while_running(service, slots, new_task(service))
    runs = [due_delayed_run(service) for _ in range(3)]
    stack.run_stream()  # the runs' own delayed messages are queued with the runs
    for run in runs:
        assert container().worker.handle_message(message_for(run)) is True
    assert deferred_bodies(stack) == []
    stack.run_stream()
    assert sorted(parked_ids(service)) == sorted(r.id for r in runs)
    assert {service.find(r.id).status for r in runs} == {Status.SUBMITTED}


def test_a_parked_delayed_run_runs_when_a_slot_frees(service, slots, stack):
    holders = [new_task(service) for _ in range(LIMIT)]
    for task in holders:
        crash_while_running(service, slots, task)
    run = due_delayed_run(service)
    stack.run_stream()
    container().worker.handle_message(message_for(run))
    stack.run_stream()  # parked
    service.cancel("alice", holders[0].id)
    stack.settle()
    task = service.find(run.id)
    assert task.status is Status.COMPLETED and task.attempts == 1


def test_a_retrys_message_over_the_limit_still_waits_by_deferral(service, slots, stack):
    for _ in range(LIMIT):
        crash_while_running(service, slots, new_task(service))
    retried = new_task(service)
    container().worker.handle_message(message_for(retried, priorAttempts=1))
    assert [body["taskId"] for body in deferred_bodies(stack)] == [retried.id]
    assert parked_ids(service) == []


# -- fair by default -----------------------------------------------------------------------------


@pytest.fixture
def default_service(stack, monkeypatch):
    """The service as deployed with no MAX_RUNNING_PER_OWNER set."""
    monkeypatch.delenv("MAX_RUNNING_PER_OWNER", raising=False)
    reset_caches()
    from chalicelib.bootstrap import container

    return container().service


def test_one_owners_backlog_leaves_room_for_others_with_nothing_configured(default_service, stack):
    """The attack: one owner submits far more tasks than there are workers."""
    from chalicelib.settings import DEFAULT_MAX_RUNNING_PER_OWNER

    for _ in range(DEFAULT_MAX_RUNNING_PER_OWNER + 5):
        new_task(default_service)
    stack.run_stream()
    assert stack.queued_messages() == DEFAULT_MAX_RUNNING_PER_OWNER
    assert 0 < DEFAULT_MAX_RUNNING_PER_OWNER < 4  # below `make dev`'s 4 workers


@pytest.mark.parametrize(("raw", "limit"), [("0", 0), ("7", 7), ("", None)])
def test_max_running_per_owner_reads_a_number_zero_turns_it_off(monkeypatch, raw, limit):
    from chalicelib.settings import DEFAULT_MAX_RUNNING_PER_OWNER, get_settings

    monkeypatch.setenv("MAX_RUNNING_PER_OWNER", raw)
    reset_caches()
    expected = DEFAULT_MAX_RUNNING_PER_OWNER if limit is None else limit
    assert get_settings().max_running_per_owner == expected


def test_a_max_running_per_owner_that_is_not_a_number_is_refused_with_what_to_set(monkeypatch):
    from chalicelib.settings import ConfigurationError, get_settings

    monkeypatch.setenv("MAX_RUNNING_PER_OWNER", "two")
    reset_caches()
    with pytest.raises(ConfigurationError, match="MAX_RUNNING_PER_OWNER must be a whole number"):
        get_settings()


# -- a limit changed on a running stage: parked work goes as soon as the limit allows -------------


def with_limit(container, limit: int):
    """The service after the operator set MAX_RUNNING_PER_OWNER to `limit` (new containers)."""
    return container(max_running_per_owner=limit).service


def park_behind_running(service, slots, stack, parked: int) -> list[Task]:
    """LIMIT running tasks that live on, and `parked` tasks of the same owner in the line."""
    for task in [new_task(service) for _ in range(LIMIT)]:
        crash_while_running(service, slots, task)
    waiting = [new_task(service) for _ in range(parked)]
    stack.run_stream()
    assert sorted(parked_ids(service)) == sorted(t.id for t in waiting)
    return waiting


def test_parked_tasks_are_queued_by_the_reaper_once_the_limit_is_removed(
    service, slots, stack, container
):
    waiting = park_behind_running(service, slots, stack, 3)
    unlimited = with_limit(container, 0)
    assert unlimited.admit_parked() == sorted(t.id for t in waiting)
    assert {t.id for t in waiting} <= set(queued_ids(stack))
    assert parked_ids(unlimited) == []


def test_parked_tasks_are_queued_by_the_reaper_once_the_limit_is_raised(
    service, slots, stack, container
):
    waiting = park_behind_running(service, slots, stack, 3)
    raised = with_limit(container, LIMIT + 2)
    assert raised.admit_parked() == sorted(t.id for t in waiting[:2])
    assert parked_ids(raised) == [waiting[2].id]


def test_parked_tasks_past_their_deadline_are_queued_not_failed_once_the_limit_is_removed(
    service, slots, stack, container
):
    """They waited longer than their timeout for a slot; with the limit gone they run."""
    waiting = park_behind_running(service, slots, stack, 2)
    unlimited = with_limit(container, 0)
    later = utcnow() + timedelta(seconds=unlimited.settings.default_task_timeout_seconds + 60)
    unlimited.clock = lambda: later
    admitted = unlimited.admit_parked()
    assert not set(unlimited.reap(admitted=admitted)) & {t.id for t in waiting}
    assert {unlimited.find(t.id).status for t in waiting} == {Status.SUBMITTED}


def test_an_owner_whose_line_emptied_is_no_longer_looked_at(service, slots, stack, container):
    park_behind_running(service, slots, stack, 1)
    unlimited = with_limit(container, 0)
    unlimited.admit_parked()
    assert slots.parked_gates() == []


def test_an_owner_who_parked_again_meanwhile_stays_listed(service, slots, stack):
    park_behind_running(service, slots, stack, 1)
    [(gate, parks)] = slots.parked_gates()
    new_task(service)
    stack.run_stream()  # parks once more: the listing count moves on
    for task_id in parked_ids(service):
        slots.forget(Waiting.of(service.find(task_id)))
    assert slots.unlist_if_idle(gate, parks) is False
    assert [g for g, _ in slots.parked_gates()] == [slots.owner_gate("alice")]
