"""`make bench` computes DynamoDB write units per task from the stream's old and new images
with DynamoDB's published rules (bench/units.py); each rule, as the figures rely on it."""

from collections import Counter

from bench.units import IndexShape, TableShape, item_size, units, value_size

TABLE = {
    "TableName": "tasks",
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "whole",
            "KeySchema": [
                {"AttributeName": "owner", "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "keys",
            "KeySchema": [
                {"AttributeName": "owner", "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "sparse",
            "KeySchema": [
                {"AttributeName": "shard", "KeyType": "HASH"},
                {"AttributeName": "deadline", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
        },
    ],
}
SHAPE = TableShape(TABLE)


def task(**attributes):
    item = {"id": {"S": "t1"}, "owner": {"S": "alice"}, "created_at": {"S": "2026-12-07"}}
    return item | {name: {"S": value} for name, value in attributes.items()}


def test_an_item_counts_its_attribute_names_and_values_in_utf8():
    assert item_size({"name": {"S": "été"}}) == 4 + 5


def test_a_number_counts_one_byte_per_two_significant_digits_and_one():
    assert value_size({"N": "12345"}) == 4
    assert value_size({"N": "1000"}) == 2  # trailing zeroes trimmed
    assert value_size({"N": "-0.0012"}) == 2


def test_a_map_counts_three_bytes_and_one_per_element_beside_its_contents():
    assert value_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 2 + 1
    assert value_size({"L": [{"BOOL": True}, {"NULL": True}]}) == 3 + 2 + 2


def test_a_write_costs_a_unit_per_started_kilobyte():
    assert [units(n) for n in (0, 1, 1024, 1025, 4096)] == [1, 1, 1, 2, 4]


def test_a_new_item_is_put_into_every_index_whose_keys_it_has():
    cost = SHAPE.write_units(None, task(status="submitted"))
    assert +cost == Counter({"tasks": 1, "tasks.whole": 1, "tasks.keys": 1})


def test_a_status_change_writes_a_whole_item_index_but_not_a_keys_only_one():
    cost = SHAPE.write_units(task(status="submitted"), task(status="running"))
    assert cost["tasks.whole"] == 1
    assert cost["tasks.keys"] == 0


def test_an_included_attribute_that_changes_writes_the_index():
    before = task(status="submitted", shard="a", deadline="1")
    after = task(status="running", shard="a", deadline="1")
    assert SHAPE.write_units(before, after)["tasks.sparse"] == 1


def test_an_attribute_the_index_does_not_project_costs_it_nothing():
    before = task(status="running", shard="a", deadline="1", note="x")
    after = task(status="running", shard="a", deadline="1", note="y")
    assert SHAPE.write_units(before, after)["tasks.sparse"] == 0


def test_a_changed_index_key_is_a_delete_and_a_put():
    before = task(status="running", shard="a", deadline="1")
    after = task(status="running", shard="a", deadline="2")
    assert SHAPE.write_units(before, after)["tasks.sparse"] == 2


def test_an_item_that_leaves_a_sparse_index_is_deleted_from_it():
    before = task(status="running", shard="a", deadline="1")
    assert SHAPE.write_units(before, task(status="completed"))["tasks.sparse"] == 1


def test_a_table_write_costs_the_larger_of_the_item_before_and_after():
    big = task(status="running", blob="x" * 1500)
    assert SHAPE.write_units(big, task(status="completed"))["tasks"] == 2
    assert SHAPE.write_units(big, None)["tasks"] == 2


def test_a_keys_only_entry_is_small_however_big_the_item():
    assert SHAPE.write_units(None, task(blob="x" * 5000))["tasks.keys"] == 1
    assert SHAPE.write_units(None, task(blob="x" * 5000))["tasks.whole"] == 5


def test_an_index_shape_projects_the_table_key_with_its_own():
    shape = IndexShape(TABLE["GlobalSecondaryIndexes"][1], ("id",))
    assert shape.entry(task(status="x")) == {
        "id": {"S": "t1"},
        "owner": {"S": "alice"},
        "created_at": {"S": "2026-12-07"},
    }


def test_a_task_run_to_the_end_writes_the_consoles_index_once_and_its_owners_thrice(client, stack):
    """Measured on the in-process stack, as `make bench` does: by_created projects only what
    never changes, so the claim and the end do not write it; by_owner projects the task."""
    from bench.throughput import run

    written = run(client, stack, tasks=4, users=2).units.by_name
    per_task = {name.split(".")[-1]: count / 4 for name, count in written.items()}
    assert per_task["by_created"] == 1
    assert per_task["by_owner"] == 3


def test_a_one_kb_task_run_to_the_end_costs_at_most_twelve_write_units(client, stack):
    """Issue 27's target, measured as `make bench` does: a task whose item is just under
    1 KB, submitted, claimed and completed, writes the tasks table and its indexes for at
    most 12 units (11 since by_owner_type was retired)."""
    from bench.throughput import one_kb_padding, run

    small = run(client, stack, tasks=4, users=2)
    padded = run(client, stack, tasks=4, users=2, padding=one_kb_padding(small.units.largest_task))
    assert 1000 <= padded.units.largest_task <= 1024
    assert sum(padded.units.by_name.values()) / 4 <= 12
