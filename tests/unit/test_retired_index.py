"""The index by_owner_type, retired on 2026-12-08 (a type is a filter on by_owner): a new stack
never has it, and an upgraded one keeps it until no deployed function reads it.

The stack updates run on moto's CloudFormation with the table update it lacks
(infra/moto_cloudformation.py), which, as DynamoDB does, refuses more than one index
created or deleted per update.
"""

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import deploy
from infra.package import merge_template
from infra.resources import TEMPLATE
from infra.stage import KEEP_RETIRED_INDEX, deploy_stack

pytestmark = pytest.mark.moto
STACK = "taskstatus-dev"


def template_before_the_retirement() -> str:
    """infra/resources.json as a stack made before 2026-12-08 has it: no parameter, and
    by_owner_type (with its attribute) in the table unconditionally."""
    template = json.loads(TEMPLATE.read_text())
    del template["Parameters"], template["Conditions"]

    def kept(value: Any) -> Any:
        if isinstance(value, list):
            return [kept(item) for item in value]
        if isinstance(value, dict):
            if value.get("Fn::If", [None])[0] == KEEP_RETIRED_INDEX:
                return kept(value["Fn::If"][1])
            return {key: kept(item) for key, item in value.items()}
        return value

    return json.dumps(kept(template))


@pytest.fixture
def cloudformation():
    with mock_aws():
        yield boto3.client("cloudformation", region_name="us-east-1")


@pytest.fixture
def old_stack(cloudformation):
    cloudformation.create_stack(StackName=STACK, TemplateBody=template_before_the_retirement())
    assert "by_owner_type" in table_indexes()
    return cloudformation


def table_indexes() -> list[str]:
    table = boto3.client("dynamodb", region_name="us-east-1").describe_table(
        TableName=f"{STACK}-tasks"
    )["Table"]
    return [index["IndexName"] for index in table["GlobalSecondaryIndexes"]]


def kept_parameter(cloudformation) -> str:
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[KEEP_RETIRED_INDEX]


def test_a_new_stack_has_no_index_by_owner_type(cloudformation):
    deploy_stack(cloudformation, STACK)
    assert "by_owner_type" not in table_indexes()
    assert "by_owner" in table_indexes()


def test_make_infra_keeps_by_owner_type_on_a_stack_made_before_its_retirement(old_stack):
    deploy_stack(old_stack, STACK)
    assert kept_parameter(old_stack) == "true"


def test_make_infra_leaves_by_owner_type_in_the_table_of_an_old_stack(old_stack):
    deploy_stack(old_stack, STACK)
    assert "by_owner_type" in table_indexes()


def test_make_deploy_retires_by_owner_type_and_then_finds_nothing_to_retire(old_stack):
    deploy_stack(old_stack, STACK)
    assert deploy.retire_index(old_stack, STACK) is True
    assert kept_parameter(old_stack) == "false"
    assert "by_owner_type" not in table_indexes()
    assert deploy.retire_index(old_stack, STACK) is False


def test_retiring_the_index_keeps_every_task(old_stack):
    deploy_stack(old_stack, STACK)
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    item = {"id": {"S": "t1"}, "owner": {"S": "alice"}, "created_at": {"S": "2026-12-01"}}
    ddb.put_item(TableName=f"{STACK}-tasks", Item=item)
    deploy.retire_index(old_stack, STACK)
    assert ddb.get_item(TableName=f"{STACK}-tasks", Key={"id": {"S": "t1"}})["Item"] == item


def test_make_infra_after_the_retirement_does_not_bring_the_index_back(old_stack):
    deploy_stack(old_stack, STACK)
    deploy.retire_index(old_stack, STACK)
    deploy_stack(old_stack, STACK)
    assert kept_parameter(old_stack) == "false"
    assert "by_owner_type" not in table_indexes()


def test_a_new_stack_has_nothing_to_retire(cloudformation):
    deploy_stack(cloudformation, STACK)
    assert deploy.retire_index(cloudformation, STACK) is False


def test_make_deploy_retires_the_index_only_after_the_functions_are_replaced(
    monkeypatch, tmp_path: Path
):
    steps: list[str] = []
    monkeypatch.setattr(deploy, "check_target", lambda stage: None)
    monkeypatch.setattr(deploy, "chalice_deploy", lambda stage, root: steps.append("functions"))
    monkeypatch.setattr(deploy, "websocket_endpoint", lambda stage, root: "https://ws")
    monkeypatch.setattr(deploy, "set_websocket_endpoint", lambda *args: False)
    monkeypatch.setattr(deploy.boto3, "client", lambda service: service)
    monkeypatch.setattr(deploy, "stack_outputs", lambda *args: {})
    monkeypatch.setattr(deploy, "apply_mapping_settings", lambda *args: [])
    monkeypatch.setattr(deploy, "retire_index", lambda *args: steps.append("retire") or True)
    deploy.main("dev", tmp_path)
    assert steps == ["functions", "retire"]


def test_the_packaged_stack_drops_by_owner_type_unless_told_to_keep_it():
    template = merge_template()
    parameter = template["Parameters"][KEEP_RETIRED_INDEX]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["false", "true"])
    assert template["Conditions"][KEEP_RETIRED_INDEX] == {
        "Fn::Equals": [{"Ref": KEEP_RETIRED_INDEX}, "true"]
    }
    table = template["Resources"]["TasksTable"]["Properties"]
    (kept,) = [
        index["Fn::If"][1]["IndexName"]
        for index in table["GlobalSecondaryIndexes"]
        if "Fn::If" in index
    ]
    assert kept == "by_owner_type"
