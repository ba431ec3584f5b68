"""HS256 tokens are verified without PyJWT or `cryptography`, and every forgery is refused.

Tokens are minted with PyJWT (the reference implementation) and attacked one way each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import jwt
import pytest

from chalicelib.edge import hs256
from tests.conftest import JWT_SECRET

NOW = 1_800_000_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: dict, claims: dict, secret: str = JWT_SECRET) -> str:
    """A token with exactly this header, HMAC-SHA256 signed (PyJWT would rewrite `alg`)."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{_b64(mac)}"


def token(**claims) -> str:
    return jwt.encode({"sub": "alice", "exp": NOW + 60, **claims}, JWT_SECRET, "HS256")


def decode(value: str, **options) -> dict:
    return hs256.decode(value, JWT_SECRET, leeway=30, now=NOW, **options)


def test_a_token_pyjwt_signed_is_accepted_with_its_claims():
    assert decode(token(aud="taskstatus"), audience="taskstatus")["sub"] == "alice"


def test_an_unsigned_token_is_refused():
    unsigned = jwt.encode({"sub": "alice", "exp": NOW + 60}, None, "none")
    with pytest.raises(hs256.TokenError, match="alg"):
        decode(unsigned)


def test_a_token_with_another_hmac_algorithm_is_refused():
    other = jwt.encode({"sub": "alice", "exp": NOW + 60}, JWT_SECRET, "HS512")
    with pytest.raises(hs256.TokenError, match="alg"):
        decode(other)


def test_an_hs256_token_with_a_lowercase_alg_is_refused():
    with pytest.raises(hs256.TokenError, match="alg"):
        decode(signed({"alg": "hs256"}, {"sub": "alice", "exp": NOW + 60}))


def test_a_token_signed_with_another_secret_is_refused():
    forged = jwt.encode(
        {"sub": "alice", "exp": NOW + 60}, "another-secret-of-32-bytes-long!!", "HS256"
    )
    with pytest.raises(hs256.TokenError, match="Signature"):
        decode(forged)


def test_a_payload_swapped_under_a_valid_signature_is_refused():
    header, _, signature = token().split(".")
    mallory = _b64(json.dumps({"sub": "mallory", "exp": NOW + 60}).encode())
    with pytest.raises(hs256.TokenError, match="Signature"):
        decode(f"{header}.{mallory}.{signature}")


def test_a_critical_header_extension_is_refused():
    with pytest.raises(hs256.TokenError, match="critical"):
        decode(signed({"alg": "HS256", "crit": ["b64"], "b64": False}, {"exp": NOW + 60}))


def test_a_token_without_exp_is_refused():
    with pytest.raises(hs256.TokenError, match="exp"):
        decode(jwt.encode({"sub": "alice"}, JWT_SECRET, "HS256"))


def test_an_exp_that_is_not_a_number_is_refused():
    with pytest.raises(hs256.TokenError, match="exp"):
        decode(signed({"alg": "HS256"}, {"sub": "alice", "exp": str(NOW + 60)}))


def test_a_token_expired_beyond_the_leeway_is_refused():
    with pytest.raises(hs256.ExpiredToken):
        decode(token(exp=NOW - 31))


def test_a_token_expired_within_the_leeway_is_accepted():
    assert decode(token(exp=NOW - 29))["sub"] == "alice"


def test_a_token_not_yet_valid_is_refused():
    with pytest.raises(hs256.TokenError, match="nbf"):
        decode(token(nbf=NOW + 31))


def test_a_token_issued_in_the_future_is_refused():
    with pytest.raises(hs256.TokenError, match="iat"):
        decode(token(iat=NOW + 31))


def test_a_token_from_another_issuer_is_refused():
    with pytest.raises(hs256.TokenError, match="issuer"):
        decode(token(iss="https://elsewhere.example"), issuer="https://issuer.example")


def test_a_token_without_an_issuer_is_refused_when_one_is_required():
    with pytest.raises(hs256.TokenError, match="issuer"):
        decode(token(), issuer="https://issuer.example")


@pytest.mark.parametrize("aud", ["another-app", ["another-app", "third"]])
def test_a_token_for_another_audience_is_refused(aud):
    with pytest.raises(hs256.TokenError, match="audience"):
        decode(token(aud=aud), audience="taskstatus")


