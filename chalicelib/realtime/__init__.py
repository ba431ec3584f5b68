"""WebSocket connections, subscriptions and fan-out from the table's stream.

Records table layout:
  pk conn#<id>, sk conn                      the connection and its owner (TTL: API Gateway's 2 h)
  pk conn#<id>, sk sub#<kind>#<value>        a subscription; kind is task, op, all, or default
      gpk sub#<owner>, gsk <id>#<kind>#<value>   -> GSI by_target: one Query per change finds
                                                  every subscription of the task's owner
  pk conn#<id>, sk v#<task id>               the last version of the task pushed to the connection
  pk subscribers#<owner>, sk marker          the owner may have subscribers until `expires_at`
  pk places#<owner>, sk places               `conns`: the owner's connections that count
                                             against WS_MAX_CONNECTIONS_PER_OWNER (a string set)

Fan-out works per stream batch (`FanOut`): one consistent BatchGetItem reads the
markers of the batch's owners, and only an owner whose marker is live costs a Query,
once per batch. The marker is written in the same request as the connection, with the
connection's expiry; API Gateway ends a connection within 2 h of its connect, so no
subscription of it outlives the marker. A subscribe racing a batch cannot lose later
updates: the batch's records were all committed before the batch was read, so they
precede the subscribe, and every later change arrives in a later batch, which reads the
marker again.

A new connection holds the `default` subscription (every change of its owner's
tasks, as seed 004's origin pushed to clients that never send a message); its
first subscribe replaces it. A version goes to a connection at most once, and
never after a newer one: the push, at subscribe time or from the stream, first
raises the connection's `v#<task id>` marker, conditionally.

The connection limit holds under concurrency: once its items are written, a connection
takes its place in the owner's `places` set with one conditional update (the set is smaller
than the limit, or already holds it), which DynamoDB applies one at a time, so two connects
can never both take the last place; a connection refused a place is removed again. A
connection gives its place back when it closes, or when it drops its last subscription (it
takes one again to subscribe). A place whose connection is gone without a $disconnect (API
Gateway's is best effort; TTL removed the item) is taken back the first time the set looks
full: the places are then checked against the connections that exist (a connection's item
is always written before it takes its place, so no connect in flight looks stale).

Messages are seed 004's `{"type": "task_status", "payload": {...TaskStatus, "version": n}}`,
with the native change beside the payload: `"job": {jobId, status, version, progress,
updatedAt, completedAt, error}` in the job document's words (004's clients read only the
payload).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib import aws, jsonsafe, timefmt
from chalicelib.edge.auth import OPERATE, READ, InsufficientScope, InvalidToken
from chalicelib.edge.credentials import authenticate
from chalicelib.model import Task, is_task_id, utcnow
from chalicelib.realtime.operators import Coalesced, OperatorWatchers
from chalicelib.records import RecordsTable
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.service import TaskService

log = logging.getLogger("taskstatus_svc.realtime")

CONNECTION_TTL_SECONDS = 2 * 3600 + 15 * 60  # API Gateway closes connections after 2 h
MAX_FRAME_BYTES = 32 * 1024 - 512  # API Gateway's frame limit, with room for the envelope
DEFAULT = "default"  # the subscription a connection holds until it subscribes to something
PUSHED = "v#"  # a connection's push marker for one task
SUBSCRIBERS = "subscribers#"  # an owner's "may have subscribers" marker
PLACES = "places#"  # an owner's connections that count against the connection limit


@dataclass(frozen=True)
class Credential:
    """What a connection was opened with: when it stops being valid, and the API key if any."""

    expires_at: int | None = None  # a token's `exp`, or an API key's expiry
    key_id: str | None = None

    def ended(self, now: datetime, settings: Settings) -> bool:
        """A token past its `exp`; an API key past its expiry or revoked."""
        if self.expires_at is not None and self.expires_at <= now.timestamp():
            return True
        if self.key_id is not None:
            from chalicelib.edge.api_keys import key_is_live

            return not key_is_live(self.key_id, settings)
        return False

    def attributes(self) -> dict[str, dict[str, str]]:
        item = {}
        if self.expires_at is not None:
            item["credential_expires_at"] = {"N": str(self.expires_at)}
        if self.key_id is not None:
            item["key_id"] = {"S": self.key_id}
        return item

    @classmethod
    def of_item(cls, item: dict[str, Any]) -> Credential:
        expires, key_id = item.get("credential_expires_at"), item.get("key_id")
        return cls(int(expires["N"]) if expires else None, key_id["S"] if key_id else None)


@dataclass(frozen=True)
class Subscription:
    connection_id: str
    kind: str
    value: str
    credential: Credential = field(default_factory=Credential)

    def expired(self, now: datetime, settings: Settings) -> bool:
        return self.credential.ended(now, settings)

    def matches(self, task: Task) -> bool:
        return (
            self.kind in ("all", DEFAULT)
            or (self.kind == "task" and self.value == task.id)
            or (self.kind == "op" and self.value == task.type)
        )


def connect_token(query: dict[str, str] | None) -> str:
    """`?token=<JWT>`, or seed 004's `?Authorization=Bearer%20<JWT>`."""
    query = query or {}
    if query.get("token"):
        return query["token"]
    scheme, _, token = query.get("Authorization", "").replace("+", " ", 1).partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@dataclass(frozen=True)
