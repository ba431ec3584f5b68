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

_lock = threading.Lock()
_CONFIG = {
    "retries": {"mode": "standard", "max_attempts": 3},
    "connect_timeout": 3,
    "read_timeout": 10,
}
# Presigned URLs must be SigV4: SigV2 is refused by regions launched after 2014 and by KMS objects.
_SERVICE_CONFIG = {"s3": {"signature_version": "s3v4"}}


@cache
def _session() -> Any:
    import boto3  # on first use, with the collector paused (below): most of a cold start

    return boto3.session.Session()


def client(service: str, endpoint_url: str | None = None) -> Any:
    with _lock:
        return _cached_client(service, endpoint_url)


@cache
def _cached_client(service: str, endpoint_url: str | None) -> Any:
    with _collector_paused():
        from botocore.config import Config

        config = Config(**_CONFIG, **_SERVICE_CONFIG.get(service, {}))
        return _session().client(service, config=config, endpoint_url=endpoint_url or None)


def signing_client(access_key_id: str, secret_access_key: str) -> Any:
    """An S3 client that signs with these long-lived keys, not the function's role (for
    presigned links that must outlive the role's session; see objects.Link)."""
    with _lock:
        return _cached_signing_client(access_key_id, secret_access_key)


@cache
def _cached_signing_client(access_key_id: str, secret_access_key: str) -> Any:
    with _collector_paused():
        from botocore.config import Config

        return _session().client(
            "s3",
            config=Config(**_CONFIG, **_SERVICE_CONFIG["s3"]),
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=None,
        )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Importing boto3 and building a client load its modules and service model: hundreds
    of thousands of objects that live as long as the process, and next to no garbage.

    The cycle collector would scan the whole heap several times while they are built, and
    again at every full collection after (the first event's own imports and requests set
    some off): together 30-40 ms of a cold start, a fifth of it (bench/cold.py). So it is
    paused meanwhile, and what the process holds once the client exists (modules, the app,
    the clients) is moved out of its reach with `gc.freeze()`, as for a server's startup.
    A client is built once per service and process, so little else is frozen with it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def reset_clients() -> None:
    """Forget cached clients (tests switch between moto contexts), and give what was frozen
    with them back to the collector."""
    _cached_client.cache_clear()
    _cached_signing_client.cache_clear()
    _session.cache_clear()
    gc.unfreeze()


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


# Why DynamoDB cancels a transaction, item by item, when it throttles rather than refuses.
_THROTTLED_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})


def is_transient(exc: BaseException) -> bool:
    """Whether a failure of an AWS call (or the network under it) may pass on retry."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, TimeoutError | ConnectionError | BotoCoreError):
        return True
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES or (
            throttled_transaction(exc)
        )
    return False


def throttled_transaction(exc: Any) -> bool:
    """A TransactWriteItems cancelled because an item was throttled: no condition failed,
    nothing was written, and the same transaction may pass later."""
    response = getattr(exc, "response", {})
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = response.get("CancellationReasons") or []
    return any(reason.get("Code") in _THROTTLED_REASONS for reason in reasons)


def query_items(ddb: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query matches, page after page."""
    request = dict(request)
    while True:
        response = ddb.query(**request)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
