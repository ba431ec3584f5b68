"""`make bench` builds its own events and tasks, and a handler that refuses one (a stream
record without a field every real record has, a park of a task never stored) stops or
falsifies the whole bench: each is tried here first, in-process."""

import os

import pytest

from local.events import LambdaContext, sqs_event, stream_event
from tests.conftest import token_for


@pytest.fixture
def cold_events(stack):
    from bench.cold import _events

    return _events(dict(os.environ), token_for("bench-cold"), sqs_event, stream_event)


@pytest.mark.parametrize("name", ["REST GET /jobs/{id}", "status Lambda", "worker", "stream"])
def test_a_cold_start_event_of_the_bench_is_answered_by_its_handler(cold_events, name):
    import app

    (module, handler, event), _baseline = cold_events[name]()
    assert module == "app"
    context = LambdaContext("api_handler" if handler == "app" else handler)
    result = getattr(app, handler)(event, context)
    assert not (isinstance(result, dict) and result.get("batchItemFailures")), result
    assert (result.get("statusCode", 200) if isinstance(result, dict) else 200) == 200, result


def test_the_flow_bench_parks_tasks_and_admits_them_from_a_line(stack, capsys):
    """Its park is real only if the task is stored and still waits (chalicelib/fairness.py)."""
    from bench.bench import CallCounter
    from bench.flow import admission_calls

    admission_calls(CallCounter(), count=3)
    assert "admitted from a line (3)" in capsys.readouterr().out


def test_the_remote_worker_bench_counts_a_keyed_claim_as_one_transaction(client, stack, capsys):
    from bench.bench import CallCounter
    from bench.workers import claim_calls
    from chalicelib import aws

    counter = CallCounter()
    for service in ("dynamodb", "sqs"):
        counter.attach(aws.client(service))
    claim_calls(client, counter, stack, n=2)
    [keyed] = [line for line in capsys.readouterr().out.splitlines() if "Idempotency-Key" in line]
    assert "dynamodb:TransactWriteItems=1" in keyed, keyed
