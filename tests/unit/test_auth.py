"""Every route but /health needs a valid bearer token; failures are 401 with our error shape."""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.edge.auth import InvalidToken, JwksCache, verify_token
from chalicelib.settings import ConfigurationError, get_settings
from tests.conftest import JWT_SECRET, reset_caches, token_for
from tests.scripted_server import SHUTDOWN_POLL_SECONDS
from tests.unit.helpers import sleep_job


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


def jwk(public_key, kid):
    entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
    entry.update(kid=kid, use="sig", alg="RS256")
    return entry


class JwksServer:
    """A JWKS endpoint on 127.0.0.1, as Cognito or Azure AD would serve it; its keys can change."""

    def __init__(self, keys):
        self.keys = dict(keys)  # kid -> public key
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                body = json.dumps(
                    {"keys": [jwk(key, kid) for kid, key in server.keys.items()]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"
        threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True
        ).start()

    def close(self):
        if self.server.socket.fileno() != -1:
            self.server.shutdown()
            self.server.server_close()


def new_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(monkeypatch):
    key = new_rsa_key()
    server = JwksServer({"test-key": key.public_key()})
    server.private = {"test-key": key}
    monkeypatch.setenv("JWT_JWKS_URL", server.url)
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("JWT_AUDIENCE", "taskstatus")
    monkeypatch.setenv("JWKS_CACHE_SECONDS", "1")
    reset_caches()
    yield server
    server.close()
    reset_caches()


@pytest.fixture
def rs256(jwks):
    return jwks.private["test-key"]


def rs256_token(key, kid="test-key", algorithm="RS256", drop=(), **claims):
    payload = {
        "sub": "alice",
        "exp": int(time.time()) + 60,
        "iss": "https://issuer.example",
        "aud": "taskstatus",
    }
    payload.update(claims)
    for name in drop:
        payload.pop(name)
    return jwt.encode(payload, key, algorithm, headers={"kid": kid})


def public_pem(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_an_rs256_token_from_the_jwks_is_accepted(rs256):
    assert verify_token(rs256_token(rs256), get_settings()) == "alice"


def test_an_rs256_token_is_accepted_over_http(client, rs256):
    assert get_jobs(client, rs256_token(rs256)).status_code == 200


def test_an_rs256_token_for_another_audience_is_refused(client, rs256):
    assert_unauthorized(get_jobs(client, rs256_token(rs256, aud="someone-else")))


def test_an_rs256_token_without_an_audience_is_refused(client, rs256):
    assert_unauthorized(get_jobs(client, rs256_token(rs256, drop=("aud",))))


def test_an_rs256_token_from_another_issuer_is_refused(client, rs256):
    assert_unauthorized(get_jobs(client, rs256_token(rs256, iss="https://evil.example")))


def test_an_rs256_token_without_an_issuer_is_refused(client, rs256):
    assert_unauthorized(get_jobs(client, rs256_token(rs256, drop=("iss",))))


def test_an_rs256_token_without_exp_is_refused(client, rs256):
    response = get_jobs(client, rs256_token(rs256, drop=("exp",)))
    assert_unauthorized(response)
    assert "exp" in response.json_body["error"]["message"]


def test_an_hs256_token_without_exp_is_refused(client):
    forever = jwt.encode({"sub": "alice"}, JWT_SECRET, "HS256")
    assert_unauthorized(get_jobs(client, forever))


def test_an_hs256_token_is_refused_when_rs256_is_configured(client, rs256):
    hs256 = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
    assert_unauthorized(get_jobs(client, hs256))


def test_an_hs256_token_keyed_with_the_public_key_is_refused(client, rs256):
    # The classic algorithm confusion: HMAC with the (public) RSA key as the secret.
    import hashlib
    import hmac as hmac_module

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "test-key"}).encode())
    claims = {
        "sub": "alice",
        "exp": int(time.time()) + 60,
        "iss": "https://issuer.example",
        "aud": "taskstatus",
    }
    payload = b64(json.dumps(claims).encode())
    signature = b64(
        hmac_module.new(public_pem(rs256), header + b"." + payload, hashlib.sha256).digest()
    )
    forged = (header + b"." + payload + b"." + signature).decode()
    assert_unauthorized(get_jobs(client, forged))


