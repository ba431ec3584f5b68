"""Fixtures the unit tests share: real receivers, immediate retries (of webhooks and of
tasks), a strict stage."""

from dataclasses import replace

import pytest

from chalicelib import bootstrap, webhooks
from tests.receiver import Receiver


@pytest.fixture
def receiver():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def no_wait(monkeypatch):
    """Webhook retries become due at once (the schedule itself is tested on RetrySchedule)."""
    zeros = webhooks.RetrySchedule(seconds=(0,) * webhooks.MAX_ATTEMPTS)
    # every container the test builds (`container(...)` may build one after this fixture)
    monkeypatch.setattr(bootstrap.Container, "webhook_schedule", property(lambda _: zeros))


@pytest.fixture
def no_backoff(monkeypatch):
    """The app's task retry policy without a backoff: a retried task is due again at once
    (the backoff itself is tested on RetryPolicy)."""
    built = bootstrap.container()
    monkeypatch.setattr(built, "retry_policy", replace(built.retry_policy, max_backoff_seconds=0))


@pytest.fixture
def strict(container):
    """A deployed stage's webhook rules: https only, public addresses only."""
    return container(webhook_allow_http=False, webhook_allow_private=False).settings
