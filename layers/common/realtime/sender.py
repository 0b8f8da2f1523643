"""The fan-out engine: post frames to many WebSocket connections through API Gateway's
management API (``POST {endpoint}/@connections/{id}``), fast and politely.

A sync API over asyncio (Lambda handlers are sync):

* one event loop and one keep-alive connection pool per *thread* (``threading.local``),
  kept across calls, so a warm Lambda container reuses its TCP/TLS connections; the local
  stack may call handlers from several worker threads at once, each gets its own loop.
  Called from a thread where an event loop is already *running* (async code), the work
  runs on a small helper thread instead of failing;
* the iterable is pulled on the sender's loop, so a generator that blocks (a DynamoDB page)
  pauses the sending meanwhile; keep pages modest (``FANOUT_PAGE_SIZE``);
* at most ``concurrency`` requests in flight: ``concurrency`` workers pull messages
  *lazily* from the iterable (a generator paging DynamoDB is fine), so memory is bounded
  by ``concurrency``, not by the audience;
* SigV4 with our own signer (``realtime.sigv4``: botocore's signer would take half the
  CPU budget), session token included; ``RefreshableCredentials`` are frozen once per
  batch and re-frozen every 30 s during a long batch, never kept past expiry;
* 410 -> ``gone`` (never retried: the caller removes the connection); 429, 5xx, timeouts
  and network errors are retried with full-jitter exponential backoff
  (``uniform(0, min(cap, base * 2**n))``) up to ``max_attempts``; other 4xx fail at once.
  A recipient's failure never fails the call: ``send_many`` reports it and logs one warning;
* HTTP via ``realtime.http`` (a small keep-alive client). Why not aiohttp: measured, see
  that module's docstring and ``docs/performance.md``: its import alone costs ~160 ms of
  cold start, and with the same signer it used ~3x the CPU per post (~150 vs ~52 us) and
  delivered about half the signed posts/s of ``realtime.http`` in the same run.

Measured (``python -m bench fanout``, stub with 10 ms latency in another process, 2 shared
cores, concurrency 128): ~9,500 signed posts/s, ~10x boto3 ``post_to_connection`` in a
32-thread pool, ~the unsigned aiohttp ceiling; peak RSS 66 MB for 100,000 recipients.

Nothing here logs credentials, signatures or message bodies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import random
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Optional
from urllib.parse import urlsplit

from .http import HTTPClient, HTTPError
from .sigv4 import Signer, canonical_path, encode_connection_id, host_header

if TYPE_CHECKING:  # pragma: no cover
    import botocore.credentials
    import botocore.session

__all__ = ["ConnectionCheck", "ConnectionGone", "SendError", "SendReport", "Sender"]

logger = logging.getLogger(__name__)

_OK, _GONE, _FAILED, _EXHAUSTED = 0, 1, 2, 3  # _EXHAUSTED: transient failures past the retries
_CREDENTIALS_MAX_AGE = 30.0  # seconds a frozen copy is used before asking again
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", re.I)


class ConnectionGone(Exception):
    """The connection is closed (API Gateway answered 410 GoneException)."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} is gone")
        self.connection_id = connection_id


class SendError(Exception):
    """A request still failed after the retries (429/5xx/timeout/network) or was refused (4xx)."""

    def __init__(self, connection_id: str, status: int | None, reason: str) -> None:
        super().__init__(f"request for connection {connection_id!r} failed: {reason}")
        self.connection_id = connection_id
        self.status = status  # the last HTTP status, None for timeouts/network errors
        self.reason = reason


@dataclass
class SendReport:
    sent: int = 0                                       # delivered (2xx)
    gone: list[str] = field(default_factory=list)       # answered 410: the caller removes them
    failed: list[str] = field(default_factory=list)     # still failing after retries, or 4xx
    retryable: list[str] = field(default_factory=list)  # those of `failed` a later attempt may reach (429/5xx/timeouts)


