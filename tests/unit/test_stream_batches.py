"""The stream's queueing reader works one pass per batch: grouped reads, writes, sends and
slot takes, what AWS leaves undone done again, and a failure that may pass handed back from
its own task's first record without failing anything (chalicelib/stream.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.model import Status, Task, Webhook
from tests.unit.aws_faults import aws_fails, dynamodb_leaves_unprocessed, sqs_refuses_messages
from tests.unit.tasks import stored_task, submitted_record

LIMIT = 2


@pytest.fixture
def service(stack, container):
    return container(max_running_per_owner=LIMIT).service


@pytest.fixture
def handler(service):
    from chalicelib.bootstrap import container

    return container().stream_handler


def new_task(service, owner: str = "alice") -> Task:
    task = Task.new(owner=owner, type="demo/sleep", ttl_seconds=3600, input={"seconds": 0})
    service.store.create(task)
    return task


def queued_ids(stack) -> list[str]:
    found: list[str] = []
    while batch := stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages", []):
        found += [json.loads(message["Body"])["taskId"] for message in batch]
    return found


def holders(stack, service, scope: str) -> set[str]:
    item = stack.ddb.get_item(
        TableName=service.settings.records_table,
        Key={"pk": {"S": f"slots#{scope}"}, "sk": {"S": "running"}},
        ConsistentRead=True,
    ).get("Item", {})
    return set(item.get("holders", {}).get("SS", []))


def entries(stack, service, task: Task) -> int:
    return stack.ddb.query(
        TableName=service.settings.records_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"task#{task.id}"}},
        Select="COUNT",
    )["Count"]


@contextmanager
def slot_takes() -> Iterator[Counter[str]]:
    """The writes that take slots (a conditional ADD to a gate), counted by operation."""
    taken: Counter[str] = Counter()

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        updates = [params] if model.name == "UpdateItem" else []
        if model.name == "TransactWriteItems":
            updates = [item["Update"] for item in params["TransactItems"] if "Update" in item]
        if any(u["Key"].get("pk", {}).get("S", "").startswith("slots#") for u in updates) and all(
            u["UpdateExpression"].startswith("ADD holders") for u in updates
        ):
            taken[model.name] += 1

    events = aws.client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", count, unique_id="slot-takes")
    try:
        yield taken
    finally:
        events.unregister("provide-client-params.dynamodb", unique_id="slot-takes")


# -- grouped admission -------------------------------------------------------------------------


def test_a_batch_takes_each_owners_slots_with_one_write(stack, service, handler):
    alices = [new_task(service) for _ in range(5)]
    bobs = [new_task(service, owner="bob") for _ in range(2)]
    records = [submitted_record(service, task) for task in [*alices, *bobs]]
    with slot_takes() as taken:
        assert handler.handle_batch(records) == {"batchItemFailures": []}
    assert taken == {"UpdateItem": 2}
    assert holders(stack, service, "5:alice") == {task.id for task in alices[:LIMIT]}
    assert sorted(queued_ids(stack)) == sorted(t.id for t in [*alices[:LIMIT], *bobs])
    assert service.find(alices[-1].id).waiting_for == "owner limit"


def test_a_gate_another_writer_fills_meanwhile_never_holds_more_than_its_limit(
    stack, service, handler
):
    tasks = [new_task(service) for _ in range(3)]
    records = [submitted_record(service, task) for task in tasks]
    beside: list[str] = []

    def another_batch_takes_a_slot_first(model: Any, params: dict[str, Any], **_: Any) -> None:
        pk = params.get("Key", {}).get("pk", {}).get("S")
        if model.name == "UpdateItem" and pk == "slots#5:alice" and not beside:
            beside.append("task-of-a-batch-beside")
            stack.ddb.update_item(
                TableName=service.settings.records_table,
                Key={"pk": {"S": "slots#5:alice"}, "sk": {"S": "running"}},
                UpdateExpression="ADD holders :task",
                ExpressionAttributeValues={":task": {"SS": beside}},
            )

    events = aws.client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", another_batch_takes_a_slot_first, "beside")
    try:
        assert handler.handle_batch(records) == {"batchItemFailures": []}
    finally:
        events.unregister("provide-client-params.dynamodb", unique_id="beside")
    assert holders(stack, service, "5:alice") == {"task-of-a-batch-beside", tasks[0].id}
    assert queued_ids(stack) == [tasks[0].id]
    assert [service.find(t.id).waiting_for for t in tasks[1:]] == ["owner limit"] * 2


def test_a_task_behind_two_gates_takes_both_in_one_transaction_or_neither(stack, container):
    built = container(max_running_per_owner=LIMIT, type_concurrency=(("demo/*", 1),))
    service = built.service
    first, second = new_task(service), new_task(service)
    records = [submitted_record(service, task) for task in (first, second)]
    with slot_takes() as taken:
        assert built.stream_handler.handle_batch(records) == {"batchItemFailures": []}
    assert taken == {"TransactWriteItems": 1}
    assert holders(stack, service, "type#demo/*") == {first.id}
    assert holders(stack, service, "5:alice") == {first.id}  # the second took neither
    assert service.find(second.id).waiting_for == "type limit"


# -- what AWS leaves undone is done again in the same pass ---------------------------------


def test_history_entries_left_unprocessed_are_written_again_in_the_same_pass(
    stack, service, handler
):
    task = new_task(service)
    with dynamodb_leaves_unprocessed("BatchWriteItem", lambda r: True, times=1) as undone:
        assert handler.handle_batch([submitted_record(service, task)]) == {"batchItemFailures": []}
    assert undone and entries(stack, service, task) == 1


def test_keys_left_unread_are_read_again_so_a_replayed_version_is_counted_once(
    stack, service, handler
):
    from chalicelib.tallies import hour_key

    task = new_task(service)
    record = submitted_record(service, task)
    handler.handle_batch([record])
    with dynamodb_leaves_unprocessed("BatchGetItem", lambda key: True, times=1) as unread:
        assert handler.handle_batch([record]) == {"batchItemFailures": []}
    assert unread
    tally = stack.ddb.get_item(
        TableName=service.settings.records_table,
        Key={"pk": {"S": hour_key(task.created_at)}, "sk": {"S": "owner#5:alice"}},
    )["Item"]
    assert tally["s"] == {"N": "1"}


def test_a_message_sqs_fails_once_is_sent_again_in_the_same_pass(stack, service, handler):
    task = new_task(service)
    with sqs_refuses_messages(lambda body: True, "InternalError", sender_fault=False, times=1):
        assert handler.handle_batch([submitted_record(service, task)]) == {"batchItemFailures": []}
    assert queued_ids(stack) == [task.id]


# -- a failure that may pass fails nothing: its task's records are handed back -----------------


def test_entries_that_stay_unprocessed_hand_back_their_task_from_its_first_record(
    stack, service, handler
):
    alice, bob, carol = new_task(service), new_task(service, "bob"), new_task(service, "carol")
    records = [submitted_record(service, task) for task in (alice, bob, carol)]
    bobs_entry = f"task#{bob.id}"
    with dynamodb_leaves_unprocessed(
        "BatchWriteItem",
        lambda r: r.get("PutRequest", {}).get("Item", {}).get("pk") == {"S": bobs_entry},
    ):
        answer = handler.handle_batch(records)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]
    }
    assert service.find(bob.id).status is Status.SUBMITTED
    assert handler.handle_batch(records[1:]) == {"batchItemFailures": []}  # Lambda resumes there
    assert [entries(stack, service, t) for t in (alice, bob, carol)] == [1, 1, 1]


def test_a_finished_tasks_webhook_waits_for_its_history_entry(stack, service, handler):
    """A receiver that reads the job's history when its webhook arrives finds the end there:
    a task whose entry could not be written now sends its webhook when the record comes
    again, after the entry."""
    task = stored_task(service, Status.COMPLETED, webhook=Webhook(url="https://example.com/h"))
    record = submitted_record(service, task)
    with dynamodb_leaves_unprocessed("BatchWriteItem", lambda r: True):
        assert handler.handle_batch([record])["batchItemFailures"]
    assert webhook_messages(stack) == 0
    assert handler.handle_batch([record]) == {"batchItemFailures": []}
    assert (entries(stack, service, task), webhook_messages(stack)) == (2, 1)  # entry, event


def webhook_messages(stack) -> int:
    url = stack.outputs["WebhooksQueueUrl"]
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_a_send_that_stays_throttled_hands_back_its_task_and_fails_nothing(stack, service, handler):
    alice, bob = new_task(service), new_task(service, "bob")
    records = [submitted_record(service, task) for task in (alice, bob)]
    with sqs_refuses_messages(lambda body: bob.id in body, "InternalError", sender_fault=False):
        answer = handler.handle_batch(records)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]
    }
    assert queued_ids(stack) == [alice.id]
    assert service.find(bob.id).status is Status.SUBMITTED


def test_a_throttled_slot_take_hands_the_task_back_holding_nothing(stack, service, handler):
    task = new_task(service)
    record = submitted_record(service, task)
    with aws_fails("dynamodb", "UpdateItem", "ThrottlingException", times=1):
        answer = handler.handle_batch([record])
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]
    }
    assert holders(stack, service, "5:alice") == set()
    assert service.find(task.id).status is Status.SUBMITTED
    assert handler.handle_batch([record]) == {"batchItemFailures": []}
    assert queued_ids(stack) == [task.id]
