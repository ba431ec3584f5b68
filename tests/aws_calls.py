"""The IAM actions the app's own AWS calls need, recorded over a whole test session.

tests/conftest.py hooks every client chalicelib.aws hands out (`provide-client-params`, which
fires for calls and for presigned URLs alike); test_policy_covers_calls checks, after every
other test, that the packaged role grants each recorded action.
"""

from __future__ import annotations

from typing import Any

RECORDED: set[str] = set()

# Operations whose IAM action has another name.
ACTION_OF = {
    "s3:HeadObject": ["s3:GetObject"],
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:CopyObject": ["s3:GetObject", "s3:PutObject"],
    "s3:CreateMultipartUpload": ["s3:PutObject"],
    "s3:UploadPart": ["s3:PutObject"],
    "s3:CompleteMultipartUpload": ["s3:PutObject"],
    "dynamodb:TransactGetItems": ["dynamodb:GetItem"],
    # IAM authorizes a batch of messages with the action of one (SQS has no batch action).
    "sqs:SendMessageBatch": ["sqs:SendMessage"],
}
# Services whose IAM prefix is not their signing name.
PREFIX_OF = {"monitoring": "cloudwatch"}
# A transaction is authorised item by item.
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def iam_actions(prefix: str, operation: str, params: dict[str, Any]) -> list[str]:
    if prefix == "execute-api":  # the API Gateway management API
        return ["execute-api:ManageConnections"]
    if f"{prefix}:{operation}" == "dynamodb:TransactWriteItems":
        return [
            TRANSACT_ITEM_ACTIONS[kind]
            for item in params.get("TransactItems", [])
            for kind in item
            if kind in TRANSACT_ITEM_ACTIONS
        ]
    return ACTION_OF.get(f"{prefix}:{operation}", [f"{prefix}:{operation}"])


def _record(params: dict[str, Any], model: Any, **_: Any) -> None:
    signing_name = model.service_model.signing_name
    prefix = PREFIX_OF.get(signing_name, signing_name)
    RECORDED.update(iam_actions(prefix, model.name, params))


def watch(client: Any) -> Any:
    if not getattr(client, "_taskstatus_watched", False):
        client.meta.events.register("provide-client-params", _record)
        client._taskstatus_watched = True
    return client


def install() -> None:
    """Wrap chalicelib.aws.client so that every client the app uses is watched."""
    from chalicelib import aws

    if getattr(aws.client, "_taskstatus_watched", False):
        return
    original = aws.client

    def client(service: str, endpoint_url: str | None = None) -> Any:
        return watch(original(service, endpoint_url))

    client._taskstatus_watched = True  # type: ignore[attr-defined]
    aws.client = client


def granted(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        if statement.get("Effect") == "Allow":
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    return actions
