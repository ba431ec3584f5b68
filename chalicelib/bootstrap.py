"""The composition root: every long-lived part of the app, built once per container.

`container()` reads the settings (the only call of `get_settings`) and wires every part
from them, once per Lambda container: the store and the service, the fairness slots, the
tasks queue's sender, the history, webhooks (and their log), API-key authentication (the
key store behind a per-container cache), realtime (subscriptions, pusher), the worker and
the stream handler. No part builds another: each takes its parts here, as the tests do
(`Container(replace(settings, ...))`, tests/conftest.py).

Each part is built on first use (`cached_property`, imports inside), so a function pays at
cold start only for the parts it runs: the worker never loads realtime, and a request made
with a JWT never loads API keys (tests/unit/test_cold_path.py). New settings (tests clear
`get_settings`' cache after changing the environment) get a new container.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from chalicelib.contracts.dashboard.links import SignInLinks
    from chalicelib.edge.api_keys import ApiKeyStore, KeyAuthentication, KeyCache
    from chalicelib.edge.credentials import Authenticator
    from chalicelib.fairness import Slots, TokenBuckets
    from chalicelib.history import History
    from chalicelib.model import Task
    from chalicelib.queues import RetryPolicy, TaskQueue
    from chalicelib.realtime import Realtime
    from chalicelib.realtime.operators import OperatorWatchers
    from chalicelib.realtime.pusher import Pusher
    from chalicelib.realtime.pushes import PushHandler
    from chalicelib.realtime.subscriptions import Subscriptions
    from chalicelib.schedules import ScheduleStore
    from chalicelib.service import TaskService
    from chalicelib.store import TaskStore
    from chalicelib.stream import StreamHandler
    from chalicelib.webhooks import RetrySchedule, WebhookDispatcher
    from chalicelib.webhooks.events import WebhookLog
    from chalicelib.worker import Worker


class Container:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- tasks ------------------------------------------------------------------------------

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
    def rate_buckets(self) -> TokenBuckets:
        """The token buckets of SUBMIT_RATE (REST submits) and TYPE_RATE (the worker), on the
        service's clock."""
        from chalicelib.fairness import TokenBuckets

        return TokenBuckets(self.settings.records_table, lambda: self.service.clock().timestamp())

    @cached_property
    def slots(self) -> Slots:
        """The gates (owner, type, key limits), their slots and lines: service, worker, stream."""
        from chalicelib.fairness import Slots

        return Slots.of(self.settings)

    @cached_property
    def tasks_queue(self) -> TaskQueue:
        from chalicelib.queues import TaskQueue

        return TaskQueue(self.settings.tasks_queue_url)

    @cached_property
    def service(self) -> TaskService:
        from chalicelib.service import TaskService

        return TaskService(self.store, self.settings, self.slots, self.tasks_queue)

    @cached_property
    def history(self) -> History:
        from chalicelib.history import History

        return History(self.settings.records_table)

    @cached_property
    def worker(self) -> Worker:
        from chalicelib.worker import Worker

        return Worker(
            self.service, self.slots, self.tasks_queue, self.retry_policy, self.rate_buckets
        )

    @cached_property
    def stream_handler(self) -> StreamHandler:
        from chalicelib.stream import StreamHandler

        # The webhook dispatcher is built by the first change that can create an event.
        return StreamHandler(self.service, self.slots, lambda: self.webhooks)

    @cached_property
    def push_handler(self) -> PushHandler:
        from chalicelib.realtime.pushes import PushHandler

        return PushHandler(self.realtime)

    @cached_property
    def schedule_store(self) -> ScheduleStore:
        from chalicelib.schedules import ScheduleStore

        return ScheduleStore(self.settings.records_table)

    @cached_property
    def sign_in_links(self) -> SignInLinks:
        """The dashboard's one-time sign-in codes."""
        from chalicelib.contracts.dashboard.links import SignInLinks

        return SignInLinks(self.settings.records_table)

    # -- webhooks -------------------------------------------------------------------------

    @cached_property
    def webhook_log(self) -> WebhookLog:
        from chalicelib.webhooks.events import WebhookLog

        return WebhookLog(self.settings.records_table)

    @cached_property
    def webhook_schedule(self) -> RetrySchedule:
        """When failed deliveries are tried again: Standard Webhooks' schedule."""
        from chalicelib.webhooks import RetrySchedule

        return RetrySchedule()

    @cached_property
    def webhooks(self) -> WebhookDispatcher:
        from chalicelib.contracts.payloads import RENDERING
        from chalicelib.webhooks import WebhookDispatcher

        return WebhookDispatcher(
            self.settings, RENDERING, self.webhook_log, schedule=self.webhook_schedule
        )

    def redeliver(self, task: Task) -> str:
        """The webhook dispatcher's `redeliver`, built only when a redelivery is asked for."""
        return self.webhooks.redeliver(task)

    # -- credentials ----------------------------------------------------------------------

    @cached_property
    def authenticator(self) -> Authenticator:
        """JWTs and API keys; the API-key parts are built by the first key that comes."""
        from chalicelib.edge.credentials import Authenticator

        return Authenticator(self.settings, lambda: self.key_authentication)

    @cached_property
    def api_key_store(self) -> ApiKeyStore:
        from chalicelib.edge.api_keys import ApiKeyStore

        return ApiKeyStore(self.settings.records_table)

    @cached_property
    def key_cache(self) -> KeyCache:
        """What this container looked up of API keys (a revoke here forgets it at once)."""
        from chalicelib.edge.api_keys import KeyCache

        return KeyCache()

    @cached_property
    def key_authentication(self) -> KeyAuthentication:
        from chalicelib.edge.api_keys import KeyAuthentication

        return KeyAuthentication(
            self.api_key_store, self.key_cache, self.settings.api_key_cache_seconds
        )

    # -- realtime -------------------------------------------------------------------------

    @cached_property
    def subscriptions(self) -> Subscriptions:
        from chalicelib.realtime.subscriptions import Subscriptions

        return Subscriptions(self.settings.records_table)

    @cached_property
    def pusher(self) -> Pusher:
        from chalicelib.realtime.pusher import Pusher

        return Pusher(self.settings.ws_endpoint_url)

    @cached_property
    def realtime(self) -> Realtime:
        from chalicelib.realtime import Realtime

        return Realtime(
            self.service,
            self.subscriptions,
            self.pusher,
            self.authenticator,
            _push_message,
            self.operator_watchers,
        )

    @cached_property
    def operator_watchers(self) -> OperatorWatchers:
        """The connections watching every owner's changes (operators)."""
        from chalicelib.realtime.operators import OperatorWatchers

        return OperatorWatchers(self.settings.records_table)


def _push_message(task: Task) -> str:
    """004's push for a task, with the native change beside it: the view (and what it
    imports) loads on the first push, not when a connection opens."""
    from chalicelib.contracts.task_status import push_message

    return push_message(task)


_built: Container | None = None
_built_for: Settings | None = None  # the environment's settings `_built` serves


def container() -> Container:
    """The process's container, for the environment's settings (a new one when they change)."""
    global _built, _built_for
    settings = get_settings()
    if _built is None or _built_for is not settings:
        _built, _built_for = Container(settings), settings
    return _built


def use(built: Container) -> None:
    """Serve the app from `built` until the environment's settings change: tests build a
    container from changed settings (`Container(replace(settings, ...))`) and the app's
    handlers run on it, as cosmicpython's `bootstrap_test_app` does."""
    global _built, _built_for
    _built, _built_for = built, get_settings()


def reset() -> None:
    global _built, _built_for
    _built, _built_for = None, None


def settings() -> Settings:
    return container().settings
