"""Every route but /health needs a valid bearer token; failures are 401 with our error shape."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.auth import InvalidToken, verify_token
from chalicelib.settings import get_settings
from tests.conftest import JWT_SECRET, token_for


def get_jobs(client, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.http.get("/jobs", headers=headers)


def assert_unauthorized(response):
    assert response.status_code == 401
    body = response.json_body
    assert body["error"]["code"] == "unauthorized"
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert body["timestamp"]


def test_health_needs_no_token(client):
    response = client.http.get("/health")
    assert response.status_code == 200
    assert response.headers["X-Request-Id"]


def test_a_missing_token_is_unauthorized(client):
    assert_unauthorized(get_jobs(client, None))


def test_a_non_bearer_authorization_is_unauthorized(client):
    response = client.http.get("/jobs", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert_unauthorized(response)


def test_an_expired_token_is_unauthorized(client):
    expired = jwt.encode({"sub": "alice", "exp": int(time.time()) - 120}, JWT_SECRET, "HS256")
    response = get_jobs(client, expired)
    assert_unauthorized(response)
    assert "expired" in response.json_body["error"]["message"]


def test_an_unsigned_token_is_unauthorized(client):
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, "none")
    assert_unauthorized(get_jobs(client, unsigned))


def test_a_token_signed_with_another_secret_is_unauthorized(client):
    forged = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 60}, "not-the-secret-at-all-32-bytes!!", "HS256"
    )
    assert_unauthorized(get_jobs(client, forged))


def test_a_malformed_token_is_unauthorized(client):
    assert_unauthorized(get_jobs(client, "not.a.jwt"))


def test_a_token_without_sub_is_unauthorized(client):
    anonymous = jwt.encode({"exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
    assert_unauthorized(get_jobs(client, anonymous))


def test_a_valid_token_is_accepted(client):
    assert get_jobs(client, token_for("alice")).status_code == 200


def test_a_client_request_id_is_echoed(client):
    response = client.http.get("/health", headers={"X-Request-Id": "trace-123"})
    assert response.headers["X-Request-Id"] == "trace-123"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1, as Cognito or Azure AD would serve it."""

    def __init__(self, public_key):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
        jwk.update(kid="test-key", use="sig", alg="RS256")
        body = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def rs256(monkeypatch):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = JwksServer(key.public_key())
    monkeypatch.setenv("JWT_JWKS_URL", server.url)
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("JWT_AUDIENCE", "taskstatus")
    get_settings.cache_clear()
    yield key
    server.close()
    get_settings.cache_clear()


def rs256_token(key, **claims):
    payload = {
        "sub": "alice",
        "exp": int(time.time()) + 60,
        "iss": "https://issuer.example",
        "aud": "taskstatus",
    }
    payload.update(claims)
    return jwt.encode(payload, key, "RS256", headers={"kid": "test-key"})


def test_an_rs256_token_from_the_jwks_is_accepted(rs256):
    assert verify_token(rs256_token(rs256)) == "alice"


def test_an_rs256_token_for_another_audience_is_refused(rs256):
    with pytest.raises(InvalidToken):
        verify_token(rs256_token(rs256, aud="someone-else"))


def test_an_hs256_token_is_refused_when_rs256_is_configured(rs256):
    # Algorithm pinning: an HS256 token must not be verified with the RSA public key.
    with pytest.raises(InvalidToken):
        verify_token(
            jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
        )
