"""WebSocket: the protocol of a connection ($connect, messages, $disconnect) and the fan-out
of the table's stream to subscribers.

The parts, each its own module: `subscriptions` (who listens, stored in the records table),
`pusher` (sending to and closing connections), `fanout` (one stream batch's pushes).

A new connection holds the `default` subscription (every change of its owner's
tasks, as seed 004's origin pushed to clients that never send a message); its
first subscribe replaces it. A version goes to a connection at most once, and
never after a newer one: the push, at subscribe time or from the stream, first
raises the connection's `v#<task id>` marker, conditionally.

Messages are seed 004's `{"type": "task_status", "payload": {...TaskStatus, "version": n}}`,
with the native change beside the payload: `"job": {jobId, status, version, progress,
updatedAt, completedAt, error}` in the job document's words (004's clients read only the
payload).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from chalicelib import jsonsafe
from chalicelib.edge.auth import OPERATE, READ, InsufficientScope, InvalidToken
from chalicelib.model import Task, is_task_id, utcnow
from chalicelib.realtime.fanout import FanOut
from chalicelib.realtime.pusher import MAX_FRAME_BYTES, Pusher, close_expired
from chalicelib.realtime.subscriptions import (
    CONNECTION_TTL_SECONDS,
    DEFAULT,
    PUSHED,
    Connection,
    Credential,
    Subscriptions,
)

if TYPE_CHECKING:
    from chalicelib.edge.credentials import Authenticator
    from chalicelib.realtime.operators import OperatorWatchers
    from chalicelib.service import TaskService

__all__ = ["MAX_FRAME_BYTES", "PUSHED", "FanOut", "Realtime", "connect_token"]

log = logging.getLogger("taskstatus_svc.realtime")


def connect_token(query: dict[str, str] | None) -> str:
    """`?token=<JWT>`, or seed 004's `?Authorization=Bearer%20<JWT>`."""
    query = query or {}
    if query.get("token"):
        return query["token"]
    scheme, _, token = query.get("Authorization", "").replace("+", " ", 1).partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Realtime:
    def __init__(
        self,
        service: TaskService,
        subscriptions: Subscriptions,
        pusher: Pusher,
        authenticator: Authenticator,
        render: Callable[[Task], str],
        operators: OperatorWatchers,
    ) -> None:
        """`render` is a task's push message (the container gives 004's, with the native change);
        `authenticator` checks a connect's credential and whether an API key still lives;
        `operators` are the connections watching every owner's changes."""
        self.service = service
        self.subscriptions = subscriptions
        self.pusher = pusher
        self.authenticator = authenticator
        self.render = render
        self.operators = operators
        self.settings = service.settings

    # -- $connect / $disconnect ----------------------------------------------------------

    def connect(self, connection_id: str, query: dict[str, str] | None) -> dict[str, Any]:
        try:
            # a JWT or an API key, as on REST
            principal = self.authenticator.authenticate(connect_token(query))
            principal.require(READ)
            watching = (query or {}).get("watch") == "operators"
            if watching:
                principal.require(OPERATE)  # every owner's changes: operators only
        except InsufficientScope as exc:
            log.info("refused a WebSocket connection: %s", exc)
            return {"statusCode": 403, "body": str(exc)}
        except InvalidToken as exc:
            log.info("refused a WebSocket connection: %s", exc)
            return {
                "statusCode": 401,
                "body": "send ?token=<JWT or API key> or ?Authorization=Bearer%20<JWT>",
            }
        added = self.subscriptions.add_connection(
            connection_id,
            principal.owner,
            utcnow(),
            Credential(principal.expires_at, principal.key_id),
            limit=self.settings.max_connections_per_owner,
        )
        if not added:
            log.info("refused a WebSocket connection: the owner is at the limit")
            return {"statusCode": 429, "body": self._connection_limit_message()}
        if watching and not self._watch(connection_id):
            self.subscriptions.remove_connection(connection_id)
            return {"statusCode": 429, "body": "too many operator connections watch already"}
        return {"statusCode": 200}

    def _watch(self, connection_id: str) -> bool:
        now = int(utcnow().timestamp())
        return self.operators.add(connection_id, now, now + CONNECTION_TTL_SECONDS)

    def _connection_limit_message(self) -> str:
        limit = self.settings.max_connections_per_owner
        return f"at most {limit} WebSocket connections per user: close one first"

    def disconnect(self, connection_id: str) -> None:
        self.subscriptions.remove_connection(connection_id)
        self.operators.remove(connection_id)

    # -- messages ------------------------------------------------------------------------

    def message(self, connection_id: str, body: str) -> None:
        connection = self.subscriptions.connection(connection_id)
        if connection is None:
            self._reply(
                connection_id, {"type": "error", "message": "unknown connection; reconnect"}
            )
            return
        if connection.expired(utcnow(), self.authenticator.key_is_live):
            close_expired(self.subscriptions, self.pusher, connection_id, tell=True)
            return
        try:
            request = jsonsafe.loads(body)
        except (jsonsafe.UnsafeJson, TypeError):
            request = None
        if not isinstance(request, dict):
            self._error(connection_id, 'send a JSON object such as {"action": "ping"}')
            return
        action = request.get("action")
        if action == "ping":
            self.subscriptions.refresh(connection_id, utcnow())
            self._reply(connection_id, {"type": "pong"})
        elif action in ("subscribe", "unsubscribe"):
            self._subscription(connection_id, connection, action, request)
        else:
            self._error(connection_id, "action must be subscribe, unsubscribe or ping")

    def _subscription(
        self, connection_id: str, connection: Connection, action: str, request: dict[str, Any]
    ) -> None:
        owner = connection.owner
        from chalicelib.processors import registered_types  # the processors load on first use

        task_id, operation = request.get("taskId"), request.get("operation")
        if task_id is not None:
            if not isinstance(task_id, str) or not is_task_id(task_id):
                self._error(connection_id, "taskId must be a task id (a lowercase UUID)")
                return
            kind, value = "task", task_id
        elif operation is not None:
            if operation not in registered_types():
                self._error(
                    connection_id, f"operation must be one of {', '.join(registered_types())}"
                )
                return
            kind, value = "op", operation
        else:
            kind, value = "all", "*"
        since = request.get("sinceVersion")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            self._error(connection_id, "sinceVersion must be a whole number")
            return
        if action == "unsubscribe":
            self.subscriptions.unsubscribe(connection_id, kind, value)
            if not self.subscriptions.subscriptions_of(connection_id):
                # Holding nothing, it stops counting; it takes a place again to subscribe.
                self.subscriptions.give_back_place(connection_id, owner)
            self._reply(connection_id, {"type": "unsubscribed", **_target(kind, value)})
            return
        current = None
        if kind == "task":
            current = self.service.find(value)
            if current is None or current.owner != owner:
                self._error(connection_id, f"task {value} was not found")
                return
        held_any = self.subscriptions.subscriptions_of(connection_id)
        if not held_any and not self.subscriptions.take_place(
            connection_id, owner, self.settings.max_connections_per_owner, utcnow()
        ):
            # A connection that dropped all its subscriptions stopped counting: it counts again.
            self._error(connection_id, self._connection_limit_message())
            return
        held = held_any - {f"{DEFAULT}#*"}
        limit = self.settings.max_subscriptions_per_connection
        if kind != "all" and f"{kind}#{value}" not in held and len(held) >= limit:
            self._error(
                connection_id,
                f"at most {limit} subscriptions per connection: unsubscribe from one first, "
                'or subscribe to everything with {"action": "subscribe"}',
            )
            return
        self.subscriptions.subscribe(connection_id, connection, kind, value, utcnow())
        self._reply(connection_id, {"type": "subscribed", **_target(kind, value)})
        if (
            current is not None
            and (since is None or current.version > since)
            and self.subscriptions.claim_push(connection_id, current, utcnow())
        ):
            self.pusher.send(connection_id, self.render(current))

    def _reply(self, connection_id: str, message: dict[str, Any]) -> None:
        if not self.pusher.send(connection_id, json.dumps(message)):
            self.subscriptions.remove_connection(connection_id)

    def _error(self, connection_id: str, message: str) -> None:
        self._reply(connection_id, {"type": "error", "message": message})

    # -- fan-out -------------------------------------------------------------------------

    def on_task_change(self, task: Task) -> int:
        """Push one change (a stream batch of one); returns pushes made."""
        return self.batch([task.owner]).push(task)

    def batch(self, owners: Iterable[str]) -> FanOut:
        """The fan-out of one stream batch whose changes belong to these owners."""
        return FanOut(
            self.subscriptions,
            self.pusher,
            self.render,
            self.authenticator.key_is_live,
            self.operators,
            owners,
        )


def _target(kind: str, value: str) -> dict[str, str]:
    return {"task": {"taskId": value}, "op": {"operation": value}, "all": {"all": "*"}}[kind]
