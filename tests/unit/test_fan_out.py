"""WebSocket fan-out per stream batch (the stream's second reader): subscriptions looked up
once per owner and batch, no Query at all for an owner nobody listens to, no subscriber
lost to the shortcut, every version pushed once per connection in order, and the reader
that queues tasks never waits on a push."""

import json
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest

from chalicelib import aws
from chalicelib.bootstrap import container
from chalicelib.model import Status
from chalicelib.realtime.pushes import PushHandler
from chalicelib.realtime.subscriptions import OPENING_SECONDS
from local.events import progress_records
from tests.unit.aws_faults import error_answer, hooked
from tests.unit.tasks import stored_task
from tests.unit.test_realtime import connected, pushes, realtime_now, sent


@pytest.fixture
def realtime(service):
    return container().realtime


@pytest.fixture
def handler(service):
    return container().push_handler


@pytest.fixture
def calls(service):
    """AWS operations made from here on, by name (DynamoDB and the management API)."""
    counted: Counter[str] = Counter()
    for client in (
        aws.client("dynamodb"),
        aws.client("apigatewaymanagementapi", service.settings.ws_endpoint_url),
    ):
        client.meta.events.register("before-call", lambda model, **_: counted.update([model.name]))
    return counted


def test_twenty_progress_reports_in_one_batch_cost_one_query_and_push_each(
    service, realtime, handler, calls
):
    connected(realtime, "f1", "alice")
    task = stored_task(service, Status.PROCESSING)
    calls.clear()
    assert handler.handle_batch(progress_records(service, task, 20)) == {"batchItemFailures": []}
    assert calls["Query"] == 1
    assert calls["PostToConnection"] == 20
    assert [p["progress"]["current"] for p in pushes("f1")] == list(range(1, 21))


def test_twenty_progress_reports_without_subscribers_cost_no_query(service, handler, calls):
    task = stored_task(service, Status.PROCESSING)
    for record in progress_records(service, task, 20):  # the worst case: one batch each
        handler.handle_batch([record])
    assert calls["Query"] == 0
    assert calls["BatchGetItem"] == 20  # one marker read per batch


def test_a_batch_reads_the_markers_of_all_its_owners_in_one_call(service, handler, calls):
    records = [
        record
        for owner in ("alice", "bob", "carol")
        for record in progress_records(
            service, stored_task(service, Status.PROCESSING, owner=owner), 3
        )
    ]
    handler.handle_batch(records)
    assert calls["BatchGetItem"] == 1 and calls["Query"] == 0


def test_another_owners_subscriber_does_not_make_an_owner_cost_a_query(
    service, realtime, handler, calls
):
    connected(realtime, "f2", "bob")
    task = stored_task(service, Status.PROCESSING, owner="alice")
    calls.clear()
    handler.handle_batch(progress_records(service, task, 5))
    assert calls["Query"] == 0 and pushes("f2") == []


def test_a_subscriber_who_arrives_during_a_batch_gets_every_later_batch(service, realtime, calls):
    task = stored_task(service, Status.PROCESSING)
    before, during, after = (task.replace(version=task.version + n) for n in (1, 2, 3))
    fan_out = realtime.batch(["alice"])
    assert fan_out.push(before) == 0  # nobody subscribed: markers read, no Query
    connected(realtime, "f3", "alice")
    fan_out.push(during)  # a change committed before the subscribe: may be skipped
    assert realtime.batch(["alice"]).push(after) == 1
    assert pushes("f3")[-1]["version"] == after.version


def test_a_connection_opened_without_subscribing_is_found_through_the_marker(
    service, realtime, handler
):
    from tests.conftest import token_for

    realtime.connect("f4", {"token": token_for("alice")})
    task = stored_task(service, Status.PROCESSING)
    handler.handle_batch(progress_records(service, task, 2))
    assert [p["version"] for p in pushes("f4")] == [task.version + 1, task.version + 2]


def test_a_marker_past_its_expiry_costs_no_query(service, realtime, calls, monkeypatch):
    from chalicelib.realtime import fanout as module

    connected(realtime, "f5", "alice")
    later = realtime_now() + timedelta(hours=3)  # API Gateway closed the connection at 2 h
    monkeypatch.setattr(module, "utcnow", lambda: later)
    calls.clear()
    assert realtime.on_task_change(stored_task(service, Status.COMPLETED)) == 0
    assert calls["Query"] == 0


def test_an_unread_marker_counts_as_subscribed(service, realtime, monkeypatch):
    """DynamoDB may leave keys of a BatchGetItem unprocessed: that owner must still be pushed."""
    connected(realtime, "f6", "alice")
    ddb = aws.client("dynamodb")

    def leave_unprocessed(parsed, model, **_):
        if model.name == "BatchGetItem":
            table = service.settings.records_table
            keys = [
                {"pk": item["pk"], "sk": {"S": "marker"}} for item in parsed["Responses"][table]
            ]
            parsed["Responses"][table] = []
            parsed["UnprocessedKeys"] = {table: {"Keys": keys}}

    ddb.meta.events.register("after-call.dynamodb.BatchGetItem", leave_unprocessed)
    try:
        assert realtime.on_task_change(stored_task(service, Status.COMPLETED)) == 1
    finally:
        ddb.meta.events.unregister("after-call.dynamodb.BatchGetItem", leave_unprocessed)


