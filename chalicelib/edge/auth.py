"""Who is calling: bearer JWTs and API keys, shared by REST and WebSocket `$connect`.

One JWT algorithm is accepted per deployment: RS256 against a JWKS when
`JWT_JWKS_URL` is set (Cognito, Azure AD), HS256 with `JWT_SECRET` otherwise.
`alg: none`, expired, wrongly signed and malformed tokens, tokens without `exp`,
for another issuer or audience, and tokens without the owner claim
(`OWNER_CLAIM`, default `sub`) are all refused. A credential starting `tsk_` is
an API key (`chalicelib/edge/api_keys.py`), never a JWT.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.settings import Settings

# HS256 tokens are verified with the standard library (chalicelib/edge/hs256.py); PyJWT, and
# through it `cryptography`, is imported only to verify RS256 against a JWKS.

MAX_TOKEN_LENGTH = 8192
MAX_OWNER_LENGTH = 256
API_KEY_PREFIX = "tsk_"
READ, WRITE, REPORT = "jobs:read", "jobs:write", "jobs:report"
# A user's JWT does all of it: reports included, on the user's own external jobs.
ALL_SCOPES = frozenset({READ, WRITE, REPORT})
# The operator's console (`/ops/...`, `/metrics`): every owner's tasks and the service's queues.
# A JWT carrying OPERATOR_SCOPE (in `scope`/`scp`, a Cognito group or an Entra app role) has
# it beside ALL_SCOPES, and so does a service key issued with SCOPES=operator; no user's
# API key can (POST /api-keys offers the jobs:* scopes alone).
OPERATE = "operator"
# Where identity providers put group and role membership: Cognito user pool groups, Entra ID
# (Azure AD) app roles.
MEMBERSHIP_CLAIMS = ("cognito:groups", "roles")
JWKS_MIN_REFRESH_SECONDS = 10.0
KIND_NAMES = {"jwt": "token", "api_key": "API key", "service_key": "service key"}


class InvalidToken(Exception):
    """The credential is missing, malformed, expired, revoked or forged: 401."""


class InsufficientScope(InvalidToken):
    """The credential is genuine but does not allow this: 403."""


@dataclass(frozen=True)
class Principal:
    """The caller: whose tasks they act on, and what they may do with them."""

    owner: str
    scopes: frozenset[str]
    kind: str  # "jwt", "api_key" or "service_key"
    key_id: str | None = None
    expires_at: int | None = None  # epoch seconds the credential stops being valid
    # A service key's owners (exact ids, or prefixes ending `*`): it acts for them, not itself.
    acts_for: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()  # the worker pools a service key may claim from

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise InsufficientScope(
                f"this {KIND_NAMES[self.kind]} lacks the {scope} scope; "
                f"it has {', '.join(sorted(self.scopes)) or 'none'}"
            )


# -- JWKS: keys cached for a TTL, refreshed early on an unknown `kid` ---------------------


class JwksCache:
    """Signing keys of one JWKS URL.

    The whole set is fetched again once it is `ttl` seconds old, so a key the
    identity provider removed stops verifying within `ttl`. A `kid` not in the
    set triggers an early fetch (key rotation), at most once per
    `min_refresh` seconds, so that tokens with made-up `kid`s cannot turn us
    into a flood against the provider.
    """

    def __init__(
        self,
        url: str,
        ttl: float,
        min_refresh: float = JWKS_MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> Any:
        with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.ttl
            if stale:
                self._keys = {}  # stale keys never verify, even if the fetch below fails
            last_failed = self._attempted_at is not None and self._attempted_at != self._fetched_at
            may_fetch = self._attempted_at is None or now - self._attempted_at >= self.min_refresh
            if (stale and not last_failed) or ((stale or kid not in self._keys) and may_fetch):
                self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken(f"token signing key {kid[:64]!r} is not in the issuer's JWKS")
        return key

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            self._keys = _fetch_rsa_keys(self.url)
        except (OSError, ValueError) as exc:
            raise InvalidToken(f"the issuer's JWKS could not be read: {exc}") from None
        self._fetched_at = now


def _fetch_rsa_keys(url: str) -> dict[str, Any]:
    import jwt

    with urllib.request.urlopen(url, timeout=5) as response:
        document = json.loads(response.read(1024 * 1024))
    keys: dict[str, Any] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not entry.get("kid"):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK.from_dict(entry, algorithm="RS256").key
        except jwt.PyJWTError:
            continue
    return keys


_jwks_caches: dict[tuple[str, float], JwksCache] = {}
_jwks_lock = threading.Lock()


def _jwks(settings: Settings) -> JwksCache:
    key = (settings.jwt_jwks_url, float(settings.jwks_cache_seconds))
    with _jwks_lock:
        if key not in _jwks_caches:
            _jwks_caches[key] = JwksCache(*key, min_refresh=min(JWKS_MIN_REFRESH_SECONDS, key[1]))
        return _jwks_caches[key]


def reset_jwks_cache() -> None:
    with _jwks_lock:
        _jwks_caches.clear()


# -- JWT ----------------------------------------------------------------------------------


def verify_claims(token: str, settings: Settings) -> dict[str, Any]:
    """The claims of a valid token (signature, algorithm, exp, iss, aud checked)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token is missing or too long")
    if settings.jwt_jwks_url:
        return _verify_rs256(token, settings)
    if not settings.jwt_secret:
        raise InvalidToken("token verification is not configured (set JWT_SECRET or JWT_JWKS_URL)")
    return _verify_hs256(token, settings)


