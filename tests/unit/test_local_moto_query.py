"""The emulator's DynamoDB Query (local/moto_query.py): it reads the partition it names,
and answers as moto does, after every kind of write."""

from __future__ import annotations

import random

import pytest

from local.moto_dynamodb import patch_dynamodb

TABLE = "probe"
VALUES = ("red", "green", "blue")


@pytest.fixture
def ddb(stack, monkeypatch):
    """A table of `id` + `sk` with a global index `by_g` (`g`, `r`), in the emulated AWS."""
    patch_dynamodb(monkeypatch.setattr)
    stack.ddb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "id", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("id", "sk", "g", "r")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "r", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return stack.ddb


def strings(**values: str) -> dict[str, dict[str, str]]:
    return {name: {"S": value} for name, value in values.items()}


def put(ddb, id_: str, sk: str, **attributes: str) -> None:
    ddb.put_item(TableName=TABLE, Item=strings(id=id_, sk=sk, r=f"{id_}/{sk}", **attributes))


def query_index(ddb, index: str, attribute: str, value: dict[str, str]) -> list[dict]:
    """The items of one partition of a global index keyed on `attribute`."""
    return ddb.query(
        TableName=TABLE,
        IndexName=index,
        KeyConditionExpression=f"{attribute} = :value",
        ExpressionAttributeValues={":value": value},
    )["Items"]


def in_index(ddb, g: str) -> list[str]:
    items = query_index(ddb, "by_g", "g", {"S": g})
    return [f"{item['id']['S']}/{item['sk']['S']}" for item in items]


def add_index(ddb, index: str, attribute: str, kind: str) -> None:
    """A global index on one key attribute, added to the table as it stands."""
    ddb.update_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": attribute, "AttributeType": kind}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": index,
                    "KeySchema": [{"AttributeName": attribute, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )


def in_partition(ddb, id_: str) -> list[str]:
    answer = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="id = :id",
        ExpressionAttributeValues={":id": {"S": id_}},
    )
    return [item["sk"]["S"] for item in answer["Items"]]


def set_g(ddb, id_: str, sk: str, g: str) -> None:
    ddb.update_item(
        TableName=TABLE,
        Key={"id": {"S": id_}, "sk": {"S": sk}},
        UpdateExpression="SET g = :g",
        ExpressionAttributeValues={":g": {"S": g}},
    )


def refuse_whole_table_reads(monkeypatch) -> None:
    """From now on, moto's read of the whole table fails the test."""
    from moto.dynamodb.models.table import Table

    def refuse(self):
        raise AssertionError("a Query went through the whole table")

    monkeypatch.setattr(Table, "all_items", refuse)


def test_a_query_of_the_table_reads_its_partition_only(ddb, monkeypatch):
    refuse_whole_table_reads(monkeypatch)
    put(ddb, "a", "2")
    put(ddb, "a", "1")
    put(ddb, "b", "1")
    assert in_partition(ddb, "a") == ["1", "2"]
    assert in_partition(ddb, "none") == []


def test_a_query_of_a_global_index_reads_its_partition_only_once_the_index_is_kept(
    ddb, monkeypatch
):
    put(ddb, "a", "1", g="red")
    assert in_index(ddb, "red") == ["a/1"]  # the first Query of the index files the table
    refuse_whole_table_reads(monkeypatch)
    put(ddb, "b", "1", g="red")
    put(ddb, "c", "1", g="blue")
    assert in_index(ddb, "red") == ["a/1", "b/1"]


def test_an_update_that_changes_an_item_s_index_key_moves_it_to_the_new_partition(ddb):
    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    set_g(ddb, "a", "1", "blue")
    assert (in_index(ddb, "red"), in_index(ddb, "blue")) == ([], ["a/1"])


def test_an_update_that_removes_the_index_key_takes_the_item_out_of_the_index(ddb):
    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    ddb.update_item(
        TableName=TABLE, Key={"id": {"S": "a"}, "sk": {"S": "1"}}, UpdateExpression="REMOVE g"
    )
    assert in_index(ddb, "red") == []


def test_an_update_that_makes_an_item_puts_it_in_the_index(ddb):
    in_index(ddb, "red")
    ddb.update_item(
        TableName=TABLE,
        Key={"id": {"S": "new"}, "sk": {"S": "1"}},
        UpdateExpression="SET g = :g, r = :r",
        ExpressionAttributeValues={":g": {"S": "red"}, ":r": {"S": "new/1"}},
    )
    assert in_index(ddb, "red") == ["new/1"]


def test_a_put_over_an_item_files_it_under_its_new_value(ddb):
    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    put(ddb, "a", "1", g="green")
    assert (in_index(ddb, "red"), in_index(ddb, "green")) == ([], ["a/1"])


def test_a_deleted_item_leaves_the_index(ddb):
    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    ddb.delete_item(TableName=TABLE, Key={"id": {"S": "a"}, "sk": {"S": "1"}})
    assert in_index(ddb, "red") == []


def test_a_failed_conditional_update_leaves_the_item_where_it_was(ddb):
    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(
            TableName=TABLE,
            Key={"id": {"S": "a"}, "sk": {"S": "1"}},
            UpdateExpression="SET g = :g",
            ConditionExpression="attribute_not_exists(id)",
            ExpressionAttributeValues={":g": {"S": "blue"}},
        )
    assert (in_index(ddb, "red"), in_index(ddb, "blue")) == (["a/1"], [])


