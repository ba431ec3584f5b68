"""WebSocket fan-out from the stream: per owner, per subscription, once per version."""

import json
import uuid

import pytest
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.dynamodb.models import dynamodb_backends

from chalicelib.bootstrap import container
from chalicelib.contracts.task_status import push_message
from chalicelib.model import Status
from chalicelib.realtime import MAX_FRAME_BYTES, PUSHED
from tests.unit.helpers import sleep_job, submit
from tests.unit.tasks import stored_task


@pytest.fixture
def realtime(service):
    return container().realtime


def sent(connection_id):
    """Every message moto's management API received for a connection."""
    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    data = backend.connections[connection_id].data.decode()
    decoder, messages, index = json.JSONDecoder(), [], 0
    while index < len(data):
        message, index = decoder.raw_decode(data, index)
        messages.append(message)
    return messages


def pushes(connection_id):
    return [m["payload"] for m in sent(connection_id) if m["type"] == "task_status"]


def connected(realtime, connection_id, owner, **subscribe):
    realtime.subscriptions.add_connection(connection_id, owner, realtime_now())
    realtime.message(connection_id, json.dumps({"action": "subscribe", **subscribe}))


def realtime_now():
    from chalicelib.model import utcnow

    return utcnow()


def test_a_change_is_pushed_as_seed_004s_message_with_its_version(realtime, service):
    connected(realtime, "c1", "alice")
    task = stored_task(service, Status.PROCESSING)
    assert realtime.on_task_change(task) == 1
    [payload] = pushes("c1")
    assert payload["task_id"] == task.id and payload["status"] == "processing"
    assert payload["version"] == task.version
    assert payload["progress"] == {"current": 2, "total": 5, "message": "working"}


def native_changes(connection_id):
    return [m["job"] for m in sent(connection_id) if m["type"] == "task_status"]


@pytest.mark.parametrize(
    ("status", "seed_004s_word"),
    [
        (Status.SUBMITTED, "started"),
        (Status.RETRYING, "processing"),
        (Status.CANCELLED, "failed"),
        (Status.COMPLETED, "completed"),
    ],
)
def test_a_push_carries_the_canonical_status_beside_seed_004s_word(
    realtime, service, status, seed_004s_word
):
    connected(realtime, "c30", "alice")
    task = stored_task(service, status)
    realtime.on_task_change(task)
    [message] = [m for m in sent("c30") if m["type"] == "task_status"]
    assert message["payload"]["status"] == seed_004s_word
    assert message["job"]["jobId"] == task.id
    assert message["job"]["status"] == status.value


def test_a_pushs_native_change_has_the_current_version_and_the_job_documents_fields(
    realtime, service
):
    connected(realtime, "c31", "alice")
    task = stored_task(service, Status.PROCESSING)
    task = service.store.save(task, task.replace(version=task.version + 1))
    realtime.on_task_change(task)
    [change] = native_changes("c31")
    assert task.version > 1
    assert change["version"] == task.version
    assert set(change) == {
        "jobId",
        "status",
        "version",
        "progress",
        "updatedAt",
        "completedAt",
        "error",
        "attempt",
    }
    assert change["progress"] == {"current": 2, "total": 5, "message": "working"}


def test_seed_004s_message_is_unchanged_beside_the_native_change(realtime, service):
    connected(realtime, "c32", "alice")
    task = stored_task(service, Status.PROCESSING)
    realtime.on_task_change(task)
    [message] = [m for m in sent("c32") if m["type"] == "task_status"]
    assert set(message) == {"type", "payload", "job"}
    assert set(message["payload"]) == {
        "task_id",
        "operation",
        "status",
        "progress",
        "created_at",
        "updated_at",
        "version",
    }


def test_a_duplicate_stream_record_pushes_at_most_once_per_connection_and_version(
    client, stack, realtime
):
    connected(realtime, "c2", "alice")
    submit(client, sleep_job(steps=2))
    stack.settle()
    first = [p["version"] for p in pushes("c2")]
    stack.push_pump.positions.clear()  # the pushes reader replays every record of the stream
    stack.run_stream()
    assert [p["version"] for p in pushes("c2")] == first == sorted(set(first))


