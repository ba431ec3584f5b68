"""Overload delays work, it never fails it: a REST request that AWS throttles or cannot
serve (after botocore's own retries) answers 503 with `Retry-After`, not a 500.

Chalice turns any exception a view raises into its own 500 before the edge middleware
sees it, so the mapping wraps each route's view: a transient AWS error (chalicelib.aws
`is_transient`) becomes `ServiceUnavailable`, which the edge answers in the route's
error shape. Every write route makes one conditional write or one transaction (a batch
answers per item: chalicelib/contracts/batches.py), so a request AWS throttled or could not be sent
has written nothing and can be sent again as it was. One whose answer was lost (a read
timeout) may have been written: its 503 says so, and an Idempotency-Key makes the same
request safe to send again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from chalicelib.edge.http_errors import ServiceUnavailable

log = logging.getLogger("taskstatus_svc.overload")

# Long enough for DynamoDB's adaptive capacity or a throttled account to recover a little,
# short enough that a client's retry is not what delays the work.
RETRY_AFTER_SECONDS = 5
MESSAGE = "the service is overloaded or briefly unavailable; nothing was changed: retry later"
# A request sent whose answer never came: AWS may have made the change.
UNCERTAIN = (
    "the service is overloaded or briefly unavailable and did not hear whether the change "
    "was made: send the same request again (with the same Idempotency-Key, if it had one)"
)


def unavailable(
    retry_after: int = RETRY_AFTER_SECONDS, *, uncertain: bool = False
) -> ServiceUnavailable:
    message = UNCERTAIN if uncertain else MESSAGE
    return ServiceUnavailable(message, headers={"Retry-After": str(retry_after)})


def sent_without_answer(exc: BaseException) -> bool:
    """A call that reached AWS and timed out or lost its connection while AWS answered:
    unlike a throttle or a refused connection, the write may have been made."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    return isinstance(exc, ReadTimeoutError | ConnectionClosedError)


def answers_overload(view: Callable[..., Any]) -> Callable[..., Any]:
    """`view`, with a transient AWS failure raised as a 503 instead of Chalice's 500."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except Exception as exc:
            from chalicelib import aws  # botocore loads only once a call has failed

            if not aws.is_transient(exc):
                raise
            log.warning("AWS is throttling or unavailable: %s", exc)
            raise unavailable(uncertain=sent_without_answer(exc)) from None

    return guarded


def guard_routes(app: Any) -> None:
    """Wrap every REST route declared so far; call it after the last route."""
    for views in app.routes.values():
        for entry in views.values():
            if not getattr(entry.view_function, "_answers_overload", False):
                entry.view_function = answers_overload(entry.view_function)
                entry.view_function._answers_overload = True