@dataclass
class ConnectionCheck:
    """What ``GET @connections/{id}`` said of each connection asked about."""

    live: list[str] = field(default_factory=list)     # 2xx: the socket is open
    gone: list[str] = field(default_factory=list)     # 410: closed, the caller removes it
    unknown: list[str] = field(default_factory=list)  # anything else, after the retries: keep it, ask later


class _Frozen:
    """Per-batch view of the credentials: frozen once, re-frozen every 30 s."""

    __slots__ = ("source", "value", "at")

    def __init__(self, source: Any) -> None:
        self.source = source
        self.value: Any = None
        self.at = 0.0

    def get(self) -> Any:
        now = time.monotonic()
        if self.value is None or now - self.at > _CREDENTIALS_MAX_AGE:
            src = self.source
            self.value = src.get_frozen_credentials() if hasattr(src, "get_frozen_credentials") else src
            self.at = now
        return self.value


class _ThreadState:
    __slots__ = ("loop", "client", "lock", "owner", "__weakref__")

    def __init__(self, client: HTTPClient) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = client
        self.lock = threading.Lock()
        self.owner = weakref.ref(threading.current_thread())

    def owner_alive(self) -> bool:
        t = self.owner()
        return t is not None and t.is_alive()

    def dispose(self) -> None:
        """Close the pool and the loop (only when no one can be running it)."""
        with self.lock:
            if not self.loop.is_closed():
                self.loop.run_until_complete(self.client.aclose())
                self.loop.close()


