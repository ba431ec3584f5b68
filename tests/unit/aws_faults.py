"""AWS answering with an error on a named call: a botocore `before-call` hook returns the
answer AWS gives when it throttles or is unavailable (after botocore's own retries), so
the client raises exactly what it would raise against AWS; or a `before-send` hook loses
the answer of a call AWS applied (`answer_lost_after_write`). The service itself stays moto."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from chalicelib import aws

# What AWS answers when it throttles or fails, with the HTTP status it answers it with.
OVERLOAD_ANSWERS = {
    "ProvisionedThroughputExceededException": 400,
    "ThrottlingException": 400,
    "RequestLimitExceeded": 400,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
}
CONNECTION_LOST = "connection-lost"  # no answer at all: botocore gave up connecting
ANSWER_LOST = "answer-lost"  # the request went out, its answer never came (a read timeout)
EVERY_FAULT = [*OVERLOAD_ANSWERS, CONNECTION_LOST]


def error_answer(code: str, status: int = 400, **extra: Any) -> tuple[AWSResponse, dict]:
    parsed = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return AWSResponse("https://aws.invalid/", status, {}, None), parsed


def throttled_transaction_answer() -> tuple[AWSResponse, dict]:
    """DynamoDB cancels a transaction whose item was throttled (no condition failed)."""
    return error_answer(
        "TransactionCanceledException",
        CancellationReasons=[{"Code": "ThrottlingError", "Message": "Throughput exceeds"}],
    )


@contextmanager
def hooked(events: Any, hooks: list[tuple[str, Callable[..., Any]]]) -> Iterator[None]:
    """botocore's event `hooks` registered on the client's `events` while the block runs."""
    for event, hook in hooks:
        events.register(event, hook, unique_id=f"fault-{event}-{id(hook)}")
    try:
        yield
    finally:
        for event, hook in hooks:
            events.unregister(event, unique_id=f"fault-{event}-{id(hook)}")


@contextmanager
def aws_fails(
    service: str, operation: str, fault: str, times: int | None = None
) -> Iterator[list[str]]:
    """`operation` of `service` fails with `fault` (an error code such as those of
    OVERLOAD_ANSWERS, CONNECTION_LOST, or "TransactionCanceledException": throttled),
    `times` times or for as long as the block runs. Yields the list of calls it failed."""
    failed: list[str] = []

    def answer(model: Any, **_: Any) -> Any:
        if times is not None and len(failed) >= times:
            return None
        failed.append(model.name)
        if fault == CONNECTION_LOST:
            raise EndpointConnectionError(endpoint_url="https://aws.invalid/")
        if fault == ANSWER_LOST:
            raise ReadTimeoutError(endpoint_url="https://aws.invalid/")
        if fault == "TransactionCanceledException":
            return throttled_transaction_answer()
        return error_answer(fault, OVERLOAD_ANSWERS.get(fault, 400))

    events = aws.client(service).meta.events
    event = f"before-call.{service}.{operation}"
    events.register(event, answer, unique_id=f"aws-fails-{id(answer)}")
    try:
        yield failed
    finally:
        events.unregister(event, unique_id=f"aws-fails-{id(answer)}")


@contextmanager
def answer_lost_after_write(service: str, operation: str, times: int = 1) -> Iterator[list[str]]:
    """`operation` of `service` reaches AWS and is applied, and then its answer is lost (a
    read timeout), `times` times: botocore sends the same request again, as it does when
    DynamoDB applies a write late, and the retry meets the write its first attempt made.

    The hook runs after moto's own `before-send` handler, which has already applied the
    request and built its answer; raising there throws that answer away. (botocore calls
    the handlers of a named event before those of plain `before-send`, where moto's is: so
    this one is registered last on plain `before-send` and picks its operation itself.)
    Yields the list of calls whose answer it lost."""
    lost: list[str] = []
    client = aws.client(service)
    wanted = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"

    def lose_answer(request: Any, event_name: str, **_: Any) -> None:
        if event_name != wanted or len(lost) >= times:
            return
        lost.append(operation)
        raise ReadTimeoutError(endpoint_url=request.url)

    unique_id = f"answer-lost-{id(lose_answer)}"
    client.meta.events.register_last("before-send", lose_answer, unique_id=unique_id)
    try:
        yield lost
    finally:
        client.meta.events.unregister("before-send", unique_id=unique_id)


@contextmanager
def sqs_refuses_messages(
    refused: Callable[[str], bool], code: str, sender_fault: bool = True, times: int | None = None
) -> Iterator[list[str]]:
    """SendMessageBatch answers as SQS does when it refuses some of a batch's messages: the
    others are sent, each refused one is listed under `Failed` with `code` (SenderFault: the
    message itself is wrong, so it will never pass). `refused(body)` picks them; `times`
    calls refuse them, or every call while the block runs. Yields the bodies refused."""
    held: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    bodies: list[str] = []
    calls: list[int] = []

    def drop_refused(params: dict[str, Any], **_: Any) -> None:
        if times is not None and len(calls) >= times:
            held[:], kept[:] = [], list(params["Entries"])
            return
        calls.append(1)
        held[:] = [entry for entry in params["Entries"] if refused(entry["MessageBody"])]
        kept[:] = [entry for entry in params["Entries"] if not refused(entry["MessageBody"])]
        params["Entries"] = list(kept)
        bodies.extend(entry["MessageBody"] for entry in held)

    def answer_nothing_to_send(**_: Any) -> Any:
        if kept:
            return None
        return AWSResponse("https://aws.invalid/", 200, {}, None), {"Successful": []}

    def list_refused(parsed: dict[str, Any], **_: Any) -> None:
        message = f"injected {code}"
        parsed.setdefault("Failed", []).extend(
            {"Id": e["Id"], "SenderFault": sender_fault, "Code": code, "Message": message}
            for e in held
        )

    events = aws.client("sqs").meta.events
    hooks = [
        ("before-parameter-build.sqs.SendMessageBatch", drop_refused),
        ("before-call.sqs.SendMessageBatch", answer_nothing_to_send),
        ("after-call.sqs.SendMessageBatch", list_refused),
    ]
    with hooked(events, hooks):
        yield bodies


# Where each batched DynamoDB call lists its requests, and where it answers those left undone.
_BATCH_PARTS = {"BatchWriteItem": "UnprocessedItems", "BatchGetItem": "UnprocessedKeys"}


@contextmanager
def dynamodb_leaves_unprocessed(
    operation: str, picked: Callable[[dict[str, Any]], bool], times: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """BatchWriteItem or BatchGetItem answers as DynamoDB does when it throttles some of a
    batch's items: the others are done, the picked ones (a write request, or a key) are not,
    and come back under `UnprocessedItems` / `UnprocessedKeys` for the caller to send again;
    `times` calls, or for as long as the block runs. Yields the requests it left undone."""
    undone: list[dict[str, Any]] = []
    calls: list[int] = []
    held: dict[str, Any] = {}  # by table: what the answer lists as undone
    kept: dict[str, Any] = {}

    def requests_of(table_request: Any) -> list[dict[str, Any]]:
        return table_request["Keys"] if operation == "BatchGetItem" else table_request

    def with_requests(table_request: Any, requests: list[dict[str, Any]]) -> Any:
        return {**table_request, "Keys": requests} if operation == "BatchGetItem" else requests

    def hold_picked(params: dict[str, Any], **_: Any) -> None:
        held.clear()
        kept.clear()
        if times is not None and len(calls) >= times:
            kept.update(params["RequestItems"])
            return
        calls.append(1)
        for table, table_request in params["RequestItems"].items():
            requests = requests_of(table_request)
            held[table] = [r for r in requests if picked(r)]
            rest = [r for r in requests if not picked(r)]
            if rest:
                kept[table] = with_requests(table_request, rest)
            if held[table]:
                undone.extend(held[table])
                held[table] = with_requests(table_request, held[table])
            else:
                del held[table]
        params["RequestItems"] = dict(kept)

    def answer_nothing_done(**_: Any) -> Any:
        if kept:
            return None
        empty = {"Responses": {}} if operation == "BatchGetItem" else {}
        return AWSResponse("https://aws.invalid/", 200, {}, None), empty

    def list_undone(parsed: dict[str, Any], **_: Any) -> None:
        if held:
            parsed[_BATCH_PARTS[operation]] = dict(held)

    events = aws.client("dynamodb").meta.events
    hooks = [
        (f"before-parameter-build.dynamodb.{operation}", hold_picked),
        (f"before-call.dynamodb.{operation}", answer_nothing_done),
        (f"after-call.dynamodb.{operation}", list_undone),
    ]
    with hooked(events, hooks):
        yield undone