def test_another_owners_changes_are_never_pushed(realtime, service):
    connected(realtime, "bob-conn", "bob")
    realtime.on_task_change(stored_task(service, Status.COMPLETED, owner="alice"))
    assert pushes("bob-conn") == []


def test_an_operation_subscription_gets_only_that_operation(realtime, service):
    connected(realtime, "c3", "alice", operation="image/watermark")
    realtime.on_task_change(stored_task(service, Status.COMPLETED, type="demo/sleep"))
    watermark = stored_task(service, Status.COMPLETED, type="image/watermark")
    realtime.on_task_change(watermark)
    assert [p["task_id"] for p in pushes("c3")] == [watermark.id]


def test_a_task_subscription_sends_the_current_state_at_once(realtime, service):
    task = stored_task(service, Status.COMPLETED)
    connected(realtime, "c4", "alice", taskId=task.id)
    assert sent("c4")[0] == {"type": "subscribed", "taskId": task.id}
    assert pushes("c4")[0]["status"] == "completed"


def test_since_version_skips_a_state_the_client_has(realtime, service):
    task = stored_task(service, Status.COMPLETED)
    connected(realtime, "c5", "alice", taskId=task.id, sinceVersion=task.version)
    assert pushes("c5") == []
    connected(realtime, "c6", "alice", taskId=task.id, sinceVersion=task.version - 1)
    assert len(pushes("c6")) == 1


def test_subscribing_to_another_users_task_is_an_error_and_pushes_nothing(realtime, service):
    task = stored_task(service, Status.PROCESSING, owner="alice")
    connected(realtime, "c7", "bob", taskId=task.id)
    assert sent("c7") == [{"type": "error", "message": f"task {task.id} was not found"}]
    realtime.on_task_change(task)
    assert pushes("c7") == []


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ("not json", "JSON object"),
        ("[1]", "JSON object"),
        ('{"action": "dance"}', "action must be"),
        ('{"action": "subscribe", "taskId": "no~pe"}', "taskId"),
        ('{"action": "subscribe", "operation": "video/x"}', "operation must be"),
        ('{"action": "subscribe", "sinceVersion": "3"}', "sinceVersion"),
        ("[" * 2000 + "]" * 2000, "JSON object"),
        ('{"action": "subscribe", "sinceVersion": NaN}', "JSON object"),
    ],
)
def test_bad_messages_get_an_error_message(realtime, body, phrase):
    realtime.subscriptions.add_connection("c8", "alice", realtime_now())
    realtime.message("c8", body)
    [reply] = sent("c8")
    assert reply["type"] == "error" and phrase in reply["message"]


def test_ping_answers_pong(realtime):
    realtime.subscriptions.add_connection("c9", "alice", realtime_now())
    realtime.message("c9", '{"action": "ping"}')
    assert sent("c9") == [{"type": "pong"}]


def test_unsubscribe_stops_pushes(realtime, service):
    connected(realtime, "c10", "alice")
    realtime.message("c10", '{"action": "unsubscribe"}')
    realtime.on_task_change(stored_task(service, Status.COMPLETED))
    assert pushes("c10") == []


def test_a_bad_token_is_refused_at_connect(realtime):
    assert realtime.connect("c11", {"token": "not-a-jwt"})["statusCode"] == 401
    assert realtime.connect("c12", None)["statusCode"] == 401
    assert realtime.subscriptions.connection("c11") is None


def test_a_large_result_is_left_out_of_the_push(service):
    task = stored_task(service, Status.COMPLETED, result={"blob": "x" * 40000})
    message = push_message(task)
    assert len(message.encode()) <= MAX_FRAME_BYTES
    payload = json.loads(message)["payload"]
    assert payload["truncated"] is True and "result" not in payload
    assert json.loads(message)["job"]["truncated"] is True


