"""The dev runner's SQS event source mapping: concurrent invocations, visibility honoured."""

import threading
import time

import pytest

from local.pumps import SqsPump, split


@pytest.fixture
def queue(stack):
    return stack.sqs.create_queue(QueueName="pump-test", Attributes={"VisibilityTimeout": "30"})[
        "QueueUrl"
    ]


class Recorder:
    """A handler: `long` messages block until released; records when each body finished."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished: list[str] = []
        self.calls: list[str] = []

    def __call__(self, event, context):
        for record in event["Records"]:
            self.calls.append(record["body"])
            if record["body"] == "long":
                self.release.wait(10)
            self.finished.append(record["body"])
        return {"batchItemFailures": []}


def running(pump):
    stop = threading.Event()
    thread = threading.Thread(target=pump.run_forever, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def finish(pump, handler, stop):
    """Let every invocation end before moto goes away."""
    handler.release.set()
    stop.set()
    assert wait_for(lambda: not pump._in_flight)


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_long_invocation_does_not_hold_up_a_short_one(stack, queue):
    handler = Recorder()
    stack.sqs.send_message(QueueUrl=queue, MessageBody="long")
    stack.sqs.send_message(QueueUrl=queue, MessageBody="short")
    pump = SqsPump(stack.sqs, queue, handler, "worker", concurrency=4)
    stop, _ = running(pump)
    try:
        assert wait_for(lambda: "short" in handler.finished)
        assert "long" not in handler.finished
    finally:
        finish(pump, handler, stop)


def test_a_message_is_not_delivered_again_while_its_invocation_runs(stack, queue):
    handler = Recorder()
    stack.sqs.send_message(QueueUrl=queue, MessageBody="long")
    pump = SqsPump(stack.sqs, queue, handler, "worker", concurrency=4)
    stop, _ = running(pump)
    try:
        assert wait_for(lambda: handler.calls == ["long"])
        time.sleep(2.5)  # more than two polls
        assert handler.calls == ["long"]
    finally:
        finish(pump, handler, stop)


def test_a_finished_invocation_deletes_its_messages(stack, queue):
    handler = Recorder()
    handler.release.set()
    for body in ("long", "short"):
        stack.sqs.send_message(QueueUrl=queue, MessageBody=body)
    pump = SqsPump(stack.sqs, queue, handler, "worker", concurrency=2)
    stop, _ = running(pump)
    try:
        assert wait_for(lambda: sorted(handler.finished) == ["long", "short"])
        assert wait_for(
            lambda: (
                stack.sqs.get_queue_attributes(
                    QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
                )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
                == "0"
            )
        )
    finally:
        finish(pump, handler, stop)
    assert stack.sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


def test_released_messages_of_a_stopped_invocation_come_back(stack, queue):
    handler = Recorder()
    stack.sqs.send_message(QueueUrl=queue, MessageBody="long")
    pump = SqsPump(stack.sqs, queue, handler, "worker", concurrency=2)
    stop, poller = running(pump)
    try:
        assert wait_for(lambda: handler.calls == ["long"])
        stop.set()
        poller.join(5)  # no more polls, as at shutdown
        assert pump.release_in_flight(0) == 1
        again = stack.sqs.receive_message(QueueUrl=queue)["Messages"]
        assert [m["Body"] for m in again] == ["long"]
    finally:
        handler.release.set()


def test_a_batch_is_split_over_the_free_invocations_in_order():
    assert split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split(list(range(2)), 8) == [[0], [1]]
    assert split([], 3) == []
