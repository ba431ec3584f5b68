"""WebSocket pushes: the table's stream's second reader (the `pushes` function).

The stream handler that queues tasks (chalicelib/stream.py) never calls the WebSocket API,
so no number of dashboards on one owner delays another owner's task being queued: pushes
run here, on their own event source mapping of the same stream, with their own
concurrency.

One pass per batch: each owner's subscriptions are read once (chalicelib/realtime/fanout.py:
one BatchGetItem of the owners' markers, one Query per owner with subscribers), and the
connections are served at once from a small pool of threads, each connection's pushes in
stream order, every change of a subscribed task as the contract says. A push is claimed per
connection and version first (`claim_push`), so a batch handed over again never pushes a
version twice, nor an older one after a newer.

Pushes are best effort: nothing here fails a record (a lost push is mended by the client's
resubscribe), so the mapping never holds its shard for a push. The operators watching
the console get the batch's changes from here too, one message each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.model import Task
from chalicelib.realtime import Realtime
from chalicelib.realtime.fanout import FanOut
from chalicelib.store import is_task_item, task_from_item

log = logging.getLogger("taskstatus_svc.realtime.pushes")

# Pushes in flight at once: each is one UpdateItem and one PostToConnection, mostly waiting
# on the network, so a few threads cut a batch's time by about as many times.
PUSH_THREADS = 8


def _keeps_version(images: dict[str, Any]) -> bool:
    """A change that keeps the version (a producer's heartbeat, a waiting task postponed or
    told why it waits) is no news for a subscriber."""
    old = images.get("OldImage", {}).get("version", {}).get("N")
    return old is not None and old == images.get("NewImage", {}).get("version", {}).get("N")


def changes(records: Iterable[dict[str, Any]]) -> list[Task]:
    """The batch's new versions in stream order (a record handed over twice counts once)."""
    seen: set[tuple[str, int]] = set()
    found: list[Task] = []
    for record in records:
        images = record.get("dynamodb", {})
        item = images.get("NewImage")
        if not item or not is_task_item(item) or _keeps_version(images):
            continue
        try:
            task = task_from_item(item)
        except Exception:
            log.exception("skipping a stream record whose image cannot be read")
            continue
        if (task.id, task.version) not in seen:
            seen.add((task.id, task.version))
            found.append(task)
    return found


# What one connection is sent in a batch, in version order: (the version, its message).
Deliveries = list[tuple[Task, str]]


class PushHandler:
    def __init__(self, realtime: Realtime, threads: int = PUSH_THREADS) -> None:
        self.realtime = realtime
        self.threads = threads

    def handle_batch(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Push the batch's changes; never reports a failure (pushes are best effort)."""
        tasks = changes(records)
        if not tasks:
            return {"batchItemFailures": []}
        fan_out = self.realtime.batch(task.owner for task in tasks)
        try:
            self._push_all(fan_out, tasks)
        except Exception:
            log.exception("WebSocket fan-out of a batch failed")
        try:  # the batch's changes to the operators watching, in one message each
            for task in tasks:
                fan_out.for_operators(task)
            fan_out.finish()
        except Exception:
            log.exception("could not tell the operators watching about this batch")
        return {"batchItemFailures": []}

    def _push_all(self, fan_out: FanOut, tasks: list[Task]) -> int:
        """Every change to each connection subscribed to it: the connections served at once,
        each one's pushes in stream order (a push after a newer one would be refused by
        its marker and lost). Returns the pushes made."""
        by_connection: dict[str, Deliveries] = {}
        for task in tasks:
            targets = fan_out.targets(task)
            if targets:
                message = fan_out.render(task)
                for connection_id in targets:
                    by_connection.setdefault(connection_id, []).append((task, message))
        if len(by_connection) <= 1:
            return sum(self._serve(fan_out, c, d) for c, d in by_connection.items())
        with ThreadPoolExecutor(max_workers=min(self.threads, len(by_connection))) as pool:
            done = pool.map(lambda c: self._serve(fan_out, *c), by_connection.items())
            return sum(done)

    @staticmethod
    def _serve(fan_out: FanOut, connection_id: str, deliveries: Deliveries) -> int:
        """One connection's pushes in order, until it is found gone."""
        pushed = 0
        for task, message in deliveries:
            if fan_out.is_dropped(connection_id):
                break
            try:
                pushed += fan_out.deliver(connection_id, task, message)
            except Exception:
                log.exception("push of version %s to %s failed", task.version, connection_id)
        return pushed