def test_fan_out_is_one_query_per_change(realtime, service, stack):
    connected(realtime, "c13", "alice")
    task = stored_task(service, Status.COMPLETED)
    calls = []
    from chalicelib import aws

    ddb = aws.client("dynamodb")
    ddb.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    realtime.on_task_change(task)
    # the owner's marker, the subscribers, then the connection's version marker
    assert calls == ["BatchGetItem", "Query", "UpdateItem"]
    unwatched = stored_task(service, Status.COMPLETED, owner="nobody-listening")
    calls.clear()
    realtime.on_task_change(unwatched)
    assert calls == ["BatchGetItem"]


# -- seed 004's origin client, which connects and never sends a message ----------------------------


def test_the_authorization_query_parameter_is_accepted_at_connect(realtime):
    """The origin: 'The origin client connects to the WebSocket as
    `wss://host/stage?Authorization=Bearer%20<jwt>` ... Accept that as well as `?token=`.'"""
    from tests.conftest import token_for

    answer = realtime.connect("c20", {"Authorization": f"Bearer {token_for('alice')}"})
    assert answer == {"statusCode": 200}
    assert realtime.subscriptions.connection("c20").owner == "alice"


@pytest.mark.parametrize("value", ["Bearer not-a-jwt", "Basic abc", "", "Bearer "])
def test_a_bad_authorization_query_parameter_is_refused(realtime, value):
    assert realtime.connect("c21", {"Authorization": value})["statusCode"] == 401
    assert realtime.subscriptions.connection("c21") is None


def test_a_connection_without_a_subscription_gets_every_change_of_its_owner(realtime, service):
    """The origin: 'A connection that has not subscribed to anything receives every change of
    every task its owner may see (owner-scoped, of course)'."""
    from tests.conftest import token_for

    realtime.connect("c22", {"token": token_for("alice")})
    realtime.connect("c23", {"token": token_for("bob")})
    sleep = stored_task(service, Status.PROCESSING, type="demo/sleep")
    watermark = stored_task(service, Status.COMPLETED, type="image/watermark")
    for task in (sleep, watermark, stored_task(service, Status.COMPLETED, owner="carol")):
        realtime.on_task_change(task)
    assert [p["task_id"] for p in pushes("c22")] == [sleep.id, watermark.id]
    assert pushes("c23") == []


def test_an_explicit_subscribe_narrows_the_connection(realtime, service):
    """The origin: 'an explicit `subscribe` narrows it as today.'"""
    watched = stored_task(service, Status.PROCESSING)
    connected(realtime, "c24", "alice", taskId=watched.id)
    realtime.on_task_change(stored_task(service, Status.COMPLETED))
    assert [p["task_id"] for p in pushes("c24")] == [watched.id]


def test_the_state_sent_at_subscribe_time_is_not_pushed_again(client, stack, realtime):
    """The origin: 'push each version at most once per connection, including the state sent at
    subscribe time (today a subscriber receives version 1 twice).'"""
    job_id = submit(client, sleep_job(steps=2)).json_body["jobId"]
    connected(realtime, "c25", "alice", taskId=job_id)
    assert [p["version"] for p in pushes("c25")] == [1]
    stack.settle()
    versions = [p["version"] for p in pushes("c25")]
    assert versions == sorted(set(versions)) and versions[-1] > 1


def test_an_older_version_is_never_pushed_after_a_newer_one(realtime, service):
    task = stored_task(service, Status.PROCESSING)
    newer = task.replace(version=task.version + 1)
    connected(realtime, "c26", "alice")
    realtime.on_task_change(newer)
    realtime.on_task_change(task)
    assert [p["version"] for p in pushes("c26")] == [newer.version]


def test_owner_wide_fan_out_is_still_one_query_per_change(realtime, service):
    """The origin: 'Keep fan-out at one Query per change (no Scan)'."""
    from chalicelib import aws
    from tests.conftest import token_for

    for connection in ("c27", "c28"):
        realtime.connect(connection, {"token": token_for("alice")})
    calls = []
    aws.client("dynamodb").meta.events.register(
        "before-call", lambda model, **_: calls.append(model.name)
    )
    realtime.on_task_change(stored_task(service, Status.COMPLETED))
    assert calls.count("Query") == 1 and "Scan" not in calls
    assert len(pushes("c27")) == len(pushes("c28")) == 1


