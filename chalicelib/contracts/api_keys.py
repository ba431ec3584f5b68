"""The `/api-keys` routes: create, list and revoke a user's API keys (JWT only).

Handlers and wire models; the keys themselves (storage layout, cache, authentication)
are `chalicelib/edge/api_keys.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from chalice.app import Response
from pydantic import ConfigDict, Field, field_validator

from chalicelib import timefmt
from chalicelib.edge import http
from chalicelib.edge.api_keys import (
    ID_PATTERN,
    ApiKey,
    KeyNotFound,
    TooLongLived,
    TooManyKeys,
    key_expiry,
)
from chalicelib.edge.http_errors import BadRequest, Forbidden, NotFound, Unprocessable
from chalicelib.model import utcnow
from chalicelib.validation import Schema, in_utc

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container


class NewApiKey(Schema):
    """`POST /api-keys` body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["jobs:read", "jobs:write", "jobs:report"]] = Field(
        min_length=1, max_length=3
    )
    expiresAt: datetime | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.strip() or not value.isprintable():
            raise ValueError("name must be printable text, not blank")
        return value.strip()

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("scopes must not repeat")
        return sorted(value)

    @field_validator("expiresAt")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("expiresAt needs a time zone, e.g. 2030-01-01T00:00:00Z")
        value = in_utc(value)
        if value <= utcnow():
            raise ValueError("expiresAt must be in the future")
        return value


class ApiKeyInfo(Schema):
    """An API key as listed: never the key itself."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    createdAt: str
    expiresAt: str | None
    lastUsedAt: str | None


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(description="the key; shown once, never again")


class ApiKeyList(Schema):
    apiKeys: list[ApiKeyInfo]


def key_info(key: ApiKey) -> dict[str, Any]:
    """An API key as listed (schema: `ApiKeyInfo`): never the key itself."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "createdAt": timefmt.wire(key.created_at) or "",
        "expiresAt": timefmt.wire(key.expires_at),
        "lastUsedAt": timefmt.wire(key.last_used_at),
    }


def _user(request: Any) -> str:

    principal = http.current_principal(request)
    if principal.kind != "jwt":
        raise Forbidden("API keys cannot create, list or revoke API keys; use a user's JWT")
    return principal.owner


def create(container: Container, request: Any) -> Any:

    owner = _user(request)
    settings = container.settings
    spec = http.body_model(
        http.json_body(request),
        NewApiKey,
        "the API key request",
        'send a JSON object such as {"name": "ci", "scopes": ["jobs:read"]}',
    )
    now = utcnow()
    try:
        expires_at = key_expiry(spec.expiresAt, now, settings.api_key_max_days)
    except TooLongLived as exc:
        errors = [{"field": "body.expiresAt", "message": str(exc)}]
        raise Unprocessable(f"expiresAt: {exc}", errors=errors) from None
    try:
        key, secret = container.api_key_store.create(
            owner, spec.name, spec.scopes, settings.max_api_keys_per_user, now, expires_at
        )
    except TooManyKeys as exc:
        raise Unprocessable(str(exc)) from None
    return http.json_response(
        key_info(key) | {"key": secret},
        201,
        {"Location": f"/api-keys/{key.id}"},
    )


def list_keys(container: Container, request: Any) -> Any:

    owner = _user(request)
    keys = container.api_key_store.of_owner(owner)
    return {"apiKeys": [key_info(key) for key in keys]}


def revoke(container: Container, request: Any, key_id: str) -> Any:

    owner = _user(request)
    if not ID_PATTERN.match(key_id or ""):
        raise BadRequest(f"API key id must look like ak_ and 32 hex digits; got {key_id[:64]!r}")
    try:
        container.api_key_store.revoke(owner, key_id)
    except KeyNotFound:
        raise NotFound(f"API key {key_id} was not found") from None
    container.key_cache.forget(key_id)
    return Response(body="", status_code=204, headers={})
