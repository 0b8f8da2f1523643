"""Settings: the one place that reads the environment.

Handlers build a `Settings` once per cold start with `Settings.from_env()` and pass it
(or the clients built from it) down; nothing else in the library reads `os.environ`.
The application's own settings (its tables, its fields) are parsed by the application
from `Settings.environment`, the same snapshot, so it never reads the environment either.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

#: API Gateway closes every connection after 2 hours.
CONNECTION_LIFETIME_SECONDS = 2 * 60 * 60
#: Items outlive the connection a little so a late `$disconnect` still finds them.
CONNECTION_TTL_MARGIN_SECONDS = 10 * 60
MIN_HS256_SECRET_BYTES = 32
#: The reference application (layers/common/monitor) unless `REALTIME_APP` names another.
DEFAULT_APPLICATION = "monitor"
#: A Secrets Manager secret is re-read after a signature failure at most this often.
SECRET_REREAD_SECONDS = 60
DEFAULT_SECRET_CACHE_SECONDS = 300
DEFAULT_JWT_MAX_AGE_SECONDS = 24 * 60 * 60
DEFAULT_JWKS_CACHE_SECONDS = 300
DEFAULT_JWKS_MIN_REFETCH_SECONDS = 30
#: The whole key-set fetch, below API Gateway's 29 s integration timeout with room to spare.
JWKS_TIMEOUT_SECONDS = 5.0
TOKEN_USES = ("access", "id")  # Cognito's `token_use` claim
DEFAULT_HISTORY_HOURS = 24
DEFAULT_REPLAY_LIMIT = 500
#: The bus a Lambda's `realtime.publish(...)` puts events on, unless it names one.
EVENT_BUS_VARIABLE = "REALTIME_EVENT_BUS"


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; raised at cold start, never per request."""


def split(value: str | None) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise ConfigurationError(f"{name} must be 'true' or 'false', got {raw!r}")
    return raw == "true"


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if raw and raw not in choices:
        raise ConfigurationError(f"{name} must be empty or one of {', '.join(choices)}, got {raw!r}")
    return raw


def jwks_url_for(issuer: str, override: str = "") -> str:
    """The issuer's key set: the override, or OIDC's (and Cognito's) well-known location."""
    return override or (issuer.rstrip("/") + "/.well-known/jwks.json" if issuer else "")


def _https(name: str, url: str) -> None:
    """Keys fetched over plain HTTP could be swapped in transit; loopback is allowed for tests."""
    parts = urlsplit(url)
    loopback = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not (parts.scheme == "https" or loopback) or not parts.hostname:
        raise ConfigurationError(f"{name} must be an https:// URL, got {url!r}")


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], T], kind: str) -> T | None:
    """The variable parsed by `parse` (None when unset), or `ConfigurationError` naming it."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from exc


def integer(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    """An integer setting, or `ConfigurationError` naming the variable."""
    value = _parsed(env, name, int, "an integer")
    if value is None:
        return default
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def rate(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive, finite per-second rate (fractions allowed: 0.1 is one every 10 s)."""
    value = _parsed(env, name, float, "a number")
    if value is None:
        return default
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return value


def required(env: Mapping[str, str], *names: str) -> None:
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")


