"""The service's own queue messages: what they carry, and bodies that are not one of them."""

import json

import pytest

from chalicelib.queues import DeliveryMessage, TaskMessage

TASK_ID = "0b5e8a2c-3d4f-4a6b-8c7d-9e0f1a2b3c4d"


def test_a_task_message_round_trips():
    message = TaskMessage(TASK_ID, "demo/sleep", owner="alice", priorAttempts=2, deferrals=1)
    assert TaskMessage.from_json(message.to_json()) == message


def test_a_task_message_leaves_its_defaults_out():
    assert json.loads(TaskMessage(TASK_ID, "demo/sleep", "alice").to_json()) == {
        "taskId": TASK_ID,
        "type": "demo/sleep",
        "owner": "alice",
    }


def test_a_task_message_ignores_fields_it_does_not_know():
    body = json.dumps({"taskId": TASK_ID, "type": "demo/sleep", "owner": "alice", "later": True})
    assert TaskMessage.from_json(body) == TaskMessage(TASK_ID, "demo/sleep", "alice")


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"type": "demo/sleep"}),
        json.dumps({"taskId": "short", "type": "demo/sleep"}),
        json.dumps({"taskId": TASK_ID, "type": ""}),
        json.dumps({"taskId": TASK_ID, "type": "x" * 129}),
        json.dumps({"taskId": TASK_ID, "type": "demo/sleep"}),
        json.dumps({"taskId": TASK_ID, "type": "demo/sleep", "owner": 7}),
        json.dumps({"taskId": TASK_ID, "type": "demo/sleep", "owner": ""}),
        json.dumps({"taskId": TASK_ID, "type": "demo/sleep", "owner": "a", "priorAttempts": -1}),
        json.dumps({"taskId": TASK_ID, "type": "demo/sleep", "owner": "a", "deferrals": True}),
        json.dumps({"taskId": TASK_ID, "type": "demo/sleep", "owner": "a", "deferrals": "2"}),
        '{"taskId": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"taskId": "' + TASK_ID + '", "type": "demo/sleep", "deferrals": NaN}',
    ],
)
def test_a_body_that_is_not_a_task_message_is_a_value_error(body):
    with pytest.raises(ValueError):
        TaskMessage.from_json(body)


def test_a_delivery_message_round_trips():
    message = DeliveryMessage(TASK_ID, version=3, attempt=2, notBefore=1700000000.5, manual="m1")
    assert DeliveryMessage.from_json(message.to_json()) == message


def test_a_delivery_message_reads_a_whole_number_not_before():
    body = json.dumps({"taskId": TASK_ID, "version": 1, "attempt": 1, "notBefore": 17})
    assert DeliveryMessage.from_json(body).notBefore == 17.0


@pytest.mark.parametrize(
    "fields",
    [
        {"version": 1},
        {"attempt": 1},
        {"version": "1", "attempt": 1},
        {"version": 1, "attempt": 1, "notBefore": "soon"},
        {"version": 1, "attempt": 1, "manual": 5},
    ],
)
def test_a_body_that_is_not_a_delivery_message_is_a_value_error(fields):
    with pytest.raises(ValueError):
        DeliveryMessage.from_json(json.dumps({"taskId": TASK_ID, **fields}))
