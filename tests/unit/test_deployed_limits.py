"""Accepted work fits the deployed limits of the functions that do it."""

from __future__ import annotations

import json

import app as app_module
from chalicelib.settings import get_settings
from tests.conftest import ROOT

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())


def timeout_of(function: str) -> int:
    return (
        CONFIG["lambda_functions"].get(function, {}).get("lambda_timeout", CONFIG["lambda_timeout"])
    )


def batch_size_of(function: str) -> int:
    return next(s.batch_size for s in app_module.app.event_sources if s.name == function)


def test_a_webhook_batch_fits_the_webhooks_functions_timeout():
    # Deliveries in a batch are sequential; each attempt may take its whole deadline.
    deadline = get_settings().webhook_timeout_seconds
    assert batch_size_of("webhooks") * deadline <= timeout_of("webhooks")


def test_every_processor_fits_the_worker_functions_timeout():
    from chalicelib.processors import get_processor, registered_types

    worker_timeout = timeout_of("worker")
    for name in registered_types():
        runtime = get_processor(name).max_runtime_seconds
        assert batch_size_of("worker") * runtime <= worker_timeout, name


def test_the_lease_covers_the_worker_functions_timeout():
    assert get_settings().worker_lease_seconds >= timeout_of("worker")
