"""API keys: service-to-service credentials, created by a user (with a JWT) for that user.

A key is `tsk_` + 32 random bytes (url-safe base64), shown once. Only its
SHA-256 is stored; the first 128 bits of that hash are the key's id, so a key
is found with one GetItem and revoked by id without a second index.

Records table layout:
  pk apikey#<id>, sk apikey          the key: hash, owner, name, prefix, scopes, dates
      gpk apikeys#<owner>, gsk <created>#<id>   -> GSI by_target: the owner's keys, oldest first
  pk apikeys#<owner>, sk count       how many keys the owner has (the per-user limit)

Every key expires: `expiresAt` is at most `API_KEY_MAX_DAYS` (90) away, and a key asked
for without one gets that far. A key outlives the JWT that created it (that is what keys
are for: CI and services have no login session), so without a cap a token stolen minutes
before it expires would buy access for ever; with it, at most 90 days, and revocation.
Binding a key to its token's expiry was rejected: tokens last an hour, keys would too.

Authentication only: no pydantic and no REST helpers, since every request and WebSocket
connect made with a key comes through here (cold start). The `/api-keys` routes and their
wire models are a contract, `chalicelib/contracts/api_keys.py`.

Every warm function keeps what it looked up for `API_KEY_CACHE_SECONDS` (a
bounded LRU): a revoked key stops working within that time, an expired one at
once (the expiry travels with the cached record).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws, timefmt
from chalicelib.edge.auth import API_KEY_PREFIX, InvalidToken, Principal
from chalicelib.model import utcnow
from chalicelib.records import RecordsTable

KEY_PATTERN = re.compile(r"^tsk_[A-Za-z0-9_-]{43}$")
ID_PATTERN = re.compile(r"^ak_[0-9a-f]{32}$")
SHOWN_PREFIX_LENGTH = 12  # "tsk_" + 8 characters: enough to tell keys apart in a list
CACHE_ENTRIES = 1024


class TooManyKeys(Exception):
    pass


class TooLongLived(Exception):
    """`expiresAt` is further away than API_KEY_MAX_DAYS allows."""


class KeyNotFound(Exception):
    pass


@dataclass(frozen=True)
class ApiKey:
    id: str
    owner: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    digest: str
    acts_for: tuple[str, ...] = ()  # a service key's owner patterns (edge/service_keys.py)
    pools: tuple[
        str, ...
    ] = ()  # the worker pools a service key may claim from (chalicelib/claims.py)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def key_expiry(asked: datetime | None, now: datetime, max_days: int) -> datetime:
    """When a new key expires: as asked, or at the cap when not asked; TooLongLived past it."""
    latest = now.replace(microsecond=0) + timedelta(days=max_days)
    if asked is None:
        return latest
    if asked > latest:
        raise TooLongLived(
            f"an API key lives at most {max_days} days: expiresAt must be no later than "
            f"{timefmt.wire(latest)}; create a new key before this one expires"
        )
    return asked


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def id_of(digest: str) -> str:
    return f"ak_{digest[:32]}"


def new_secret() -> str:
    return API_KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


class ApiKeyStore(RecordsTable):
    def create(
        self,
        owner: str,
        name: str,
        scopes: Sequence[str],
        limit: int,
        now: datetime,
        expires_at: datetime,
    ) -> tuple[ApiKey, str]:
        """Store a new key for `owner`, expiring at `expires_at`; return it and its secret
        (never stored)."""
        secret = new_secret()
        digest = digest_of(secret)
        key = ApiKey(
            id=id_of(digest),
            owner=owner,
            name=name,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            scopes=tuple(scopes),
            created_at=now.replace(microsecond=0),
            expires_at=expires_at,
            last_used_at=None,
            digest=digest,
        )
        if not RecordsTable(self.table).put_counted(_item(key), _counter_key(owner), limit):
            raise TooManyKeys(f"you already have {limit} API keys; delete one you no longer use")
        return key, secret

    def of_owner(self, owner: str) -> list[ApiKey]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_target",
            "KeyConditionExpression": "gpk = :gpk",
            "ExpressionAttributeValues": {":gpk": {"S": f"apikeys#{owner}"}},
        }
        return [_key(item) for item in aws.query_items(self._ddb, request)]

    def revoke(self, owner: str, key_id: str) -> None:
        """Delete the owner's key; KeyNotFound if it is not theirs or does not exist."""
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": _key_key(key_id),
                            # A service key is the operator's: no user revokes it.
                            "ConditionExpression": "#owner = :owner "
                            "AND attribute_not_exists(acts_for)",
                            "ExpressionAttributeNames": {"#owner": "owner"},
                            "ExpressionAttributeValues": {":owner": {"S": owner}},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _counter_key(owner),
                            "UpdateExpression": "ADD n :minus_one",
                            "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise KeyNotFound(key_id) from None
            raise

    def exists(self, key_id: str) -> bool:
        """Whether the key is still stored (not revoked): one GetItem of its key only."""
        item = self._ddb.get_item(
            TableName=self.table, Key=_key_key(key_id), ProjectionExpression="pk"
        ).get("Item")
        return item is not None

    def use(self, secret: str, now: datetime) -> ApiKey | None:
        """The key with this secret, recording its use: one UpdateItem; None if there is none."""
        digest = digest_of(secret)
        try:
            item = self._ddb.update_item(
                TableName=self.table,
                Key=_key_key(id_of(digest)),
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"S": timefmt.wire(now) or ""}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        key = _key(item)
        # The id is half the hash; the other half must match too.
        return key if hmac.compare_digest(key.digest, digest) else None


