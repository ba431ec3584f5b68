"""Verify a taskstatus webhook delivery in your receiver.

    from taskstatus_client.webhooks import DeliveryVerifier

    verifier = DeliveryVerifier(os.environ["TASKSTATUS_WEBHOOK_SECRET"])

    def handle(request):                       # any framework
        try:
            job = verifier.verify(request.body, request.headers)
        except DuplicateDelivery:
            return 200                          # already handled: acknowledge, do nothing
        except InvalidDelivery:
            return 400
        process(job)                            # job["jobId"], job["status"], job["event"], ...
        return 200

`verify` checks the Standard Webhooks signature (constant-time comparison, any
of several `v1,` signatures during a secret rotation), refuses timestamps more
than 5 minutes away from now (replays), and remembers `webhook-id`s so a retry
of an event you already handled is reported as a duplicate.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from standardwebhooks import Webhook, WebhookVerificationError


class InvalidDelivery(Exception):
    pass


class DuplicateDelivery(Exception):
    pass


class SeenIds(Protocol):
    def add_if_new(self, webhook_id: str) -> bool: ...


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

    def add_if_new(self, webhook_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.limit
            ):
                self._seen.popitem(last=False)
            if webhook_id in self._seen:
                return False
            self._seen[webhook_id] = now
            return True


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
        if not self._seen.add_if_new(lowered["webhook-id"]):
            raise DuplicateDelivery(lowered["webhook-id"])
        return payload
