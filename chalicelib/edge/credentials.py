"""A caller's credential, whatever its kind: a JWT (`auth`) or an API key (`api_keys`)."""

from __future__ import annotations

from chalicelib.edge.auth import API_KEY_PREFIX, Principal, jwt_principal
from chalicelib.settings import Settings


def authenticate(credential: str, settings: Settings) -> Principal:
    """A JWT or an API key (`tsk_...`), as sent in a header or a WebSocket query string."""
    if credential.startswith(API_KEY_PREFIX):
        from chalicelib.edge.api_keys import authenticate_key

        return authenticate_key(credential, settings)
    return jwt_principal(credential, settings)
