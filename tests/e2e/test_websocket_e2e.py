"""WebSocket pushes under `make dev`: a real client on the local gateway."""

import json
import time

import boto3
import jwt
import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.conftest import JWT_SECRET
from tests.e2e import HTTP_TIMEOUT


def send(ws, **message):
    ws.send(json.dumps(message))


def next_message(ws, timeout=10):
    return json.loads(ws.recv(timeout=timeout))


def statuses_until_finished(ws, job_id, timeout=20):
    payloads, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = next_message(ws, timeout=deadline - time.monotonic())
        if message["type"] == "task_status" and message["payload"]["task_id"] == job_id:
            payloads.append(message["payload"])
            if message["payload"]["status"] in {"completed", "failed"}:
                return payloads
    raise AssertionError(f"no final status; got {payloads}")


def test_a_subscriber_sees_every_status_from_started_to_completed_in_version_order(local_stack):
    with local_stack.websocket() as ws:
        send(ws, action="subscribe", operation="demo/sleep")
        assert next_message(ws) == {"type": "subscribed", "operation": "demo/sleep"}
        job = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 1.5, "steps": 3}})
        payloads = statuses_until_finished(ws, job["jobId"])
    versions = [p["version"] for p in payloads]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    statuses = [p["status"] for p in payloads]
    assert statuses[0] == "started" and statuses[-1] == "completed" and "processing" in statuses
    progress = [p["progress"]["current"] for p in payloads if "progress" in p]
    assert progress == sorted(progress) and progress[-1] == 3


def history(local_stack, job_id):
    """The job's status at each version, as `GET /jobs/{jobId}/events` records it."""
    response = requests.get(
        f"{local_stack.api}/jobs/{job_id}/events",
        headers=local_stack.headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return {event["version"]: event["status"] for event in response.json()["events"]}


def test_a_native_subscriber_reads_each_change_in_canonical_words_beside_seed_004s(local_stack):
    with local_stack.websocket() as ws:
        send(ws, action="subscribe", operation="demo/sleep")
        assert next_message(ws) == {"type": "subscribed", "operation": "demo/sleep"}
        job = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 1, "steps": 2}})
        messages, deadline = [], time.monotonic() + 20
        while not messages or messages[-1]["job"]["status"] != "completed":
            message = next_message(ws, timeout=deadline - time.monotonic())
            if message["type"] == "task_status" and message["payload"]["task_id"] == job["jobId"]:
                messages.append(message)
    recorded = history(local_stack, job["jobId"])
    assert [m["job"]["version"] for m in messages] == [m["payload"]["version"] for m in messages]
    assert {m["job"]["version"]: m["job"]["status"] for m in messages} == recorded
    assert messages[0]["job"]["status"] == "submitted" != messages[0]["payload"]["status"]


def test_a_bad_token_is_refused_at_connect(local_stack):
    with pytest.raises(InvalidStatus) as refused:
        local_stack.websocket(token="not-a-token")
    assert refused.value.response.status_code == 401


def test_an_expired_token_is_refused_at_connect(local_stack):
    expired = jwt.encode({"sub": "alice", "exp": int(time.time()) - 120}, JWT_SECRET, "HS256")
    with pytest.raises(InvalidStatus):
        local_stack.websocket(token=expired)


def test_a_user_cannot_subscribe_to_another_users_task(local_stack):
    job = local_stack.submit(
        {"type": "demo/sleep", "input": {"seconds": 1, "steps": 2}}, user="alice"
    )
    # Another user with no task of their own anywhere in the session: any push would be alice's.
    with local_stack.websocket(user="not-alice") as ws:
        send(ws, action="subscribe", taskId=job["jobId"])
        assert next_message(ws) == {
            "type": "error",
            "message": f"task {job['jobId']} was not found",
        }
        send(ws, action="ping")
        assert next_message(ws) == {"type": "pong"}  # nothing about alice's task came in between
        local_stack.wait_until_finished(job["jobId"])
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)


def subscribed_to_final_state(ws, job_id, timeout=10):
    """Subscribe to a finished task; the confirmation and its final state, in either order:
    until its first subscribe a connection also gets its owner's changes, so the stream's
    push of the final version may come first (and then is not sent again)."""
    send(ws, action="subscribe", taskId=job_id)
    confirmed, state, deadline = False, None, time.monotonic() + timeout
    while not (confirmed and state and state["payload"]["status"] == "completed"):
        message = next_message(ws, timeout=deadline - time.monotonic())
        confirmed = confirmed or message["type"] == "subscribed"
        if message["type"] == "task_status" and message["payload"]["task_id"] == job_id:
            state = message
    return state


def test_a_late_subscriber_gets_the_final_state_at_once(local_stack):
    user = "late-subscriber"
    job = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user=user)
    final = local_stack.wait_until_finished(job["jobId"], user=user)[-1]
    with local_stack.websocket(user=user) as ws:
        state = subscribed_to_final_state(ws, job["jobId"])
    assert state["payload"]["status"] == final["status"] == "completed"


def test_a_reconnecting_client_gets_only_what_is_newer_than_its_version(local_stack):
    user = "reconnecting-client"
    job = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user=user)
    local_stack.wait_until_finished(job["jobId"], user=user)
    with local_stack.websocket(user=user) as ws:
        version = subscribed_to_final_state(ws, job["jobId"])["payload"]["version"]
    with local_stack.websocket(user=user) as ws:
        send(ws, action="subscribe", taskId=job["jobId"], sinceVersion=version)
        assert next_message(ws)["type"] == "subscribed"
        send(ws, action="ping")
        assert next_message(ws) == {"type": "pong"}


def test_a_vanished_connection_is_removed_on_the_next_push(local_stack):
    records = boto3.client(
        "dynamodb",
        endpoint_url=local_stack.emulator,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    table = "taskstatus-local-records"
    ghost = "ghost-connection"  # its $disconnect never arrived
    for item in (
        {"pk": {"S": f"conn#{ghost}"}, "sk": {"S": "conn"}, "owner": {"S": "carol"}},
        {
            "pk": {"S": f"conn#{ghost}"},
            "sk": {"S": "sub#all#*"},
            "gpk": {"S": "sub#carol"},
            "gsk": {"S": f"{ghost}#all#*"},
        },
        {"pk": {"S": "subscribers#carol"}, "sk": {"S": "marker"}},  # written at connect
    ):
        records.put_item(
            TableName=table, Item={**item, "expires_at": {"N": str(int(time.time()) + 3600)}}
        )
    job = local_stack.submit({"type": "demo/sleep", "input": {"seconds": 0}}, user="carol")
    local_stack.wait_until_finished(job["jobId"], user="carol")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = records.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"conn#{ghost}"}},
        )["Items"]
        if not left:
            break
        time.sleep(0.1)
    assert left == []
