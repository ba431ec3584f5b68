"""WebSocket limits: one user cannot hold unbounded connections or subscriptions.

The attack: a script opens connections, or subscribes one connection to task after
task, until every change of that owner fans out to thousands of targets.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.bootstrap import container
from chalicelib.model import Status
from local.moto_dynamodb import patch_dynamodb
from tests.conftest import token_for
from tests.unit.tasks import stored_task
from tests.unit.test_realtime import sent


@pytest.fixture
def limited(stack, container):
    return container(max_connections_per_owner=2, max_subscriptions_per_connection=2).realtime


def connect(realtime, connection_id, user="alice"):
    return realtime.connect(connection_id, {"token": token_for(user)})


def subscribe(realtime, connection_id, **target):
    realtime.message(connection_id, json.dumps({"action": "subscribe", **target}))
    return sent(connection_id)[-1]


def test_a_connection_over_the_owners_limit_is_refused_with_429(limited):
    assert [connect(limited, c)["statusCode"] for c in ("a1", "a2")] == [200, 200]
    answer = connect(limited, "a3")
    assert answer["statusCode"] == 429 and "at most 2 WebSocket connections" in answer["body"]
    assert limited.subscriptions.connection("a3") is None


def test_another_users_connections_do_not_count(limited):
    connect(limited, "a1"), connect(limited, "a2")
    assert connect(limited, "b1", user="bob")["statusCode"] == 200


def test_a_closed_connection_frees_its_place(limited):
    connect(limited, "a1"), connect(limited, "a2")
    limited.disconnect("a1")
    assert connect(limited, "a3")["statusCode"] == 200


def test_a_subscription_over_the_connections_limit_is_refused_and_not_added(limited):
    service = container().service
    tasks = [stored_task(service, Status.PROCESSING) for _ in range(3)]
    connect(limited, "a1")
    for task in tasks[:2]:
        assert subscribe(limited, "a1", taskId=task.id)["type"] != "error"
    reply = subscribe(limited, "a1", taskId=tasks[2].id)
    assert reply["type"] == "error" and "at most 2 subscriptions" in reply["message"]
    assert limited.subscriptions.subscriptions_of("a1") == {f"task#{t.id}" for t in tasks[:2]}


def test_subscribing_again_to_a_held_target_at_the_limit_is_accepted(limited):
    connect(limited, "a1")
    subscribe(limited, "a1", operation="demo/sleep")
    subscribe(limited, "a1", operation="image/watermark")
    assert subscribe(limited, "a1", operation="demo/sleep")["type"] == "subscribed"


def test_subscribing_to_everything_is_accepted_at_the_limit(limited):
    connect(limited, "a1")
    subscribe(limited, "a1", operation="demo/sleep")
    subscribe(limited, "a1", operation="image/watermark")
    assert subscribe(limited, "a1")["type"] == "subscribed"


def test_dropping_every_subscription_does_not_make_room_for_more_connections(limited):
    """The attack: unsubscribe all, open another connection, subscribe everything again."""
    connect(limited, "a1"), connect(limited, "a2")
    for connection in ("a1", "a2"):
        limited.message(connection, json.dumps({"action": "unsubscribe"}))
    assert connect(limited, "a3")["statusCode"] == 200
    assert subscribe(limited, "a3")["type"] == "subscribed"
    refused = [subscribe(limited, c) for c in ("a1", "a2")]
    assert [r["type"] for r in refused] == ["subscribed", "error"]
    assert len(limited.subscriptions.connections_of("alice")) == 2


def test_concurrent_connects_never_take_more_than_the_limit(stack, container, monkeypatch):
    """The attack: 130 connects at once against a limit of 100, each request atomic in
    moto as in DynamoDB; a check then a write let 103 in."""
    patch_dynamodb(monkeypatch.setattr)
    realtime = container(max_connections_per_owner=100).realtime
    token = token_for("alice")

    def connect_one(n: int) -> int:
        return realtime.connect(f"c{n}", {"token": token})["statusCode"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(connect_one, range(130)))
    assert (answers.count(200), answers.count(429)) == (100, 30)
    assert len(realtime.subscriptions.connections_of("alice")) == 100


def test_a_place_whose_connection_vanished_without_a_disconnect_is_taken_back(limited, stack):
    connect(limited, "a1"), connect(limited, "a2")
    # What TTL does to a connection API Gateway never reported closed: its items go.
    stack.ddb.delete_item(
        TableName=limited.subscriptions.table,
        Key={"pk": {"S": "conn#a1"}, "sk": {"S": "conn"}},
    )
    assert connect(limited, "a3")["statusCode"] == 200
    assert limited.subscriptions.places_of("alice") == {"a2", "a3"}


def test_a_closed_connection_gives_its_place_back(limited):
    connect(limited, "a1"), connect(limited, "a2")
    limited.disconnect("a1")
    assert limited.subscriptions.places_of("alice") == {"a2"}


def test_a_connection_that_still_holds_a_subscription_keeps_counting_after_dropping_another(
    limited,
):
    """The attack: subscribe to two things, drop one, and count as no connection while the
    other still receives pushes."""
    connect(limited, "a1"), connect(limited, "a2")
    subscribe(limited, "a1", operation="demo/sleep")
    subscribe(limited, "a1", operation="image/watermark")
    limited.message("a1", json.dumps({"action": "unsubscribe", "operation": "demo/sleep"}))
    assert connect(limited, "a3")["statusCode"] == 429


def test_an_unsubscribe_is_answered_with_what_was_dropped(limited):
    connect(limited, "a1")
    subscribe(limited, "a1", operation="demo/sleep")
    limited.message("a1", json.dumps({"action": "unsubscribe", "operation": "demo/sleep"}))
    assert sent("a1")[-1] == {"type": "unsubscribed", "operation": "demo/sleep"}


def test_a_negative_since_version_is_refused(limited):
    task = stored_task(container().service, Status.PROCESSING)
    connect(limited, "a1")
    before = limited.subscriptions.subscriptions_of("a1")
    reply = subscribe(limited, "a1", taskId=task.id, sinceVersion=-1)
    assert reply == {"type": "error", "message": "sinceVersion must be a whole number"}
    assert limited.subscriptions.subscriptions_of("a1") == before


def test_a_subscription_refused_for_the_owners_limit_says_so(limited):
    connect(limited, "a1"), connect(limited, "a2")
    for connection in ("a1", "a2"):
        limited.message(connection, json.dumps({"action": "unsubscribe"}))
    connect(limited, "a3")
    subscribe(limited, "a3"), subscribe(limited, "a1")
    reply = subscribe(limited, "a2")
    assert reply["type"] == "error" and "at most 2 WebSocket connections" in reply["message"]
