"""HS256 tokens seen again: the signature is checked once, every claim check on each use."""

import hmac
import time

import pytest

from chalicelib.edge import hs256
from local.token import mint_token

SECRET = "cache-test-secret-of-enough-length-0123456789"


@pytest.fixture
def hmacs(monkeypatch):
    """How many HMACs hs256 computes from here on."""
    made = []
    real = hmac.new

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(hs256.hmac, "new", counting)
    return made


def test_a_token_seen_again_is_not_verified_again(hmacs):
    token = mint_token("alice", SECRET, 600)
    hmacs.clear()  # minting signed it
    assert hs256.decode(token, SECRET)["sub"] == "alice"
    assert hs256.decode(token, SECRET)["sub"] == "alice"
    assert len(hmacs) == 1


def test_a_token_that_expired_since_it_was_verified_is_refused():
    token = mint_token("alice", SECRET, 60)
    hs256.decode(token, SECRET)
    with pytest.raises(hs256.ExpiredToken):
        hs256.decode(token, SECRET, now=time.time() + 3600)


def test_a_verified_token_is_refused_under_another_secret():
    token = mint_token("alice", SECRET, 600)
    hs256.decode(token, SECRET)
    with pytest.raises(hs256.TokenError, match="Signature"):
        hs256.decode(token, SECRET + "-rotated")


def test_a_verified_token_is_refused_for_another_audience():
    token = mint_token("alice", SECRET, 600, aud="taskstatus")
    hs256.decode(token, SECRET, audience="taskstatus")
    with pytest.raises(hs256.TokenError, match="audience"):
        hs256.decode(token, SECRET, audience="another-service")


def test_changing_the_returned_claims_does_not_change_the_next_answer():
    token = mint_token("alice", SECRET, 600)
    hs256.decode(token, SECRET)["sub"] = "mallory"
    assert hs256.decode(token, SECRET)["sub"] == "alice"


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(hs256, "MAX_VERIFIED", 3)
    hs256._VERIFIED.clear()
    for user in ("a", "b", "c", "d", "e"):
        hs256.decode(mint_token(user, SECRET, 600), SECRET)
    assert len(hs256._VERIFIED) <= 3
