"""The emulators' CloudFormation (infra/moto_cloudformation.py) does what CloudFormation does
where moto 5.2.5 does not: a list item of `AWS::NoValue` is dropped, a stack update changes
a table's indexes in place, one at a time, and a changed parameter updates the resources of
its conditions."""

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.moto_cloudformation import ONE_INDEX_PER_UPDATE

pytestmark = pytest.mark.moto


def index(name: str) -> dict[str, Any]:
    return {
        "IndexName": f"by_{name}",
        "KeySchema": [{"AttributeName": name, "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }


def table_template(*indexes: Any, keep: str | None = None) -> str:
    names = {"a", "b", "c"}
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": "t",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in names]
            + [{"AttributeName": "id", "AttributeType": "S"}],
            "GlobalSecondaryIndexes": list(indexes),
        },
    }
    template: dict[str, Any] = {"Resources": {"Table": table}}
    if keep is not None:
        template["Parameters"] = {"Keep": {"Type": "String", "Default": keep}}
        template["Conditions"] = {"Kept": {"Fn::Equals": [{"Ref": "Keep"}, "true"]}}
    return json.dumps(template)


@pytest.fixture
def aws():
    with mock_aws():
        yield (
            boto3.client("cloudformation", region_name="us-east-1"),
            boto3.client("dynamodb", region_name="us-east-1"),
        )


def indexes_of(ddb) -> list[str]:
    table = ddb.describe_table(TableName="t")["Table"]
    return sorted(i["IndexName"] for i in table.get("GlobalSecondaryIndexes", []))


def test_a_list_item_of_no_value_is_left_out(aws):
    cloudformation, ddb = aws
    maybe_b = {"Fn::If": ["Kept", index("b"), {"Ref": "AWS::NoValue"}]}
    cloudformation.create_stack(
        StackName="s", TemplateBody=table_template(index("a"), maybe_b, keep="false")
    )
    assert indexes_of(ddb) == ["by_a"]


def test_an_update_adds_an_index_and_keeps_the_items(aws):
    cloudformation, ddb = aws
    cloudformation.create_stack(StackName="s", TemplateBody=table_template(index("a")))
    ddb.put_item(TableName="t", Item={"id": {"S": "1"}, "b": {"S": "x"}})
    cloudformation.update_stack(StackName="s", TemplateBody=table_template(index("a"), index("b")))
    assert indexes_of(ddb) == ["by_a", "by_b"]
    found = ddb.query(
        TableName="t",
        IndexName="by_b",
        KeyConditionExpression="b = :x",
        ExpressionAttributeValues={":x": {"S": "x"}},
    )
    assert [item["id"]["S"] for item in found["Items"]] == ["1"]


def test_an_update_drops_an_index(aws):
    cloudformation, ddb = aws
    cloudformation.create_stack(StackName="s", TemplateBody=table_template(index("a"), index("b")))
    cloudformation.update_stack(StackName="s", TemplateBody=table_template(index("a")))
    assert indexes_of(ddb) == ["by_a"]


def test_an_update_that_adds_one_index_and_drops_another_is_refused(aws):
    cloudformation, ddb = aws
    cloudformation.create_stack(StackName="s", TemplateBody=table_template(index("a")))
    with pytest.raises((ClientError, ValueError), match=ONE_INDEX_PER_UPDATE):
        cloudformation.update_stack(StackName="s", TemplateBody=table_template(index("b")))
    assert indexes_of(ddb) == ["by_a"]


def test_a_changed_parameter_updates_the_table_its_condition_shapes(aws):
    cloudformation, ddb = aws
    maybe_b = {"Fn::If": ["Kept", index("b"), {"Ref": "AWS::NoValue"}]}
    body = table_template(index("a"), maybe_b, keep="true")
    cloudformation.create_stack(StackName="s", TemplateBody=body)
    assert indexes_of(ddb) == ["by_a", "by_b"]
    cloudformation.update_stack(
        StackName="s",
        TemplateBody=body,
        Parameters=[{"ParameterKey": "Keep", "ParameterValue": "false"}],
    )
    assert indexes_of(ddb) == ["by_a"]
