"""A small asyncio HTTP/1.1 keep-alive client for one host (the management API).

Why not aiohttp (measured on this 2-core machine, ``python -m bench fanout``, figures in
``docs/performance.md``):

* Cold start: ``import aiohttp`` costs 155-200 ms in a fresh Python 3.12 process, more than
  half of ``import boto3`` (~300 ms); ``import realtime.sender`` (this module, ``asyncio``,
  ``ssl``) costs ~50 ms. aiohttp is not in the layer's runtime requirements either.
* CPU per message, which is what caps a Lambda's single core: with the *same* signer and
  worker pool, aiohttp's ``ClientSession`` spent ~150 us of client CPU per signed post and
  reached 2,600-7,900 posts/s (median ~4,800) against the stub with 10 ms latency, i.e. it
  misses or barely meets the 5,000/s target; ``realtime.sender`` on this client spent
  ~52 us per post and delivered ~9,500/s (median), as fast as unsigned aiohttp, the stub
  being the limit. aiohttp does much more than this API needs: cookie jar, redirects, URL
  objects, tracing hooks, a general response parser.

What it does: one pool of keep-alive connections (HTTP or HTTPS with certificate checks)
to a single origin, LIFO reuse, at most ``max_idle`` kept idle. Responses are parsed with
``Content-Length``, ``chunked`` or read-until-close framing. A reused connection that the
server closed while it was idle (API Gateway and load balancers do) fails with
``StaleConnection`` before any byte of the answer arrives; ``request`` then opens a fresh
connection and sends the request once more, transparently. Every request has a deadline
covering connect, send and the whole answer; on expiry the connection is aborted (never
reused) and ``TimeoutError`` is raised.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Optional

__all__ = ["HTTPClient", "HTTPError", "StaleConnection", "Response"]

Response = tuple  # (status: int, headers: dict[str, str] (lowercase names), body: bytes)

_ssl_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class HTTPError(Exception):
    """A network or protocol error while talking to the server."""


class StaleConnection(HTTPError):
    """The connection closed before any byte of the answer: safe to resend on a new one."""


class _Conn(asyncio.Protocol):
    __slots__ = (
        "loop", "transport", "buf", "waiter", "closed", "keep_alive", "_head_done",
        "_status", "_headers", "_length", "_chunked", "_body", "_got_data", "_no_body",
        "_timer",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.waiter: Optional[asyncio.Future] = None
        self.closed = False
        self.keep_alive = True
        self._timer: Optional[asyncio.TimerHandle] = None
        self._reset()

    def _reset(self) -> None:
        self._head_done = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._length: Optional[int] = None
        self._chunked = False
        self._body = bytearray()
        self._got_data = False
        self._no_body = False

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            # Bytes nobody asked for (e.g. a 408 before closing): the connection is unusable.
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        self._got_data = True
        self.buf += data
        try:
            self._parse()
        except Exception as exc:  # noqa: BLE001 - malformed answer
            self._fail(HTTPError(f"malformed HTTP response: {exc!r}"))
            self.closed = True
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            if self._head_done and self._length is None and not self._chunked:
                self._finish(bytes(self.buf))  # read-until-close framing
                self.buf.clear()
            else:
                self._fail(self._lost_error(None))
        return False  # close the transport

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            self._fail(self._lost_error(exc))

    def _lost_error(self, exc: Optional[Exception]) -> HTTPError:
        if not self._got_data:
            return StaleConnection(f"connection closed before the response ({exc!r})")
        return HTTPError(f"connection closed mid-response ({exc!r})")

    # -- parsing -------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buf
        if not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    raise ValueError("response head too large")
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            version, _, rest = lines[0].partition(" ")
            status = int(rest[:3])
            if 100 <= status < 200:  # interim answer: wait for the real one
                if buf:
                    self._parse()
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self._status = status
            self._headers = headers
            self._head_done = True
            conn = headers.get("connection", "").lower()
            if "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn):
                self.keep_alive = False
            if self._no_body or status in (204, 304):
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
            elif "content-length" in headers:
                self._length = int(headers["content-length"])
            else:
                self._length = None  # until the server closes
                self.keep_alive = False
                return
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None and len(buf) >= self._length:
            n = self._length
            body = bytes(buf[:n])
            del buf[:n]
            self._finish(body)

    def _parse_chunks(self) -> None:
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(bytes(buf[:eol]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # optional trailers end with an empty line
                if end < 0:
                    return
                del buf[: end + 4]
                self._finish(bytes(self._body))
                return
            if len(buf) < eol + 2 + size + 2:
                return
            self._body += buf[eol + 2: eol + 2 + size]
            del buf[: eol + 2 + size + 2]

    def _finish(self, body: bytes) -> None:
        w = self.waiter
        result = (self._status, self._headers, body)
        if self.buf:  # bytes past the answer: never reuse this connection
            self.keep_alive = False
        self._cancel_timer()
        if w is not None and not w.done():
            w.set_result(result)

    def _fail(self, exc: BaseException) -> None:
        self._cancel_timer()
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timeout(self) -> None:
        self._timer = None
        self.closed = True
        self._fail(TimeoutError("HTTP request timed out"))
        if self.transport is not None:
            self.transport.abort()

    # -- one exchange --------------------------------------------------------------------
    def usable(self) -> bool:
        t = self.transport
        return not self.closed and self.keep_alive and t is not None and not t.is_closing()

    async def roundtrip(self, data: bytes, no_body: bool, deadline: float) -> Response:
        self._reset()
        self._no_body = no_body
        self.buf.clear()
        w = self.loop.create_future()
        self.waiter = w
        self._timer = self.loop.call_at(deadline, self._on_timeout)
        try:
            self.transport.write(data)  # type: ignore[union-attr]
            return await w
        finally:
            self._cancel_timer()
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class HTTPClient:
    """Keep-alive HTTP/1.1 to one origin. Bound to the event loop that first uses it."""

    def __init__(
        self,
        scheme: str,
        hostname: str,
        port: int | None,
        host_header: str,
        *,
        max_idle: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        self.scheme = scheme
        self.hostname = hostname
        self.port = port or (443 if scheme == "https" else 80)
        self.host_header = host_header
        self.max_idle = max_idle
        self._ssl = (ssl_context or default_ssl_context()) if scheme == "https" else None
        self._idle: list[_Conn] = []
        self._open: set[_Conn] = set()
        self.connections_opened = 0
        self.stale_retries = 0

    async def _connect(self, deadline: float) -> _Conn:
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("HTTP request timed out before connecting")
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Conn(loop),
                self.hostname,
                self.port,
                ssl=self._ssl,
                server_hostname=self.hostname if self._ssl else None,
            ),
            remaining,
        )
        self.connections_opened += 1
        self._open.add(conn)
        return conn

    def _take_idle(self) -> _Conn | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.abort()
            self._open.discard(conn)
        return None

    async def request(self, method: str, target: str, headers: str, body: bytes, timeout: float) -> Response:
        """Send ``method target`` with the given extra header lines (``"Name: v\\r\\n"...``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if body or method == "POST" or method == "PUT":
            head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\n{headers}"
                    f"Content-Length: {len(body)}\r\n\r\n")
        else:
            head = f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\n{headers}\r\n"
        data = head.encode("latin-1") + body if body else head.encode("latin-1")
        no_body = method == "HEAD"
        conn = self._take_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect(deadline)
        try:
            try:
                resp = await conn.roundtrip(data, no_body, deadline)
            except StaleConnection:
                self._open.discard(conn)
                conn.abort()
                if not reused:
                    raise
                # The server closed this idle keep-alive connection: reopen and resend once.
                self.stale_retries += 1
                conn = await self._connect(deadline)
                resp = await conn.roundtrip(data, no_body, deadline)
        except BaseException:
            conn.abort()
            self._open.discard(conn)
            raise
        if conn.usable() and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)
        return resp

    async def aclose(self) -> None:
        conns = list(self._open) + self._idle
        self._idle.clear()
        self._open.clear()
        for conn in conns:
            conn.abort()
        await asyncio.sleep(0)
