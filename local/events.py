"""Every event the local stack hands to the app, built as AWS builds it.

One module for the dev runner (local/dev.py, pumps.py, ws_gateway.py) and the tests, so
the tests run the handlers on exactly the events `make dev` sends:
  - `sqs_event`: Lambda's SQS event source mapping (attributes as strings, message
    attributes in Lambda's camelCase shape);
  - `stream_event`: Lambda's DynamoDB stream event source mapping;
  - `scheduled_event`: an EventBridge `rate(...)` rule's event;
  - `ws_event`: API Gateway's WebSocket events ($connect, $default, $disconnect);
  - `LambdaContext`: the context object of an invocation (also for `aws lambda invoke`).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.model import Progress

if TYPE_CHECKING:
    from chalicelib.model import Task
    from chalicelib.service import TaskService

REGION = "us-east-1"
ACCOUNT = "123456789012"
APP_NAME = "taskstatus"
STAGE = "local"
CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"


@cache
def function_settings(name: str) -> tuple[int, int]:
    """(memory in MB, timeout in seconds) of a function, from .chalice/config.json."""
    config = json.loads(CONFIG.read_text())
    own = config.get("lambda_functions", {}).get(name, {})
    memory = own.get("lambda_memory_size", config.get("lambda_memory_size", 128))
    timeout = own.get("lambda_timeout", config.get("lambda_timeout", 3))
    return int(memory), int(timeout)


def function_name(name: str) -> str:
    """The deployed name of one of the app's functions (`chalice deploy` naming)."""
    return f"{APP_NAME}-{STAGE}-{name}"


class LambdaContext:
    """The Lambda context object of one invocation of the app's function `name`."""

    def __init__(self, name: str, timeout_seconds: int | None = None) -> None:
        memory, timeout = function_settings(name)
        deployed = function_name(name)
        self.function_name = deployed
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{deployed}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{deployed}"
        now = datetime.now(UTC)
        self.log_stream_name = f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.timeout_seconds = timeout if timeout_seconds is None else timeout_seconds
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def queue_arn(queue_url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_url.rsplit('/', 1)[-1]}"


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """boto3's `{"StringValue", "DataType"}` as Lambda's `{"stringValue", "dataType"}`."""
    converted: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        import base64

        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return converted


def sqs_event(messages: list[dict[str, Any]], queue_url: str) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping delivers it."""
    records = []
    for message in messages:
        body = message["Body"]
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "attributes": {k: str(v) for k, v in message.get("Attributes", {}).items()},
                "messageAttributes": {
                    name: _message_attribute(value)
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn(queue_url),
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB stream event as Lambda delivers it (timestamps as epoch seconds)."""
    converted = []
    for record in records:
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        elif created is None:
            dynamodb["ApproximateCreationDateTime"] = datetime.now().timestamp()
        dynamodb.setdefault("SizeBytes", 0)
        dynamodb.setdefault("StreamViewType", "NEW_AND_OLD_IMAGES")
        converted.append(
            {
                "eventID": record.get("eventID", uuid.uuid4().hex),
                "eventName": record["eventName"],
                "eventVersion": record.get("eventVersion", "1.1"),
                "eventSource": "aws:dynamodb",
                "awsRegion": record.get("awsRegion", REGION),
                "dynamodb": dynamodb,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": converted}


def stream_failure_record(
    records: list[dict[str, Any]], stream_arn: str, shard_id: str, function: str, invokes: int
) -> dict[str, Any]:
    """What Lambda sends a stream mapping's on-failure destination: where the records
    were (DDBStreamBatchInfo), never the records themselves."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(function)}",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invokes,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": now,
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": now,
            "approximateArrivalOfLastRecord": now,
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def scheduled_event(rule: str) -> dict[str, Any]:
    """An EventBridge scheduled event, as a `rate(...)` rule sends it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def schedule_rule(name: str) -> str:
    """The rule name `chalice deploy` gives the schedule of function `name`."""
    return function_name(name)


WS_EVENT_TYPES = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}


def ws_event(
    route_key: str,
    connection_id: str,
    port: int,
    connected_at: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An API Gateway WebSocket event for `route_key` on a connection made at `connected_at`."""
    now = datetime.now(UTC)
    request_context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": WS_EVENT_TYPES.get(route_key, "MESSAGE"),
        "extendedRequestId": uuid.uuid4().hex[:16],
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "messageDirection": "IN",
        "connectionId": connection_id,
        "domainName": f"127.0.0.1:{port}",
        "stage": STAGE,
        "apiId": "local",
        "accountId": ACCOUNT,
        "requestId": uuid.uuid4().hex,
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "connectedAt": int((connected_at or now.timestamp()) * 1000),
        "identity": {"sourceIp": "127.0.0.1"},
    }
    if route_key not in WS_EVENT_TYPES:
        request_context["messageId"] = uuid.uuid4().hex[:16]
    return {"requestContext": request_context, "isBase64Encoded": False, **extra}


def progress_records(service: TaskService, task: Task, reports: int) -> list[dict[str, Any]]:
    """The stream records of `reports` progress writes to one task, oldest first (tests, bench)."""
    records: list[dict[str, Any]] = []
    for step in range(1, reports + 1):
        progress = Progress(current=step, total=reports, message="working")
        changed = task.replace(version=task.version + step, progress=progress)
        image = service.store.attributes(changed)
        sequence = str(1000 + step)
        records.append(
            {
                "eventID": sequence,
                "eventName": "MODIFY",
                "dynamodb": {
                    "Keys": {"id": image["id"]},
                    "NewImage": image,
                    "SequenceNumber": sequence,
                },
            }
        )
    return records
