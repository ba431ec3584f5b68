"""make bench: what a DynamoDB Query costs `make dev`'s emulator as its table grows, with
moto's Query as it is and with the emulator's (local/moto_query.py, partition only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.bench import row

PARTITIONS = 16  # as the reaper's and the console's shards
QUERIES = 40


def query_cost(sizes: tuple[int, ...] = (500, 4000)) -> None:
    from moto import mock_aws

    print("\nEmulator (make dev): one Query, per table size (moto's / partition only)")
    for size in sizes:
        with mock_aws():
            client = filled_table(size)
            for label, query in (
                ("table partition", by_table),
                (f"index, 1 of {PARTITIONS}", by_index),
            ):
                whole = per_query(client, query)
                with partition_only():
                    query(client, 0)  # the index's partitions are filed at its first Query
                    own = per_query(client, query)
                row(
                    f"{size:,} items, {label}",
                    f"{whole * 1000:.2f} ms / {own * 1000:.2f} ms ({whole / own:.1f}x)",
                )


@contextmanager
def partition_only() -> Iterator[None]:
    """The emulator's Query patch for the block, then moto as it was."""
    from local.moto_query import patch_query

    undo: list[tuple[Any, str, Any]] = []

    def set_attribute(owner: Any, name: str, value: Any) -> None:
        undo.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, value)

    patch_query(set_attribute)
    try:
        yield
    finally:
        for owner, name, value in reversed(undo):
            setattr(owner, name, value)


def filled_table(size: int) -> Any:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="bench",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "shard", "AttributeType": "N"},
            {"AttributeName": "at", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_shard",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(size):
        client.put_item(
            TableName="bench",
            Item={
                "id": {"S": f"task-{n}"},
                "shard": {"N": str(n % PARTITIONS)},
                "at": {"S": f"{n:08d}"},
            },
        )
    return client


def by_table(client: Any, n: int) -> Any:
    return client.query(
        TableName="bench",
        KeyConditionExpression="id = :id",
        ExpressionAttributeValues={":id": {"S": f"task-{n}"}},
    )


def by_index(client: Any, n: int) -> Any:
    return client.query(
        TableName="bench",
        IndexName="by_shard",
        KeyConditionExpression="shard = :s",
        ExpressionAttributeValues={":s": {"N": str(n % PARTITIONS)}},
        Limit=10,
    )


def per_query(client: Any, query: Callable[[Any, int], Any]) -> float:
    started = time.perf_counter()
    for n in range(QUERIES):
        query(client, n)
    return (time.perf_counter() - started) / QUERIES