class Sender:
    """Posts to ``@connections`` (see the module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        endpoint: str,
        *,
        region: str,
        credentials: "botocore.credentials.Credentials | None",
        concurrency: int = 128,
        max_attempts: int = 4,
        timeout: float = 3.0,
        backoff_base: float = 0.05,
        backoff_cap: float = 1.0,
    ) -> None:
        if concurrency < 1 or max_attempts < 1 or timeout <= 0:
            raise ValueError("concurrency and max_attempts must be >= 1 and timeout > 0")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.credentials = credentials
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._scheme = parts.scheme
        self._hostname = parts.hostname
        self._port = parts.port
        self._host = host_header(parts.scheme, parts.hostname, parts.port)
        self._target_prefix = parts.path.rstrip("/") + "/@connections/"
        self._canon_prefix = canonical_path(self._target_prefix)
        self._signer = Signer(region) if credentials is not None else None
        self._local = threading.local()
        self._states: list[_ThreadState] = []
        self._states_lock = threading.Lock()
        self._helper: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    @classmethod
    def from_session(
        cls, endpoint: str, session: "botocore.session.Session | None" = None, **kw: Any
    ) -> "Sender":
        """Credentials and region from botocore's standard chain (env incl.
        ``AWS_SESSION_TOKEN``, config files, container/instance metadata). The region
        falls back to the one in an ``execute-api`` endpoint's host name."""
        import botocore.session  # imported here: the layer's handlers import it anyway

        session = session or botocore.session.get_session()
        region = kw.pop("region", None) or session.get_config_variable("region")
        if not region:
            m = _REGION_IN_HOST.search(endpoint)
            region = m.group(1) if m else None
        credentials = kw.pop("credentials", None) or session.get_credentials()
        if credentials is None and endpoint.startswith("https:"):
            raise ValueError("no AWS credentials found for a signed management endpoint")
        if credentials is not None and not region:
            raise ValueError("no AWS region configured and none in the endpoint")
        return cls(endpoint, region=region or "us-east-1", credentials=credentials, **kw)

    # -- public API ------------------------------------------------------------------------
    def send_many(self, messages: Iterable[tuple[str, bytes]]) -> SendReport:
        """Post each ``(connection_id, data)``; never raises for a recipient's failure."""
        return self._run(lambda st: self._send_many(st, messages))

    def send(self, connection_id: str, data: bytes) -> None:
        """Post one message. Raises ``ConnectionGone`` on 410, ``SendError`` on failure."""
        outcome, status, _, reason = self._run(lambda st: self._call(st, "POST", connection_id, data, None))
        self._raise_for(outcome, connection_id, status, reason)

    def get_connection(self, connection_id: str) -> dict | None:
        """``GET @connections/{id}``: the connection's info, or None when it is gone (410)."""
        outcome, status, body, reason = self._run(lambda st: self._call(st, "GET", connection_id, b"", None))
        if outcome == _GONE:
            return None
        self._raise_for(outcome, connection_id, status, reason)
        return json.loads(body) if body else {}

    def check_connections(self, connection_ids: Iterable[str]) -> ConnectionCheck:
        """``GET @connections/{id}`` for many ids at once, ``concurrency`` in flight, with the
        same pool, signer and retries as ``send_many``: 410 -> gone, 2xx -> live, anything
        else (other 4xx, or 429/5xx/timeouts still failing after the retries) -> unknown.
        Never raises for one connection's answer."""
        return self._run(lambda st: self._check_many(st, connection_ids))

    def delete_connection(self, connection_id: str) -> bool:
        """``DELETE @connections/{id}``: True when closed now, False when already gone."""
        outcome, status, _, reason = self._run(lambda st: self._call(st, "DELETE", connection_id, b"", None))
        if outcome == _GONE:
            return False
        self._raise_for(outcome, connection_id, status, reason)
        return True

    def close(self) -> None:
        """Close every pooled connection and event loop (safe to call more than once)."""
        with self._states_lock:
            states, self._states = self._states, []
            self._local = threading.local()
            helper, self._helper = self._helper, None
            self._closed = True

        def cleanup() -> None:
            for st in states:
                st.dispose()

        t = threading.Thread(target=cleanup, name="sender-close")
        t.start()
        t.join()
        if helper is not None:
            helper.shutdown(wait=True)

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sync over asyncio -------------------------------------------------------------------
    def _run(self, factory: Callable[[_ThreadState], Awaitable[Any]]) -> Any:
        if self._closed:
            raise RuntimeError("Sender is closed")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._run_here(factory)
        # An event loop runs in this thread (we were called from async code): run ours on
        # a helper thread, which has its own loop and pool.
        with self._states_lock:
            if self._helper is None:
                self._helper = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="sender")
            helper = self._helper
        return helper.submit(self._run_here, factory).result()

    def _state(self) -> _ThreadState:
        st = getattr(self._local, "state", None)
        if st is None or st.loop.is_closed():
            client = HTTPClient(self._scheme, self._hostname, self._port, self._host,
                                max_idle=self.concurrency)
            st = _ThreadState(client)
            with self._states_lock:
                # States of threads that have ended (a pool that replaced its workers):
                # close their sockets and loops instead of leaking them.
                dead = [old for old in self._states if not old.owner_alive()]
                self._states = [old for old in self._states if old.owner_alive()]
                self._states.append(st)
            for old in dead:
                old.dispose()
            self._local.state = st
        return st

    def _run_here(self, factory: Callable[[_ThreadState], Awaitable[Any]]) -> Any:
        st = self._state()
        with st.lock:
            return st.loop.run_until_complete(factory(st))

    # -- the work -----------------------------------------------------------------------------
    async def _send_many(self, st: _ThreadState, messages: Iterable[tuple[str, bytes]]) -> SendReport:
        await asyncio.sleep(0)  # let the loop notice idle connections the server closed
        report = SendReport()
        it = iter(messages)
        creds = _Frozen(self.credentials) if self.credentials is not None else None
        call = self._call
        exhausted = False
        source_error: list[BaseException] = []

        async def worker() -> None:
            nonlocal exhausted
            while not exhausted:
                try:
                    connection_id, data = next(it)
                except StopIteration:
                    exhausted = True
                    return
                except Exception as exc:  # the caller's iterable failed (e.g. DynamoDB): re-raised below
                    exhausted = True
                    source_error.append(exc)
                    return
                if isinstance(data, str):
                    data = data.encode()
                outcome, status, _, reason = await call(st, "POST", connection_id, data, creds)
                if outcome == _OK:
                    report.sent += 1
                elif outcome == _GONE:
                    report.gone.append(connection_id)
                else:
                    report.failed.append(connection_id)
                    if outcome == _EXHAUSTED:
                        report.retryable.append(connection_id)
                    logger.warning(
                        "post to connection failed: %s", reason,
                        extra={"recipient": connection_id, "status": status},
                    )

        # Start workers one by one as messages keep coming, up to `concurrency`.
        async with asyncio.TaskGroup() as tg:
            for _ in range(self.concurrency):
                if exhausted:
                    break
                tg.create_task(worker())
                await asyncio.sleep(0)
        if source_error:
            raise source_error[0]
        return report

    async def _check_many(self, st: _ThreadState, connection_ids: Iterable[str]) -> ConnectionCheck:
        await asyncio.sleep(0)  # as in _send_many: notice idle connections the server closed
        check = ConnectionCheck()
        ids = list(dict.fromkeys(connection_ids))  # each asked about once
        pending = iter(ids)
        creds = _Frozen(self.credentials) if self.credentials is not None else None

        async def worker() -> None:
            for connection_id in pending:  # shared iterator: each id is taken by one worker
                outcome, status, _, reason = await self._call(st, "GET", connection_id, b"", creds)
                if outcome == _OK:
                    check.live.append(connection_id)
                elif outcome == _GONE:
                    check.gone.append(connection_id)
                else:
                    check.unknown.append(connection_id)
                    logger.warning("connection check failed: %s", reason,
                                   extra={"recipient": connection_id, "status": status})

        async with asyncio.TaskGroup() as tg:
            for _ in range(min(self.concurrency, len(ids))):
                tg.create_task(worker())
        return check

    async def _call(
        self, st: _ThreadState, method: str, connection_id: str, body: bytes, creds: Optional[_Frozen]
    ) -> tuple[int, Optional[int], bytes, str]:
        """One logical request with retries: (outcome, last status, body, reason)."""
        enc = encode_connection_id(connection_id)
        target = self._target_prefix + enc
        if enc in (".", ".."):
            canon = canonical_path(target)
        else:
            canon = self._canon_prefix + enc.replace("%", "%25")
        if creds is None and self.credentials is not None:
            creds = _Frozen(self.credentials)
        client = st.client
        status: Optional[int] = None
        reason = ""
        for attempt in range(self.max_attempts):
            if creds is not None:
                c = creds.get()
                signed = self._signer.sign(  # type: ignore[union-attr]
                    method, self._host, target, body, c.access_key, c.secret_key, c.token,
                    canonical_uri=canon,
                )
                headers = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
            else:
                headers = ""
            try:
                status, _, resp_body = await client.request(method, target, headers, body, self.timeout)
            except (HTTPError, OSError, TimeoutError) as exc:
                status = None
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    return _OK, status, resp_body, ""
                if status == 410:
                    return _GONE, status, resp_body, "gone"
                reason = f"HTTP {status}"
                if status != 429 and status < 500:
                    return _FAILED, status, resp_body, reason  # not retryable
            if attempt + 1 < self.max_attempts:
                delay = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
                await asyncio.sleep(random.uniform(0, delay))
        return _EXHAUSTED, status, b"", f"{reason} after {self.max_attempts} attempts"

    @staticmethod
    def _raise_for(outcome: int, connection_id: str, status: Optional[int], reason: str) -> None:
        if outcome == _GONE:
            raise ConnectionGone(connection_id)
        if outcome in (_FAILED, _EXHAUSTED):
            raise SendError(connection_id, status, reason)