def _verify_hs256(token: str, settings: Settings) -> dict[str, Any]:
    from chalicelib.edge import hs256

    try:
        return hs256.decode(
            token,
            settings.jwt_secret,
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            leeway=30,
        )
    except hs256.ExpiredToken:
        raise InvalidToken("token has expired") from None
    except hs256.TokenError as exc:
        raise InvalidToken(f"token is invalid: {exc}") from None


def _verify_rs256(token: str, settings: Settings) -> dict[str, Any]:
    import jwt  # and through it `cryptography`: only deployments that verify RS256 load it

    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"token is invalid: {exc}") from None
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token has no `kid` header naming its signing key")
    key = _jwks(settings).key(kid)
    try:
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            options={"require": ["exp"]},  # `aud` is always checked: JWKS mode requires it
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token has expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"token is invalid: {exc}") from None


def token_scopes(claims: Mapping[str, Any]) -> set[str]:
    """OAuth scopes from `scope` (Cognito, RFC 8693) or `scp` (Azure AD, Okta), string or list."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(v for v in value if isinstance(v, str))
    return scopes


def memberships(claims: Mapping[str, Any]) -> set[str]:
    """Groups and roles the identity provider put in the token (MEMBERSHIP_CLAIMS)."""
    found: set[str] = set()
    for name in MEMBERSHIP_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return found


def is_operator(claims: Mapping[str, Any], settings: Settings) -> bool:
    """The token names OPERATOR_SCOPE as a scope, a Cognito group or an Entra app role."""
    return settings.operator_scope in token_scopes(claims) | memberships(claims)


def jwt_principal(token: str, settings: Settings) -> Principal:
    claims = verify_claims(token, settings)
    owner = claims.get(settings.owner_claim)
    if not isinstance(owner, str) or not owner or len(owner) > MAX_OWNER_LENGTH:
        raise InvalidToken(f"token has no usable `{settings.owner_claim}` claim")
    missing = set(settings.jwt_required_scopes) - token_scopes(claims)
    if missing:
        raise InsufficientScope(f"token lacks the required scope(s): {', '.join(sorted(missing))}")
    scopes = ALL_SCOPES | {OPERATE} if is_operator(claims, settings) else ALL_SCOPES
    return Principal(owner=owner, scopes=scopes, kind="jwt", expires_at=int(claims["exp"]))


def verify_token(token: str, settings: Settings) -> str:
    """Return the owner of a valid JWT; raise InvalidToken otherwise."""
    return jwt_principal(token, settings).owner


# -- any credential ---------------------------------------------------------------------


def credential_from_headers(headers: Mapping[str, str]) -> str | None:
    """The caller's credential: `X-API-Key`, or `Authorization: Bearer ...`; None if neither."""
    api_key = headers.get("x-api-key")
    authorization = headers.get("authorization")
    if api_key is not None and authorization is not None:
        raise InvalidToken("send either X-API-Key or Authorization, not both")
    if api_key is not None:
        if not api_key.strip():
            raise InvalidToken("X-API-Key is empty")
        return api_key.strip()
    if authorization is None:
        return None
    return bearer_token(authorization)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken(
            "missing credentials; send `Authorization: Bearer <JWT>` or `X-API-Key: tsk_...`"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization header must be `Bearer <JWT>` or `Bearer tsk_...`")
    return token.strip()
