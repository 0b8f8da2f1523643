"""Settings of the local stack, from the environment (contract: "Local stack" notes).

| variable | default | what |
| --- | --- | --- |
| `DEV_HOST` | 127.0.0.1 | bind address of every server (loopback by default) |
| `DEV_WS_PORT` | 3001 | WebSocket endpoint and its `@connections` management API |
| `DEV_WEB_PORT` | 8000 | demo page and `GET /dev/token` |
| `DEV_AWS_PORT` | 5000 | moto: DynamoDB, DynamoDB Streams, SQS |
| `DEV_ALLOW_REMOTE` | 0 | 1 to allow a `DEV_HOST` beyond loopback (prints what that exposes); refused otherwise |
| `DEV_ALLOW_REMOTE_TOKENS` | 0 | 1 to let `/dev/token` mint with an environment `JWT_SECRET` while bound beyond loopback |
| `JWT_SECRET` | kept in `DEV_STATE_DIR` | HS256 secret (at least 32 bytes); when unset, one generated once and reused |
| `DEV_STATE_DIR` | `.dev` | where the development secret and the tables survive restarts (`off`: nothing kept) |
| `DEV_FRESH` | 0 | 1 to start with fresh tables (sample documents again) instead of the saved ones |
| `DEV_STAGE` | template default | the stage in `ws://host:port/{stage}` (the bare `/` works too; any other path: 404) |
| `DEV_SWEEP_SECONDS` | the template's schedule | interval of the scheduled sweep |
| `DEV_IDLE_TIMEOUT` / `DEV_MAX_CONNECTION` | 600 / 7200 | API Gateway's idle timeout and maximum connection duration (s) |
| `DEV_MAX_FRAME` / `DEV_MAX_MESSAGE` | 32768 / 131072 | API Gateway's frame and message limits (bytes) |
| `DEV_SEED` | 1 | seed sample documents on a first (or fresh) start (0 to start empty) |
| `DEV_NAME` | realtime | prefix of the local table and queue names |

Template parameters can be overridden through their function environment variable names
(`PHASES`, `PRESENCE_TTL_SECONDS`, `ALLOWED_ORIGINS`, `DOCUMENT_FIELDS`, `FANOUT_PAGE_SIZE`,
`POWERTOOLS_LOG_LEVEL`, and the limits `LIST_NAMES`, `ROSTER_LIMIT`,
`MAX_CONNECTIONS_PER_USER`, `FRAME_RATE`, `FRAME_BURST`, `REPLAY_LIMIT`, so a handful of pages can
reach them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.template import ROOT

DEFAULT_HOST = "127.0.0.1"
DEFAULT_WS_PORT = 3001
DEFAULT_WEB_PORT = 8000
DEFAULT_AWS_PORT = 5000
DEFAULT_STATE_DIR = ROOT / ".dev"

#: Environment variables of the functions a developer may override from the shell.
OVERRIDABLE_FUNCTION_ENV = (
    "PHASES", "PRESENCE_TTL_SECONDS", "ALLOWED_ORIGINS", "DOCUMENT_FIELDS", "FANOUT_PAGE_SIZE",
    "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED", "SEND_CONCURRENCY",
    "LIST_NAMES", "ROSTER_LIMIT", "MAX_CONNECTIONS_PER_USER", "FRAME_RATE", "FRAME_BURST", "REPLAY_LIMIT",
)


@dataclass(frozen=True)
class Limits:
    """API Gateway WebSocket quotas, enforced by the local gateway (configurable for tests)."""

    max_frame_bytes: int = 32 * 1024
    max_message_bytes: int = 128 * 1024
    idle_timeout: float = 10 * 60.0
    max_connection: float = 2 * 60 * 60.0


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    return raw not in ("0", "false", "no", "off")


def _state_dir(env: Mapping[str, str]) -> Path | None:
    raw = (env.get("DEV_STATE_DIR") or "").strip()
    if raw.lower() in ("off", "none", "0"):
        return None
    return Path(raw).expanduser() if raw else DEFAULT_STATE_DIR


def stack_kwargs_from_env(env: Mapping[str, str] | None = None) -> dict:
    """Keyword arguments of `Stack` read from the environment (what `make dev` uses)."""
    env = os.environ if env is None else env
    limits = Limits(
        max_frame_bytes=_int(env, "DEV_MAX_FRAME", Limits.max_frame_bytes),
        max_message_bytes=_int(env, "DEV_MAX_MESSAGE", Limits.max_message_bytes),
        idle_timeout=_float(env, "DEV_IDLE_TIMEOUT", Limits.idle_timeout),
        max_connection=_float(env, "DEV_MAX_CONNECTION", Limits.max_connection),
    )
    overrides = {k: env[k] for k in OVERRIDABLE_FUNCTION_ENV if env.get(k)}
    return {
        "host": env.get("DEV_HOST") or DEFAULT_HOST,
        "ws_port": _int(env, "DEV_WS_PORT", DEFAULT_WS_PORT),
        "web_port": _int(env, "DEV_WEB_PORT", DEFAULT_WEB_PORT),
        "aws_port": _int(env, "DEV_AWS_PORT", DEFAULT_AWS_PORT),
        "jwt_secret": env.get("JWT_SECRET") or None,
        "stage": env.get("DEV_STAGE") or None,
        "sweep_interval": _float(env, "DEV_SWEEP_SECONDS", None),
        "limits": limits,
        "seed": _flag(env, "DEV_SEED", default=True),
        "state_dir": _state_dir(env),
        "fresh": _flag(env, "DEV_FRESH"),
        "allow_remote": _flag(env, "DEV_ALLOW_REMOTE"),
        "allow_remote_tokens": _flag(env, "DEV_ALLOW_REMOTE_TOKENS"),
        "name": env.get("DEV_NAME") or "realtime",
        "env": overrides,
    }
