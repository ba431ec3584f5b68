"""Isolation: every function has its own reserved concurrency, and each queue's poller is held
to its function's, so a hanging webhook receiver or a flood of one kind cannot take the
executions the API, the worker or the stream need (docs/capacity.md)."""

from infra.package import (
    ALL_FUNCTIONS,
    EVENT_SOURCES,
    logical_id,
    merge_template,
    reserved_concurrency,
    sam_event_properties,
)

# Lambda's default concurrency quota, and what an account must leave unreserved.
ACCOUNT_QUOTA = 1000
UNRESERVED_MINIMUM = 100


def test_every_function_has_a_reserved_concurrency():
    assert sorted(logical_id(name) for name in reserved_concurrency()) == sorted(ALL_FUNCTIONS)


def test_the_reservations_fit_a_default_account_and_leave_half_of_it_to_others():
    unreserved = ACCOUNT_QUOTA - sum(reserved_concurrency().values())
    assert unreserved >= max(UNRESERVED_MINIMUM, ACCOUNT_QUOTA // 2)


def test_each_queue_poller_is_held_to_its_functions_reservation():
    """A poller above the reservation is throttled, and SQS counts the returned messages'
    receives toward the dead-letter queue: the cap must never exceed the reservation."""
    reserved = reserved_concurrency()
    for source in EVENT_SOURCES.values():
        if source.is_stream:
            continue
        cap = source.settings["ScalingConfig"]["MaximumConcurrency"]
        assert 2 <= cap <= max(2, reserved[source.function]), source.function


def test_a_hanging_webhook_receiver_holds_at_most_the_webhooks_reservation():
    reserved = reserved_concurrency()
    webhooks = EVENT_SOURCES["webhooks"].settings["ScalingConfig"]["MaximumConcurrency"]
    assert webhooks == reserved["webhooks"] < reserved["api_handler"]


def test_each_reservation_is_a_template_parameter_defaulting_to_the_config():
    template = merge_template()
    for name, executions in reserved_concurrency().items():
        logical = logical_id(name)
        parameter = template["Parameters"][f"{logical}ReservedConcurrency"]
        assert (parameter["Type"], parameter["Default"]) == ("Number", executions)
        reservation = template["Resources"][logical]["Properties"]["ReservedConcurrentExecutions"]
        assert reservation["Fn::If"][1] == {"Ref": f"{logical}ReservedConcurrency"}


def test_a_reservation_of_zero_reserves_nothing_rather_than_stopping_the_function():
    template = merge_template()
    reservation = template["Resources"]["Worker"]["Properties"]["ReservedConcurrentExecutions"]
    condition, _, otherwise = reservation["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerReservedConcurrency"}, 0]}]
    }


def test_the_packaged_webhooks_mapping_takes_its_cap_from_the_same_parameter():
    properties = sam_event_properties(EVENT_SOURCES["webhooks"])
    condition, scaling, _ = properties["ScalingConfig"]["Fn::If"]
    assert condition == "WebhooksReserved"
    assert scaling == {"MaximumConcurrency": {"Ref": "WebhooksReservedConcurrency"}}
