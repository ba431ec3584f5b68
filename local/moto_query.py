"""The emulator's DynamoDB Query reads only the partition it names (`make dev`).

moto answers every Query by going through every item of the table (`Table.all_items()`),
for the table's own partition key and for an index's alike, and keeps those whose key
matches: each Query costs time in proportion to the whole table, and the service's
readers (the reaper's and the sweep's shards, the lists, a task's history) query all the
time. Under `make load` the emulator spent its time there, and the service's pace fell
as the tables grew (1.7 tasks/s with 600 tasks, 0.6 with 2,000).

`patch_query()` hands moto's Query only the items of the named partition, and leaves the
rest of it (key conditions, sort order, paging, filters, projections) as it is:
  - the table's own partition (a local index's too) is moto's `table.items[hash key]`;
  - a global index's partitions are kept in `GlobalPartitions`, on the table: each
    index's partition key value(s) -> the keys of the items that have them. It is made
    at the table's first Query of a global index (or again when the table's indexes have
    changed), and kept current after every write: `Table.put_item` and `delete_item`, and
    the backend's `update_item`, which changes an item in place. Batches, transactions
    and PartiQL write through those three. It is an attribute of the table, so moto's
    copy of a table (to roll a transaction back) carries it along; the emulator's saved
    state leaves it out (local/emulator.py), and it is made again after a restart.
    moto sorts a partition's items on every Query of an index; each partition's keys are
    kept in the order of its last sort, so the next sort finds them (nearly) in order.
A Query that names no partition value moto can use goes to moto whole.

Every DynamoDB request holds the emulator's lock (local/moto_dynamodb.py), so nothing
writes while a Query reads; the Query holds it too for in-process use.
"""

from __future__ import annotations

import functools
import inspect
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from local.moto_dynamodb import LOCK

ItemKey = tuple[Any, Any]  # moto's (hash key, range key or None), as DynamoType
Values = tuple[Any, ...]  # an index's partition key value(s), as DynamoType
ATTRIBUTE = "_taskstatus_global_partitions"


class GlobalPartitions:
    """A table's global indexes: each index's partition value(s) -> keys of its items."""

    def __init__(self, table: Any) -> None:
        self.schema = partition_attributes(table)
        self.partitions: dict[str, defaultdict[Values, dict[ItemKey, None]]] = {
            name: defaultdict(dict) for name in self.schema
        }
        self.placed: dict[ItemKey, list[tuple[str, Values]]] = {}
        for item in every_item(table):
            self.place(item)

    def place(self, item: Any) -> None:
        """Files `item` under its value(s) in each index whose key it has (now)."""
        key = (item.hash_key, item.range_key)
        self.remove(key)
        where = []
        for name, attributes in self.schema.items():
            values = tuple(item.attrs.get(attribute) for attribute in attributes)
            if any(value is None for value in values):
                continue  # DynamoDB leaves an item without the index's key out of it
            self.partitions[name][values][key] = None
            where.append((name, values))
        if where:
            self.placed[key] = where

    def remove(self, key: ItemKey) -> None:
        for name, values in self.placed.pop(key, ()):
            partition = self.partitions[name][values]
            partition.pop(key, None)
            if not partition:
                del self.partitions[name][values]

    def keys_in(self, name: str, values: Values) -> list[ItemKey]:
        return list(self.partitions[name].get(values, ()))

    def keep_order(self, name: str, values: Values, ordered: list[Any]) -> None:
        """Keeps a partition's keys in the order moto's Query last sorted its items, so
        the next sort finds them in order but for what changed since (Python's sort then
        compares each item about once, not log n times; each comparison reads values)."""
        partition = self.partitions[name].get(values)
        if partition is None:
            return
        in_order = {
            key: None for item in ordered if (key := (item.hash_key, item.range_key)) in partition
        }
        in_order.update(partition)  # what the sort did not see keeps its place, after
        self.partitions[name][values] = in_order


