"""Issue 12 under `make dev`: the seeds' origin clients, changing only the URL (and credentials).

004's dashboard connects with `?Authorization=Bearer%20<jwt>` and never sends a message;
003's StatusLambdaClient invokes the Lambda through the AWS SDK at
127.0.0.1:$LAMBDA_PORT; 002's curl clients POST a job spec to /submit.
"""

import json
import time
from urllib.parse import quote

import boto3
import pytest
import requests

from tests.conftest import token_for
from tests.e2e.test_websocket_e2e import statuses_until_finished

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
    """Issue 12: 'The origin client connects to the WebSocket as
    `wss://host/stage?Authorization=Bearer%20<jwt>` ... The origin client never sends a message
    after connecting: ... A connection that has not subscribed to anything receives every change
    of every task its owner may see (owner-scoped, of course)'."""
    from websockets.sync.client import connect

    url = f"{local_stack.ws}/?Authorization={quote('Bearer ' + token_for('alice'))}"
    with connect(url, proxy=None, open_timeout=10) as ws:
        local_stack.submit(SLEEP, user="dashboard-neighbour")
        job = local_stack.submit(SLEEP)
        payloads = statuses_until_finished(ws, job["jobId"])
        versions = [p["version"] for p in payloads]
        assert versions == sorted(set(versions)) and payloads[-1]["status"] == "completed"
        ws.close()


def test_a_subscriber_gets_version_1_once(local_stack):
    """Issue 12: 'push each version at most once per connection, including the state sent at
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
    """Issue 12: 'make dev serves the Lambda Invoke API (`POST
    /2015-03-31/functions/{name}/invocations`) on 127.0.0.1:8003 (`LAMBDA_PORT`) for every
    function of the app, so ... an SDK client with that endpoint reach[es] the same handler.'"""
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
    "name", ["taskstatus-local-worker", "taskstatus-local-ws_connect", "taskstatus-local"]
)
def test_every_function_of_the_app_is_invocable(local_stack, name):
    response = lambda_client(local_stack).invoke(
        FunctionName=name, InvocationType="DryRun", Payload=b"{}"
    )
    assert response["StatusCode"] == 204


def test_the_rest_handler_answers_an_api_gateway_event(local_stack):
    event = {
        "resource": "/health",
        "path": "/health",
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": "/health", "httpMethod": "GET", "stage": "api"},
        "body": None,
        "isBase64Encoded": False,
    }
    response = lambda_client(local_stack).invoke(
        FunctionName="taskstatus-local", Payload=json.dumps(event)
    )
    answer = json.loads(response["Payload"].read())
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"status": "ok"}


def test_an_unknown_function_is_resource_not_found(local_stack):
    client = lambda_client(local_stack)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="taskstatus-local-nope", Payload=b"{}")


def test_a_handler_that_raises_is_a_function_error(local_stack):
    # The reaper's handler reads a scheduled event's fields; `{}` has none of them.
    response = lambda_client(local_stack).invoke(
        FunctionName="taskstatus-local-reaper", Payload=b"{}"
    )
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"]


def test_an_auto_vid_client_submits_a_spec_and_polls_its_status(local_stack):
    """Issue 12: 'Serve `POST /submit` and `GET /status/{jobId}` as this contract's routes.'"""
    spec = {
        "jobInfo": {"projectId": "demo"},
        "assets": {"video": {"id": "v", "source": "s3://bucket/in.mp4"}, "audio": []},
        "timeline": [{"start": 0, "type": "tts", "data": {"text": "hi"}}],
        "output": {"filename": "out.mp4"},
    }
    headers = local_stack.headers()
    response = requests.post(f"{local_stack.api}/submit", json=spec, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    job_id = response.json()["jobId"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = requests.get(f"{local_stack.api}/status/{job_id}", headers=headers, timeout=10)
        if status.json()["status"] in {"completed", "failed"}:
            break
        time.sleep(0.1)
    assert status.json()["status"] == "completed" and status.json()["jobInfo"] == spec["jobInfo"]
