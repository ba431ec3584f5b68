"""Verify a taskstatus webhook delivery in your receiver.

    from taskstatus_client.webhooks import DeliveryVerifier

    verifier = DeliveryVerifier(os.environ["TASKSTATUS_WEBHOOK_SECRET"])

    def endpoint(request):                     # any framework
        try:
            verifier.handle(request.body, request.headers, process)
        except DuplicateDelivery:
            return 200                          # already handled: acknowledge, do nothing
        except InvalidDelivery:
            return 400
        return 200                              # process(job) raised? answer 500: it is retried

`verify` checks the Standard Webhooks signature (constant-time comparison, any
of several `v1,` signatures during a secret rotation), refuses timestamps more
than 5 minutes away from now (replays), and reports a `webhook-id` you already
handled as a duplicate. `handle` verifies, runs your function, and remembers the
id only once your function has returned: a delivery whose processing failed is
processed again when taskstatus retries it.

A refused delivery says why (`InvalidDelivery.reason`, and its message says what to do):
signed with another secret (most often another user's: each user has their own), a
timestamp too far from this machine's clock (a replay, or a clock that is off), or not a
delivery at all (a header missing or unreadable, a body that is not JSON).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from standardwebhooks import Webhook, WebhookVerificationError

T = TypeVar("T")


TOLERANCE_SECONDS = 5 * 60  # standardwebhooks' own: older or newer timestamps are refused
REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class InvalidDelivery(Exception):
    """A delivery refused, and why: `reason` is one of

    - `wrong_secret`: well formed and signed, but with none of the secrets given;
    - `stale`: the timestamp is more than 5 minutes from this machine's clock;
    - `malformed`: a header missing or unreadable, or a body that is not JSON.
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class DuplicateDelivery(Exception):
    pass


class SeenIds(Protocol):
    def __contains__(self, webhook_id: object) -> bool: ...

    def add(self, webhook_id: str) -> None: ...


class MemorySeenIds:
    """Remembers ids for `ttl` seconds (longer than the retry schedule's 27 h by default).

    Use a shared store (Redis SET NX, a DynamoDB conditional put) when several
    processes receive webhooks.
    """

    def __init__(self, ttl: float = 30 * 3600, limit: int = 100_000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._seen and (
            next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.limit
        ):
            self._seen.popitem(last=False)

    def __contains__(self, webhook_id: object) -> bool:
        with self._lock:
            self._expire(time.monotonic())
            return webhook_id in self._seen

    def add(self, webhook_id: str) -> None:
        with self._lock:
            self._seen[webhook_id] = time.monotonic()


class DeliveryVerifier:
    def __init__(self, *secrets: str, seen: SeenIds | None = None) -> None:
        if not secrets:
            raise ValueError("give at least one whsec_ secret")
        self._webhooks = [Webhook(secret) for secret in secrets]
        self._seen = seen if seen is not None else MemorySeenIds()

    def verify(self, body: bytes | str, headers: Mapping[str, str]) -> dict[str, Any]:
        lowered = {k.lower(): v for k, v in headers.items()}
        payload = self._verified(body, lowered)
        if lowered["webhook-id"] in self._seen:
            raise DuplicateDelivery(lowered["webhook-id"])
        return payload

    def _verified(self, body: bytes | str, headers: dict[str, str]) -> Any:
        """The library decides; `why_refused` only explains a refusal."""
        for webhook in self._webhooks:
            try:
                return webhook.verify(body, headers)
            except WebhookVerificationError:
                continue
            except ValueError:  # the library lets a bad header or a body not JSON out as this
                break
        raise why_refused(self._webhooks, body, headers)

    def handle(
        self, body: bytes | str, headers: Mapping[str, str], handler: Callable[[Any], T]
    ) -> T:
        """Verify, run `handler(job)`, and only then remember the delivery as handled."""
        job = self.verify(body, headers)
        result = handler(job)
        self._seen.add({k.lower(): v for k, v in headers.items()}["webhook-id"])
        return result


def why_refused(
    webhooks: Sequence[Webhook],
    body: bytes | str,
    headers: Mapping[str, str],
    now: float | None = None,
) -> InvalidDelivery:
    """The first thing wrong with a delivery the secrets did not verify, as a person can act on it.

    The checks go from form to signature to time: a delivery signed with another secret is
    reported as such even when it is also old, since that is what a person must fix.
    """
    missing = [name for name in REQUIRED_HEADERS if not headers.get(name)]
    if missing:
        return InvalidDelivery(f"not a webhook delivery: missing header(s) {', '.join(missing)}")
    try:
        text = body if isinstance(body, str) else body.decode()
    except UnicodeDecodeError:
        return InvalidDelivery("the body is not UTF-8 text: pass the raw body as it arrived")
    try:
        timestamp = int(headers["webhook-timestamp"])
    except ValueError:
        return InvalidDelivery(
            f"webhook-timestamp {headers['webhook-timestamp'][:40]!r} is not a Unix time in seconds"
        )
    signatures = _v1_signatures(headers["webhook-signature"])
    if not signatures:
        return InvalidDelivery("webhook-signature holds no `v1,<base64>` signature")
    if not _signed_by_any(webhooks, headers["webhook-id"], timestamp, text, signatures):
        return InvalidDelivery(
            f"the signature matches none of the {len(webhooks)} secret(s) given: each user has"
            " their own, so use the one read with the token that submitted the job"
            " (`taskstatus --token $TOKEN webhook-secret`), and verify the body exactly as it"
            " arrived (raw bytes, not parsed and re-encoded)",
            "wrong_secret",
        )
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > TOLERANCE_SECONDS:
        when = f"{round(age)} s old" if age > 0 else f"{round(-age)} s in the future"
        return InvalidDelivery(
            f"webhook-timestamp is {when} (the limit is {TOLERANCE_SECONDS} s either way):"
            " a replayed delivery, or this machine's clock is off",
            "stale",
        )
    return InvalidDelivery("the delivery is signed, but its body is not JSON")


def _v1_signatures(header: str) -> list[bytes]:
    signatures = []
    for item in header.split():
        version, _, encoded = item.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return signatures


def _signed_by_any(
    webhooks: Sequence[Webhook], webhook_id: str, timestamp: int, text: str, given: list[bytes]
) -> bool:
    at = datetime.fromtimestamp(timestamp, UTC)
    for webhook in webhooks:
        expected = base64.b64decode(webhook.sign(webhook_id, at, text).partition(",")[2])
        if any(hmac.compare_digest(expected, signature) for signature in given):
            return True
    return False
