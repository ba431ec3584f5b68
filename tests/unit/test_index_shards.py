"""The reaper's and the sweep's sparse indexes spread over 256 key values, and are read
whole: items written before the spread (one hex digit) are still found, and a run stopped
for time starts on other shards the next minute."""

import itertools
import uuid
from datetime import timedelta

from chalicelib.model import Status, utcnow
from chalicelib.service import first_shard
from chalicelib.store import INDEX_SHARDS, READ_SHARDS, shard_of, shards_from
from tests.unit.tasks import stored_task


def test_the_deadline_and_due_indexes_have_256_key_values():
    assert len(set(INDEX_SHARDS)) == 256


def test_task_ids_spread_over_every_key_value():
    shards = {shard_of(str(uuid.uuid4())) for _ in range(5000)}
    assert shards == set(INDEX_SHARDS)


def test_a_producers_own_id_gets_one_of_the_key_values():
    assert shard_of("local-render-42") in INDEX_SHARDS


def test_a_task_indexed_before_the_spread_is_still_reaped(service, stack):
    task = stored_task(service, Status.PROCESSING)
    table = service.settings.tasks_table
    stack.ddb.update_item(
        TableName=table,
        Key={"id": {"S": task.id}},
        UpdateExpression="SET active_shard = :old",
        ExpressionAttributeValues={":old": {"S": task.id[0]}},  # one hex digit, as before
    )
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    assert task.id in [overdue.id for overdue in service.store.overdue(later)]


def test_every_shard_is_read_whatever_the_start():
    assert sorted(shards_from(123)) == sorted(READ_SHARDS)


def test_consecutive_minutes_start_far_apart():
    now = utcnow()
    starts = [first_shard(now + timedelta(minutes=n)) % len(READ_SHARDS) for n in range(3)]
    assert len(set(starts)) == 3
    assert all(abs(a - b) > 16 for a, b in itertools.pairwise(starts))


def test_the_consoles_sample_finds_overdue_tasks_on_any_shard_up_to_its_limit(service):
    tasks = [stored_task(service, Status.PROCESSING) for _ in range(12)]
    assert len({shard_of(task.id) for task in tasks}) > 1
    later = utcnow() + timedelta(seconds=service.settings.default_task_timeout_seconds + 60)
    every = {overdue.id for overdue in service.store.overdue_sample(later, 50)}
    assert every == {task.id for task in tasks}
    assert len(service.store.overdue_sample(later, 5)) == 5
    assert service.store.overdue_sample(utcnow(), 50) == []  # none past its deadline yet
