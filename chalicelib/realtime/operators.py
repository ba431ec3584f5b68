"""Operator connections: every owner's changes, coalesced to one message per stream batch.

An operator opens the WebSocket with `?token=<operator credential>&watch=operators`. Such a
connection gets, after each stream batch that changed any task, one message:
`{"type": "ops_changes", "count": n, "changes": [{jobId, owner, type, status, version}]}`
with the batch's last MAX_CHANGES_PER_MESSAGE changes (a busy service sends one message per
batch, never one per task), and at most MAX_OPERATOR_CONNECTIONS are watching at once.

Records table layout (one partition):
  pk operators, sk marker        live while an operator connection may exist (its TTL)
  pk operators, sk conn#<id>     an operator connection (TTL: the connection's)
A stream batch reads the marker (one GetItem) and, only when it is live, the connections
(one Query).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.model import Task

PK = {"S": "operators"}
MARKER = {"pk": PK, "sk": {"S": "marker"}}
MAX_OPERATOR_CONNECTIONS = 20
MAX_CHANGES_PER_MESSAGE = 25


def _connection_key(connection_id: str) -> dict[str, Any]:
    return {"pk": PK, "sk": {"S": f"conn#{connection_id}"}}


class OperatorWatchers:
    def __init__(self, table: str) -> None:
        self.table = table

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def add(self, connection_id: str, now: int, expires_at: int) -> bool:
        """Watch every owner's changes; False when MAX_OPERATOR_CONNECTIONS already do."""
        if len(self.connections(now)) >= MAX_OPERATOR_CONNECTIONS:
            return False
        expires = {"N": str(expires_at)}
        self._ddb.put_item(
            TableName=self.table, Item={**_connection_key(connection_id), "expires_at": expires}
        )
        try:  # the marker lives as long as the longest-lived operator connection
            self._ddb.update_item(
                TableName=self.table,
                Key=MARKER,
                UpdateExpression="SET expires_at = :e",
                ConditionExpression="attribute_not_exists(expires_at) OR expires_at < :e",
                ExpressionAttributeValues={":e": expires},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        return True

    def remove(self, connection_id: str) -> None:
        self._ddb.delete_item(TableName=self.table, Key=_connection_key(connection_id))

    def live(self, now: int) -> bool:
        item = self._ddb.get_item(TableName=self.table, Key=MARKER, ConsistentRead=True)
        return int(item.get("Item", {}).get("expires_at", {}).get("N", "0")) > now

    def connections(self, now: int) -> list[str]:
        response = self._ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
            ExpressionAttributeValues={":pk": PK, ":conn": {"S": "conn#"}},
            ConsistentRead=True,
        )
        return [
            item["sk"]["S"].removeprefix("conn#")
            for item in response.get("Items", [])
            if int(item["expires_at"]["N"]) > now
        ]


@dataclass
class Coalesced:
    """One stream batch's changes, for the operators watching."""

    count: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, task: Task) -> None:
        self.count += 1
        self.changes.append(
            {
                "jobId": task.id,
                "owner": task.owner,
                "type": task.type,
                "status": task.status.value,
                "version": task.version,
            }
        )
        del self.changes[:-MAX_CHANGES_PER_MESSAGE]

    def message(self) -> str:
        return json.dumps({"type": "ops_changes", "count": self.count, "changes": self.changes})