def test_an_rs512_token_signed_with_the_jwks_key_is_refused(client, rs256):
    # RS256 is pinned: another algorithm is refused even with the right key.
    assert_unauthorized(get_jobs(client, rs256_token(rs256, algorithm="RS512")))


def test_an_unsigned_token_is_refused_when_rs256_is_configured(client, rs256):
    unsigned = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 60, "aud": "taskstatus"},
        None,
        "none",
        headers={"kid": "test-key"},
    )
    assert_unauthorized(get_jobs(client, unsigned))


def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused(client, rs256):
    assert_unauthorized(get_jobs(client, rs256_token(new_rsa_key())))


def test_a_new_key_is_fetched_on_its_unknown_kid(jwks):
    now = [0.0]
    cache = JwksCache(jwks.url, ttl=300, min_refresh=10, clock=lambda: now[0])
    assert cache.key("test-key") is not None
    rotated = new_rsa_key()
    jwks.keys["rotated"] = rotated.public_key()
    now[0] = 10.0  # long before the TTL: the unknown kid alone fetches the set again
    assert cache.key("rotated").public_numbers() == rotated.public_key().public_numbers()
    assert jwks.hits == 2


def test_a_key_removed_from_the_jwks_stops_verifying_within_the_ttl(client, jwks, rs256):
    token = rs256_token(rs256)
    assert get_jobs(client, token).status_code == 200
    del jwks.keys["test-key"]
    time.sleep(1.05)  # JWKS_CACHE_SECONDS=1
    assert_unauthorized(get_jobs(client, token))


def test_keys_are_cached_between_requests(client, jwks, rs256):
    for _ in range(3):
        assert get_jobs(client, rs256_token(rs256)).status_code == 200
    assert jwks.hits == 1


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(jwks):
    now = [0.0]
    cache = JwksCache(jwks.url, ttl=300, min_refresh=10, clock=lambda: now[0])
    cache.key("test-key")
    for n in range(20):
        with pytest.raises(InvalidToken):
            cache.key(f"made-up-{n}")
    assert jwks.hits == 1  # made-up kids right after a fetch fetch nothing
    now[0] = 11.0
    for n in range(20):
        with pytest.raises(InvalidToken):
            cache.key(f"made-up-again-{n}")
    assert jwks.hits == 2  # one early fetch per interval, however many made-up kids


def test_a_jwks_that_cannot_be_read_verifies_nothing(client, monkeypatch, rs256):
    monkeypatch.setenv("JWT_JWKS_URL", "http://127.0.0.1:9/jwks.json")
    get_settings.cache_clear()
    response = get_jobs(client, rs256_token(rs256))
    assert_unauthorized(response)
    assert "JWKS" in response.json_body["error"]["message"]


def test_a_jwks_without_an_audience_refuses_to_start(monkeypatch):
    monkeypatch.setenv("JWT_JWKS_URL", "https://issuer.example/.well-known/jwks.json")
    monkeypatch.delenv("JWT_AUDIENCE", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="JWT_AUDIENCE"):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# -- identity mapping: OWNER_CLAIM, JWT_REQUIRED_SCOPES ------------------------------------


def hs256(**claims):
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, JWT_SECRET, "HS256")


def bearer(token):
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
def owner_claim(monkeypatch):
    def use(claim):
        monkeypatch.setenv("OWNER_CLAIM", claim)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


def test_the_owner_is_the_configured_claim(client, owner_claim):
    owner_claim("oid")
    token = hs256(sub="pairwise-sub", oid="object-id-1")
    job = client.http.post("/jobs", headers=bearer(token), body=json.dumps(sleep_job())).json_body
    owner_claim("sub")
    assert get_jobs(client, token_for("object-id-1")).json_body["jobs"][0]["jobId"] == job["jobId"]


