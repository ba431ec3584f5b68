"""SQS's partial batch response, one helper for every queue's handler."""

from chalicelib.observability import sqs_partial


def records(*ids: str) -> list[dict]:
    return [{"messageId": message_id, "body": message_id} for message_id in ids]


def test_only_the_messages_not_done_are_reported():
    result = sqs_partial(records("a", "b", "c"), lambda record: record["body"] != "b")
    assert result == {"batchItemFailures": [{"itemIdentifier": "b"}]}


def test_a_message_whose_handler_raises_is_reported_and_the_rest_still_run():
    handled = []

    def handle(record: dict) -> bool:
        handled.append(record["body"])
        if record["body"] == "a":
            raise RuntimeError("boom")
        return True

    result = sqs_partial(records("a", "b"), handle)
    assert result == {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert handled == ["a", "b"]