def _key_key(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"apikey#{key_id}"}, "sk": {"S": "apikey"}}


def _counter_key(owner: str) -> dict[str, Any]:
    return {"pk": {"S": f"apikeys#{owner}"}, "sk": {"S": "count"}}


def _item(key: ApiKey) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key_key(key.id),
        "gpk": {"S": f"apikeys#{key.owner}"},
        "gsk": {"S": f"{timefmt.wire(key.created_at)}#{key.id}"},
        "digest": {"S": key.digest},
        "owner": {"S": key.owner},
        "name": {"S": key.name},
        "prefix": {"S": key.prefix},
        "scopes": {"L": [{"S": scope} for scope in key.scopes]},
        "created_at": {"S": timefmt.wire(key.created_at)},
    }
    if key.acts_for:
        item["acts_for"] = {"L": [{"S": pattern} for pattern in key.acts_for]}
    if key.pools:
        item["pools"] = {"L": [{"S": pool} for pool in key.pools]}
    if key.expires_at is not None:
        # Not `expires_at`: the table's TTL would delete the key behind the counter's back.
        item["key_expires_at"] = {"S": timefmt.wire(key.expires_at)}
    return item


def _parse(value: dict[str, str] | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value["S"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _key(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=item["pk"]["S"].removeprefix("apikey#"),
        owner=item["owner"]["S"],
        name=item["name"]["S"],
        prefix=item["prefix"]["S"],
        scopes=tuple(scope["S"] for scope in item["scopes"]["L"]),
        created_at=_parse(item["created_at"]) or utcnow(),
        expires_at=_parse(item.get("key_expires_at")),
        last_used_at=_parse(item.get("last_used_at")),
        digest=item["digest"]["S"],
        acts_for=tuple(pattern["S"] for pattern in item.get("acts_for", {}).get("L", [])),
        pools=tuple(pool["S"] for pool in item.get("pools", {}).get("L", [])),
    )


# -- authentication, with a bounded per-process cache --------------------------------------


class KeyCache:
    """digest -> (looked up at, key or None), least recently used evicted past `size`; and
    key id -> (checked at, still stored), for the connections a key opened (`is_live`).

    One per container (chalicelib/bootstrap.py): what a warm function looked up."""

    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._live: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, ttl: float, now: float) -> tuple[bool, ApiKey | None]:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or now - entry[0] >= ttl:
                return False, None
            self._entries.move_to_end(digest)
            return True, entry[1]

    def put(self, digest: str, key: ApiKey | None, now: float) -> None:
        with self._lock:
            self._entries[digest] = (now, key)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get_live(self, key_id: str, ttl: float, now: float) -> bool | None:
        """Whether the key was still stored when last checked, or None if not checked
        within `ttl`."""
        checked = self._live.get(key_id)
        if checked is None or now - checked[0] >= ttl:
            return None
        return checked[1]

    def put_live(self, key_id: str, live: bool, now: float) -> None:
        with self._lock:
            if len(self._live) >= self.size:
                self._live.clear()
            self._live[key_id] = (now, live)

    def forget(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (_, k) in self._entries.items() if k and k.id == key_id]:
                del self._entries[digest]
            self._live.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._live.clear()


class KeyAuthentication:
    """Who an API key is: the key store behind the container's cache."""

    def __init__(self, store: ApiKeyStore, cache: KeyCache, cache_seconds: float) -> None:
        self.store = store
        self.cache = cache
        self.cache_seconds = cache_seconds

    def is_live(self, key_id: str) -> bool:
        """Whether a key (by id) still exists: one GetItem, cached like the keys themselves.

        A WebSocket connection opened with a key keeps only its id; this is how a revoked
        key ends the connections it opened.
        """
        clock = time.monotonic()
        live = self.cache.get_live(key_id, self.cache_seconds, clock)
        if live is None:
            live = self.store.exists(key_id)
            self.cache.put_live(key_id, live, clock)
        return live

    def authenticate(self, secret: str) -> Principal:
        if not KEY_PATTERN.match(secret):
            raise InvalidToken("API key is malformed; it looks like tsk_ followed by 43 characters")
        digest = digest_of(secret)
        clock = time.monotonic()
        hit, key = self.cache.get(digest, self.cache_seconds, clock)
        if not hit:
            key = self.store.use(secret, utcnow())
            self.cache.put(digest, key, clock)
        if key is None:
            raise InvalidToken("API key is not valid (unknown or revoked)")
        if key.expired(utcnow()):
            raise InvalidToken(f"API key {key.prefix}... expired at {timefmt.wire(key.expires_at)}")
        return Principal(
            owner=key.owner,
            scopes=frozenset(key.scopes),
            kind="service_key" if key.acts_for else "api_key",
            key_id=key.id,
            expires_at=int(key.expires_at.timestamp()) if key.expires_at else None,
            acts_for=key.acts_for,
            pools=key.pools,
        )