def test_a_token_without_an_audience_is_refused_when_one_is_required():
    with pytest.raises(hs256.TokenError, match="audience"):
        decode(token(), audience="taskstatus")


@pytest.mark.parametrize("value", ["not.a.jwt", "a.b", "a.b.c.d", "e30.e30.!!!", "W10.e30.e30"])
def test_a_malformed_token_is_refused(value):
    with pytest.raises(hs256.TokenError):
        decode(value)


def test_verifying_an_hs256_token_never_imports_cryptography():
    # A fresh process, as a cold Lambda: the REST handler's auth path only.
    script = (
        "import sys\n"
        "from chalicelib.edge.auth import verify_token\n"
        "from chalicelib.settings import get_settings\n"
        f"assert verify_token({token(exp=int(time.time()) + 600)!r}, get_settings()) == 'alice'\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'cryptography', 'jwt'})\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["JWT_SECRET"] = JWT_SECRET
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_a_signed_token_with_a_deeply_nested_header_is_refused_not_a_crash():
    head = _b64(("[" * 3000 + "]" * 3000).encode()) + "." + _b64(b'{"exp": 1}')
    mac = hmac.new(JWT_SECRET.encode(), head.encode(), hashlib.sha256).digest()
    with pytest.raises(hs256.TokenError):
        decode(f"{head}.{_b64(mac)}")


def test_a_signed_token_whose_exp_is_nan_never_passes():
    head = _b64(b'{"alg": "HS256", "typ": "JWT"}') + "." + _b64(b'{"sub": "a", "exp": NaN}')
    mac = hmac.new(JWT_SECRET.encode(), head.encode(), hashlib.sha256).digest()
    with pytest.raises(hs256.TokenError):
        decode(f"{head}.{_b64(mac)}")


def test_a_token_for_an_audience_when_none_is_configured_is_refused():
    """A sibling service sharing the secret mints tokens for itself: not valid here."""
    assert jwt.decode(token(), JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False})
    with pytest.raises(hs256.TokenError, match="audience"):
        decode(token(aud="other-app"))


def test_a_token_exactly_at_the_end_of_its_leeway_is_expired():
    with pytest.raises(hs256.ExpiredToken):
        decode(token(exp=NOW - 30))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [None, True, "1800000000", [1]])
def test_a_time_claim_that_is_not_a_number_is_refused(claim, value):
    claims = {"sub": "alice", "exp": NOW + 60, claim: value}
    with pytest.raises(hs256.TokenError, match="number"):
        decode(signed({"alg": "HS256", "typ": "JWT"}, claims))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_time_claim_up_to_the_leeway_ahead_is_accepted_and_no_further(claim):
    assert decode(token(**{claim: NOW + 30}))["sub"] == "alice"
    with pytest.raises(hs256.TokenError, match="not yet valid"):
        decode(token(**{claim: NOW + 31}))


def test_the_issuer_is_checked_only_when_one_is_configured():
    assert decode(token(iss="https://issuer.example"), issuer="https://issuer.example")
    with pytest.raises(hs256.TokenError, match="issuer"):
        decode(token(iss="https://elsewhere.example"), issuer="https://issuer.example")
    with pytest.raises(hs256.TokenError, match="issuer"):
        decode(token(), issuer="https://issuer.example")
    assert decode(token(iss="https://anyone.example"))["sub"] == "alice"


def test_an_audience_list_that_names_us_is_accepted():
    assert decode(token(aud=["other", "taskstatus"]), audience="taskstatus")
    with pytest.raises(hs256.TokenError, match="audience"):
        decode(token(aud=["other"]), audience="taskstatus")


def test_without_a_leeway_a_token_expires_at_its_exp():
    with pytest.raises(hs256.ExpiredToken):
        hs256.decode(token(exp=NOW), JWT_SECRET, now=NOW)


@pytest.mark.parametrize("value", ["a.b", "a.b.c.d", "a..b.c", ""])
def test_a_token_that_is_not_three_segments_is_refused(value):
    with pytest.raises(hs256.TokenError):
        decode(value)
