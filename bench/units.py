"""DynamoDB write units per task, by table and by index, from what the tasks really wrote.

The tasks table's stream carries every change's old and new image (NEW_AND_OLD_IMAGES), so
the units each change cost are computed from them with DynamoDB's published rules rather
than counted by hand:
- the table: one unit per started KB of the larger of the item before and after the write
  (a delete: the item removed);
- each global secondary index, from its key schema and projection: an item that enters the
  index is a put of its projection, one that leaves it a delete; one whose index key changes
  is both (two writes); one whose projected attributes change is an update; a write that
  touches none of them costs the index nothing. Each write: one unit per started KB of the
  projected entry.
Item size is DynamoDB's: attribute names and values in UTF-8, numbers at one byte per two
significant digits plus one, three bytes plus one per element for lists and maps.

What the stream cannot show is not counted: a conditional write that was refused (it costs
a unit and changes nothing) and a write that left the item as it was (no stream record).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

KB = 1024
Item = Mapping[str, Mapping[str, Any]]


def _number_size(text: str) -> int:
    digits = str(Decimal(text)).lstrip("-").replace(".", "").split("E")[0].strip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (without its name)."""
    kind, data = next(iter(value.items()))
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Item) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int) -> int:
    """Write units of one write of an item (or index entry) of `size` bytes."""
    return max(1, math.ceil(size / KB))


class IndexShape:
    """One global secondary index: its key attributes and what it projects."""

    def __init__(self, description: Mapping[str, Any], table_keys: tuple[str, ...]) -> None:
        self.name: str = description["IndexName"]
        self.keys = tuple(k["AttributeName"] for k in description["KeySchema"])
        projection = description["Projection"]
        self.projects_all = projection["ProjectionType"] == "ALL"
        self.projected = set(self.keys) | set(table_keys)
        self.projected |= set(projection.get("NonKeyAttributes", []))

    def entry(self, item: Item | None) -> dict[str, Any] | None:
        """The item's entry in the index; None when the item is not in it (sparse)."""
        if item is None or any(key not in item for key in self.keys):
            return None
        if self.projects_all:
            return dict(item)
        return {name: value for name, value in item.items() if name in self.projected}

    def write_units(self, old: Item | None, new: Item | None) -> int:
        before, after = self.entry(old), self.entry(new)
        if before is None and after is None:
            return 0
        if before is None:
            return units(item_size(after or {}))
        if after is None:
            return units(item_size(before))
        if any(before[key] != after[key] for key in self.keys):
            return units(item_size(before)) + units(item_size(after))  # delete, then put
        if before == after:
            return 0
        return units(max(item_size(before), item_size(after)))


class TableShape:
    """A table's indexes, from DescribeTable's answer."""

    def __init__(self, description: Mapping[str, Any]) -> None:
        self.name: str = description["TableName"]
        table_keys = tuple(k["AttributeName"] for k in description["KeySchema"])
        self.indexes = [
            IndexShape(index, table_keys) for index in description.get("GlobalSecondaryIndexes", [])
        ]

    def names(self) -> list[str]:
        """The table's name and each index's, as write_units names them."""
        return [self.name] + [f"{self.name}.{index.name}" for index in self.indexes]

    def write_units(self, old: Item | None, new: Item | None) -> Counter[str]:
        """The units one change cost: the table's and each index's (by name)."""
        cost: Counter[str] = Counter()
        cost[self.name] = units(max(item_size(old or {}), item_size(new or {})))
        for index in self.indexes:
            cost[f"{self.name}.{index.name}"] += index.write_units(old, new)
        return cost


def stream_changes(streams: Any, stream_arn: str) -> Iterable[dict[str, Any]]:
    """Every record a stream holds, oldest first (each shard read from its horizon)."""
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            yield from answer["Records"]
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")


def task_write_units(
    shape: TableShape, records: Iterable[Mapping[str, Any]], task_ids: set[str]
) -> Counter[str]:
    """The units the changes of these tasks cost, summed by table and index."""
    total: Counter[str] = Counter()
    for record in records:
        change = record["dynamodb"]
        if change["Keys"].get("id", {}).get("S") not in task_ids:
            continue
        total += shape.write_units(change.get("OldImage"), change.get("NewImage"))
    return total
