"""The dev runner's own events (local/events.py), run through the app's handlers."""

import json

from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

from local.events import LambdaContext, sqs_event, ws_event
from tests.conftest import token_for

EVENTBRIDGE_FIELDS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}


def test_the_dev_runners_schedule_runs_the_reaper(stack):
    from local import dev

    seen = []
    original = stack.app.reaper

    def reaper(event, context):
        seen.append(event)
        return original(event, context)

    assert dev.fire_schedule(reaper, "reaper") == {
        "failed": [],
        "released": [],
        "admitted": [],
        "resumed": [],
        "fired": 0,
    }
    assert set(seen[0]) == EVENTBRIDGE_FIELDS
    assert seen[0]["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/taskstatus-local-reaper"
    ]


def test_the_dev_runners_sqs_event_has_lambdas_shape_and_runs_the_worker(stack):
    from local.pumps import SqsPump

    stack.sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody=json.dumps({"taskId": "0" * 32, "type": "demo/sleep"}),
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
    )
    events = []

    def worker(event, context):
        events.append(event)
        return stack.app.worker(event, context)

    assert SqsPump(stack.sqs, stack.queue_url, worker, "worker").run_once() == 1
    [record] = events[0]["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"] == {
        "origin": {
            "stringValue": "test",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    assert stack.queued_messages() == 0  # an unknown task: the worker drops it


def test_the_dev_runners_websocket_events_run_the_websocket_handlers(stack):
    connect = ws_event("$connect", "conn1", 8001, queryStringParameters={"token": token_for("a")})
    assert stack.app.ws_connect(connect, LambdaContext("ws_connect"))["statusCode"] == 200
    ping = ws_event("$default", "conn1", 8001, body='{"action":"ping"}')
    stack.app.ws_message(ping, LambdaContext("ws_message"))
    backend = apigatewaymanagementapi_backends["123456789012"]["us-east-1"]
    assert json.loads(backend.connections["conn1"].data) == {"type": "pong"}
    stack.app.ws_disconnect(ws_event("$disconnect", "conn1", 8001), LambdaContext("ws_disconnect"))


def test_a_websocket_message_event_names_its_message_and_connect_time():
    event = ws_event("$default", "c", 8001, connected_at=1767268800.5, body="{}")
    context = event["requestContext"]
    assert context["eventType"] == "MESSAGE" and context["messageId"]
    assert context["connectedAt"] == 1767268800500
    assert "messageId" not in ws_event("$connect", "c", 8001)["requestContext"]


def test_the_invoke_context_has_the_functions_configured_memory_and_timeout():
    context = LambdaContext("worker")
    assert context.function_name == "taskstatus-local-worker"
    assert context.invoked_function_arn.endswith(":function:taskstatus-local-worker")
    assert context.memory_limit_in_mb == 1024
    assert 119_000 < context.get_remaining_time_in_millis() <= 120_000


def test_an_sqs_event_without_messages_attributes_has_empty_ones():
    event = sqs_event([{"MessageId": "m", "ReceiptHandle": "r", "Body": "{}"}], "https://q/x")
    assert event["Records"][0]["messageAttributes"] == {}
    assert event["Records"][0]["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:x"
