"""The DynamoDB repository: guarded writes, races, TTL and index queries."""

from datetime import timedelta

import pytest

from chalicelib.errors import TaskNotFound, TransitionRefused
from chalicelib.model import Status, Task, utcnow


def new_task(service, owner="alice", type="demo/sleep", **kwargs) -> Task:
    task = Task.new(owner=owner, type=type, ttl_seconds=3600, **kwargs)
    service.store.create(task)
    return task


def test_a_saved_transition_bumps_the_version(service):
    task = new_task(service)
    started = service.transition(task, Status.STARTED, by="worker")
    assert started.version == 2
    assert service.find(task.id).status is Status.STARTED


def test_a_transition_the_table_forbids_is_refused(service):
    task = new_task(service)
    with pytest.raises(TransitionRefused, match="submitted to completed"):
        service.transition(task, Status.COMPLETED, by="worker")
    assert service.find(task.id).status is Status.SUBMITTED


def test_two_writers_racing_on_one_version_cannot_both_win(service):
    # Both writers read version 1; the interleaving is explicit because moto's in-process
    # DynamoDB does not make conditional writes atomic across threads (DynamoDB does).
    task = new_task(service)
    service.transition(task, Status.STARTED, by="worker")
    with pytest.raises(TransitionRefused):
        service.transition(task, Status.CANCELLED, by="worker")
    stored = service.find(task.id)
    assert (stored.status, stored.version) == (Status.STARTED, 2)


def test_two_writers_on_the_same_status_with_different_versions_cannot_both_win(service):
    # Both read `processing` at version 3; the first progress report makes it version 4,
    # still `processing`: only the version tells the second writer's read is stale.
    task = new_task(service)
    running = service.report_progress(
        service.transition(task, Status.STARTED, by="worker"), 1, 4, "one"
    )
    assert (running.status, running.version) == (Status.PROCESSING, 3)
    service.report_progress(running, 2, 4, "first writer")
    with pytest.raises(TransitionRefused):
        service.report_progress(running, 3, 4, "second writer, stale")
    stored = service.find(task.id)
    assert (stored.version, stored.progress.message) == (4, "first writer")


def test_a_stale_writer_cannot_overwrite_a_terminal_status(service):
    task = new_task(service)
    running = service.transition(task, Status.STARTED, by="worker")
    service.cancel("alice", task.id)
    with pytest.raises(TransitionRefused):
        service.transition(running, Status.COMPLETED, by="worker", result={"late": True})
    assert service.find(task.id).status is Status.CANCELLED


def test_an_expired_task_reads_as_absent(service):
    task = Task.new(
        owner="alice", type="demo/sleep", ttl_seconds=3600, now=utcnow() - timedelta(hours=2)
    )
    service.store.create(task)
    assert service.find(task.id) is None


def test_an_expired_task_cannot_be_cancelled(service):
    task = Task.new(
        owner="alice", type="demo/sleep", ttl_seconds=3600, now=utcnow() - timedelta(hours=2)
    )
    service.store.create(task)
    with pytest.raises(TaskNotFound):
        service.cancel("alice", task.id)


def test_cancel_by_another_owner_is_not_found(service):
    task = new_task(service, owner="alice")
    with pytest.raises(TaskNotFound):
        service.cancel("bob", task.id)
    assert service.find(task.id).status is Status.SUBMITTED


def test_listing_is_newest_first_and_per_owner(service):
    base = utcnow()
    ids = []
    for minutes in range(3):
        task = Task.new(
            owner="alice",
            type="demo/sleep",
            ttl_seconds=3600,
            now=base + timedelta(minutes=minutes),
        )
        service.store.create(task)
        ids.append(task.id)
    new_task(service, owner="bob")
    page = service.list_owned("alice", limit=10)
    assert [t.id for t in page.tasks] == list(reversed(ids))


def test_listing_by_type_uses_only_that_type(service):
    new_task(service, type="demo/sleep")
    watermark = new_task(service, type="image/watermark")
    page = service.list_owned("alice", limit=10, type="image/watermark")
    assert [t.id for t in page.tasks] == [watermark.id]