@dataclass(frozen=True)
class Settings:
    """Everything the engine is configured with, read once."""

    connections_table: str
    application: str = DEFAULT_APPLICATION
    presence_ttl_seconds: int = 60
    allowed_origins: tuple[str, ...] = ()
    websocket_endpoint: str = ""
    jwt_secret: str = field(default="", repr=False)
    jwt_secret_arn: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_audience_waived: bool = False
    jwt_token_use: str = ""
    jwt_max_age_seconds: int = DEFAULT_JWT_MAX_AGE_SECONDS
    jwt_secret_cache_seconds: int = DEFAULT_SECRET_CACHE_SECONDS
    jwks_url: str = ""
    jwks_cache_seconds: int = DEFAULT_JWKS_CACHE_SECONDS
    jwks_min_refetch_seconds: int = DEFAULT_JWKS_MIN_REFETCH_SECONDS
    fanout_page_size: int = 1000
    fanout_queue_url: str = ""
    send_concurrency: int = 128  # requests in flight per sender (docs/performance.md)
    #: The sweep's stale checks stop after this many seconds (or earlier: `realtime.sweep`).
    sweep_budget_seconds: int = 40
    #: Stale connections the sweep reads and asks about at once.
    sweep_page_size: int = 100
    region: str = "us-east-1"
    max_frame_bytes: int = 8192
    #: Coalesced state broadcasts (realtime.announcing): the queue, the shortest interval,
    #: and the posts per second no group's state broadcasts may exceed.
    announce_queue_url: str = ""
    broadcast_interval_ms: int = 1000
    group_post_budget: int = 1000
    #: Bounded state frames: users per state in a list entry / in a roster.
    list_names: int = 3
    roster_limit: int = 100
    #: Per-connection and per-user limits (abuse and accidents).
    max_presence: int = 10
    max_subscriptions: int = 100
    frame_rate: float = 10.0
    frame_burst: int = 20
    max_connections_per_user: int = 20
    #: The history table (catch-up); empty: no stream keeps history.
    history_table: str = ""
    history_hours: int = DEFAULT_HISTORY_HOURS
    replay_limit: int = DEFAULT_REPLAY_LIMIT
    #: Where the publish function puts the events it refuses (an SQS queue URL).
    publish_dead_letter_queue_url: str = ""
    #: The environment as it was read, for the application's own settings.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        required(env, "CONNECTIONS_TABLE")
        settings = cls(
            connections_table=env["CONNECTIONS_TABLE"],
            application=env.get("REALTIME_APP", "").strip() or DEFAULT_APPLICATION,
            presence_ttl_seconds=integer(env, "PRESENCE_TTL_SECONDS", 60),
            allowed_origins=tuple(o.rstrip("/") for o in split(env.get("ALLOWED_ORIGINS"))),
            websocket_endpoint=env.get("WEBSOCKET_ENDPOINT", "").rstrip("/"),
            jwt_secret=env.get("JWT_SECRET", ""),
            jwt_secret_arn=env.get("JWT_SECRET_ARN", ""),
            jwt_issuer=env.get("JWT_ISSUER", ""),
            jwt_audience=env.get("JWT_AUDIENCE", ""),
            jwt_audience_waived=_bool(env, "JWT_AUDIENCE_WAIVED"),
            jwt_token_use=_choice(env, "JWT_TOKEN_USE", TOKEN_USES),
            jwt_max_age_seconds=integer(env, "JWT_MAX_AGE_SECONDS", DEFAULT_JWT_MAX_AGE_SECONDS, minimum=60),
            jwt_secret_cache_seconds=integer(env, "JWT_SECRET_CACHE_SECONDS", DEFAULT_SECRET_CACHE_SECONDS,
                                          minimum=SECRET_REREAD_SECONDS),
            jwks_url=env.get("JWKS_URL", ""),
            jwks_cache_seconds=integer(env, "JWKS_CACHE_SECONDS", DEFAULT_JWKS_CACHE_SECONDS),
            jwks_min_refetch_seconds=integer(env, "JWKS_MIN_REFETCH_SECONDS", DEFAULT_JWKS_MIN_REFETCH_SECONDS),
            fanout_page_size=integer(env, "FANOUT_PAGE_SIZE", 1000),
            fanout_queue_url=env.get("FANOUT_QUEUE_URL", ""),
            announce_queue_url=env.get("ANNOUNCE_QUEUE_URL", ""),
            broadcast_interval_ms=integer(env, "BROADCAST_INTERVAL_MS", 1000, minimum=0),
            group_post_budget=integer(env, "GROUP_POST_BUDGET", 1000),
            list_names=integer(env, "LIST_NAMES", 3, minimum=0),
            roster_limit=integer(env, "ROSTER_LIMIT", 100),
            max_presence=integer(env, "MAX_PRESENCE", 10),
            max_subscriptions=integer(env, "MAX_SUBSCRIPTIONS", 100),
            frame_rate=rate(env, "FRAME_RATE", 10.0),
            frame_burst=integer(env, "FRAME_BURST", 20),
            max_connections_per_user=integer(env, "MAX_CONNECTIONS_PER_USER", 20),
            send_concurrency=integer(env, "SEND_CONCURRENCY", 128),
            sweep_budget_seconds=integer(env, "SWEEP_BUDGET_SECONDS", 40),
            sweep_page_size=integer(env, "SWEEP_PAGE_SIZE", 100),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            history_table=env.get("HISTORY_TABLE", ""),
            history_hours=integer(env, "HISTORY_HOURS", DEFAULT_HISTORY_HOURS),
            replay_limit=integer(env, "REPLAY_LIMIT", DEFAULT_REPLAY_LIMIT),
            publish_dead_letter_queue_url=env.get("PUBLISH_DEAD_LETTER_QUEUE_URL", ""),
            environment=MappingProxyType(dict(env)),
        )
        settings._check_auth()
        return settings

    def _check_auth(self) -> None:
        """Token settings that would weaken verification are refused at cold start."""
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(
                f"JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256 (RFC 7518 3.2)"
            )
        if self.jwt_issuer and not self.jwt_audience and not self.jwt_audience_waived:
            raise ConfigurationError(
                "JWT_ISSUER is set without JWT_AUDIENCE: any token the issuer signs for another client would be "
                "accepted; set JWT_AUDIENCE (the app client id), or JWT_AUDIENCE_WAIVED=true to accept that"
            )
        if self.jwks_min_refetch_seconds > self.jwks_cache_seconds:
            raise ConfigurationError("JWKS_MIN_REFETCH_SECONDS must not exceed JWKS_CACHE_SECONDS")
        if self.jwt_issuer and not (self.jwt_secret or self.jwt_secret_arn):
            _https("JWKS_URL" if self.jwks_url else "JWT_ISSUER", jwks_url_for(self.jwt_issuer, self.jwks_url))


def event_bus(env: Mapping[str, str] | None = None) -> str:
    """The bus `realtime.publish(...)` uses when not given one: `REALTIME_EVENT_BUS`, else
    EventBridge's `default` bus. (Publishers are any Lambda: they have none of the engine's settings.)"""
    env = os.environ if env is None else env
    return env.get(EVENT_BUS_VARIABLE, "").strip() or "default"
