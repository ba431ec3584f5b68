"""The app's stack in an in-process moto (`mock_aws`), for the unit tests and the bench.

`make dev` runs the same resources on the moto server (local/dev.py); both wire their
queues and stream to the handlers with local/pumps.py's `event_sources`.

Creating the stack through CloudFormation for every test cost most of the unit tests' time,
so `InProcessAws` creates it once, keeps moto's state of it (local/emulator.py's
`dump_state`, the same pickling `make dev` keeps its state with) and gives each test a
fresh copy of that state: every test starts on the stack as created, with nothing another
test left behind.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
LOCAL_STAGE = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["local"]
# The local stage's names and secrets, but moto in-process instead of the server.
UNIT_ENV = {
    k: v
    for k, v in LOCAL_STAGE["environment_variables"].items()
    if k not in {"AWS_ENDPOINT_URL", "WS_ENDPOINT_URL"}
}
# moto answers the API Gateway management API at its AWS address.
UNIT_ENV["WS_ENDPOINT_URL"] = "https://local.execute-api.us-east-1.amazonaws.com/local"
# botocore >= 1.40 sends stream calls to an account-based host moto does not intercept.
UNIT_ENV["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = "https://streams.dynamodb.us-east-1.amazonaws.com"
JWT_SECRET = UNIT_ENV["JWT_SECRET"]


def use_in_process_env() -> None:
    """Point this process (the app's settings and boto3) at an in-process moto."""
    os.environ.update(UNIT_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    share_botocore_models()


def share_botocore_models() -> None:
    """One botocore model loader for every boto3 session of this process.

    Each `mock_aws()` starts a new default session and the app builds a new one after
    `reset_caches()`; each would parse botocore's JSON service models again (about 0.3 s
    per test). The models are read-only, so sessions can share the parsed ones.
    """
    import botocore.loaders
    import botocore.session

    if not hasattr(botocore.session.create_loader, "cache_info"):
        botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)


def reset_caches() -> None:
    """Forget settings, clients and caches the app built (after the environment changed)."""
    from chalicelib import aws, bootstrap, settings
    from chalicelib.edge import auth

    settings.get_settings.cache_clear()
    bootstrap.reset()
    aws.reset_clients()
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


def moto_clients() -> dict[str, Any]:
    """The clients a Stack drives moto with (the app builds its own, chalicelib/aws.py)."""
    return {
        "dynamodb": boto3.client("dynamodb"),
        "sqs": boto3.client("sqs"),
        "s3": boto3.client("s3"),
        "dynamodbstreams": streams_client(),
    }


class Stack:
    """The app's AWS resources in moto, and Lambda-like pumps to drive its handlers."""

    def __init__(self, outputs: dict[str, str], clients: dict[str, Any] | None = None) -> None:
        import app as app_module
        from local.pumps import event_sources

        clients = clients or moto_clients()
        self.outputs = outputs
        self.app = app_module
        self.ddb = clients["dynamodb"]
        self.sqs = clients["sqs"]
        self.s3 = clients["s3"]
        self.queue_url = outputs["TasksQueueUrl"]
        self.dlq_url = outputs["TasksDeadLetterQueueUrl"]
        self.stream_failures_url = outputs["StreamFailuresQueueUrl"]
        self.webhooks_url = outputs["WebhooksQueueUrl"]
        sources = event_sources(app_module, outputs, self.sqs, clients["dynamodbstreams"])
        self.stream_pump = sources.stream
        self.push_pump = sources.pushes
        self.stream_failures_pump = sources.stream_failures
        self.worker_pump = sources.worker
        self.dlq_pump = sources.dead_letters
        self.webhook_pump = sources.webhooks

    def run_stream(self) -> int:
        """Run the stream's readers: the records the queueing handler took (pushes follow)."""
        handled = self.stream_pump.drain()
        self.push_pump.drain()
        return handled

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


class InProcessAws:
    """`fresh()`: a `mock_aws` holding the stack exactly as CloudFormation created it.

    The stack is created once per process; each `fresh()` starts from a new copy of
    that state (moto's other services start empty, as under a new `mock_aws`).
    """

    def __init__(self) -> None:
        self._state: bytes | None = None
        self._outputs: dict[str, str] = {}
        self._clients: dict[str, Any] = {}

    def _create(self) -> None:
        from moto import mock_aws

        from local.emulator import dump_state
        from local.resources import create_stack

        with mock_aws():
            self._outputs = create_stack(boto3.client("cloudformation"))
            self._state = dump_state()
            # Built once: a client is not bound to one mock_aws, and building one costs more
            # than a test's setup otherwise does.
            self._clients = moto_clients()

    @contextmanager
    def fresh(self) -> Iterator[Stack]:
        from moto import mock_aws

        from local.emulator import load_state

        if self._state is None:
            self._create()
        assert self._state is not None
        with mock_aws():  # a new mock_aws empties every moto backend
            load_state(self._state)
            reset_caches()
            try:
                yield Stack(self._outputs, self._clients)
            finally:
                reset_caches()
