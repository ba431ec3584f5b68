"""Typed settings, read once from the environment of the Lambda (or `make dev`)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.flow import Rate
    from chalicelib.objects import Link

# Fair by default: at most this many running tasks per owner (MAX_RUNNING_PER_OWNER; 0 turns
# the limit off). It is below the smallest pool the workers share: `make dev`'s 4
# (WORKER_CONCURRENCY) and the 5 concurrent invocations Lambda's SQS poller starts a queue
# with, so one owner's backlog always leaves a worker for everyone else (docs/fairness.md).
DEFAULT_MAX_RUNNING_PER_OWNER = 3


class ConfigurationError(RuntimeError):
    """The deployment's configuration cannot work; the message says what to set."""


def _cursor_secret(env: Callable[[str, str], str]) -> str:
    """CURSOR_SECRET, or a key derived from another configured secret; never empty."""
    if env("CURSOR_SECRET", ""):
        return env("CURSOR_SECRET", "")
    for name in ("JWT_SECRET", "WEBHOOK_SECRET"):
        if env(name, ""):
            return hmac.new(
                env(name, "").encode(), b"taskstatus list cursors", "sha256"
            ).hexdigest()
    raise ConfigurationError(
        "CURSOR_SECRET is not set (nor JWT_SECRET or WEBHOOK_SECRET to derive it from): "
        "list cursors cannot be signed. Set CURSOR_SECRET to a long random string."
    )


def _check_jwks(jwks_url: str, audience: str) -> None:
    if jwks_url and not audience:
        raise ConfigurationError(
            "JWT_JWKS_URL is set but JWT_AUDIENCE is not: without an audience, a token your "
            "identity provider issued for any other application would be accepted. Set "
            "JWT_AUDIENCE to this API's client id or application id URI."
        )


def check_environment() -> None:
    """The checks that need no secret, run when the app is loaded: an unsafe stage never starts.

    (Secrets are absent when `chalice package` loads the app, so they are checked on first use.)
    """
    _check_jwks(os.environ.get("JWT_JWKS_URL", ""), os.environ.get("JWT_AUDIENCE", ""))


MAX_LINK_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs: X-Amz-Expires of at most 7 days


def _link_seconds(name: str, raw: str) -> int:
    """A presigned link's lifetime: 1 s to 7 days, the most S3 accepts; else refused at start."""
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= MAX_LINK_SECONDS:
        raise ConfigurationError(
            f"{name}={raw[:32]!r} is not a link lifetime S3 accepts: give whole seconds "
            f"from 1 to {MAX_LINK_SECONDS} (7 days, SigV4's limit)"
        )
    return seconds


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str) -> tuple[str, ...]:
    """A comma- or space-separated list, in order, without blanks or repeats."""
    raw = os.environ.get(name, "").replace(",", " ").split()
    return tuple(dict.fromkeys(raw))


def _max_running_per_owner(raw: str) -> int:
    """MAX_RUNNING_PER_OWNER: a whole number, 0 for no limit; unset or empty, the default."""
    if not raw.strip():
        return DEFAULT_MAX_RUNNING_PER_OWNER
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"MAX_RUNNING_PER_OWNER must be a whole number (0: no limit); got {raw!r}"
        ) from None
    return max(0, value)


