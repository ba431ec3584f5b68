"""Shared fixtures: an in-process AWS (moto) built from the deploy template (local/stack.py),
and tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
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
    from infra.moto_cloudformation import patch_cloudformation
    from tests import aws_calls

    aws_calls.install()  # record the IAM actions of every AWS call the app makes
    patch_cloudformation()  # every template a test hands moto, as the emulators do


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers: tests without AWS first, then the in-process moto ones, then end-to-end; tests
    marked `after_suite` judge what the whole run did, so they run last of all.

    `moto` and `e2e` are given by what a test uses (the `stack` or `local_stack` fixture),
    so `make unit-fast` (`-m "not moto and not slow"`) cannot miss a test that needs AWS.
    """
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "stack" in fixtures:
            item.add_marker(pytest.mark.moto)
        if "local_stack" in fixtures or item.path.parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)
    items.sort(key=tier)


def tier(item: pytest.Item) -> int:
    if item.get_closest_marker("after_suite"):
        return 4
    if item.get_closest_marker("e2e"):
        return 3
    if item.get_closest_marker("slow"):
        return 2
    return 1 if item.get_closest_marker("moto") else 0


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
    from chalicelib.bootstrap import container

    return container().service


@pytest.fixture
def container(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """`container(max_running_per_owner=2)`: the app's parts built from the environment's
    settings with these changed, which the app's handlers then run on too (cosmicpython's
    `bootstrap_test_app`). For a test that varies a setting, not one about reading the
    environment. Needs no AWS; a test on the stack gets it first (a fresh stack starts
    from a new container)."""
    from chalicelib import bootstrap

    if "stack" in request.fixturenames:
        request.getfixturevalue("stack")

    def build(**changed: Any) -> bootstrap.Container:
        built = bootstrap.Container(replace(bootstrap.settings(), **changed))
        bootstrap.use(built)
        return built

    yield build
    bootstrap.reset()
