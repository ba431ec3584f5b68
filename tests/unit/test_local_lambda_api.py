"""`make dev`'s Lambda Invoke API (local/lambda_api.py): the SDK gets in, browsers and forgeries
do not. Each refusal is written as the request an attacker's page or program would send."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from chalicelib.model import Status
from local.lambda_api import LambdaApi, functions
from tests.unit.tasks import stored_task

STATUS = "/2015-03-31/functions/taskstatus-local-status/invocations"
SIGNED = (
    "AWS4-HMAC-SHA256 Credential=testing/20261207/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


@pytest.fixture
def lambda_api(stack) -> Iterator[LambdaApi]:
    api = LambdaApi(functions(stack.app, "taskstatus", "local"), 0)
    api.start()
    yield api
    api.stop()
    api.server.server_close()


def sdk(api: LambdaApi) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=api.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def post(api: LambdaApi, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """One raw POST, with exactly these headers (http.client adds Host unless it is given)."""
    address = urlsplit(api.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        skip_host = any(name.lower() == "host" for name in headers)
        connection.putrequest("POST", path, skip_host=skip_host, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        answer = response.read()
        return response.status, {"type": response.getheader("x-amzn-ErrorType"), "body": answer}
    finally:
        connection.close()


def forged_status_lookup(task_id: str) -> bytes:
    return json.dumps({"assemblyId": task_id}).encode()


def test_only_the_function_a_client_invokes_is_served(stack):
    assert set(functions(stack.app, "taskstatus", "local")) == {"taskstatus-local-status"}


def test_the_sdk_invokes_the_status_function(lambda_api, service):
    task = stored_task(service, Status.COMPLETED)
    response = sdk(lambda_api).invoke(
        FunctionName="taskstatus-local-status",
        Payload=json.dumps({"assemblyId": task.id, "userId": task.owner}),
    )
    answer = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200 and answer["statusCode"] == 200


def test_a_cross_origin_fetch_from_a_web_page_is_refused(lambda_api, service):
    """What `fetch("http://127.0.0.1:8003/...", {method: "POST", mode: "no-cors", body})`
    sends from any page: no preflight, so the function would run before CORS could say no."""
    status, answer = post(
        lambda_api,
        STATUS,
        forged_status_lookup(stored_task(service, Status.COMPLETED).id),
        {
            "Host": "127.0.0.1",
            "Origin": "https://attacker.example",
            "Content-Type": "text/plain;charset=UTF-8",
            "Sec-Fetch-Mode": "no-cors",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert (status, answer["type"]) == (403, "AccessDeniedException")
    assert b"browsers may not call" in answer["body"]


def test_a_browser_request_is_refused_by_its_origin_alone(lambda_api):
    status, answer = post(
        lambda_api,
        STATUS,
        b"{}",
        {"Host": "127.0.0.1", "Origin": "null", "Authorization": SIGNED},
    )
    assert (status, answer["type"]) == (403, "AccessDeniedException")


def test_a_browser_request_without_origin_is_refused_by_its_fetch_metadata(lambda_api):
    status, answer = post(
        lambda_api,
        STATUS,
        b"{}",
        {"Host": "127.0.0.1", "Sec-Fetch-Site": "cross-site", "Authorization": SIGNED},
    )
    assert (status, answer["type"]) == (403, "AccessDeniedException")


def test_a_dns_rebinding_host_is_refused(lambda_api, service):
    """A page on rebind.attacker.example, whose name now resolves to 127.0.0.1, reaches this
    port as its own origin; its requests still name their host."""
    status, answer = post(
        lambda_api,
        STATUS,
        forged_status_lookup(stored_task(service, Status.COMPLETED).id),
        {"Host": "rebind.attacker.example:8003", "Authorization": SIGNED},
    )
    assert (status, answer["type"]) == (403, "AccessDeniedException")
    assert b"rebind.attacker.example" in answer["body"]


@pytest.mark.parametrize("host", ["127.0.0.1:8003", "localhost:8003", "[::1]:8003", "LOCALHOST"])
def test_loopback_hosts_are_accepted(lambda_api, host):
    status, _ = post(lambda_api, STATUS, b"{}", {"Host": host, "Authorization": SIGNED})
    assert status == 200


def test_an_unsigned_request_is_refused(lambda_api):
    status, answer = post(lambda_api, STATUS, b"{}", {"Host": "127.0.0.1"})
    assert (status, answer["type"]) == (403, "MissingAuthenticationTokenException")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_content_type_a_form_can_send_is_refused(lambda_api, content_type):
    status, answer = post(
        lambda_api,
        STATUS,
        b"{}",
        {"Host": "127.0.0.1", "Authorization": SIGNED, "Content-Type": content_type},
    )
    assert (status, answer["type"]) == (415, "UnsupportedMediaTypeException")


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/json"])
def test_the_content_types_the_sdks_send_are_accepted(lambda_api, content_type):
    status, _ = post(
        lambda_api,
        STATUS,
        b"{}",
        {"Host": "127.0.0.1", "Authorization": SIGNED, "Content-Type": content_type},
    )
    assert status == 200


def test_a_handler_that_raises_is_a_function_error():
    def broken(event: Any, context: Any) -> Any:
        raise RuntimeError("broken")

    api = LambdaApi({"taskstatus-local-status": broken}, 0)
    api.start()
    try:
        response = sdk(api).invoke(FunctionName="taskstatus-local-status", Payload=b"{}")
    finally:
        api.stop()
        api.server.server_close()
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "RuntimeError"
