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
