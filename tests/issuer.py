"""An RS256 token issuer for tests: key pairs, tokens, and a real local HTTP server serving
its key set (JWKS), which a test can change, break, slow down or make hang."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
CLIENT_ID = "client-1"
_KEYS: dict[tuple[str, int], rsa.RSAPrivateKey] = {}  # RSA key generation is slow: once per session


class FakeClock:
    """Seconds on the wall clock plus what the test moved it by; never sleeps."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Issuer:
    """Key pairs by `kid`, and the key set the server publishes (`published`)."""

    def __init__(self) -> None:
        self.private: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.body: bytes | None = None  # set: served instead of the key set
        self.status = 200
        self.headers: dict[str, str] = {}
        self.hang = False
        self.drip = False
        self.requests = 0
        self.released = threading.Event()  # set at shutdown: ends hanging and dripping answers
        self.url = ""

    def add_key(self, kid: str, *, bits: int = 2048) -> None:
        if (kid, bits) not in _KEYS:
            _KEYS[kid, bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        self.private[kid] = _KEYS[kid, bits]

    def publish(self, *kids: str) -> None:
        self.published = list(kids)

    def jwk(self, kid: str, **extra: Any) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private[kid].public_key()))
        return {**public, "kid": kid, "use": "sig", "alg": "RS256", **extra}

    def key_set(self) -> dict[str, Any]:
        return {"keys": [self.jwk(kid) for kid in self.published]}

    def token(self, kid: str = "k1", *, sign_with: str | None = None, ttl: int = 3600, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": "alice", "iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + ttl, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private[sign_with or kid], algorithm="RS256", headers={"kid": kid})


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            issuer.requests += 1
            if issuer.hang:
                issuer.released.wait()
                return
            body = issuer.body if issuer.body is not None else json.dumps(issuer.key_set()).encode()
            self.send_response(issuer.status)
            for name, value in issuer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + (10_000 if issuer.drip else 0)))
            self.end_headers()
            if issuer.drip:  # one byte at a time, each well within a per-read timeout
                try:
                    for byte in body:
                        if issuer.released.wait(0.02):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client gave up, as it should
                    pass
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    return Handler


@contextmanager
def serving(issuer: Issuer) -> Iterator[Issuer]:
    """Serve `issuer`'s key set at `issuer.url` (http://127.0.0.1:<port>/jwks.json)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield issuer
    finally:
        issuer.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    """Keys k1 and k2; the server publishes k1."""
    keys = Issuer()
    keys.add_key("k1")
    keys.add_key("k2")
    keys.publish("k1")
    with serving(keys) as running:
        yield running


@pytest.fixture
def key_clock() -> FakeClock:
    return FakeClock()


def verifier_for(issuer: Issuer, clock: FakeClock, **kw: Any) -> Any:
    """A verifier for `issuer`'s RS256 tokens, as `$connect` builds it from settings."""
    from realtime.auth import TokenVerifier

    return TokenVerifier(issuer=ISSUER, audience=CLIENT_ID, jwks_url=issuer.url, clock=clock, **kw)


def use_issuer(gateway: Any, monkeypatch: pytest.MonkeyPatch, issuer: Issuer, clock: FakeClock,
               **env: str) -> None:
    """Configure the gateway's handlers for `issuer` (RS256) with the test's clock."""
    from functools import lru_cache

    from realtime import runtime
    from realtime.auth import TokenVerifier

    monkeypatch.delenv("JWT_SECRET", raising=False)
    for name, value in {"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": CLIENT_ID, "JWKS_URL": issuer.url, **env}.items():
        monkeypatch.setenv(name, value)
    gateway.reset_runtime()
    monkeypatch.setattr(runtime, "verifier",
                        lru_cache(maxsize=1)(lambda: TokenVerifier.from_settings(runtime.settings(), clock=clock)))
