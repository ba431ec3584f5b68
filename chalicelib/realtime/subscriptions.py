"""Who listens: WebSocket connections, their subscriptions and push markers, stored.

Records table layout:
  pk conn#<id>, sk conn                      the connection and its owner (TTL: API Gateway's 2 h)
  pk conn#<id>, sk sub#<kind>#<value>        a subscription; kind is task, op, all, or default
      gpk sub#<owner>, gsk <id>#<kind>#<value>   -> GSI by_target: one Query per change finds
                                                  every subscription of the task's owner
  pk conn#<id>, sk v#<task id>               the last version of the task pushed to the connection
  pk subscribers#<owner>, sk marker          the owner may have subscribers until `expires_at`
  pk places#<owner>, sk places               `conns`: the owner's connections that count
                                             against WS_MAX_CONNECTIONS_PER_OWNER (a string set)

The connection limit holds under concurrency: once its items are written, a connection
takes its place in the owner's `places` set with one conditional update (the set is smaller
than the limit, or already holds it), which DynamoDB applies one at a time, so two connects
can never both take the last place; a connection refused a place is removed again. A
connection gives its place back when it closes, or when it drops its last subscription (it
takes one again to subscribe). A place whose connection is gone without a $disconnect (API
Gateway's is best effort; TTL removed the item) is taken back the first time the set looks
full: the places are then checked against the connections that exist (a connection's item
is always written before it takes its place, so no connect in flight looks stale).

A connection is written by its $connect, before API Gateway finishes the handshake, and a
push to it until then is answered 410 Gone. So a Gone within OPENING_SECONDS of the connect
means the client is arriving, not leaving (`opening`): the fan-out keeps the connection and
gives back the push's marker (`unclaim_push`), instead of removing a connection whose first
message would then find nothing ("unknown connection").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, timefmt
from chalicelib.model import Task
from chalicelib.records import RecordsTable

CONNECTION_TTL_SECONDS = 2 * 3600 + 15 * 60  # API Gateway closes connections after 2 h
# A $connect runs up to API Gateway's 29 s integration timeout, and the handshake ends after.
OPENING_SECONDS = 30
DEFAULT = "default"  # the subscription a connection holds until it subscribes to something
PUSHED = "v#"  # a connection's push marker for one task
SUBSCRIBERS = "subscribers#"  # an owner's "may have subscribers" marker
PLACES = "places#"  # an owner's connections that count against the connection limit

# Whether the API key (by id) a connection was opened with still exists.
KeyIsLive = Callable[[str], bool]


@dataclass(frozen=True)
class Credential:
    """What a connection was opened with: when it stops being valid, and the API key if any."""

    expires_at: int | None = None  # a token's `exp`, or an API key's expiry
    key_id: str | None = None

    def ended(self, now: datetime, key_is_live: KeyIsLive) -> bool:
        """A token past its `exp`; an API key past its expiry or revoked."""
        if self.expires_at is not None and self.expires_at <= now.timestamp():
            return True
        if self.key_id is not None:
            return not key_is_live(self.key_id)
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

    def expired(self, now: datetime, key_is_live: KeyIsLive) -> bool:
        return self.credential.ended(now, key_is_live)

    def matches(self, task: Task) -> bool:
        return (
            self.kind in ("all", DEFAULT)
            or (self.kind == "task" and self.value == task.id)
            or (self.kind == "op" and self.value == task.type)
        )


@dataclass(frozen=True)
class Connection:
    owner: str
    credential: Credential

    def expired(self, now: datetime, key_is_live: KeyIsLive) -> bool:
        return self.credential.ended(now, key_is_live)


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

    def opening(self, connection_id: str, now: datetime) -> bool:
        """Whether the connection was written less than OPENING_SECONDS ago (one consistent
        GetItem, made only when a push to it was answered Gone)."""
        item = self._ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": "conn"}},
            ProjectionExpression="connected_at",
            ConsistentRead=True,
        ).get("Item")
        if item is None or "connected_at" not in item:
            return False
        opened_after = timefmt.item(now - timedelta(seconds=OPENING_SECONDS))
        return item["connected_at"]["S"] > opened_after

    def unclaim_push(self, connection_id: str, task: Task) -> None:
        """Give back the claim of a push that did not reach the connection, unless a newer
        version's was made since: that version may then go to it again."""
        try:
            self._ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": f"{PUSHED}{task.id}"}},
                ConditionExpression="version = :version",
                ExpressionAttributeValues={":version": {"N": str(task.version)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

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