def test_a_transaction_moto_rolls_back_leaves_the_index_as_the_table(ddb):
    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    key = {"id": {"S": "a"}, "sk": {"S": "1"}}
    with pytest.raises(ddb.exceptions.ClientError):  # two operations on one item: moto's own path
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key,
                        "UpdateExpression": "SET g = :g",
                        "ExpressionAttributeValues": {":g": {"S": "blue"}},
                    }
                },
                {"Delete": {"TableName": TABLE, "Key": key}},
            ]
        )
    assert (in_index(ddb, "red"), in_index(ddb, "blue")) == (["a/1"], [])


def test_a_transaction_s_writes_are_filed_in_the_index(ddb):
    in_index(ddb, "red")
    ddb.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": strings(id="a", sk="1", g="red", r="a/1"),
                }
            },
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"id": {"S": "b"}, "sk": {"S": "1"}},
                    "UpdateExpression": "SET g = :g, r = :r",
                    "ExpressionAttributeValues": {":g": {"S": "red"}, ":r": {"S": "b/1"}},
                }
            },
        ]
    )
    assert in_index(ddb, "red") == ["a/1", "b/1"]


def test_a_global_index_added_to_the_table_is_read_from_its_own_partitions(ddb):
    put(ddb, "a", "1", g="red", h="x")
    in_index(ddb, "red")
    add_index(ddb, "by_h", "h", "S")
    assert [item["id"]["S"] for item in query_index(ddb, "by_h", "h", {"S": "x"})] == ["a"]


def test_after_any_mix_of_writes_every_partition_answers_as_the_writes_left_the_table(ddb):
    """400 random puts, updates (of the index's partition and sort keys) and deletes,
    checked after each against a plain model of the table (seeded: the same every run)."""
    rng = random.Random(20261207)
    model: dict[tuple[str, str], tuple[str, str] | None] = {}  # key -> (g, r), None: no g
    in_index(ddb, "red")
    for _ in range(400):
        key = (rng.choice("abcd"), rng.choice("123"))
        action = rng.choice(("put", "put_without_g", "set_g", "remove_g", "delete"))
        if action == "put":
            model[key] = (rng.choice(VALUES), f"{key[0]}/{key[1]}")
            put(ddb, *key, g=model[key][0])
        elif action == "put_without_g":
            model[key] = None
            put(ddb, *key)
        elif action == "set_g" and key in model:
            model[key] = (rng.choice(VALUES), rng.choice("xyz"))  # ties broken by the key
            ddb.update_item(
                TableName=TABLE,
                Key={"id": {"S": key[0]}, "sk": {"S": key[1]}},
                UpdateExpression="SET g = :g, r = :r",
                ExpressionAttributeValues={":g": {"S": model[key][0]}, ":r": {"S": model[key][1]}},
            )
        elif action == "remove_g" and key in model:
            model[key] = None
            ddb.update_item(
                TableName=TABLE,
                Key={"id": {"S": key[0]}, "sk": {"S": key[1]}},
                UpdateExpression="REMOVE g",
            )
        elif action == "delete":
            model.pop(key, None)
            ddb.delete_item(TableName=TABLE, Key={"id": {"S": key[0]}, "sk": {"S": key[1]}})
        g = rng.choice(VALUES)
        expected = sorted((v[1], i, s) for (i, s), v in model.items() if v and v[0] == g)
        assert in_index(ddb, g) == [f"{i}/{s}" for _, i, s in expected]
        assert in_partition(ddb, key[0]) == sorted(s for i, s in model if i == key[0])


def moto_table(name: str = TABLE):
    from moto.backends import get_backend

    for regions in get_backend("dynamodb").values():
        for backend in regions.values():
            if name in backend.tables:
                return backend.tables[name]
    raise LookupError(name)


def test_an_index_partition_s_keys_are_kept_in_the_order_of_its_last_query(ddb):
    from local.moto_query import kept

    for id_, r in (("a", "3"), ("b", "1"), ("c", "2")):
        put(ddb, id_, "1", g="red")
        ddb.update_item(
            TableName=TABLE,
            Key={"id": {"S": id_}, "sk": {"S": "1"}},
            UpdateExpression="SET r = :r",
            ExpressionAttributeValues={":r": {"S": r}},
        )
    assert in_index(ddb, "red") == ["b/1", "c/1", "a/1"]
    partitions = kept(moto_table())
    (red,) = [values for values in partitions.partitions["by_g"]]
    assert [key[0].value for key in partitions.keys_in("by_g", red)] == ["b", "c", "a"]


def test_the_emulator_s_saved_state_leaves_the_kept_partitions_out(ddb):
    from local.emulator import dump_state, load_state
    from local.moto_query import kept

    put(ddb, "a", "1", g="red")
    in_index(ddb, "red")
    load_state(dump_state())
    assert kept(moto_table()) is None  # made again from the items, at the next Query
    assert in_index(ddb, "red") == ["a/1"]


def test_an_item_whose_number_key_is_added_to_moves_to_its_new_partition(ddb):
    add_index(ddb, "by_n", "n", "N")
    key = {"id": {"S": "a"}, "sk": {"S": "1"}}
    ddb.put_item(TableName=TABLE, Item={**key, "n": {"N": "1"}})

    def in_n(number: str) -> int:
        return len(query_index(ddb, "by_n", "n", {"N": number}))

    assert in_n("1.0") == 1
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert (in_n("1"), in_n("2")) == (0, 1)
