"""Where token keys come from: the issuer's JWKS (RS256) or a Secrets Manager secret (HS256).

Both are held for a bounded time, so a key the issuer drops (or a secret rotated away)
stops verifying within that time, and both are fetched again early when a token needs a
key that is not held (a new `kid`, a rotated secret), at most once per interval, so that
tokens naming unknown keys are no lever against the issuer. Any failure to get keys is
`KeysUnavailable`: the verifier refuses the token (fail closed), never a 500.

Imported only by `realtime.auth` when it verifies: PyJWT costs cold start (docs/performance.md).
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import jwt
from botocore.exceptions import BotoCoreError, ClientError

from realtime.config import (
    DEFAULT_JWKS_CACHE_SECONDS,
    DEFAULT_JWKS_MIN_REFETCH_SECONDS,
    DEFAULT_SECRET_CACHE_SECONDS,
    JWKS_TIMEOUT_SECONDS,
    MIN_HS256_SECRET_BYTES,
    SECRET_REREAD_SECONDS,
    ConfigurationError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Clock = Callable[[], float]

#: A key set is a few keys (Cognito publishes two); anything larger is not one.
MAX_JWKS_BYTES = 256 * 1024
SECRET_STAGES = ("AWSCURRENT", "AWSPREVIOUS")


class KeysUnavailable(Exception):
    """No usable keys could be had right now (fetch failed, malformed, or held back)."""


class Held(Generic[T]):
    """A value fetched on demand and trusted for at most `lifespan` seconds.

    `find` looks something up in it and, when that finds nothing, fetches it again and looks
    once more. After such a refetch, or a failed fetch, nothing is fetched for `min_interval`
    seconds, so a flood of unknown keys, or a key endpoint that is down, costs one fetch per
    interval rather than one per handshake. A failed fetch keeps a fresh value but never
    extends a stale one: past `lifespan`, no value means every token is refused.
    """

    def __init__(self, fetch: Callable[[], T], *, lifespan: float, min_interval: float, clock: Clock) -> None:
        self._fetch = fetch
        self._lifespan = lifespan
        self._min_interval = min_interval
        self._clock = clock
        self._value: T | None = None
        self._fetched_at = 0.0
        self._held_back_until = float("-inf")
        self._lock = threading.Lock()

    def find(self, look: Callable[[T], R | None]) -> R | None:
        """`look(value)`, or `look` again in a refetched value when it found nothing."""
        with self._lock:
            now = self._clock()
            value = self._fresh(now)
            fetched = value is None
            if value is None:
                value = self._fetch_now(now, forced=False)
        found = look(value)
        if found is not None or fetched:
            return found
        with self._lock:
            now = self._clock()
            if now < self._held_back_until:
                return None  # the value just looked in is the freshest there will be for now
            value = self._fetch_now(now, forced=True)
        return look(value)

    def get(self) -> T:
        """The held value, fetched first when none is fresh."""
        return self.find(lambda value: value)  # type: ignore[return-value]  # a value is never None

    def _fresh(self, now: float) -> T | None:
        return self._value if self._value is not None and now - self._fetched_at < self._lifespan else None

    def _fetch_now(self, now: float, *, forced: bool) -> T:
        if now < self._held_back_until:
            value = self._fresh(now)
            if value is None:
                raise KeysUnavailable("keys expired and the last fetch failed; not fetching again yet")
            return value
        try:
            value = self._fetch()
        except KeysUnavailable:
            self._held_back_until = now + self._min_interval
            raise
        self._value, self._fetched_at = value, now
        if forced:
            self._held_back_until = now + self._min_interval
        return value


class JwksKeys(jwt.PyJWKClient):
    """PyJWT's JWKS client with a bounded key lifetime, a rate-limited refetch and a strict fetch.

    PyJWKClient alone cannot meet the rules (PyJWT 2.15): its per-`kid` cache
    (`cache_keys`) never expires, so a revoked key stays trusted; its caches and cooldown
    read `time.monotonic` (no clock to inject); `fetch_data` bounds each socket operation,
    not the fetch, reads a body of any size, and lets a non-JSON body escape as
    `ValueError`. So both of its caches are off, `Held` keeps the key set, and `fetch_data`
    is replaced; key parsing, signing-key filtering and `kid` matching stay PyJWT's.
    """

    def __init__(self, uri: str, *, lifespan: float = DEFAULT_JWKS_CACHE_SECONDS,
                 min_refetch: float = DEFAULT_JWKS_MIN_REFETCH_SECONDS, timeout: float = JWKS_TIMEOUT_SECONDS,
                 clock: Clock = time.time) -> None:
        super().__init__(uri, cache_keys=False, cache_jwk_set=False, timeout=timeout)
        self._held: Held[jwt.PyJWKSet] = Held(self._fetch_key_set, lifespan=lifespan,
                                               min_interval=min_refetch, clock=clock)

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The issuer's current key `kid`; an unknown `kid` refetches the set (rate-limited).

        Raises `KeysUnavailable` when no key set can be had, `PyJWKClientError` when the set
        has no key `kid`."""
        key = self._held.find(lambda key_set: self.match_kid(self._signing_keys(key_set), kid))
        if key is None:
            raise jwt.PyJWKClientError("no key in the issuer's key set matches the token's kid")
        return key

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        """PyJWKClient's name for `signing_key` (its `get_signing_key_from_jwt` calls it)."""
        return self.signing_key(kid)

    @staticmethod
    def _signing_keys(key_set: jwt.PyJWKSet) -> list[jwt.PyJWK]:
        return [k for k in key_set.keys if k.public_key_use in ("sig", None) and k.key_id]

    def _fetch_key_set(self) -> jwt.PyJWKSet:
        try:
            return jwt.PyJWKSet.from_dict(self.fetch_data())
        except Exception as exc:  # noqa: BLE001 - whatever the endpoint sent, the handshake is refused, not crashed
            logger.warning("JWKS fetch failed; tokens are refused until a fetch succeeds",
                           extra={"jwks_url": self.uri, "error": type(exc).__name__})
            raise KeysUnavailable(f"JWKS fetch failed: {type(exc).__name__}") from None

    def fetch_data(self) -> Any:
        """GET the key set within `timeout` seconds in all, at most `MAX_JWKS_BYTES`, no redirects."""
        return self._as_jwk_set_payload(json.loads(_get(self.uri, self.timeout, MAX_JWKS_BYTES)))


