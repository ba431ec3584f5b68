"""HS256 JWT verification with the standard library only.

PyJWT imports `cryptography` (about 8 MiB of native code and a large share of a cold start)
whatever the algorithm, so the HS256 deployment verifies its tokens here and imports PyJWT
only for RS256 against a JWKS (chalicelib/edge/auth.py). The checks are PyJWT's for the options
auth.py uses: the algorithm pinned to HS256 (`none` and every other `alg` refused), the
signature compared in constant time, `exp` required, `nbf`, `iat`, `iss` and `aud` checked
with a leeway, and a `crit` header refused (no extension is understood).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from typing import Any

from chalicelib import jsonsafe

ALGORITHM = "HS256"
SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(Exception):
    """The token is not a valid HS256 JWT for this deployment; the message says why."""


class ExpiredToken(TokenError):
    pass


def decode(
    token: str,
    secret: str,
    *,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of an HS256 token signed with `secret`, all checks passed."""
    claims = _VERIFIED.get((secret, token))
    if claims is None:
        claims = _signed_claims(token, secret)
        if len(_VERIFIED) >= MAX_VERIFIED:
            _VERIFIED.clear()
        _VERIFIED[(secret, token)] = claims
    _check_claims(claims, audience, issuer, leeway, time.time() if now is None else now)
    return dict(claims)


# A warm function sees the same token again and again (a client polling its task): its
# signature and JSON are checked once per secret; the time, issuer and audience checks run
# on every use.
_VERIFIED: dict[tuple[str, str], dict[str, Any]] = {}
MAX_VERIFIED = 512


def _signed_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a well-formed HS256 token whose signature is `secret`'s."""
    parts = token.split(".")
    if len(parts) != 3 or not all(SEGMENT.fullmatch(part) for part in parts):
        raise TokenError("Not enough segments or not base64url")
    header, claims = _json_object(parts[0], "header"), _json_object(parts[1], "payload")
    if header.get("alg") != ALGORITHM:
        raise TokenError("The specified alg value is not allowed")
    if "crit" in header:
        raise TokenError("Unsupported critical header extension")
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _b64decode(parts[2])):
        raise TokenError("Signature verification failed")
    return claims


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("Invalid base64url padding") from None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = jsonsafe.loads(_b64decode(segment))  # bounded nesting, no NaN/Infinity
    except jsonsafe.UnsafeJson:
        raise TokenError(f"Invalid {what} string") from None
    if not isinstance(value, dict):
        raise TokenError(f"Invalid {what} string: must be a JSON object")
    return value


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"The {name} claim must be a number")
    return float(value)


def _check_claims(
    claims: dict[str, Any], audience: str | None, issuer: str | None, leeway: float, now: float
) -> None:
    expires = _number(claims, "exp")
    if expires is None:
        raise TokenError('Token is missing the "exp" claim')
    if expires <= now - leeway:
        raise ExpiredToken("Signature has expired")
    not_before, issued = _number(claims, "nbf"), _number(claims, "iat")
    if not_before is not None and not_before > now + leeway:
        raise TokenError("The token is not yet valid (nbf)")
    if issued is not None and issued > now + leeway:
        raise TokenError("The token is not yet valid (iat)")
    if issuer is not None and claims.get("iss") != issuer:
        raise TokenError("Invalid issuer")
    if audience is None:
        if "aud" in claims:  # minted for another service: refused, as PyJWT does
            raise TokenError("Invalid audience")
        return
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or audience not in audiences:
        raise TokenError("Invalid audience")