def test_a_token_without_the_owner_claim_is_refused(client, owner_claim):
    owner_claim("oid")
    response = get_jobs(client, hs256(sub="alice"))
    assert_unauthorized(response)
    assert "oid" in response.json_body["error"]["message"]


def test_a_tenant_claim_lets_a_tenant_share_its_tasks(client, owner_claim):
    owner_claim("tid")
    submitted = client.http.post(
        "/jobs", headers=bearer(hs256(sub="ann", tid="acme")), body=json.dumps(sleep_job())
    ).json_body
    colleague = client.http.get(
        f"/jobs/{submitted['jobId']}", headers=bearer(hs256(sub="bob", tid="acme"))
    )
    outsider = client.http.get(
        f"/jobs/{submitted['jobId']}", headers=bearer(hs256(sub="eve", tid="globex"))
    )
    assert colleague.status_code == 200
    assert outsider.status_code == 404


@pytest.fixture
def required_scopes(monkeypatch):
    monkeypatch.setenv("JWT_REQUIRED_SCOPES", "taskstatus/jobs api.access")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_token_without_the_required_scopes_is_forbidden(client, required_scopes):
    response = get_jobs(client, hs256(sub="alice", scope="taskstatus/jobs"))
    assert response.status_code == 403
    assert "api.access" in response.json_body["error"]["message"]


def test_required_scopes_are_read_from_scope(client, required_scopes):
    token = hs256(sub="alice", scope="openid taskstatus/jobs api.access")
    assert get_jobs(client, token).status_code == 200


def test_required_scopes_are_read_from_a_scp_list(client, required_scopes):
    token = hs256(sub="alice", scp=["taskstatus/jobs", "api.access"])
    assert get_jobs(client, token).status_code == 200


def test_required_scopes_are_read_from_a_scp_string(client, required_scopes):
    token = hs256(sub="alice", scp="api.access taskstatus/jobs")
    assert get_jobs(client, token).status_code == 200


def test_a_websocket_needs_the_required_scopes_too(service, required_scopes):
    from chalicelib.bootstrap import container

    realtime = container().realtime  # with the required scopes set above
    assert realtime.connect("c1", {"token": hs256(sub="alice")})["statusCode"] == 403
    assert realtime.connect(
        "c2", {"token": hs256(sub="alice", scope="api.access taskstatus/jobs")}
    ) == {"statusCode": 200}


def test_stale_keys_never_verify_while_the_jwks_is_unreachable(jwks):
    now = [0.0]
    cache = JwksCache(jwks.url, ttl=300, min_refresh=10, clock=lambda: now[0])
    assert cache.key("test-key") is not None
    jwks.close()
    for now[0] in (301.0, 302.0, 320.0):
        with pytest.raises(InvalidToken):
            cache.key("test-key")