def test_a_connection_whose_token_expired_is_closed_once_per_batch(
    service, realtime, handler, calls, monkeypatch
):
    from chalicelib.realtime import fanout as module
    from tests.conftest import token_for

    realtime.connect("f7", {"token": token_for("alice", ttl=60)})
    task = stored_task(service, Status.PROCESSING)
    later = realtime_now() + timedelta(minutes=5)
    monkeypatch.setattr(module, "utcnow", lambda: later)
    calls.clear()
    handler.handle_batch(progress_records(service, task, 5))
    assert calls["DeleteConnection"] == 1 and calls["PostToConnection"] == 0
    assert realtime.subscriptions.connection("f7") is None


def test_a_batch_handed_over_again_pushes_nothing_twice(service, realtime, handler, calls):
    connected(realtime, "f8", "alice")
    records = progress_records(service, stored_task(service, Status.PROCESSING), 3)
    handler.handle_batch(records)
    handler.handle_batch(records)
    assert len(pushes("f8")) == 3


def test_pushes_to_many_connections_go_out_at_once(service, realtime, monkeypatch):
    """Ten connections whose pushes each take 0.3 s: sent one after another they would
    take 3 s; from the handler's threads, about one push's time per thread's share."""
    import threading
    import time

    for n in range(10):
        connected(realtime, f"c{n}", "alice")
    at_once, most = [0], [0]
    lock = threading.Lock()
    send = realtime.pusher.send

    def slow_send(connection_id, message):
        with lock:
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
        time.sleep(0.3)
        with lock:
            at_once[0] -= 1
        return send(connection_id, message)

    monkeypatch.setattr(realtime.pusher, "send", slow_send)
    task = stored_task(service, Status.PROCESSING)
    PushHandler(realtime, threads=10).handle_batch(progress_records(service, task, 1))
    assert most[0] > 1
    assert all(len(pushes(f"c{n}")) == 1 for n in range(10))


def test_one_owners_dashboards_never_hold_another_owners_task_from_its_queue(
    service, realtime, stack, calls
):
    """The attack: fifty WebSocket connections of alice, each push slow. The reader that
    queues tasks makes no WebSocket call, so bob's task is queued in the same pass."""
    from tests.unit.tasks import submitted_record

    for n in range(50):
        connected(realtime, f"d{n}", "alice")
    calls.clear()
    alices = stored_task(service, Status.SUBMITTED, owner="alice")
    bobs = stored_task(service, Status.SUBMITTED, owner="bob")
    queueing = container().stream_handler
    records = [submitted_record(service, alices), submitted_record(service, bobs)]
    assert queueing.handle_batch(records) == {"batchItemFailures": []}
    assert calls["PostToConnection"] == 0 and calls["Query"] == 0
    assert stack.queued_messages() == 2
    PushHandler(realtime).handle_batch(records)
    assert calls["PostToConnection"] == 50


@contextmanager
def gone(service, connection_id):
    """API Gateway answers every push to the connection 410 Gone while the block runs (as it
    does until a connection's handshake is done, and after its client left)."""
    client = aws.client("apigatewaymanagementapi", service.settings.ws_endpoint_url)

    def answer(params, **_):
        if params["url_path"].endswith(f"/{connection_id}"):
            return error_answer("GoneException", 410)
        return None

    with hooked(
        client.meta.events, [("before-call.apigatewaymanagementapi.PostToConnection", answer)]
    ):
        yield


def test_a_connection_still_opening_is_kept_when_a_push_to_it_is_gone(service, realtime, handler):
    """Seen in CI: a change pushed between the $connect and the end of the handshake was
    answered Gone, the connection was removed, and the client's subscribe then found
    "unknown connection". Now the subscribe is answered."""
    realtime.subscriptions.add_connection("opening", "alice", realtime_now())
    task = stored_task(service, Status.PROCESSING)
    with gone(service, "opening"):
        handler.handle_batch(progress_records(service, task, 1))
    realtime.message("opening", json.dumps({"action": "subscribe", "taskId": task.id}))
    assert sent("opening")[0]["type"] == "subscribed"


def test_a_push_that_met_an_opening_connection_goes_to_it_once_it_subscribes(
    service, realtime, handler
):
    """The push met the connection before its handshake ended, so its claim is given back:
    the subscribe then sends the task's state (here the stored version, older than the
    record's, which a kept claim would have held back)."""
    realtime.subscriptions.add_connection("opening", "alice", realtime_now())
    task = stored_task(service, Status.PROCESSING)
    with gone(service, "opening"):
        handler.handle_batch(progress_records(service, task, 1))
    realtime.message("opening", json.dumps({"action": "subscribe", "taskId": task.id}))
    assert [p["version"] for p in pushes("opening")] == [task.version]


def test_a_connection_gone_after_it_opened_is_removed(service, realtime, handler):
    opened = realtime_now() - timedelta(seconds=OPENING_SECONDS + 1)
    realtime.subscriptions.add_connection("left", "alice", opened)
    task = stored_task(service, Status.PROCESSING)
    with gone(service, "left"):
        handler.handle_batch(progress_records(service, task, 1))
    assert realtime.subscriptions.connection("left") is None


@pytest.mark.parametrize("age, kept", [(0, True), (OPENING_SECONDS + 1, False)])
def test_an_operator_connection_is_let_go_when_gone_only_once_it_has_opened(
    service, realtime, handler, age, kept
):
    opened = realtime_now() - timedelta(seconds=age)
    realtime.subscriptions.add_connection("ops", "operator-1", opened)
    now = int(realtime_now().timestamp())
    realtime.operators.add("ops", now, now + 3600)
    task = stored_task(service, Status.PROCESSING)
    with gone(service, "ops"):
        handler.handle_batch(progress_records(service, task, 1))
    assert ("ops" in realtime.operators.connections(now)) is kept
