"""The key that signs list cursors is never empty, so nobody can forge a cursor."""

import base64
import hashlib
import hmac
import json

import pytest

from chalicelib.settings import ConfigurationError, get_settings
from tests.unit.helpers import get


@pytest.fixture
def env(monkeypatch):
    def configure(**values: str) -> None:
        for name in ("CURSOR_SECRET", "JWT_SECRET", "WEBHOOK_SECRET"):
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def test_no_secret_at_all_refuses_to_start_with_a_clear_message(env):
    env(JWT_JWKS_URL="https://issuer.example/jwks.json")
    with pytest.raises(ConfigurationError, match="CURSOR_SECRET"):
        get_settings()


def test_without_cursor_secret_the_key_is_derived_not_reused_or_empty(env):
    env(JWT_SECRET="a-jwt-secret")
    key = get_settings().cursor_secret
    assert key and key != "a-jwt-secret"


def test_a_cursor_forged_with_an_empty_key_is_refused(client, env):
    env(WEBHOOK_SECRET="whsec_c2VjcmV0", JWT_SECRET="local-dev-only-jwt-secret-not-for-production")
    payload = base64.urlsafe_b64encode(json.dumps(["9999", "x"]).encode()).decode().rstrip("=")
    scope = "jobs|alice||"
    mac = hmac.new(b"", f"{scope}|{payload}".encode(), hashlib.sha256).digest()
    forged = f"{payload}.{base64.urlsafe_b64encode(mac[:16]).decode().rstrip('=')}"
    response = get(client, f"/jobs?cursor={forged}")
    assert response.status_code == 400
