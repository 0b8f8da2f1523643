"""Settings: the one place that reads the environment.

Handlers build a `Settings` once per cold start with `Settings.from_env()` and pass it
(or the clients built from it) down; nothing else in the library reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_PHASES = ("view", "edit", "review")
DEFAULT_DOCUMENT_FIELDS = ("slug", "title", "abstract", "image")
#: API Gateway closes every connection after 2 hours.
CONNECTION_LIFETIME_SECONDS = 2 * 60 * 60
#: Items outlive the connection a little so a late `$disconnect` still finds them.
CONNECTION_TTL_MARGIN_SECONDS = 10 * 60
MIN_HS256_SECRET_BYTES = 32


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; raised at cold start, never per request."""


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
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


@dataclass(frozen=True)
class Settings:
    """Everything the library is configured with, read once."""

    connections_table: str
    documents_table: str
    phases: tuple[str, ...] = DEFAULT_PHASES
    presence_ttl_seconds: int = 60
    allowed_origins: tuple[str, ...] = ()
    websocket_endpoint: str = ""
    jwt_secret: str = field(default="", repr=False)
    jwt_secret_arn: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwks_url: str = ""
    document_fields: tuple[str, ...] = DEFAULT_DOCUMENT_FIELDS
    fanout_page_size: int = 1000
    fanout_queue_url: str = ""
    send_concurrency: int = 128  # requests in flight per sender (docs/performance.md)
    region: str = "us-east-1"
    max_frame_bytes: int = 8192

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in ("CONNECTIONS_TABLE", "DOCUMENTS_TABLE") if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        phases = _split(env.get("PHASES")) or DEFAULT_PHASES
        for phase in phases:
            if not phase.isidentifier():
                raise ConfigurationError(f"PHASES entries must be simple names, got {phase!r}")
        settings = cls(
            connections_table=env["CONNECTIONS_TABLE"],
            documents_table=env["DOCUMENTS_TABLE"],
            phases=phases,
            presence_ttl_seconds=_int(env, "PRESENCE_TTL_SECONDS", 60),
            allowed_origins=tuple(o.rstrip("/") for o in _split(env.get("ALLOWED_ORIGINS"))),
            websocket_endpoint=env.get("WEBSOCKET_ENDPOINT", "").rstrip("/"),
            jwt_secret=env.get("JWT_SECRET", ""),
            jwt_secret_arn=env.get("JWT_SECRET_ARN", ""),
            jwt_issuer=env.get("JWT_ISSUER", ""),
            jwt_audience=env.get("JWT_AUDIENCE", ""),
            jwks_url=env.get("JWKS_URL", ""),
            document_fields=_split(env.get("DOCUMENT_FIELDS")) or DEFAULT_DOCUMENT_FIELDS,
            fanout_page_size=_int(env, "FANOUT_PAGE_SIZE", 1000),
            fanout_queue_url=env.get("FANOUT_QUEUE_URL", ""),
            send_concurrency=_int(env, "SEND_CONCURRENCY", 128),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
        if settings.jwt_secret and len(settings.jwt_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(
                f"JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256 (RFC 7518 3.2)"
            )
        return settings
