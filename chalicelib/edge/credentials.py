"""A caller's credential, whatever its kind: a JWT (`auth`) or an API key (`api_keys`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.edge.auth import API_KEY_PREFIX, Principal, jwt_principal
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.edge.api_keys import KeyAuthentication


class Authenticator:
    """Who sent a credential, for REST requests and WebSocket connects alike.

    `keys` gives the container's API-key authentication (store and cache), asked for only
    when an API key comes: a function that only ever sees JWTs never loads it.
    """

    def __init__(self, settings: Settings, keys: Callable[[], KeyAuthentication]) -> None:
        self.settings = settings
        self._keys = keys

    def authenticate(self, credential: str) -> Principal:
        """A JWT or an API key (`tsk_...`), as sent in a header or a WebSocket query string."""
        if credential.startswith(API_KEY_PREFIX):
            return self._keys().authenticate(credential)
        return jwt_principal(credential, self.settings)

    def key_is_live(self, key_id: str) -> bool:
        """Whether the API key a connection was opened with still exists (not revoked)."""
        return self._keys().is_live(key_id)