@dataclass(frozen=True)
class Settings:
    tasks_table: str
    records_table: str
    tasks_queue_url: str
    webhooks_queue_url: str
    objects_bucket: str
    jwt_secret: str
    jwt_jwks_url: str
    jwt_issuer: str
    jwt_audience: str
    cursor_secret: str
    task_ttl_days: int
    idempotency_ttl_hours: int
    max_body_bytes: int
    result_inline_max_bytes: int
    worker_lease_seconds: int
    max_attempts: int
    default_task_timeout_seconds: int
    webhook_secret: str
    webhook_previous_secret: str
    webhook_allow_http: bool
    webhook_allow_private: bool
    webhook_timeout_seconds: float
    ws_endpoint_url: str
    ws_public_url: str = ""  # what browsers connect to; by default derived from ws_endpoint_url
    cors_allow_origins: tuple[str, ...] = ()
    cors_max_age_seconds: int = 600
    owner_claim: str = "sub"
    jwt_required_scopes: tuple[str, ...] = ()
    jwks_cache_seconds: int = 300
    api_key_cache_seconds: float = 5.0
    max_api_keys_per_user: int = 20
    api_key_max_days: int = 90  # every API key expires within this (chalicelib/edge/api_keys.py)
    max_connections_per_owner: int = 100  # WebSocket connections holding a subscription
    max_subscriptions_per_connection: int = 100
    public_read_by_id: bool = False
    presign_expires_seconds: int = 86400  # 000/001's TargetObjectURL (the origin: 24 h)
    autovid_url_expires_seconds: int = 86400  # 002's output.url (auto-vid: 24 h)
    assembly_url_expires_seconds: int = 604800  # 003's ssl_url (transflow: no expiry; 7 d max)
    presign_access_key_id: str = ""  # a dedicated signer, so links outlive the role's session
    presign_secret_access_key: str = ""
    autovid_task_type: str = "video/auto-vid"  # the task type of 002's auto-vid job specs
    # fair concurrency (chalicelib/fairness.py); 0: no limit
    max_running_per_owner: int = DEFAULT_MAX_RUNNING_PER_OWNER
    # An external task's default heartbeat window (chalicelib/reports.py): a Lambda's longest run.
    external_heartbeat_seconds: int = 900
    max_schedules_per_owner: int = 100  # chalicelib/schedules.py
    # The scope (or Cognito group, or Entra app role) that makes a JWT an operator's: it
    # reads every owner's tasks and the service's queues (chalicelib/contracts/operator.py).
    operator_scope: str = "taskstatus:operator"
    # flow control (chalicelib/flow.py, chalicelib/fairness.py)
    type_concurrency: tuple[tuple[str, int], ...] = ()
    pool_concurrency: tuple[tuple[str, int], ...] = ()  # (pool, limit): POOL_CONCURRENCY
    type_rate: tuple[tuple[str, Rate], ...] = ()
    submit_rate: Rate | None = None
    priority_aging_seconds: int = 60

    def check(self) -> Settings:
        """Refuse, with a message an operator can act on, a configuration that is unsafe."""
        _check_jwks(self.jwt_jwks_url, self.jwt_audience)
        return self

    def link(self, seconds: int) -> Link:
        """Presigned links of this lifetime, signed by the dedicated signer when there is one."""
        from chalicelib.objects import Link

        return Link(seconds, self.presign_access_key_id, self.presign_secret_access_key)

    @property
    def task_ttl_seconds(self) -> int:
        return self.task_ttl_days * 86400


