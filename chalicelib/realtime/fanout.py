"""Fan-out from the table's stream: one stream batch's changes pushed to the connections
subscribed to them.

Fan-out works per stream batch (`FanOut`): one consistent BatchGetItem reads the
markers of the batch's owners, and only an owner whose marker is live costs a Query,
once per batch. The marker is written in the same request as the connection, with the
connection's expiry; API Gateway ends a connection within 2 h of its connect, so no
subscription of it outlives the marker. A subscribe racing a batch cannot lose later
updates: the batch's records were all committed before the batch was read, so they
precede the subscribe, and every later change arrives in a later batch, which reads the
marker again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from chalicelib.model import Task, utcnow
from chalicelib.realtime.operators import Coalesced, OperatorWatchers
from chalicelib.realtime.pusher import Pusher, close_expired
from chalicelib.realtime.subscriptions import KeyIsLive, Subscription, Subscriptions

log = logging.getLogger("taskstatus_svc.realtime")


class FanOut:
    """One stream batch's pushes: each owner's subscriptions are looked up at most once.

    Connections found expired or gone during the batch get nothing more in it.
    """

    def __init__(
        self,
        subscriptions: Subscriptions,
        pusher: Pusher,
        render: Callable[[Task], str],
        key_is_live: KeyIsLive,
        operators: OperatorWatchers,
        owners: Iterable[str],
    ) -> None:
        self.subscriptions = subscriptions
        self.pusher = pusher
        self.render = render
        self.key_is_live = key_is_live
        self.operators = operators
        self._owners = set(owners)
        self._live: set[str] | None = None
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._dropped: set[str] = set()
        self._for_operators = Coalesced()  # sent once, by `finish`

    def _may_have_subscribers(self, owner: str) -> bool:
        """Read the markers of every owner of the batch at once, at the first push."""
        if self._live is None or owner not in self._owners:
            unread = self._owners | {owner} if self._live is None else {owner}
            found = self.subscriptions.owners_with_subscribers(unread, utcnow())
            self._live = (self._live or set()) | found
            self._owners.add(owner)
        return owner in self._live

    def _owner_subscriptions(self, owner: str) -> list[Subscription]:
        if not self._may_have_subscribers(owner):
            return []
        if owner not in self._subscriptions:
            self._subscriptions[owner] = self.subscriptions.of_owner(owner)
        return self._subscriptions[owner]

    def finish(self) -> int:
        """The batch's changes to every operator watching, in one message each; pushes made."""
        if not self._for_operators.count:
            return 0
        watchers = self.operators
        now = int(utcnow().timestamp())
        if not watchers.live(now):
            return 0
        message, pushed = self._for_operators.message(), 0
        for connection_id in watchers.connections(now):
            if self.pusher.send(connection_id, message):
                pushed += 1
            elif not self.subscriptions.opening(connection_id, utcnow()):
                watchers.remove(connection_id)  # gone, not still opening (deliver, below)
        self._for_operators = Coalesced()
        return pushed

    def for_operators(self, task: Task) -> None:
        """Note a change for the operators watching (sent once, by `finish`)."""
        self._for_operators.add(task)

    def targets(self, task: Task) -> list[str]:
        """The live connections a task's new state goes to (expired ones are closed here)."""
        matching = [
            s
            for s in self._owner_subscriptions(task.owner)
            if s.matches(task) and s.connection_id not in self._dropped
        ]
        if not matching:
            return []
        now = utcnow()
        expired = {s.connection_id for s in matching if s.expired(now, self.key_is_live)}
        for connection_id in sorted(expired):
            close_expired(self.subscriptions, self.pusher, connection_id, tell=False)
        self._dropped |= expired
        return sorted({s.connection_id for s in matching} - expired)

    def is_dropped(self, connection_id: str) -> bool:
        """Whether the connection was found expired or gone in this batch."""
        return connection_id in self._dropped

    def deliver(self, connection_id: str, task: Task, message: str) -> bool:
        """Push one version to one connection unless it had it (or newer); True if pushed.
        Safe from several threads at once: each call touches its own connection."""
        if not self.subscriptions.claim_push(connection_id, task, utcnow()):
            return False  # this connection has had this version, or a newer one
        if self.pusher.send(connection_id, message):
            return True
        self._dropped.add(connection_id)
        if self.subscriptions.opening(connection_id, utcnow()):
            # Gone while API Gateway ends the handshake: the client is arriving. It reads the
            # state after it subscribes; this version may go to it again.
            log.info("connection %s is still opening; nothing more to it now", connection_id)
            self.subscriptions.unclaim_push(connection_id, task)
            return False
        log.info("connection %s is gone; removing it", connection_id)
        self.subscriptions.remove_connection(connection_id)
        return False

    def push(self, task: Task) -> int:
        """Push a task's new state to its owner's matching connections; returns pushes made."""
        self.for_operators(task)
        targets = self.targets(task)
        if not targets:
            return 0
        message = self.render(task)
        return sum(self.deliver(connection_id, task, message) for connection_id in targets)