def test_the_app_refuses_to_start_with_a_jwks_and_no_audience():
    import os
    import subprocess
    import sys

    env = {**os.environ, "JWT_JWKS_URL": "https://issuer.example/jwks.json", "JWT_AUDIENCE": ""}
    started = subprocess.run(
        [sys.executable, "-c", "import app"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "JWT_AUDIENCE" in started.stderr


def test_an_rs256_token_that_expired_within_the_leeway_is_accepted(rs256):
    assert verify_token(rs256_token(rs256, exp=int(time.time()) - 20), get_settings()) == "alice"


def test_an_rs256_token_that_expired_just_past_the_leeway_is_refused(rs256):
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(rs256_token(rs256, exp=int(time.time()) - 30), get_settings())


@pytest.mark.parametrize("kid", ["", None])
def test_an_rs256_token_whose_kid_is_not_a_name_is_refused(rs256, kid):
    import base64
    import json as json_module

    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json_module.dumps(value).encode()).decode().rstrip("=")

    header = {"alg": "RS256", **({"kid": kid} if kid is not None else {})}
    claims = {"sub": "alice", "exp": int(time.time()) + 60, "aud": "taskstatus"}
    token = f"{b64(header)}.{b64(claims)}.c2ln"  # never reaches the signature check
    with pytest.raises(InvalidToken, match="`kid`"):
        verify_token(token, get_settings())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fetches(monkeypatch):
    """Counts JWKS fetches; `fetches.down = True` makes the issuer unreachable."""
    from chalicelib.edge import auth

    class Fetches:
        count = 0
        down = False

    def fetch(url):
        Fetches.count += 1
        if Fetches.down:
            raise OSError("connection refused")
        return {"k1": "a-key"}

    monkeypatch.setattr(auth, "_fetch_rsa_keys", fetch)
    return Fetches


def test_keys_are_fetched_again_the_moment_they_reach_their_ttl(fetches):
    clock = FakeClock()
    cache = JwksCache("https://issuer/jwks", ttl=5, min_refresh=10, clock=clock)
    assert cache.key("k1") == "a-key"
    clock.now += 4.9
    cache.key("k1")
    assert fetches.count == 1
    clock.now += 0.1  # exactly the TTL: stale, fetched again though min_refresh has not passed
    cache.key("k1")
    assert fetches.count == 2


def test_after_a_failed_fetch_the_issuer_is_not_asked_again_before_min_refresh(fetches):
    clock = FakeClock()
    cache = JwksCache("https://issuer/jwks", ttl=5, min_refresh=10, clock=clock)
    fetches.down = True
    with pytest.raises(InvalidToken, match="could not be read"):
        cache.key("k1")
    clock.now += 6  # stale, but the last attempt failed 6 s ago
    with pytest.raises(InvalidToken):
        cache.key("k1")
    assert fetches.count == 1
    fetches.down = False
    clock.now += 4  # min_refresh has passed: try again
    assert cache.key("k1") == "a-key"
    assert fetches.count == 2


@pytest.fixture
def hs256_with_claims(monkeypatch):
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("JWT_AUDIENCE", "taskstatus")
    reset_caches()
    yield
    reset_caches()


def hs_token(**claims) -> str:
    payload = {
        "sub": "alice",
        "exp": int(time.time()) + 60,
        "iss": "https://issuer.example",
        "aud": "taskstatus",
        **claims,
    }
    return jwt.encode(payload, JWT_SECRET, "HS256")


def test_an_hs256_deployment_checks_the_configured_issuer(hs256_with_claims):
    assert verify_token(hs_token(), get_settings()) == "alice"
    with pytest.raises(InvalidToken, match="issuer"):
        verify_token(hs_token(iss="https://elsewhere.example"), get_settings())


def test_an_hs256_deployment_checks_the_configured_audience(hs256_with_claims):
    with pytest.raises(InvalidToken, match="audience"):
        verify_token(hs_token(aud="another-service"), get_settings())


def test_an_hs256_token_within_the_leeway_is_accepted_and_just_past_it_refused():
    now = int(time.time())
    assert (
        verify_token(jwt.encode({"sub": "a", "exp": now - 20}, JWT_SECRET, "HS256"), get_settings())
        == "a"
    )
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(jwt.encode({"sub": "a", "exp": now - 30}, JWT_SECRET, "HS256"), get_settings())


def test_an_over_long_token_is_refused_before_any_parsing():
    with pytest.raises(InvalidToken, match="too long"):
        verify_token("a" * 8193, get_settings())


@pytest.mark.parametrize("sub", ["", "x" * 257, 123, None])
def test_a_token_whose_owner_claim_is_not_a_usable_name_is_refused(sub):
    claims = {"exp": int(time.time()) + 60, **({"sub": sub} if sub is not None else {})}
    with pytest.raises(InvalidToken, match="claim"):
        verify_token(jwt.encode(claims, JWT_SECRET, "HS256"), get_settings())


def test_a_principal_carries_its_tokens_expiry():
    from chalicelib.bootstrap import container

    exp = int(time.time()) + 90
    token = jwt.encode({"sub": "a", "exp": exp}, JWT_SECRET, "HS256")
    assert container().authenticator.authenticate(token).expires_at == exp
