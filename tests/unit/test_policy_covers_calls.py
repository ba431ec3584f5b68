"""The least-privilege role grants every AWS call the app made in this test run.

tests/aws_calls.py records the IAM action of each call (and presigned URL) made through
chalicelib.aws while the suite runs; this test runs after all the others.
"""

from __future__ import annotations

import pytest

from infra.package import policy
from tests import aws_calls


def packaged_actions() -> set[str]:
    return aws_calls.granted(policy()["PolicyDocument"]["Statement"])


@pytest.mark.after_suite
def test_the_packaged_role_grants_every_aws_call_the_suite_made():
    assert aws_calls.RECORDED, "no AWS call was recorded: run this with the unit tests"
    assert sorted(aws_calls.RECORDED - packaged_actions()) == []


def test_a_call_the_role_does_not_grant_is_caught():
    actions = set(aws_calls.iam_actions("dynamodb", "BatchWriteItem", {}))
    statements = [
        s
        for s in policy()["PolicyDocument"]["Statement"]
        if "dynamodb:BatchWriteItem" not in s["Action"]
    ]
    assert actions - aws_calls.granted(statements) == {"dynamodb:BatchWriteItem"}


def test_a_transaction_needs_the_action_of_each_of_its_items():
    params = {"TransactItems": [{"Put": {}}, {"ConditionCheck": {}}, {"Update": {}}]}
    assert aws_calls.iam_actions("dynamodb", "TransactWriteItems", params) == [
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
    ]


def test_websocket_pushes_need_manage_connections():
    assert aws_calls.iam_actions("execute-api", "PostToConnection", {}) == [
        "execute-api:ManageConnections"
    ]


def test_cloudwatch_calls_need_cloudwatch_actions():
    """CloudWatch signs as `monitoring`; IAM names its actions `cloudwatch:`."""
    import boto3

    client = aws_calls.watch(boto3.client("cloudwatch", region_name="us-east-1"))
    aws_calls.RECORDED.discard("cloudwatch:GetMetricData")
    client.meta.events.emit(
        "provide-client-params.monitoring.GetMetricData",
        params={},
        model=client.meta.service_model.operation_model("GetMetricData"),
    )
    assert "cloudwatch:GetMetricData" in aws_calls.RECORDED
