"""The deploy rehearsal's checker reports each way a deployment can miss what the code needs.

`make deploy-rehearsal` runs the checker on what it deployed to the emulator; these tests run
it on a description built from the same expectations, then damage it one way at a time.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import rehearsal
from infra.deploy import deployed_mappings, mapping_settings
from infra.stage import deploy_stack

pytestmark = pytest.mark.moto  # deploys into an in-process moto

ENDPOINT = "wss://abc123.execute-api.us-east-1.amazonaws.com/api/"


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    with mock_aws():
        return deploy_stack(
            boto3.client("cloudformation", region_name="us-east-1"), "taskstatus-dev"
        )


@pytest.fixture(scope="module")
def expected(outputs: dict[str, str]) -> dict[str, Any]:
    return rehearsal.expectations(outputs)


@pytest.fixture
def healthy(expected: dict[str, Any]) -> dict[str, Any]:
    environment = {name: "set" for name in expected["variables"]}
    environment["WS_ENDPOINT_URL"] = "https://abc123.execute-api.us-east-1.amazonaws.com/api"
    return {
        "functions": {
            name: {**sizes, "environment": dict(environment), "grants": list(expected["grants"])}
            for name, sizes in expected["functions"].items()
        },
        "mappings": [
            {"function": function, "source": want["source"], "settings": dict(want["settings"])}
            for function, want in expected["mappings"].items()
        ],
        "rest_routes": {route: "api_handler" for route in expected["rest_routes"]},
        "rest_stages": ["api"],
        "websocket_routes": dict(expected["websocket_routes"]),
        "websocket_stages": ["api"],
        "websocket_endpoint": ENDPOINT,
        "wheels": {"pydantic_core-2.50.4.dist-info": ["cp311-cp311-manylinux_2_17_x86_64"]},
        "bytecode": [],
    }


def test_a_deployment_with_everything_the_code_needs_passes(healthy, expected):
    assert rehearsal.problems(healthy, expected) == []


def test_a_mapping_without_report_batch_item_failures_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    worker = next(m for m in damaged["mappings"] if m["function"] == "worker")
    worker["settings"].pop("FunctionResponseTypes")
    assert "the event source of worker lacks ReportBatchItemFailures" in rehearsal.problems(
        damaged, expected
    )


def test_a_stream_mapping_without_its_on_failure_queue_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    stream = next(m for m in damaged["mappings"] if m["function"] == "stream")
    stream["settings"].pop("DestinationConfig")
    assert any("DestinationConfig" in p for p in rehearsal.problems(damaged, expected))


def test_a_function_without_a_variable_the_code_reads_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["functions"]["worker"]["environment"].pop("WEBHOOKS_QUEUE_URL")
    assert rehearsal.problems(damaged, expected) == [
        "worker: environment variable WEBHOOKS_QUEUE_URL is not set"
    ]


def test_a_role_without_an_action_the_code_calls_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    grants = damaged["functions"]["stream"]["grants"]
    damaged["functions"]["stream"]["grants"] = [g for g in grants if g[0] != "sqs:SendMessage"]
    found = rehearsal.problems(damaged, expected)
    assert found and all(
        p.startswith("stream: its role does not grant sqs:SendMessage") for p in found
    )


def test_a_function_sized_unlike_the_config_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["functions"]["worker"]["timeout"] = 3
    assert rehearsal.problems(damaged, expected) == [
        f"worker: timeout is 3, the config says {expected['functions']['worker']['timeout']}"
    ]


def test_a_missing_rest_route_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["rest_routes"].pop("POST /jobs")
    assert any("POST /jobs" in p for p in rehearsal.problems(damaged, expected))


def test_a_websocket_route_reaching_the_wrong_function_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["websocket_routes"]["$connect"] = "websocket_message"
    assert rehearsal.problems(damaged, expected) == [
        "WebSocket route $connect does not reach websocket_connect"
    ]


def test_functions_that_missed_the_websocket_pass_fail(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["functions"]["stream"]["environment"]["WS_ENDPOINT_URL"] = "https://example.com"
    assert [p.split(":")[0] for p in rehearsal.problems(damaged, expected)] == ["stream"]


@pytest.mark.parametrize(
    "tag",
    [
        "cp311-cp311-linux_x86_64",
        "cp311-cp311-manylinux_2_28_x86_64",
        "cp311-cp311-macosx_11_0_arm64",
    ],
)
def test_a_wheel_that_does_not_run_on_lambda_python311_fails(healthy, expected, tag):
    damaged = copy.deepcopy(healthy)
    damaged["wheels"]["pillow-13.0.0.dist-info"] = [tag]
    assert rehearsal.problems(damaged, expected) == [
        f"pillow-13.0.0.dist-info does not run on Lambda's python3.11 (tags {[tag]})"
    ]


def test_a_package_without_bytecode_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["bytecode"] = ["app.py has no __pycache__/app.cpython-311.pyc"]
    assert rehearsal.problems(damaged, expected) == [
        "the package: app.py has no __pycache__/app.cpython-311.pyc"
    ]


@pytest.mark.parametrize(
    "tag", ["py3-none-any", "cp311-abi3-manylinux2014_x86_64", "cp311-cp311-manylinux_2_26_x86_64"]
)
def test_wheels_for_glibc_226_or_older_run_on_lambda(tag):
    assert rehearsal.runs_on_lambda(tag)


def test_the_rehearsal_sees_each_damage_it_proves_itself_with(healthy, expected):
    assert rehearsal.blind_spots(healthy, expected) == []


def test_every_variable_the_settings_read_is_required_unless_declared_optional():
    required = rehearsal.required_variables()
    assert {"TASKS_TABLE", "WEBHOOK_SECRET", "WS_ENDPOINT_URL", "LOG_LEVEL"} <= required
    assert "JWT_JWKS_URL" not in required


def test_the_post_deploy_step_finds_chalices_mappings(tmp_path):
    (tmp_path / ".chalice" / "deployed").mkdir(parents=True)
    resources = [
        {"name": "worker-sqs-event-source", "resource_type": "sqs_event", "event_uuid": "u1"},
        {
            "name": "stream-dynamodb-event-source",
            "resource_type": "dynamodb_event",
            "event_uuid": "u2",
        },
        {"name": "worker", "resource_type": "lambda_function"},
    ]
    (tmp_path / ".chalice" / "deployed" / "dev.json").write_text(
        json.dumps({"resources": resources})
    )
    assert deployed_mappings("dev", tmp_path) == [
        {"function": "worker", "uuid": "u1"},
        {"function": "stream", "uuid": "u2"},
    ]


def test_the_stream_mapping_sends_failures_to_the_stacks_queue(outputs):
    settings = mapping_settings("stream", outputs)
    assert settings["DestinationConfig"] == {
        "OnFailure": {"Destination": outputs["StreamFailuresQueueArn"]}
    }
    assert settings["BisectBatchOnFunctionError"] is True
    assert 0 < settings["MaximumRetryAttempts"] <= 100


def test_an_event_source_without_settings_stops_the_deploy(outputs):
    with pytest.raises(SystemExit, match="EVENT_SOURCES"):
        mapping_settings("a_handler_nobody_listed", outputs)


def test_a_function_without_its_reserved_concurrency_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    damaged["functions"]["webhooks"]["reserved"] = None
    want = expected["functions"]["webhooks"]["reserved"]
    assert rehearsal.problems(damaged, expected) == [
        f"webhooks: reserved is None, the config says {want}"
    ]


def test_a_queue_mapping_without_its_maximum_concurrency_fails(healthy, expected):
    damaged = copy.deepcopy(healthy)
    webhooks = next(m for m in damaged["mappings"] if m["function"] == "webhooks")
    webhooks["settings"].pop("ScalingConfig")
    assert any(
        p.startswith("the event source of webhooks: ScalingConfig is None")
        for p in rehearsal.problems(damaged, expected)
    )


def test_every_variable_the_code_needs_is_set_by_the_deployment_or_named_optional():
    """A new setting must be set by the config, the template or a stage secret, or be listed
    as optional: otherwise the rehearsal's deploy, minutes into `make test`, finds it missing."""
    from infra import package

    config = json.loads((rehearsal.ROOT / ".chalice" / "config.json").read_text())
    deployed = (
        set(config["environment_variables"])
        | set(package.environment()["Variables"])
        | set(rehearsal.REHEARSAL_SECRETS)
    )
    missing = rehearsal.required_variables() - deployed
    assert not missing, (
        f"add to .chalice/config.json or infra/rehearsal.OPTIONAL_VARIABLES: {missing}"
    )
