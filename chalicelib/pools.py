"""Worker pools: tasks run by remote workers (`taskstatus worker --pool NAME`), never by the
worker Lambda.

`WORKER_POOLS` names the pools (`make dev` declares `remote`). A task goes to a pool when its
submit names one (`"pool": "remote"`) or its type matches a `POOL_TYPES` route
(`video/*=remote,gpu/*=remote`, shell-style patterns, the first match wins). Each pool has its
own SQS queue and dead-letter queue (infra/resources.json, `<stack>-pool-<name>`), so one
pool's backlog neither delays the worker Lambda's tasks nor is drained by it: the worker
Lambda's event source is the tasks queue alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

POOL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
POOL_NAME_RULE = "1 to 32 lowercase letters, digits and hyphens, starting with a letter or digit"


class UnknownPool(ValueError):
    """A submit names a pool this service does not declare."""

    def __init__(self, pool: str, declared: tuple[str, ...]) -> None:
        known = ", ".join(declared) or "none (WORKER_POOLS is empty)"
        super().__init__(f"pool {pool!r} is not a worker pool of this service; pools: {known}")
        self.pool = pool


@dataclass(frozen=True)
class Pools:
    """The declared pools and the type routes, read from the environment."""

    names: tuple[str, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()  # (type pattern, pool), in the order given

    @classmethod
    def from_environment(cls) -> Pools:
        names = tuple(os.environ.get("WORKER_POOLS", "").replace(",", " ").split())
        for name in names:
            if not POOL_NAME.match(name):
                raise ValueError(f"WORKER_POOLS: {name!r} is not a pool name ({POOL_NAME_RULE})")
        routes = []
        for entry in os.environ.get("POOL_TYPES", "").replace(",", " ").split():
            pattern, _, pool = entry.partition("=")
            if not pattern or pool not in names:
                raise ValueError(
                    f"POOL_TYPES: {entry!r} is not `type-pattern=pool` with a pool of WORKER_POOLS"
                )
            routes.append((pattern, pool))
        return cls(names, tuple(routes))

    def pool_for(self, task_type: str, asked: str | None) -> str | None:
        """The pool a task goes to: the one asked for (UnknownPool if not declared), else the
        first route its type matches, else None (the worker Lambda runs it)."""
        if asked is not None:
            if asked not in self.names:
                raise UnknownPool(asked, self.names)
            return asked
        for pattern, pool in self.routes:
            if fnmatchcase(task_type, pattern):
                return pool
        return None


def pool_queue_url(tasks_queue_url: str, pool: str) -> str:
    """A pool's queue beside the tasks queue: `<stack>-tasks` becomes `<stack>-pool-<name>`
    (the names infra/resources.json gives them), so no setting per pool is needed."""
    base, _, name = tasks_queue_url.rpartition("/")
    stack = name.removesuffix("-tasks")
    return f"{base}/{stack}-pool-{pool}"


def pool_dead_letter_queue_url(tasks_queue_url: str, pool: str) -> str:
    """The pool queue's dead-letter queue, `<stack>-pool-<name>-dlq` (infra/resources.json)."""
    return pool_queue_url(tasks_queue_url, pool) + "-dlq"
