"""The deploy tooling: the merge template and `make infra`'s stage configuration."""

import json
import re

import boto3
import pytest
from moto import mock_aws

from infra.package import merge_template
from infra.stage import RESOURCE_VARIABLES, deploy_stack, write_stage_config


def test_the_merge_template_references_every_data_resource_by_reference():
    template = merge_template()
    worker = template["Resources"]["Worker"]["Properties"]
    assert worker["Environment"]["Variables"]["TASKS_TABLE"] == {"Ref": "TasksTable"}
    event = worker["Events"]["WorkerSqsEventSource"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    stream = template["Resources"]["Stream"]["Properties"]["Events"]["StreamDynamodbEventSource"]
    assert stream["Properties"]["Stream"] == {"Fn::GetAtt": ["TasksTable", "StreamArn"]}


# Actions AWS authorises on no resource but `*` (no resource-level permission): reads of
# metrics, never of data.
RESOURCELESS_ACTIONS = {"cloudwatch:GetMetricData"}


def test_the_role_grants_no_wildcard_data_resources():
    statements = merge_template()["Resources"]["DefaultRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    for statement in statements:
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        if "*" in resources:
            assert set(statement["Action"]) <= RESOURCELESS_ACTIONS, statement
        assert not any(action.endswith(":*") for action in statement["Action"])


def test_secrets_are_noecho_parameters():
    parameters = merge_template()["Parameters"]
    assert parameters["JwtSecret"]["NoEcho"] is True
    assert parameters["WebhookSecret"]["NoEcho"] is True


@pytest.mark.moto
def test_make_infra_writes_names_and_a_concrete_policy(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": "2.0", "app_name": "taskstatus", "stages": {}}))
    with mock_aws():
        outputs = deploy_stack(
            boto3.client("cloudformation", region_name="us-east-1"), "taskstatus-dev"
        )
        again = deploy_stack(
            boto3.client("cloudformation", region_name="us-east-1"), "taskstatus-dev"
        )
    assert outputs == again
    policy_path = write_stage_config("dev", outputs, config)
    stage = json.loads(config.read_text())["stages"]["dev"]
    assert stage["environment_variables"]["TASKS_TABLE"] == "taskstatus-dev-tasks"
    assert set(RESOURCE_VARIABLES) <= set(stage["environment_variables"])
    assert stage["iam_policy_file"] == "policy-dev.json" and stage["autogen_policy"] is False
    text = policy_path.read_text()
    assert "Fn::" not in text and "${" not in text
    assert "arn:aws:dynamodb:us-east-1:123456789012:table/taskstatus-dev-tasks" in text


def test_the_websocket_endpoint_is_read_from_chalices_deployed_record(tmp_path, monkeypatch):
    from infra import stage as stage_module

    (tmp_path / ".chalice" / "deployed").mkdir(parents=True)
    (tmp_path / ".chalice" / "deployed" / "dev.json").write_text(
        json.dumps(
            {
                "schema_version": "2.0",
                "resources": [
                    {
                        "name": "websocket_api",
                        "resource_type": "websocket_api",
                        "websocket_api_id": "abc123",
                        "websocket_api_url": "wss://abc123.execute-api.eu-west-1.amazonaws.com/api/",
                    }
                ],
            }
        )
    )
    config = tmp_path / ".chalice" / "config.json"
    config.write_text(json.dumps({"stages": {"dev": {"api_gateway_stage": "api"}}}))
    monkeypatch.setattr(stage_module, "CONFIG", config)
    endpoint = stage_module.websocket_endpoint("dev", tmp_path)
    assert endpoint == "https://abc123.execute-api.eu-west-1.amazonaws.com/api"
    assert stage_module.set_websocket_endpoint("dev", endpoint, config) is True
    assert stage_module.set_websocket_endpoint("dev", endpoint, config) is False


def test_every_function_can_reach_the_websocket_management_api():
    template = merge_template()
    for function in ("Stream", "WebsocketMessage"):
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert "WebsocketAPI" in variables["WS_ENDPOINT_URL"]["Fn::Sub"]


def test_every_route_of_the_packaged_api_sends_its_preflight_to_the_app():
    # The same generator `chalice package` uses for the RestAPI's DefinitionBody.
    from chalice.deploy.swagger import CFNSwaggerGenerator

    import app as app_module

    swagger = CFNSwaggerGenerator().generate_swagger(app_module.app)
    assert swagger["paths"]
    for path, methods in swagger["paths"].items():
        integration = methods["options"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", path
        assert "APIHandler.Arn" in integration["uri"]["Fn::Sub"], path


def test_a_jwks_without_an_audience_is_refused_by_the_template():
    template = merge_template()
    rule = template["Rules"]["JwksNeedsAudience"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtJwksUrl"}, ""]}]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]}


def test_the_per_owner_running_limit_is_a_template_parameter_fair_by_default():
    from chalicelib.settings import DEFAULT_MAX_RUNNING_PER_OWNER

    template = merge_template()
    parameter = template["Parameters"]["MaxRunningPerOwner"]
    assert parameter["Default"] == str(DEFAULT_MAX_RUNNING_PER_OWNER) != "0"
    assert re.fullmatch(parameter["AllowedPattern"], "0")  # an operator may turn it off
    assert not re.fullmatch(parameter["AllowedPattern"], "")
    for function in ("Worker", "Stream", "Reaper"):
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["MAX_RUNNING_PER_OWNER"] == {"Ref": "MaxRunningPerOwner"}


FLOW_PARAMETERS = {
    "TypeConcurrency": "TYPE_CONCURRENCY",
    "TypeRate": "TYPE_RATE",
    "SubmitRate": "SUBMIT_RATE",
    "PriorityAgingSeconds": "PRIORITY_AGING_SECONDS",
}
# Values the app reads, and values it refuses at start: the template takes the first and
# refuses the second, so a stack never deploys a setting its functions cannot start with.
FLOW_VALUES = {
    "TypeConcurrency": (
        ["", "image/*=5", "image/*=5,email/*=20", " image/thumb* = 1 , demo/*=2"],
        ["image/*", "image/*=0", "image/*=x", "image/ *=2", "=3", "image/*=5;email/*=2"],
    ),
    "TypeRate": (
        ["", "email/*=10/min", "email/*=10/minute,sms/*=1/s", "demo/*= 3 / hours"],
        ["email/*=10", "email/*=0/min", "email/*=10/week", "email/*", "10/min"],
    ),
    "SubmitRate": (
        ["", "100/min", "5/second", "1000/day", " 20 / h "],
        ["ten a minute", "0/min", "100", "100/fortnight", "-1/min"],
    ),
    "PriorityAgingSeconds": (["60", "1", "3600"], ["0", "-5", "1.5", "a minute"]),
}


def _starts_with(parameter: str, value: str) -> bool:
    """Whether the functions start with this value of the parameter's variable."""
    from chalicelib.settings import ConfigurationError, _flow_settings

    variables = {FLOW_PARAMETERS[parameter]: value}
    try:
        _flow_settings(lambda name, default: variables.get(name, default))
    except ConfigurationError:
        return False
    return True


def test_the_flow_settings_are_template_parameters_off_by_default():
    template = merge_template()
    for function in ("APIHandler", "Worker", "Stream", "Reaper"):
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        for parameter, variable in FLOW_PARAMETERS.items():
            assert variables[variable] == {"Ref": parameter}
    defaults = {name: template["Parameters"][name]["Default"] for name in FLOW_PARAMETERS}
    assert defaults == {
        "TypeConcurrency": "",
        "TypeRate": "",
        "SubmitRate": "",
        "PriorityAgingSeconds": "60",
    }


@pytest.mark.parametrize("parameter", sorted(FLOW_VALUES))
def test_a_flow_parameter_takes_what_the_app_reads_and_refuses_what_stops_its_start(parameter):
    pattern = merge_template()["Parameters"][parameter]["AllowedPattern"]
    read, refused = FLOW_VALUES[parameter]
    for value in read:
        assert _starts_with(parameter, value), value
        assert re.fullmatch(pattern, value), value
    for value in refused:
        assert not _starts_with(parameter, value), value
        assert not re.fullmatch(pattern, value), value


def test_credentials_and_browser_settings_are_template_parameters():
    template = merge_template()
    variables = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    for parameter, variable in {
        "CorsAllowOrigins": "CORS_ALLOW_ORIGINS",
        "OwnerClaim": "OWNER_CLAIM",
        "JwtRequiredScopes": "JWT_REQUIRED_SCOPES",
        "PublicReadById": "PUBLIC_READ_BY_ID",
        "JwtAudience": "JWT_AUDIENCE",
    }.items():
        assert variables[variable] == {"Ref": parameter}
        assert parameter in template["Parameters"]
