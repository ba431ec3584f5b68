"""The emulator's DynamoDB (local/moto_dynamodb.py): keyed submits under concurrent load,
cancelled transactions, and stream readers over hours."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.errors import IdempotencyConflict
from chalicelib.model import Task
from chalicelib.service import SubmitJob
from local.moto_dynamodb import ITERATOR_LIFE_SECONDS, ExpiringIterators, patch_dynamodb
from local.stack import moto_clients

JOB = SubmitJob(type="demo/sleep", input={"seconds": 0})


@pytest.fixture
def emulated(stack, monkeypatch):
    """The stack with the emulator's DynamoDB fixes applied (undone after the test)."""
    patch_dynamodb(monkeypatch.setattr)
    return stack


@pytest.fixture
def table_copies(monkeypatch):
    """The names of the tables moto deep-copies (to roll a transaction back)."""
    from moto.dynamodb.models.table import Table

    copies = []

    def counting(self, memo):
        copies.append(self.name)
        clone = Table.__new__(Table)
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    monkeypatch.setattr(Table, "__deepcopy__", counting, raising=False)
    return copies


def test_concurrent_keyed_submits_are_all_stored_beside_a_large_table(emulated, service):
    for _ in range(300):
        service.store.create(Task.new(owner="other", type="demo/sleep", ttl_seconds=3600))

    def submit(n: int) -> str:
        task, created = service.submit(f"user-{n % 4}", JOB, idempotency_key=f"key-{n}")
        assert created
        return task.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(120)))
    assert all(service.store.get(task_id, service.clock()) for task_id in ids)
    assert emulated.task_count() == 300 + 120


def test_a_transaction_whose_conditions_hold_copies_no_table(emulated, service, table_copies):
    service.submit("alice", JOB, idempotency_key="once")
    assert table_copies == []


def test_a_cancelled_transaction_writes_nothing_and_copies_no_table(
    emulated, service, table_copies
):
    first, _ = service.submit("alice", JOB, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        service.submit("alice", SubmitJob(type="demo/sleep", input={"seconds": 1}), "k")
    assert table_copies == []
    assert emulated.task_count() == 1
    assert service.submit("alice", JOB, idempotency_key="k") == (
        service.store.get(first.id, service.clock()),
        False,
    )


def test_a_cancelled_transaction_gives_moto_s_reasons_and_the_old_item_when_asked(emulated):
    table = emulated.outputs["TasksTableName"]
    emulated.ddb.put_item(TableName=table, Item={"id": {"S": "a"}})
    condition = {"ConditionExpression": "attribute_not_exists(id)"}
    with pytest.raises(emulated.ddb.exceptions.TransactionCanceledException) as cancelled:
        emulated.ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"id": {"S": "b"}}}},
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"id": {"S": "a"}, "v": {"N": "2"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        **condition,
                    }
                },
            ]
        )
    assert cancelled.value.response["CancellationReasons"] == [
        {"Code": "None"},
        {
            "Code": "ConditionalCheckFailed",
            "Message": "The conditional request failed",
            "Item": {"id": {"S": "a"}},
        },
    ]
    assert "Item" not in emulated.ddb.get_item(TableName=table, Key={"id": {"S": "b"}})


def test_a_stream_reader_sees_the_writes_made_after_a_cancelled_transaction(emulated, service):
    streams = moto_clients()["dynamodbstreams"]
    table = emulated.outputs["TasksTableName"]
    arn = emulated.ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    service.submit("alice", JOB, idempotency_key="k")
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    with pytest.raises(IdempotencyConflict):
        service.submit("alice", SubmitJob(type="demo/sleep", input={"seconds": 1}), "k")
    later, _ = service.submit("alice", JOB)
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert later.id in json.dumps([r["dynamodb"]["Keys"] for r in records])


def test_a_shard_iterator_is_kept_for_15_minutes_after_it_is_made():
    now = [0.0]
    iterators = ExpiringIterators(clock=lambda: now[0])
    iterators["first"] = object()
    now[0] = ITERATOR_LIFE_SECONDS
    iterators["second"] = object()
    assert set(iterators) == {"first", "second"}
    now[0] = ITERATOR_LIFE_SECONDS + 1
    iterators["third"] = object()
    assert set(iterators) == {"second", "third"}


def test_the_emulator_s_stream_backends_keep_their_iterators_for_15_minutes(monkeypatch):
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    patch_dynamodb(monkeypatch.setattr)
    backend = DynamoDBStreamsBackend("eu-west-1", "123456789012")
    assert isinstance(backend.shard_iterators, ExpiringIterators)
