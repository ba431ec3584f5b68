"""Shared fixtures: an in-process AWS (moto) built from the deploy template, and tokens."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
LOCAL_STAGE = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["local"]
# Unit tests use the local stage's names and secrets, but moto in-process instead of the server.
UNIT_ENV = {
    k: v
    for k, v in LOCAL_STAGE["environment_variables"].items()
    if k not in {"AWS_ENDPOINT_URL", "WS_ENDPOINT_URL"}
}
# moto answers the API Gateway management API at its AWS address.
UNIT_ENV["WS_ENDPOINT_URL"] = "https://local.execute-api.us-east-1.amazonaws.com/local"
# botocore >= 1.40 sends stream calls to an account-based host moto does not intercept.
UNIT_ENV["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = "https://streams.dynamodb.us-east-1.amazonaws.com"
os.environ.update(UNIT_ENV)
os.environ.pop("AWS_ENDPOINT_URL", None)
JWT_SECRET = UNIT_ENV["JWT_SECRET"]


def pytest_configure(config: pytest.Config) -> None:
    from tests import aws_calls

    aws_calls.install()  # record the IAM actions of every AWS call the app makes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_suite` judge what the whole run did: they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_suite") is not None)


def reset_caches() -> None:
    from chalicelib import api_keys, auth, aws, bootstrap, settings

    settings.get_settings.cache_clear()
    bootstrap.reset()
    aws.reset_clients()
    api_keys.CACHE.clear()
    auth.reset_jwks_cache()


def token_for(user: str, ttl: int = 3600) -> str:
    from local.token import mint_token

    return mint_token(user, JWT_SECRET, ttl)


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}", "Content-Type": "application/json"}


def streams_client() -> Any:
    # botocore >= 1.40 sends stream calls to an account-based host moto does not intercept.
    return boto3.client(
        "dynamodbstreams", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"
    )


class Stack:
    """The app's AWS resources in moto, and Lambda-like pumps to drive its handlers."""

    def __init__(self, outputs: dict[str, str]) -> None:
        import app as app_module
        from infra.package import EVENT_SOURCES
        from local.pumps import SqsPump, StreamPump, send_to_queue

        self.outputs = outputs
        self.app = app_module
        self.ddb = boto3.client("dynamodb")
        self.sqs = boto3.client("sqs")
        self.s3 = boto3.client("s3")
        self.queue_url = outputs["TasksQueueUrl"]
        self.dlq_url = outputs["TasksDeadLetterQueueUrl"]
        self.stream_failures_url = outputs["StreamFailuresQueueUrl"]
        self.stream_pump = StreamPump(
            streams_client(),
            outputs["TasksStreamArn"],
            app_module.stream,
            "stream",
            max_retries=EVENT_SOURCES["stream"].settings["MaximumRetryAttempts"],
            on_failure=send_to_queue(self.sqs, self.stream_failures_url),
        )
        self.stream_failures_pump = SqsPump(
            self.sqs, self.stream_failures_url, app_module.stream_failures, "stream_failures"
        )
        self.worker_pump = SqsPump(self.sqs, self.queue_url, app_module.worker, "worker")
        self.dlq_pump = SqsPump(self.sqs, self.dlq_url, app_module.dead_letters, "dead_letters")
        self.webhooks_url = outputs["WebhooksQueueUrl"]
        self.webhook_pump = SqsPump(self.sqs, self.webhooks_url, app_module.webhooks, "webhooks")

    def run_stream(self) -> int:
        return self.stream_pump.drain()

    def run_worker(self) -> int:
        return self.worker_pump.drain()

    def run_webhooks(self) -> int:
        return self.webhook_pump.drain()

    def settle(self) -> None:
        """Run stream, worker and webhooks until nothing is left to do."""
        for _ in range(20):
            if not (self.run_stream() + self.run_worker() + self.run_webhooks()):
                return

    def queued_messages(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def task_count(self) -> int:
        return self.ddb.scan(TableName=self.outputs["TasksTableName"], Select="COUNT")["Count"]


@pytest.fixture
def stack() -> Iterator[Stack]:
    from local.resources import create_stack

    with mock_aws():
        reset_caches()
        outputs = create_stack(boto3.client("cloudformation"))
        yield Stack(outputs)
    reset_caches()


@pytest.fixture
def client(stack: Stack) -> Iterator[Any]:
    from chalice.test import Client

    with Client(stack.app.app, stage_name="prod", project_dir=str(ROOT)) as test_client:
        yield test_client


@pytest.fixture
def service(stack: Stack) -> Any:
    from chalicelib.bootstrap import container

    return container().service