def partition_attributes(table: Any) -> dict[str, list[str]]:
    return {
        index.name: [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
        for index in table.global_indexes or ()
    }


def every_item(table: Any) -> list[Any]:
    """moto's own `all_items`, even while a Query has it answer one partition."""
    return type(table).all_items(table)


def partition_items(table: Any, hash_key: Any) -> list[Any]:
    """The items of the table's partition `hash_key` (moto keeps them by hash key)."""
    stored = table.items.get(hash_key)  # .get: moto's defaultdict must not grow
    if stored is None:
        return []
    return list(stored.values()) if table.range_key_attr is not None else [stored]


def stored_item(table: Any, key: ItemKey) -> Any:
    hash_key, range_key = key
    return table.items[hash_key] if range_key is None else table.items[hash_key][range_key]


def kept(table: Any) -> GlobalPartitions | None:
    """The table's global partitions if they are being kept."""
    return table.__dict__.get(ATTRIBUTE)


def global_partitions(table: Any) -> GlobalPartitions:
    """The table's global partitions, made now if none are kept or the indexes changed."""
    partitions = kept(table)
    if partitions is None or partitions.schema != partition_attributes(table):
        partitions = GlobalPartitions(table)
        setattr(table, ATTRIBUTE, partitions)
    return partitions


Sorted = Callable[[list[Any]], None]  # told the order moto sorted a partition's items in


def candidates(table: Any, arguments: dict[str, Any]) -> tuple[list[Any], Sorted | None] | None:
    """The items of the partition a Query names, and for a global index what to tell of
    the order moto sorts them in; or None for a Query moto must judge."""
    index_name = arguments.get("index_name")
    if not index_name:
        hash_key = arguments.get("hash_key")
        return None if hash_key is None else (partition_items(table, hash_key), None)
    conditions = dict(arguments.get("hash_key_conditions") or ())
    if index_name in {index.name for index in table.indexes or ()}:  # local: the table's key
        hash_key = conditions.get(table.hash_key_attr)
        return None if hash_key is None else (partition_items(table, hash_key), None)
    if index_name not in {index.name for index in table.global_indexes or ()}:
        return None  # moto names the indexes there are
    partitions = global_partitions(table)
    values = tuple(conditions.get(attribute) for attribute in partitions.schema[index_name])
    if any(value is None for value in values):
        return None
    items = [stored_item(table, key) for key in partitions.keys_in(index_name, values)]
    return items, functools.partial(partitions.keep_order, index_name, values)


def _query(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            found = candidates(self, signature.bind(self, *args, **kwargs).arguments)
            if found is None:
                return original(self, *args, **kwargs)
            items, sorted_in = found
            # what moto's Query goes through and sorts with, for this call only
            self.all_items = lambda: items
            if sorted_in is not None:
                self.sorted_items = _telling(self, sorted_in)
            try:
                return original(self, *args, **kwargs)
            finally:
                del self.all_items
                self.__dict__.pop("sorted_items", None)

    return query


def _telling(table: Any, sorted_in: Sorted) -> Callable[..., list[Any]]:
    def sorted_items(*args: Any) -> list[Any]:
        ordered = type(table).sorted_items(table, *args)
        sorted_in(ordered)
        return ordered

    return sorted_items


def _put_item(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original(self, *args, **kwargs)
        if (partitions := kept(self)) is not None:
            partitions.place(item)
        return item

    return put_item


def _delete_item(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original(self, *args, **kwargs)
        if item is not None and (partitions := kept(self)) is not None:
            partitions.remove((item.hash_key, item.range_key))
        return item

    return delete_item


def _update_item(original: Callable[..., Any]) -> Callable[..., Any]:
    """The backend's update_item changes the stored item in place: it is filed again
    after, also when the update failed part way (moto may have changed it already)."""

    @functools.wraps(original)
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kw: Any) -> Any:
        try:
            return original(self, table_name, key, *args, **kw)
        finally:
            table = self.tables.get(table_name)
            if table is not None and (partitions := kept(table)) is not None:
                refile(self, table, partitions, key)

    return update_item


def refile(backend: Any, table: Any, partitions: GlobalPartitions, key: dict[str, Any]) -> None:
    try:
        hash_key, range_key = backend.get_keys_value(table, key)
    except Exception:  # a key moto refused: the update changed nothing
        return
    item = table.get_item(hash_key, range_key)
    if item is None:
        partitions.remove((hash_key, range_key))
    else:
        partitions.place(item)


def patch_query(set_attribute: Callable[[Any, str, Any], None] = setattr) -> None:
    """Apply to moto (tests pass `monkeypatch.setattr`, to undo it after)."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    set_attribute(Table, "query", _query(Table.query))
    set_attribute(Table, "put_item", _put_item(Table.put_item))
    set_attribute(Table, "delete_item", _delete_item(Table.delete_item))
    set_attribute(
        models.DynamoDBBackend, "update_item", _update_item(models.DynamoDBBackend.update_item)
    )
