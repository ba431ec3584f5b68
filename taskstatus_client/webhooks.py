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
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from standardwebhooks import Webhook, WebhookVerificationError

T = TypeVar("T")


class InvalidDelivery(Exception):
    pass


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
        payload: Any = None
        for webhook in self._webhooks:
            try:
                payload = webhook.verify(body, lowered)
                break
            except WebhookVerificationError as exc:
                error = exc
        else:
            raise InvalidDelivery(str(error))
        if lowered["webhook-id"] in self._seen:
            raise DuplicateDelivery(lowered["webhook-id"])
        return payload

    def handle(
        self, body: bytes | str, headers: Mapping[str, str], handler: Callable[[Any], T]
    ) -> T:
        """Verify, run `handler(job)`, and only then remember the delivery as handled."""
        job = self.verify(body, headers)
        result = handler(job)
        self._seen.add({k.lower(): v for k, v in headers.items()}["webhook-id"])
        return result
