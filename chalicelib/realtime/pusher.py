"""Sending to WebSocket connections, and closing them, through API Gateway's management API."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from chalicelib import aws

if TYPE_CHECKING:
    from chalicelib.realtime.subscriptions import Subscriptions

log = logging.getLogger("taskstatus_svc.realtime")

MAX_FRAME_BYTES = 32 * 1024 - 512  # API Gateway's frame limit, with room for the envelope


class Pusher:
    """Sends to connections through the API Gateway management API (or `make dev`'s gateway)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url

    def send(self, connection_id: str, message: str) -> bool:
        """False if the connection is gone."""
        client = aws.client("apigatewaymanagementapi", self.endpoint_url)
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=message.encode())
        except client.exceptions.GoneException:
            return False
        except ClientError as exc:
            # Throttled or refused: this push is lost, the connection is kept.
            log.warning("push to %s failed: %s", connection_id, exc)
        return True

    def close(self, connection_id: str) -> None:
        """Close a connection from the server side (a no-op if it is already gone)."""
        client = aws.client("apigatewaymanagementapi", self.endpoint_url)
        try:
            client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            log.info("closing %s: %s", connection_id, exc)


def close_expired(
    subscriptions: Subscriptions, pusher: Pusher, connection_id: str, tell: bool
) -> None:
    """A connection whose credential ended gets nothing more: it is closed and forgotten
    (told why first, if `tell`)."""
    log.info("closing %s: its token has expired", connection_id)
    if tell:
        message = {
            "type": "error",
            "message": "your token has expired; reconnect with a new one",
        }
        pusher.send(connection_id, json.dumps(message))
    subscriptions.remove_connection(connection_id)
    pusher.close(connection_id)
