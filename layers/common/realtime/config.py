"""Settings: the one place that reads the environment.

Handlers build a `Settings` once per cold start with `Settings.from_env()` and pass it
(or the clients built from it) down; nothing else in the library reads `os.environ`.
The application's own settings (its tables, its fields) are parsed by the application
from `Settings.environment`, the same snapshot, so it never reads the environment either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: API Gateway closes every connection after 2 hours.
CONNECTION_LIFETIME_SECONDS = 2 * 60 * 60
#: Items outlive the connection a little so a late `$disconnect` still finds them.
CONNECTION_TTL_MARGIN_SECONDS = 10 * 60
MIN_HS256_SECRET_BYTES = 32
#: The reference application (layers/common/monitor) unless `REALTIME_APP` names another.
DEFAULT_APPLICATION = "monitor"


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; raised at cold start, never per request."""


def split(value: str | None) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def integer(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    """An integer setting, or `ConfigurationError` naming the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
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
    jwks_url: str = ""
    fanout_page_size: int = 1000
    fanout_queue_url: str = ""
    send_concurrency: int = 128  # requests in flight per sender (docs/performance.md)
    region: str = "us-east-1"
    max_frame_bytes: int = 8192
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
            jwks_url=env.get("JWKS_URL", ""),
            fanout_page_size=integer(env, "FANOUT_PAGE_SIZE", 1000),
            fanout_queue_url=env.get("FANOUT_QUEUE_URL", ""),
            send_concurrency=integer(env, "SEND_CONCURRENCY", 128),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            environment=MappingProxyType(dict(env)),
        )
        if settings.jwt_secret and len(settings.jwt_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(
                f"JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256 (RFC 7518 3.2)"
            )
        return settings
