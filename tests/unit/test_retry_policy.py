"""The tasks' retry policy: one value, and the queues that must agree with it."""

import json
from dataclasses import replace
from pathlib import Path

from chalicelib.bootstrap import Container
from chalicelib.queues import SQS_MAX_DELAY_SECONDS, RetryPolicy
from chalicelib.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


def configured_max_attempts() -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return int(config["environment_variables"]["MAX_ATTEMPTS"])


def queues() -> dict[str, dict]:
    resources = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue"
    }


def pool_queues() -> dict[str, dict]:
    return {
        name: queue
        for name, queue in queues().items()
        if "-pool-" in queue["QueueName"]["Fn::Sub"] and "RedrivePolicy" in queue
    }


def test_the_backoff_doubles_with_each_attempt():
    policy = RetryPolicy(max_attempts=5)
    assert [policy.backoff(attempt) for attempt in range(1, 6)] == [2, 4, 8, 16, 32]


def test_the_backoff_never_exceeds_what_sqs_can_delay():
    policy = RetryPolicy(max_attempts=50)
    assert max(policy.backoff(attempt) for attempt in range(1, 50)) == SQS_MAX_DELAY_SECONDS


def test_the_policy_is_exhausted_at_its_last_attempt():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(attempt) for attempt in (1, 2, 3, 4)] == [False, False, True, True]


def test_the_container_builds_the_policy_from_max_attempts():
    container = Container(replace(get_settings(), max_attempts=8))
    assert container.retry_policy == RetryPolicy(max_attempts=8)


def test_the_tasks_queue_dead_letters_a_message_after_max_attempts_deliveries():
    """SQS counts deliveries: a count above MAX_ATTEMPTS runs a task more often than the
    policy allows; below it, the dead-letter queue fails a task that had attempts left."""
    redrive = queues()["TasksQueue"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == configured_max_attempts()


def test_a_pool_queue_keeps_a_message_for_at_least_max_attempts_deliveries():
    """A pool's claim counts attempts on the task and gives up past MAX_ATTEMPTS; its queue
    also delivers a message again while a lease lives or a run is not yet due, so its
    dead-letter count may be higher than MAX_ATTEMPTS, never lower."""
    assert pool_queues(), "infra/resources.json declares no pool queue"
    for name, queue in pool_queues().items():
        assert queue["RedrivePolicy"]["maxReceiveCount"] >= configured_max_attempts(), name