def _get(url: str, timeout: float, limit: int) -> bytes:
    """The body of a 200 answer to GET `url`, read within one deadline (not one per read)."""
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete answer within {timeout} s")
        return left

    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "", parts.port, timeout=remaining())
    response: http.client.HTTPResponse | None = None
    try:
        connection.connect()
        sock: socket.socket = connection.sock  # kept: http.client drops it once the answer says close
        connection.request("GET", target, headers={"Accept": "application/json"})
        sock.settimeout(remaining())
        response = connection.getresponse()
        if response.status != 200:  # redirects included: keys come from the configured URL only
            raise http.client.HTTPException(f"status {response.status}")
        body = bytearray()
        while True:
            sock.settimeout(remaining())
            chunk = response.read1(65536)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > limit:
                raise ValueError(f"key set larger than {limit} bytes")
    finally:
        if response is not None:
            response.close()
        connection.close()


class SecretSource(Protocol):
    """HS256 secrets: `find` looks in those held, and once more in a re-read when that fails."""

    def find(self, look: Callable[[tuple[str, ...]], R | None]) -> R | None: ...


class LiteralSecret:
    """`JWT_SECRET`: one secret, never re-read."""

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(f"the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
        self._secrets = (secret,)

    def find(self, look: Callable[[tuple[str, ...]], R | None]) -> R | None:
        return look(self._secrets)


class SecretsManagerSecret:
    """`JWT_SECRET_ARN`: its AWSCURRENT and AWSPREVIOUS values, so tokens signed before and
    after a rotation both verify. Read at cold start, again when a token fails with the held
    values (at most once per `SECRET_REREAD_SECONDS`), and held at most `lifespan` seconds,
    so a secret moved out of both stages stops verifying within that time."""

    def __init__(self, client: Any, arn: str, *, lifespan: float = DEFAULT_SECRET_CACHE_SECONDS,
                 clock: Clock = time.time) -> None:
        self._client = client
        self._arn = arn
        self._held: Held[tuple[str, ...]] = Held(self._read, lifespan=lifespan,
                                                 min_interval=SECRET_REREAD_SECONDS, clock=clock)
        self._cold_start = False

    def load(self) -> None:
        """The cold-start read: a short or non-text AWSCURRENT is a configuration error; an
        unreadable secret is logged, and tokens are refused until a read succeeds."""
        self._cold_start = True
        try:
            self._held.get()
        except KeysUnavailable:
            pass  # logged by _read; verify() refuses tokens until a re-read succeeds
        finally:
            self._cold_start = False

    def find(self, look: Callable[[tuple[str, ...]], R | None]) -> R | None:
        return self._held.find(look)

    def _read(self) -> tuple[str, ...]:
        try:
            values = [self._stage(stage) for stage in SECRET_STAGES]
        except (ClientError, BotoCoreError) as exc:
            logger.error("the token secret could not be read; tokens are refused until it can",
                           extra={"error": type(exc).__name__})
            raise KeysUnavailable(f"secret unreadable: {type(exc).__name__}") from None
        usable = []
        for stage, value in zip(SECRET_STAGES, values, strict=True):
            short = value is not None and len(value.encode()) < MIN_HS256_SECRET_BYTES
            if self._cold_start and stage == "AWSCURRENT" and (value is None or short):
                raise ConfigurationError(f"the secret in JWT_SECRET_ARN must be a string of at least "
                                         f"{MIN_HS256_SECRET_BYTES} bytes (RFC 7518 3.2)")
            if value is None:
                continue
            if short:
                logger.error("a token secret version is shorter than %d bytes and is ignored",
                             MIN_HS256_SECRET_BYTES, extra={"stage": stage})
                continue
            usable.append(value)
        if not usable:
            raise KeysUnavailable("no usable secret version")
        return tuple(usable)

    def _stage(self, stage: str) -> str | None:
        """The stage's SecretString; None when that stage does not exist (no rotation yet)."""
        try:
            answer = self._client.get_secret_value(SecretId=self._arn, VersionStage=stage)
        except ClientError as exc:
            if stage != "AWSCURRENT" and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        value = answer.get("SecretString")
        return value if isinstance(value, str) else None
