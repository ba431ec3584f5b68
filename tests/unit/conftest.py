"""Fixtures the unit tests share: real receivers, immediate retries (of webhooks and of
tasks), a strict stage."""

from dataclasses import replace

import pytest

from chalicelib import webhooks
from chalicelib.bootstrap import container
from chalicelib.settings import get_settings
from tests.conftest import reset_caches
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
    """Retries become due at once (the schedule itself is tested on next_delay)."""
    monkeypatch.setattr(webhooks, "next_delay", lambda attempt, outcome: 0)


@pytest.fixture
def no_backoff(monkeypatch):
    """The app's task retry policy without a backoff: a retried task is due again at once
    (the backoff itself is tested on RetryPolicy)."""
    built = container()
    monkeypatch.setattr(built, "retry_policy", replace(built.retry_policy, max_backoff_seconds=0))


@pytest.fixture
def strict(monkeypatch):
    """A deployed stage's webhook rules: https only, public addresses only."""
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "false")
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "false")
    reset_caches()
    yield get_settings()
    reset_caches()
