"""The records table (pk, sk): webhook events and attempts, WebSocket connections, keys."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws


class RecordsTable:
    def __init__(self, table: str) -> None:
        self.table = table

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def put_new(self, item: dict[str, Any]) -> bool:
        """Write an item whose key must not exist yet; False if it does (a duplicate)."""
        try:
            self._ddb.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_counted(self, item: dict[str, Any], counter: dict[str, Any], limit: int) -> bool:
        """Write a new item and add one to its owner's `counter` item in one transaction,
        unless the count has reached `limit`: two writes at once cannot both take the last
        place. False if refused (the count is at the limit)."""
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": counter,
                            "UpdateExpression": "ADD n :one",
                            "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                            "ExpressionAttributeValues": {
                                ":one": {"N": "1"},
                                ":limit": {"N": str(limit)},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True