class Connection:
    owner: str
    credential: Credential

    def expired(self, now: datetime, settings: Settings) -> bool:
        return self.credential.ended(now, settings)


class Subscriptions(RecordsTable):
    def add_connection(
        self,
        connection_id: str,
        owner: str,
        now: datetime,
        credential: Credential | None = None,
        limit: int | None = None,
    ) -> bool:
        """The connection, with the default subscription to every change of its owner's tasks.

        With a `limit`, the connection then takes one of the owner's places: False, and the
        connection removed again, when all `limit` places are taken."""
        expires = {"N": str(int(now.timestamp()) + CONNECTION_TTL_SECONDS)}
        connection = {
            "pk": {"S": f"conn#{connection_id}"},
            "sk": {"S": "conn"},
            "owner": {"S": owner},
            "connected_at": {"S": timefmt.item(now)},
            "expires_at": expires,
        }
        credential = credential or Credential()
        connection.update(credential.attributes())
        default = self._subscription_item(connection_id, owner, DEFAULT, "*", expires, credential)
        items = (connection, default, _subscribers_marker(owner, expires))
        request = {self.table: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(5):  # all of them: a connection without its marker gets no pushes
            request = self._ddb.batch_write_item(RequestItems=request).get("UnprocessedItems")
            if not request:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError("DynamoDB left the connection's items unwritten; reconnect")
        # The place after the connection: a place whose connection item is missing is stale.
        if limit is None or self.take_place(connection_id, owner, limit, now):
            return True
        self.remove_connection(connection_id)
        return False

    # -- the connection limit: the owner's places ---------------------------------------

    def take_place(self, connection_id: str, owner: str, limit: int, now: datetime) -> bool:
        """One of the owner's places for a connection (written already) that holds none:
        False when all are taken, even after taking back the stale ones.

        One conditional UpdateItem on one item: DynamoDB applies them one at a time, so
        concurrent connects cannot both take the last place (nor conflict, as transactions
        on one item would)."""
        for attempt in range(2):
            try:
                self._ddb.update_item(
                    TableName=self.table,
                    Key=_places_key(owner),
                    UpdateExpression="ADD conns :ids",
                    ConditionExpression=(
                        "attribute_not_exists(conns) OR size(conns) < :limit "
                        "OR contains(conns, :id)"
                    ),
                    ExpressionAttributeValues={
                        ":ids": {"SS": [connection_id]},
                        ":id": {"S": connection_id},
                        ":limit": {"N": str(limit)},
                    },
                )
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            if attempt or not self._take_back_stale_places(owner, now):
                return False
        return False

    def give_back_place(self, connection_id: str, owner: str) -> None:
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=_places_key(owner),
                UpdateExpression="DELETE conns :ids",
                ConditionExpression="contains(conns, :id)",  # never creates the item
                ExpressionAttributeValues={
                    ":ids": {"SS": [connection_id]},
                    ":id": {"S": connection_id},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def places_of(self, owner: str) -> set[str]:
        item = self._ddb.get_item(
            TableName=self.table, Key=_places_key(owner), ConsistentRead=True
        ).get("Item", {})
        return set(item.get("conns", {}).get("SS", []))

    def _take_back_stale_places(self, owner: str, now: datetime) -> bool:
        """Free the places of connections that no longer exist (or are past their TTL):
        whether any was freed. Only places are read: at most the limit's worth."""
        places = sorted(self.places_of(owner))
        live: set[str] = set()
        for start in range(0, len(places), 100):
            keys = [
                {"pk": {"S": f"conn#{c}"}, "sk": {"S": "conn"}} for c in places[start : start + 100]
            ]
            request = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self._ddb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    if int(item["expires_at"]["N"]) > now.timestamp():
                        live.add(item["pk"]["S"].removeprefix("conn#"))
                request = response.get("UnprocessedKeys") or {}
        stale = set(places) - live
        if stale:
            self._ddb.update_item(
                TableName=self.table,
                Key=_places_key(owner),
                UpdateExpression="DELETE conns :ids",
                ExpressionAttributeValues={":ids": {"SS": sorted(stale)}},
            )
        return bool(stale)

    def connection(self, connection_id: str) -> Connection | None:
        item = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": "conn"}},
        ).get("Item")
        if item is None:
            return None
        return Connection(item["owner"]["S"], Credential.of_item(item))

    def refresh(self, connection_id: str, now: datetime) -> None:
        self._ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": "conn"}},
            UpdateExpression="SET expires_at = :expires",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":expires": {"N": str(int(now.timestamp()) + CONNECTION_TTL_SECONDS)}
            },
        )

    @staticmethod
    def _subscription_item(
        connection_id: str,
        owner: str,
        kind: str,
        value: str,
        expires: dict[str, str],
        credential: Credential,
    ) -> dict[str, Any]:
        item = {
            "pk": {"S": f"conn#{connection_id}"},
            "sk": {"S": f"sub#{kind}#{value}"},
            "gpk": {"S": f"sub#{owner}"},
            "gsk": {"S": f"{connection_id}#{kind}#{value}"},
            "expires_at": expires,
        }
        item.update(credential.attributes())
        return item

    def subscribe(
        self, connection_id: str, connection: Connection, kind: str, value: str, now: datetime
    ) -> None:
        """Add a subscription; the first one narrows the connection from its default."""
        owner = connection.owner
        expires = {"N": str(int(now.timestamp()) + CONNECTION_TTL_SECONDS)}
        self._ddb.batch_write_item(
            RequestItems={
                self.table: [
                    {
                        "PutRequest": {
                            "Item": self._subscription_item(
                                connection_id,
                                owner,
                                kind,
                                value,
                                expires,
                                connection.credential,
                            )
                        }
                    },
                    {
                        "DeleteRequest": {
                            "Key": {
                                "pk": {"S": f"conn#{connection_id}"},
                                "sk": {"S": f"sub#{DEFAULT}#*"},
                            }
                        }
                    },
                ]
            }
        )

    def connections_of(self, owner: str, at_most: int | None = None) -> set[str]:
        """The owner's connections that hold a subscription (Queries on by_target), read only
        until `at_most` are found: a limit check need not page through every subscription."""
        request = {
            "TableName": self.table,
            "IndexName": "by_target",
            "KeyConditionExpression": "gpk = :gpk",
            "ExpressionAttributeValues": {":gpk": {"S": f"sub#{owner}"}},
            "ProjectionExpression": "gsk",
        }
        found: set[str] = set()
        for item in aws.query_items(self._ddb, request):
            found.add(item["gsk"]["S"].split("#", 1)[0])
            if at_most is not None and len(found) >= at_most:
                break
        return found

    def subscriptions_of(self, connection_id: str) -> set[str]:
        """The `kind#value` of each subscription one connection holds: one Query."""
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sub)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"conn#{connection_id}"},
                ":sub": {"S": "sub#"},
            },
            "ProjectionExpression": "sk",
        }
        return {
            item["sk"]["S"].removeprefix("sub#") for item in aws.query_items(self._ddb, request)
        }

    def unsubscribe(self, connection_id: str, kind: str, value: str) -> None:
        """Remove a subscription; unsubscribing from everything ends the default one too."""
        keys = [f"sub#{kind}#{value}"] + ([f"sub#{DEFAULT}#*"] if kind == "all" else [])
        self._ddb.batch_write_item(
            RequestItems={
                self.table: [
                    {
                        "DeleteRequest": {
                            "Key": {"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": k}}
                        }
                    }
                    for k in keys
                ]
            }
        )

    def remove_connection(self, connection_id: str) -> None:
        """The connection, its subscriptions and its push markers: nothing of it is left,
        and its place goes back to its owner.

        Every page of them: a connection keeps a push marker per task it was sent, so one
        that watched a busy owner for hours holds more than a Query's 1 MB page.
        """
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"conn#{connection_id}"}},
            "ProjectionExpression": "pk, sk, #owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
        }
        items = list(aws.query_items(self._ddb, request))
        owners = {i["owner"]["S"] for i in items if i["sk"]["S"] == "conn" and "owner" in i}
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
        for start in range(0, len(keys), 25):
            self._delete(keys[start : start + 25])
        for owner in owners:
            self.give_back_place(connection_id, owner)

    def _delete(self, keys: list[dict[str, Any]]) -> None:
        """Delete up to 25 items, retrying what DynamoDB leaves unprocessed."""
        request = {self.table: [{"DeleteRequest": {"Key": key}} for key in keys]}
        for attempt in range(5):
            request = self._ddb.batch_write_item(RequestItems=request).get("UnprocessedItems")
            if not request:
                return
            time.sleep(0.05 * 2**attempt)
        raise RuntimeError("DynamoDB left a closed connection's items undeleted")

    def of_owner(self, owner: str) -> list[Subscription]:
        """Every live subscription of one owner: one Query on the by_target index."""
        subscriptions: list[Subscription] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_target",
            "KeyConditionExpression": "gpk = :gpk",
            "ExpressionAttributeValues": {":gpk": {"S": f"sub#{owner}"}},
            "ProjectionExpression": "gsk, credential_expires_at, key_id",
        }
        for item in aws.query_items(self._ddb, request):
            connection_id, kind, value = item["gsk"]["S"].split("#", 2)
            subscriptions.append(Subscription(connection_id, kind, value, Credential.of_item(item)))
        return subscriptions

    def owners_with_subscribers(self, owners: Iterable[str], now: datetime) -> set[str]:
        """The owners whose marker is live: one consistent BatchGetItem per 100 owners.

        An owner whose marker could not be read (unprocessed keys) counts as subscribed:
        a needless Query is cheap, a lost push is not.
        """
        owners = sorted(set(owners))
        live: set[str] = set()
        for start in range(0, len(owners), 100):
            chunk = owners[start : start + 100]
            response = self._ddb.batch_get_item(
                RequestItems={
                    self.table: {
                        "Keys": [_subscribers_key(owner) for owner in chunk],
                        "ConsistentRead": True,
                        "ProjectionExpression": "pk, expires_at",
                    }
                }
            )
            for item in response.get("Responses", {}).get(self.table, []):
                if int(item["expires_at"]["N"]) > now.timestamp():
                    live.add(item["pk"]["S"].removeprefix(SUBSCRIBERS))
            unread = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
            live.update(key["pk"]["S"].removeprefix(SUBSCRIBERS) for key in unread)
        return live

    def claim_push(self, connection_id: str, task: Task, now: datetime) -> bool:
        """Claim the push of this task version to one connection; False if it had it (or newer)."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": f"{PUSHED}{task.id}"}},
                UpdateExpression="SET version = :version, expires_at = :expires",
                ConditionExpression="attribute_not_exists(version) OR version < :version",
                ExpressionAttributeValues={
                    ":version": {"N": str(task.version)},
                    ":expires": {"N": str(int(now.timestamp()) + CONNECTION_TTL_SECONDS)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _places_key(owner: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{PLACES}{owner}"}, "sk": {"S": "places"}}


def _subscribers_key(owner: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{SUBSCRIBERS}{owner}"}, "sk": {"S": "marker"}}


def _subscribers_marker(owner: str, expires: dict[str, str]) -> dict[str, Any]:
    return {**_subscribers_key(owner), "expires_at": expires}


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


class Realtime:
    def __init__(self, service: TaskService, render: Callable[[Task], str]) -> None:
        """`render` is a task's push message (the container gives 004's, with the native change)."""
        settings = service.settings
        self.service = service
        self.render = render
        self.settings = settings
        self.subscriptions = Subscriptions(settings.records_table)
        self.pusher = Pusher(settings.ws_endpoint_url)
        self.operators = OperatorWatchers(settings.records_table)

    # -- $connect / $disconnect ----------------------------------------------------------

    def connect(self, connection_id: str, query: dict[str, str] | None) -> dict[str, Any]:
        try:
            principal = authenticate(
                connect_token(query), self.settings
            )  # a JWT or an API key, as on REST
            principal.require(READ)
            watching = (query or {}).get("watch") == "operators"
            if watching:
                principal.require(OPERATE)  # every owner's changes: operators only
        except InsufficientScope as exc:
            log.info("refused a WebSocket connection: %s", exc)
            return {"statusCode": 403, "body": str(exc)}
        except InvalidToken as exc:
            log.info("refused a WebSocket connection: %s", exc)
            return {
                "statusCode": 401,
                "body": "send ?token=<JWT or API key> or ?Authorization=Bearer%20<JWT>",
            }
        added = self.subscriptions.add_connection(
            connection_id,
            principal.owner,
            utcnow(),
            Credential(principal.expires_at, principal.key_id),
            limit=self.settings.max_connections_per_owner,
        )
        if not added:
            log.info("refused a WebSocket connection: the owner is at the limit")
            return {"statusCode": 429, "body": self._connection_limit_message()}
        if watching and not self._watch(connection_id):
            self.subscriptions.remove_connection(connection_id)
            return {"statusCode": 429, "body": "too many operator connections watch already"}
        return {"statusCode": 200}

    def _watch(self, connection_id: str) -> bool:
        now = int(utcnow().timestamp())
        return self.operators.add(connection_id, now, now + CONNECTION_TTL_SECONDS)

    def _connection_limit_message(self) -> str:
        limit = self.settings.max_connections_per_owner
        return f"at most {limit} WebSocket connections per user: close one first"

    def disconnect(self, connection_id: str) -> None:
        self.subscriptions.remove_connection(connection_id)
        self.operators.remove(connection_id)

    # -- messages ------------------------------------------------------------------------

    def message(self, connection_id: str, body: str) -> None:
        connection = self.subscriptions.connection(connection_id)
        if connection is None:
            self._reply(
                connection_id, {"type": "error", "message": "unknown connection; reconnect"}
            )
            return
        if connection.expired(utcnow(), self.settings):
            self._close_expired(connection_id, tell=True)
            return
        try:
            request = jsonsafe.loads(body)
        except (jsonsafe.UnsafeJson, TypeError):
            request = None
        if not isinstance(request, dict):
            self._error(connection_id, 'send a JSON object such as {"action": "ping"}')
            return
        action = request.get("action")
        if action == "ping":
            self.subscriptions.refresh(connection_id, utcnow())
            self._reply(connection_id, {"type": "pong"})
        elif action in ("subscribe", "unsubscribe"):
            self._subscription(connection_id, connection, action, request)
        else:
            self._error(connection_id, "action must be subscribe, unsubscribe or ping")

    def _subscription(
        self, connection_id: str, connection: Connection, action: str, request: dict[str, Any]
    ) -> None:
        owner = connection.owner
        from chalicelib.processors import registered_types  # the processors load on first use

        task_id, operation = request.get("taskId"), request.get("operation")
        if task_id is not None:
            if not isinstance(task_id, str) or not is_task_id(task_id):
                self._error(connection_id, "taskId must be a task id (a lowercase UUID)")
                return
            kind, value = "task", task_id
        elif operation is not None:
            if operation not in registered_types():
                self._error(
                    connection_id, f"operation must be one of {', '.join(registered_types())}"
                )
                return
            kind, value = "op", operation
        else:
            kind, value = "all", "*"
        since = request.get("sinceVersion")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            self._error(connection_id, "sinceVersion must be a whole number")
            return
        if action == "unsubscribe":
            self.subscriptions.unsubscribe(connection_id, kind, value)
            if not self.subscriptions.subscriptions_of(connection_id):
                # Holding nothing, it stops counting; it takes a place again to subscribe.
                self.subscriptions.give_back_place(connection_id, owner)
            self._reply(connection_id, {"type": "unsubscribed", **_target(kind, value)})
            return
        current = None
        if kind == "task":
            current = self.service.find(value)
            if current is None or current.owner != owner:
                self._error(connection_id, f"task {value} was not found")
                return
        held_any = self.subscriptions.subscriptions_of(connection_id)
        if not held_any and not self.subscriptions.take_place(
            connection_id, owner, self.settings.max_connections_per_owner, utcnow()
        ):
            # A connection that dropped all its subscriptions stopped counting: it counts again.
            self._error(connection_id, self._connection_limit_message())
            return
        held = held_any - {f"{DEFAULT}#*"}
        limit = self.settings.max_subscriptions_per_connection
        if kind != "all" and f"{kind}#{value}" not in held and len(held) >= limit:
            self._error(
                connection_id,
                f"at most {limit} subscriptions per connection: unsubscribe from one first, "
                'or subscribe to everything with {"action": "subscribe"}',
            )
            return
        self.subscriptions.subscribe(connection_id, connection, kind, value, utcnow())
        self._reply(connection_id, {"type": "subscribed", **_target(kind, value)})
        if (
            current is not None
            and (since is None or current.version > since)
            and self.subscriptions.claim_push(connection_id, current, utcnow())
        ):
            self.pusher.send(connection_id, self.render(current))

    def _reply(self, connection_id: str, message: dict[str, Any]) -> None:
        if not self.pusher.send(connection_id, json.dumps(message)):
            self.subscriptions.remove_connection(connection_id)

    def _error(self, connection_id: str, message: str) -> None:
        self._reply(connection_id, {"type": "error", "message": message})

    def _close_expired(self, connection_id: str, tell: bool) -> None:
        """A connection whose credential expired gets nothing more: it is closed and forgotten."""
        log.info("closing %s: its token has expired", connection_id)
        if tell:
            message = {
                "type": "error",
                "message": "your token has expired; reconnect with a new one",
            }
            self.pusher.send(connection_id, json.dumps(message))
        self.subscriptions.remove_connection(connection_id)
        self.pusher.close(connection_id)

    # -- fan-out -------------------------------------------------------------------------

    def on_task_change(self, task: Task) -> int:
        """Push one change (a stream batch of one); returns pushes made."""
        return self.batch([task.owner]).push(task)

    def batch(self, owners: Iterable[str]) -> FanOut:
        """The fan-out of one stream batch whose changes belong to these owners."""
        return FanOut(self, owners)


class FanOut:
    """One stream batch's pushes: each owner's subscriptions are looked up at most once.

    Connections found expired or gone during the batch get nothing more in it.
    """

    def __init__(self, realtime: Realtime, owners: Iterable[str]) -> None:
        self.realtime = realtime
        self._owners = set(owners)
        self._live: set[str] | None = None
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._dropped: set[str] = set()
        self._for_operators = Coalesced()  # sent once, by `finish`

    def _may_have_subscribers(self, owner: str) -> bool:
        """Read the markers of every owner of the batch at once, at the first push."""
        if self._live is None or owner not in self._owners:
            unread = self._owners | {owner} if self._live is None else {owner}
            found = self.realtime.subscriptions.owners_with_subscribers(unread, utcnow())
            self._live = (self._live or set()) | found
            self._owners.add(owner)
        return owner in self._live

    def _owner_subscriptions(self, owner: str) -> list[Subscription]:
        if not self._may_have_subscribers(owner):
            return []
        if owner not in self._subscriptions:
            self._subscriptions[owner] = self.realtime.subscriptions.of_owner(owner)
        return self._subscriptions[owner]

    def finish(self) -> int:
        """The batch's changes to every operator watching, in one message each; pushes made."""
        if not self._for_operators.count:
            return 0
        watchers = self.realtime.operators
        now = int(utcnow().timestamp())
        if not watchers.live(now):
            return 0
        message, pushed = self._for_operators.message(), 0
        for connection_id in watchers.connections(now):
            if self.realtime.pusher.send(connection_id, message):
                pushed += 1
            else:
                watchers.remove(connection_id)
        self._for_operators = Coalesced()
        return pushed

    def push(self, task: Task) -> int:
        """Push a task's new state to its owner's matching connections; returns pushes made."""
        self._for_operators.add(task)
        realtime = self.realtime
        matching = [
            s
            for s in self._owner_subscriptions(task.owner)
            if s.matches(task) and s.connection_id not in self._dropped
        ]
        if not matching:
            return 0
        now = utcnow()
        expired = {s.connection_id for s in matching if s.expired(now, realtime.settings)}
        for connection_id in sorted(expired):
            realtime._close_expired(connection_id, tell=False)
        self._dropped |= expired
        targets = {s.connection_id for s in matching} - expired
        if not targets:
            return 0
        message = self.realtime.render(task)
        pushed = 0
        for connection_id in sorted(targets):
            if not realtime.subscriptions.claim_push(connection_id, task, now):
                continue  # this connection has had this version, or a newer one
            if realtime.pusher.send(connection_id, message):
                pushed += 1
            else:
                log.info("connection %s is gone; removing it", connection_id)
                realtime.subscriptions.remove_connection(connection_id)
                self._dropped.add(connection_id)
        return pushed


def _target(kind: str, value: str) -> dict[str, str]:
    return {"task": {"taskId": value}, "op": {"operation": value}, "all": {"all": "*"}}[kind]
