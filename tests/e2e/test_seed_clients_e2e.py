"""The seeds' origin clients under `make dev`, changing only the URL (and credentials).

004's dashboard connects with `?Authorization=Bearer%20<jwt>` and never sends a message;
003's StatusLambdaClient invokes the Lambda through the AWS SDK at
127.0.0.1:$LAMBDA_PORT; 002's curl clients POST a job spec to /submit.
"""

import json
import time
import uuid
from urllib.parse import quote

import boto3
import pytest
import requests

from tests.conftest import token_for
from tests.e2e import HTTP_TIMEOUT
from tests.e2e.test_websocket_e2e import statuses_until_finished
from tests.receiver import Receiver

SLEEP = {"type": "demo/sleep", "input": {"seconds": 0.5, "steps": 2}}


def lambda_client(local_stack):
    return boto3.client(
        "lambda",
        endpoint_url=local_stack.lambda_api,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_the_dashboard_connects_with_authorization_and_gets_every_change_unasked(local_stack):
    """The origin: 'The origin client connects to the WebSocket as
    `wss://host/stage?Authorization=Bearer%20<jwt>` ... The origin client never sends a message
    after connecting: ... A connection that has not subscribed to anything receives every change
    of every task its owner may see (owner-scoped, of course)'."""
    from websockets.sync.client import connect

    url = f"{local_stack.ws}/?Authorization={quote('Bearer ' + token_for('alice'))}"
    with connect(url, proxy=None, open_timeout=HTTP_TIMEOUT) as ws:
        local_stack.submit(SLEEP, user="dashboard-neighbour")
        job = local_stack.submit(SLEEP)
        payloads = statuses_until_finished(ws, job["jobId"])
        versions = [p["version"] for p in payloads]
        assert versions == sorted(set(versions)) and payloads[-1]["status"] == "completed"
        ws.close()


def test_a_subscriber_gets_version_1_once(local_stack):
    """The origin: 'push each version at most once per connection, including the state sent at
    subscribe time (today a subscriber receives version 1 twice).'"""
    with local_stack.websocket() as ws:
        job = local_stack.submit(SLEEP)
        ws.send(json.dumps({"action": "subscribe", "taskId": job["jobId"]}))
        payloads = statuses_until_finished(ws, job["jobId"])
    versions = [p["version"] for p in payloads]
    assert versions == sorted(set(versions))


def finished_job(local_stack, user="alice"):
    job = local_stack.submit(SLEEP, user=user)
    local_stack.wait_until_finished(job["jobId"], user=user)
    return job["jobId"]


def test_the_sdk_invokes_the_status_lambda_locally(local_stack):
    """`make dev` serves the Lambda Invoke API on 127.0.0.1:$LAMBDA_PORT for the function a
    client invokes: an SDK client with that endpoint reaches the same handler as in AWS."""
    job_id = finished_job(local_stack)
    response = lambda_client(local_stack).invoke(
        FunctionName="taskstatus-local-status",
        Payload=json.dumps({"assemblyId": job_id, "userId": "alice"}),
    )
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    answer = json.loads(response["Payload"].read())
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["ok"] == "ASSEMBLY_COMPLETED"


@pytest.mark.parametrize(
    "name",
    [
        "taskstatus-local-worker",
        "taskstatus-local-stream",
        "taskstatus-local-webhooks",
        "taskstatus-local-reaper",
        "taskstatus-local-ws_connect",
        "taskstatus-local",  # the REST handler: an API Gateway event names its own caller
        "arn:aws:lambda:us-east-1:123456789012:function:taskstatus-local-worker:$LATEST",
    ],
)
def test_an_internal_function_cannot_be_invoked(local_stack, name):
    """The attack: invoke a function that in AWS only its event source may call."""
    client = lambda_client(local_stack)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, Payload=b"{}")


def tasks_table(local_stack) -> str:
    names = local_stack.aws("dynamodb").list_tables()["TableNames"]
    return next(name for name in names if "-tasks" in name)


def test_a_forged_stream_record_delivers_no_webhook(local_stack):
    """The attack: a stream record for a task that never existed, owned by a victim, with the
    attacker's receiver as its webhook. Were the stream function served, the stack would sign
    a delivery with the victim's secret and send it."""
    receiver = Receiver([200])
    try:
        webhook = {"webhook": {"url": receiver.url}}
        genuine = local_stack.submit({**SLEEP, **webhook}, user="forgery-victim")["jobId"]
        local_stack.wait_until_finished(genuine, user="forgery-victim")
        item = local_stack.aws("dynamodb").get_item(
            TableName=tasks_table(local_stack), Key={"id": {"S": genuine}}
        )["Item"]
        forged_id = str(uuid.uuid4())
        new = {**item, "id": {"S": forged_id}}
        old = {**new, "status": {"S": "processing"}}
        record = {
            "eventID": uuid.uuid4().hex,
            "eventName": "MODIFY",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"id": {"S": forged_id}},
                "NewImage": new,
                "OldImage": old,
                "SequenceNumber": "1",
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        }
        client = lambda_client(local_stack)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(
                FunctionName="taskstatus-local-stream",
                Payload=json.dumps({"Records": [record]}),
            )
        # A delivery queued by the forgery would be sent before this later job's.
        later = local_stack.submit({**SLEEP, **webhook}, user="forgery-victim")["jobId"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not delivered_for(receiver, later):
            time.sleep(0.05)
        assert delivered_for(receiver, later)
        assert {json.loads(d.body)["jobId"] for d in receiver.deliveries} == {genuine, later}
    finally:
        receiver.close()


def delivered_for(receiver: Receiver, job_id: str) -> bool:
    return any(json.loads(d.body).get("jobId") == job_id for d in receiver.deliveries)


def test_the_status_lambda_answers_a_dry_run(local_stack):
    response = lambda_client(local_stack).invoke(
        FunctionName="taskstatus-local-status", InvocationType="DryRun", Payload=b"{}"
    )
    assert response["StatusCode"] == 204


def test_an_unknown_function_is_resource_not_found(local_stack):
    client = lambda_client(local_stack)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="taskstatus-local-nope", Payload=b"{}")


def test_an_auto_vid_client_submits_a_spec_and_polls_its_status(local_stack):
    """The origin: 'Serve `POST /submit` and `GET /status/{jobId}` as this contract's routes.'"""
    spec = {
        "jobInfo": {"projectId": "demo"},
        "assets": {"video": {"id": "v", "source": "s3://bucket/in.mp4"}, "audio": []},
        "timeline": [{"start": 0, "type": "tts", "data": {"text": "hi"}}],
        "output": {"filename": "out.mp4"},
    }
    headers = local_stack.headers()
    response = requests.post(
        f"{local_stack.api}/submit", json=spec, headers=headers, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = requests.get(
            f"{local_stack.api}/status/{job_id}", headers=headers, timeout=HTTP_TIMEOUT
        )
        if status.json()["status"] in {"completed", "failed"}:
            break
        time.sleep(0.1)
    assert status.json()["status"] == "completed" and status.json()["jobInfo"] == spec["jobInfo"]