def test_a_listing_by_type_pages_on_past_the_owners_other_types(service):
    wanted = []
    for _ in range(3):
        wanted.append(new_task(service, type="image/watermark").id)
        for _ in range(4):
            new_task(service, type="demo/sleep")
    first = service.list_owned("alice", limit=2, type="image/watermark")
    rest = service.list_owned("alice", limit=2, type="image/watermark", after=first.last_key)
    assert [t.id for t in first.tasks + rest.tasks] == list(reversed(wanted))


def oldest_first(service, types: str) -> list[Task]:
    """Tasks of alice made one after another: "w" a watermark, "s" a sleep."""
    kinds = {"w": "image/watermark", "s": "demo/sleep"}
    return [new_task(service, type=kinds[kind]) for kind in types]


def test_a_filtered_page_filled_by_its_second_query_holds_its_limit_and_goes_on_from_its_last(
    service,
):
    made = oldest_first(service, "wwwwwsw")  # newest first: w s w w w w w
    watermarks = [t.id for t in reversed(made) if t.type == "image/watermark"]
    first = service.store.query_owned("alice", utcnow(), limit=3, type="image/watermark")
    rest = service.store.query_owned(
        "alice", utcnow(), limit=3, type="image/watermark", after=first.last_key
    )
    assert [t.id for t in first.tasks] == watermarks[:3]
    assert [t.id for t in rest.tasks] == watermarks[3:]


def test_the_page_that_takes_the_last_matching_tasks_has_nowhere_to_go_on_from(service):
    oldest_first(service, "wsw")  # newest first: w s w; the second Query finds the last one
    page = service.store.query_owned("alice", utcnow(), limit=2, type="image/watermark")
    assert len(page.tasks) == 2
    assert page.last_key is None


def test_a_listing_oldest_first_lists_in_creation_order(service):
    made = oldest_first(service, "sss")
    page = service.store.query_owned("alice", utcnow(), limit=10, order="oldest")
    assert [t.id for t in page.tasks] == [t.id for t in made]


def test_a_listing_by_type_and_status_applies_both(service):
    sleeping = new_task(service, type="demo/sleep")
    service.transition(sleeping, Status.STARTED, by="worker")
    watermark = new_task(service, type="image/watermark")
    service.transition(watermark, Status.STARTED, by="worker")
    new_task(service, type="image/watermark")
    page = service.list_owned("alice", limit=10, type="image/watermark", status=Status.STARTED)
    assert [t.id for t in page.tasks] == [watermark.id]


def test_a_claim_holds_a_lease_that_a_second_claim_respects(service):
    task = new_task(service)
    claimed = service.claim(task.id, task.type, attempt=1)
    assert claimed.status is Status.STARTED and claimed.lease_until
    with pytest.raises(TransitionRefused):
        service.claim(task.id, task.type, attempt=2)


def test_a_claim_after_the_lease_expired_takes_the_task_over(service):
    task = new_task(service)
    service.claim(task.id, task.type, attempt=1)
    later = utcnow() + timedelta(seconds=service.settings.worker_lease_seconds + 1)
    service.clock = lambda: later
    reclaimed = service.claim(task.id, task.type, attempt=2)
    assert (reclaimed.status, reclaimed.attempts, reclaimed.version) == (Status.STARTED, 2, 3)


def test_a_terminal_task_cannot_be_claimed(service):
    task = new_task(service)
    service.cancel("alice", task.id)
    with pytest.raises(TransitionRefused):
        service.claim(task.id, task.type, attempt=1)


def test_json_fields_survive_the_round_trip(service):
    task = new_task(service, input={"seconds": 0.5}, metadata={"nested": {"a": [1, 2.5, "", None]}})
    stored = service.find(task.id)
    assert stored.metadata == {"nested": {"a": [1, 2.5, "", None]}}
    assert stored.input == {"seconds": 0.5}


def test_a_cancelled_task_leaves_the_reapers_index_and_records_when(service):
    task = new_task(service)
    running = service.transition(task, Status.STARTED, by="worker")
    later = utcnow() + timedelta(seconds=5)
    cancelled = service.store.cancel(task.id, "alice", later)
    assert cancelled.status is Status.CANCELLED and cancelled.version == running.version + 1
    assert cancelled.updated_at == cancelled.completed_at
    assert cancelled.updated_at > running.updated_at
    far_future = utcnow() + timedelta(days=3)
    assert task.id not in [overdue.id for overdue in service.store.overdue(far_future)]
    assert cancelled.lease_until is None
