"""Bearer token verification, shared by REST and WebSocket `$connect`.

One algorithm is accepted per deployment: RS256 against a JWKS when
`JWT_JWKS_URL` is set (Cognito, Azure AD), HS256 with `JWT_SECRET` otherwise.
`alg: none`, expired, wrongly signed and malformed tokens, and tokens without
`sub`, are all refused.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    import jwt

# PyJWT (and through it `cryptography`) is imported on first verification, not at
# cold start: Lambdas that never see a token (worker, stream) never pay for it.

MAX_TOKEN_LENGTH = 8192


class InvalidToken(Exception):
    pass


@cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    import jwt

    return jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=5)


def _key_and_algorithm(token: str, settings: Settings) -> tuple[Any, str]:
    import jwt

    if settings.jwt_jwks_url:
        try:
            signing_key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token signing key not found: {exc}") from None
        return signing_key.key, "RS256"
    if not settings.jwt_secret:
        raise InvalidToken("token verification is not configured (set JWT_SECRET or JWT_JWKS_URL)")
    return settings.jwt_secret, "HS256"


def verify_token(token: str, settings: Settings | None = None) -> str:
    """Return the token's `sub` if the token is valid; raise InvalidToken otherwise."""
    import jwt

    settings = settings or get_settings()
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token is missing or too long")
    key, algorithm = _key_and_algorithm(token, settings)
    options = {"require": ["exp", "sub"], "verify_aud": bool(settings.jwt_audience)}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            options=options,
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token has expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"token is invalid: {exc}") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        raise InvalidToken("token has no usable `sub` claim")
    return subject


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken("missing Authorization header; send `Authorization: Bearer <JWT>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization header must be `Bearer <JWT>`")
    return token.strip()


def mint_token(subject: str, secret: str, ttl_seconds: int = 86400) -> str:
    """An HS256 token for development and tests (never used by the service itself)."""
    import time

    import jwt

    now = int(time.time())
    return jwt.encode({"sub": subject, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")