@cache
def get_settings() -> Settings:
    env = os.environ.get
    return Settings(
        tasks_table=env("TASKS_TABLE", "taskstatus-tasks"),
        records_table=env("RECORDS_TABLE", "taskstatus-records"),
        tasks_queue_url=env("TASKS_QUEUE_URL", ""),
        webhooks_queue_url=env("WEBHOOKS_QUEUE_URL", ""),
        objects_bucket=env("OBJECTS_BUCKET", ""),
        jwt_secret=env("JWT_SECRET", ""),
        jwt_jwks_url=env("JWT_JWKS_URL", ""),
        jwt_issuer=env("JWT_ISSUER", ""),
        jwt_audience=env("JWT_AUDIENCE", ""),
        cursor_secret=_cursor_secret(env),
        task_ttl_days=int(env("TASK_TTL_DAYS", "7")),
        idempotency_ttl_hours=max(24, int(env("IDEMPOTENCY_TTL_HOURS", "24"))),
        max_body_bytes=int(env("MAX_BODY_BYTES", str(256 * 1024))),
        result_inline_max_bytes=int(env("RESULT_INLINE_MAX_BYTES", str(256 * 1024))),
        worker_lease_seconds=int(env("WORKER_LEASE_SECONDS", "120")),
        max_attempts=int(env("MAX_ATTEMPTS", "5")),
        default_task_timeout_seconds=int(env("TASK_TIMEOUT_SECONDS", "900")),
        webhook_secret=env("WEBHOOK_SECRET", ""),
        webhook_previous_secret=env("WEBHOOK_PREVIOUS_SECRET", ""),
        webhook_allow_http=_flag("WEBHOOK_ALLOW_HTTP"),
        webhook_allow_private=_flag("WEBHOOK_ALLOW_PRIVATE"),
        webhook_timeout_seconds=float(env("WEBHOOK_TIMEOUT_SECONDS", "15")),
        ws_endpoint_url=env("WS_ENDPOINT_URL", ""),
        ws_public_url=env("WS_PUBLIC_URL", ""),
        cors_allow_origins=_list("CORS_ALLOW_ORIGINS"),
        cors_max_age_seconds=int(env("CORS_MAX_AGE_SECONDS", "600")),
        owner_claim=env("OWNER_CLAIM", "").strip() or "sub",
        jwt_required_scopes=_list("JWT_REQUIRED_SCOPES"),
        jwks_cache_seconds=int(env("JWKS_CACHE_SECONDS", "300")),
        api_key_cache_seconds=float(env("API_KEY_CACHE_SECONDS", "5")),
        max_api_keys_per_user=int(env("MAX_API_KEYS_PER_USER", "20")),
        api_key_max_days=max(1, int(env("API_KEY_MAX_DAYS", "90") or "90")),
        max_connections_per_owner=int(env("WS_MAX_CONNECTIONS_PER_OWNER", "100")),
        max_subscriptions_per_connection=int(env("WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", "100")),
        public_read_by_id=_flag("PUBLIC_READ_BY_ID"),
        presign_expires_seconds=_link_seconds(
            "PRESIGN_EXPIRES_SECONDS", env("PRESIGN_EXPIRES_SECONDS", "86400")
        ),
        autovid_url_expires_seconds=_link_seconds(
            "AUTOVID_URL_EXPIRES_SECONDS", env("AUTOVID_URL_EXPIRES_SECONDS", "86400")
        ),
        assembly_url_expires_seconds=_link_seconds(
            "ASSEMBLY_URL_EXPIRES_SECONDS", env("ASSEMBLY_URL_EXPIRES_SECONDS", "604800")
        ),
        presign_access_key_id=env("PRESIGN_ACCESS_KEY_ID", ""),
        presign_secret_access_key=env("PRESIGN_SECRET_ACCESS_KEY", ""),
        autovid_task_type=env("AUTOVID_TASK_TYPE", "video/auto-vid"),
        max_running_per_owner=_max_running_per_owner(env("MAX_RUNNING_PER_OWNER", "")),
        max_schedules_per_owner=max(0, int(env("MAX_SCHEDULES_PER_OWNER", "100") or "100")),
        external_heartbeat_seconds=int(env("EXTERNAL_HEARTBEAT_SECONDS", "900") or "900"),
        operator_scope=env("OPERATOR_SCOPE", "").strip() or "taskstatus:operator",
        **_flow_settings(env),
    ).check()


def _flow_settings(env: Callable[[str, str], str]) -> dict[str, Any]:
    """TYPE_CONCURRENCY, POOL_CONCURRENCY, TYPE_RATE, SUBMIT_RATE and PRIORITY_AGING_SECONDS
    (chalicelib/flow.py);
    one that cannot be read stops the start with what to write instead. Imported here: the
    settings are read at cold start, which loads only what every function needs."""
    from chalicelib.flow import (
        FlowSettingError,
        parse_pool_concurrency,
        parse_submit_rate,
        parse_type_concurrency,
        parse_type_rate,
    )

    aging = env("PRIORITY_AGING_SECONDS", "60").strip() or "60"
    try:
        if not aging.isdigit() or int(aging) < 1:
            raise FlowSettingError(
                "PRIORITY_AGING_SECONDS must be a whole number of seconds, 1 or more; "
                f"got {aging!r}"
            )
        return {
            "type_concurrency": parse_type_concurrency(env("TYPE_CONCURRENCY", "")),
            "pool_concurrency": _declared_pools(
                parse_pool_concurrency(env("POOL_CONCURRENCY", "")), env("WORKER_POOLS", "")
            ),
            "type_rate": parse_type_rate(env("TYPE_RATE", "")),
            "submit_rate": parse_submit_rate(env("SUBMIT_RATE", "")),
            "priority_aging_seconds": int(aging),
        }
    except FlowSettingError as exc:
        raise ConfigurationError(str(exc)) from None


def _declared_pools(
    limits: tuple[tuple[str, int], ...], worker_pools: str
) -> tuple[tuple[str, int], ...]:
    """POOL_CONCURRENCY names pools of WORKER_POOLS only (a limit on no pool is a typo)."""
    from chalicelib.flow import FlowSettingError

    declared = worker_pools.replace(",", " ").split()
    for pool, _ in limits:
        if pool not in declared:
            raise FlowSettingError(
                f"POOL_CONCURRENCY: {pool!r} is not a pool of WORKER_POOLS "
                f"({', '.join(declared) or 'none declared'})"
            )
    return limits
