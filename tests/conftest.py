"""Shared fixtures: an in-process AWS (moto) built from the deploy template (local/stack.py),
and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import (  # noqa: F401  (the names the tests import from here)
    JWT_SECRET,
    LOCAL_STAGE,
    ROOT,
    UNIT_ENV,
    InProcessAws,
    Stack,
    auth,
    reset_caches,
    streams_client,
    token_for,
    use_in_process_env,
)

use_in_process_env()
IN_PROCESS_AWS = InProcessAws()


def pytest_configure(config: pytest.Config) -> None:
    from tests import aws_calls

    aws_calls.install()  # record the IAM actions of every AWS call the app makes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_suite` judge what the whole run did: they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_suite") is not None)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """The stack as created, in a fresh in-process moto (created once, copied per test)."""
    with IN_PROCESS_AWS.fresh() as fresh:
        yield fresh


@pytest.fixture
def client(stack: Stack) -> Iterator[Any]:
    from chalice.test import Client

    with Client(stack.app.app, stage_name="prod", project_dir=str(ROOT)) as test_client:
        yield test_client


@pytest.fixture
def service(stack: Stack) -> Any:
    from chalicelib.service import default_service

    return default_service()