def test_unsubscribing_from_everything_ends_the_default_push_too(realtime, service):
    from tests.conftest import token_for

    realtime.connect("c29", {"token": token_for("alice")})
    realtime.message("c29", '{"action": "unsubscribe"}')
    realtime.on_task_change(stored_task(service, Status.COMPLETED))
    assert pushes("c29") == []


def test_a_disconnected_connection_gets_no_more_pushes(realtime, service):
    connected(realtime, "c20", "alice")
    realtime.disconnect("c20")
    realtime.on_task_change(stored_task(service, Status.COMPLETED))
    assert pushes("c20") == []
    assert realtime.subscriptions.connection("c20") is None


# -- a connection whose token expired receives nothing more ---------------------------------


@pytest.fixture
def an_hour_passes(monkeypatch):
    """Call it to move the WebSocket handlers' clock an hour ahead."""
    from datetime import timedelta

    from chalicelib import realtime
    from chalicelib.realtime import fanout

    def advance() -> None:
        later = realtime_now() + timedelta(hours=1)
        for module in (realtime, fanout):  # the protocol's clock and the fan-out's
            monkeypatch.setattr(module, "utcnow", lambda: later)

    return advance


def open_connections():
    return apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections


def connect_for_a_minute(realtime, connection_id):
    from tests.conftest import token_for

    answer = realtime.connect(connection_id, {"token": token_for("alice", ttl=60)})
    assert answer["statusCode"] == 200
    realtime.pusher.send(connection_id, '{"type": "hello"}')  # the gateway knows it


def test_a_message_after_the_token_expired_is_refused_and_the_connection_closed(
    realtime, monkeypatch, an_hour_passes
):
    an_hour_passes()
    told = []
    real_send = realtime.pusher.send
    monkeypatch.setattr(
        realtime.pusher,
        "send",
        lambda cid, message: told.append(message) or real_send(cid, message),
    )
    connect_for_a_minute(realtime, "c30")
    realtime.message("c30", '{"action": "subscribe", "operation": "demo/sleep"}')
    assert "expired" in json.loads(told[-1])["message"]
    assert realtime.subscriptions.connection("c30") is None
    assert "c30" not in open_connections()


def test_a_change_after_the_token_expired_is_not_pushed_and_the_connection_closed(
    realtime, service, an_hour_passes
):
    connect_for_a_minute(realtime, "c31")
    task = stored_task(service, Status.PROCESSING)
    assert realtime.on_task_change(task) == 1  # while the token is valid
    an_hour_passes()
    changed = task.replace(version=task.version + 1)
    assert realtime.on_task_change(changed) == 0
    assert "c31" not in open_connections()
    assert realtime.subscriptions.connection("c31") is None


def test_a_connection_with_a_valid_token_keeps_receiving(realtime, service):
    connect_for_a_minute(realtime, "c32")
    task = stored_task(service, Status.PROCESSING)
    assert realtime.on_task_change(task) == 1
    assert pushes("c32")[-1]["version"] == task.version


def test_disconnecting_removes_every_page_of_the_connections_records(realtime, stack):
    """A dashboard left open on a busy owner: a push marker for each of 13,000 tasks, more
    than one 1 MB page of a Query (about 81 bytes each). Disconnecting leaves none behind."""
    connected(realtime, "c-busy", "alice")
    table = realtime.subscriptions.table
    markers = [
        {
            "pk": {"S": "conn#c-busy"},
            "sk": {"S": f"{PUSHED}{uuid.UUID(int=n)}"},
            "version": {"N": "3"},
            "expires_at": {"N": "4102444800"},
        }
        for n in range(13_000)
    ]
    backend = dynamodb_backends["123456789012"]["us-east-1"]
    for marker in markers:  # straight into moto: 520 BatchWriteItem calls take half a minute
        backend.put_item(table, marker)
    realtime.disconnect("c-busy")
    left = stack.ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "conn#c-busy"}},
        Select="COUNT",
    )
    assert left["Count"] == 0 and "LastEvaluatedKey" not in left
