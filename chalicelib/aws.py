"""Lazily created boto3 clients, shared by every handler of one process.

Clients are built on first use so that importing the app costs no more than
importing boto3; `AWS_ENDPOINT_URL` (set in the `local` stage) points them at
the emulator without any branch here.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10
)
# Presigned URLs must be SigV4: SigV2 is refused by regions launched after 2014 and by KMS objects.
_SERVICE_CONFIG = {"s3": Config(signature_version="s3v4")}


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def client(service: str, endpoint_url: str | None = None) -> Any:
    with _lock:
        return _cached_client(service, endpoint_url)


@cache
def _cached_client(service: str, endpoint_url: str | None) -> Any:
    config = _CONFIG.merge(_SERVICE_CONFIG[service]) if service in _SERVICE_CONFIG else _CONFIG
    with _collector_paused():
        return _session().client(service, config=config, endpoint_url=endpoint_url or None)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building a client loads its service model: tens of thousands of objects that live as
    long as the process, and no garbage. Left on, the cycle collector scans the whole heap
    several times while they are built: about 20 ms of a cold start's first event (a third
    of the client's cost, bench/cold.py). It runs again as soon as the client is built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def reset_clients() -> None:
    """Forget cached clients (tests switch between moto contexts)."""
    _cached_client.cache_clear()
    _session.cache_clear()


_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalError",
        "SlowDown",
        "RequestTimeout",
        "TransactionConflict",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure of an AWS call (or the network under it) may pass on retry."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, TimeoutError | ConnectionError | BotoCoreError):
        return True
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return False


def query_items(ddb: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query matches, page after page."""
    request = dict(request)
    while True:
        response = ddb.query(**request)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
