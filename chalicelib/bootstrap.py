"""The composition root: every long-lived part of the app, built once per container.

`container()` reads the settings (the only call of `get_settings`) and wires the
store, the service, webhooks and realtime from them, once per Lambda container.
Each part is built on first use, so a function pays at cold start only for the
parts it runs. New settings (tests clear `get_settings`' cache after changing the
environment) get a new container.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from chalicelib.model import Task
    from chalicelib.queues import RetryPolicy
    from chalicelib.realtime import Realtime
    from chalicelib.service import TaskService
    from chalicelib.store import TaskStore
    from chalicelib.webhooks import WebhookDispatcher


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def store(self) -> TaskStore:
        from chalicelib.service import timeout_for
        from chalicelib.store import TaskStore

        s = self.settings
        return TaskStore(s.tasks_table, s.records_table, timeout_for(s))

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """The tasks' retry policy: MAX_ATTEMPTS runs, with the worker's backoff between them."""
        from chalicelib.queues import RetryPolicy

        return RetryPolicy(self.settings.max_attempts)

    @cached_property
    def service(self) -> TaskService:
        from chalicelib.service import TaskService

        return TaskService(self.store, self.settings)

    @cached_property
    def webhooks(self) -> WebhookDispatcher:
        from chalicelib.contracts.payloads import RENDERING
        from chalicelib.webhooks import WebhookDispatcher

        return WebhookDispatcher(self.settings, RENDERING)

    def redeliver(self, task: Task) -> str:
        """The webhook dispatcher's `redeliver`, built only when a redelivery is asked for."""
        return self.webhooks.redeliver(task)

    @cached_property
    def realtime(self) -> Realtime:
        from chalicelib.realtime import Realtime

        return Realtime(self.service, _push_message)


def _push_message(task: Task) -> str:
    """004's push for a task, with the native change beside it: the view (and what it
    imports) loads on the first push, not when a connection opens."""
    from chalicelib.contracts.task_status import push_message

    return push_message(task)


_built: Container | None = None


def container() -> Container:
    global _built
    settings = get_settings()
    if _built is None or _built.settings is not settings:
        _built = Container(settings)
    return _built


def reset() -> None:
    global _built
    _built = None


def settings() -> Settings:
    return container().settings
