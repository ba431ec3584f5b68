"""Service keys: API keys the operator issues to a backend producer that writes for many
owners (a transcoder for every user, a system with no users at all). Never over REST:
`make service-key NAME=<n> OWNERS=<patterns> [SCOPES=...]` (tools/service_key.py).

A service key is an API key (`tsk_...`, presented the same way, found with one GetItem,
cached and revoked the same way) that also carries the owners it may act for: exact ids,
or a prefix ending `*` (`tenant-a*`). It names the owner of each job it creates (`"owner"`
on `POST /jobs`, which every other credential is refused) and may report on those owners'
jobs; its own name (`service:<name>`) owns nothing.

Records table: the key's item as api_keys.py stores it, with `acts_for`, and
`gpk servicekeys` so that the operator lists every service key with one Query.

An operator's key (`SCOPES=operator`) opens the console (chalicelib/contracts/operator.py),
which shows every owner's work: without OWNERS it stands for `*`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.edge.api_keys import (
    SHOWN_PREFIX_LENGTH,
    ApiKey,
    ApiKeyStore,
    KeyNotFound,
    _item,
    _key,
    _key_key,
    digest_of,
    id_of,
    new_secret,
)
from chalicelib.edge.auth import OPERATE

SERVICE_OWNER_PREFIX = "service:"
GPK = "servicekeys"
SCOPES = ("jobs:read", "jobs:write", "jobs:report", OPERATE)
DEFAULT_SCOPES = ("jobs:write", "jobs:report")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# An exact id, a non-empty prefix ending `*`, or `*` alone: every owner.
OWNER_PATTERN = re.compile(r"^(\*|[^*\s]{1,256}\*?)$")


class BadServiceKey(ValueError):
    """A service key request that cannot be honoured; the message says what to change."""


def check(name: str, owners: list[str], scopes: list[str]) -> None:
    if not NAME_PATTERN.match(name):
        raise BadServiceKey("NAME must be 1 to 64 letters, digits or -._")
    if not owners:
        raise BadServiceKey("OWNERS must name at least one owner id or prefix* (e.g. tenant-a*)")
    for owner in owners:
        if not OWNER_PATTERN.match(owner):
            raise BadServiceKey(
                f"owner pattern {owner!r} must be an exact id, a non-empty prefix ending *, "
                "or * alone for every owner, with no other * and no spaces"
            )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise BadServiceKey(f"SCOPES must be some of {', '.join(SCOPES)}; got {unknown or scopes}")


def check_pools(pools: tuple[str, ...]) -> None:
    from chalicelib.pools import POOL_NAME, POOL_NAME_RULE

    for pool in pools:
        if not POOL_NAME.match(pool):
            raise BadServiceKey(f"POOLS: {pool!r} is not a pool name ({POOL_NAME_RULE})")


class ServiceKeys(ApiKeyStore):
    def create(  # type: ignore[override]
        self,
        name: str,
        owners: list[str],
        scopes: list[str],
        now: datetime,
        pools: tuple[str, ...] = (),
    ) -> tuple[ApiKey, str]:
        """A new service key and its secret (shown once, never stored). `pools`: the worker
        pools it may claim tasks from (a remote worker's credential)."""
        if not owners and OPERATE in scopes:
            owners = ["*"]  # an operator looks at every owner's work
        check(name, owners, scopes)
        check_pools(pools)
        secret = new_secret()
        digest = digest_of(secret)
        key = ApiKey(
            id=id_of(digest),
            owner=SERVICE_OWNER_PREFIX + name,
            name=name,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            scopes=tuple(sorted(set(scopes))),
            created_at=now.replace(microsecond=0),
            expires_at=None,
            last_used_at=None,
            digest=digest,
            acts_for=tuple(dict.fromkeys(owners)),
            pools=tuple(dict.fromkeys(pools)),
        )
        item = {**_item(key), "gpk": {"S": GPK}}
        self._ddb.put_item(
            TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
        return key, secret

    def all(self) -> list[ApiKey]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_target",
            "KeyConditionExpression": "gpk = :gpk",
            "ExpressionAttributeValues": {":gpk": {"S": GPK}},
        }
        return [_key(item) for item in aws.query_items(self._ddb, request)]

    def revoke_service_key(self, key_id: str) -> None:
        """Delete a service key (never a user's key); KeyNotFound if there is none."""
        try:
            self._ddb.delete_item(
                TableName=self.table,
                Key=_key_key(key_id),
                ConditionExpression="attribute_exists(acts_for)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise KeyNotFound(key_id) from None
            raise
