"""A local API Gateway WebSocket API (what `sam local` lacks), on aiohttp.

- WebSocket upgrade at `/` and `/{stage}` (the template's stage only: any other path
  answers 404, as API Gateway serves nothing outside its stage). `$connect` runs before the
  handshake completes; a non-2xx answer refuses it with that status, an exception with 500.
- Frames route on the template's route selection expression (`$request.body.action`),
  falling back to `$default`; text frames arrive as `body`, binary ones base64-encoded
  (`isBase64Encoded`). A handler exception is answered with API Gateway's frame
  `{"message": "Internal server error", "connectionId": ..., "requestId": ...}`; a frame no
  route takes (and no `$default`) with `{"message": "Forbidden", ...}`.
- Frames of one connection are handled in order, one at a time (on AWS they may overlap;
  ordered delivery makes local runs reproducible). Connections run concurrently.
- No permessage-deflate is negotiated, so the frame limit applies to
  what is on the wire.
- The limits: frames over `max_frame_bytes` and messages over `max_message_bytes` close
  the connection with 1009; no client frame for `idle_timeout` or a connection older than
  `max_connection` closes it with 1001 ("Going away"). Then `$disconnect` runs with
  `disconnectStatusCode` / `disconnectReason`, after the id is gone (posts answer 410).
- The management API on the same port: `POST|GET|DELETE /@connections/{id}` (also under
  `/{stage}/@connections/{id}`), 410 + `x-amzn-ErrorType: GoneException` for unknown ids.
  Like API Gateway's, it takes only SigV4-signed requests (`signatures`: the stack's local
  credentials); unsigned or wrongly signed ones get 403 `{"message": "Forbidden"}` before
  anything else is looked at, so they learn nothing about which connections exist.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from devtools.stack import events
from devtools.stack.config import Limits
from devtools.stack.functions import LocalFunctions, Outcome
from devtools.stack.signatures import SignatureCheck

log = logging.getLogger("devtools.stack")

_CLOSE_NAMES = {1000: "NORMAL_CLOSURE", 1001: "GOING_AWAY", 1002: "PROTOCOL_ERROR", 1003: "UNSUPPORTED_DATA",
                1005: "NO_STATUS_CODE", 1006: "ABNORMAL_CLOSURE", 1007: "INVALID_FRAME_PAYLOAD_DATA",
                1008: "POLICY_VIOLATION", 1009: "MESSAGE_TOO_BIG", 1011: "INTERNAL_ERROR"}
_ERROR_TYPES = {400: "BadRequestException", 403: "ForbiddenException", 410: "GoneException",
                413: "PayloadTooLargeException"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, message: str | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        content_type="application/json",
                        headers={"x-amzn-ErrorType": _ERROR_TYPES.get(status, "UnknownError")})


def select_route(expression: str | None, body: str | None, routes: Mapping[str, str]) -> str:
    """The route key for a frame: the expression's value when a route has it, else `$default`."""
    if body is not None and expression and expression.startswith("$request.body."):
        path = expression[len("$request.body."):].split(".")
        try:
            value: Any = json.loads(body)
            for part in path:
                value = value[part] if isinstance(value, dict) else None
        except (ValueError, TypeError, KeyError, RecursionError):  # deep JSON: not routable, $default
            value = None
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            key = str(value)
            if key in routes and not key.startswith("$"):
                return key
    return "$default"


class _FrameGuard:
    """Wraps aiohttp's WebSocket reader: notes client activity and closes with 1009 when
    one data frame is longer than API Gateway's frame limit (aiohttp only limits messages)."""

    def __init__(self, inner: Any, queue: Any, max_frame: int, on_data: Any) -> None:
        self._inner = inner
        self._queue = queue
        self._max = max_frame
        self._on_data = on_data
        self._header = bytearray()
        self._skip = 0
        self._failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def feed_eof(self) -> Any:
        return self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._on_data()
        if self._failed:
            return True, b""
        too_big = self._scan(bytes(data)) if self._max else None
        if too_big is not None:
            self._failed = True
            self._queue.set_exception(WebSocketError(
                WSCloseCode.MESSAGE_TOO_BIG, f"Frame size {too_big} exceeds limit {self._max}"))
            return True, b""
        return self._inner.feed_data(data)

    def _scan(self, data: bytes) -> int | None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                continue
            self._header.append(data[pos])
            pos += 1
            header = self._header
            if len(header) < 2:
                continue
            short = header[1] & 0x7F
            need = 2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if header[1] & 0x80 else 0)
            if len(header) < need:
                continue
            if short == 126:
                length = int.from_bytes(header[2:4], "big")
            elif short == 127:
                length = int.from_bytes(header[2:10], "big")
            else:
                length = short
            opcode = header[0] & 0x0F
            self._header = bytearray()
            if opcode in (0x0, 0x1, 0x2) and length > self._max:
                return length
            self._skip = length
        return None


@dataclass
class Connection:
    connection_id: str
    ws: web.WebSocketResponse
    stage: str
    source_ip: str
    user_agent: str
    connected_at_ms: int
    opened: float = field(default_factory=time.monotonic)
    last_client_activity: float = field(default_factory=time.monotonic)
    last_active_wall: float = field(default_factory=time.time)
    server_close: tuple[int, str] | None = None
    messages_in: int = 0
    messages_out: int = 0


class Gateway:
    """The WebSocket endpoint and its management API (one aiohttp application)."""

    def __init__(self, functions: LocalFunctions, *, routes: Mapping[str, str], route_selection: str | None,
                 stage: str, api_id: str, limits: Limits, domain_name: str,
                 signatures: SignatureCheck | None) -> None:
        """`signatures` None accepts unsigned `@connections` requests (tests of the gateway alone)."""
        self.functions = functions
        self.signatures = signatures
        self.routes = dict(routes)
        self.route_selection = route_selection
        self.stage = stage
        self.api_id = api_id
        self.limits = limits
        self.domain_name = domain_name
        self.connections: dict[str, Connection] = {}
        self.pending: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.app = web.Application(client_max_size=max(limits.max_message_bytes * 2, 1024 ** 2))
        self.app.router.add_route("*", "/@connections/{id}", self.manage)
        self.app.router.add_route("*", "/{stage}/@connections/{id}", self.manage)
        self.app.router.add_get("/", self.upgrade)
        self.app.router.add_get("/{stage}", self.upgrade)
        self._watchdog: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    def start_watchdog(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            # Read each round: tests may swap `limits` on a running gateway.
            await asyncio.sleep(max(0.05, min(1.0, self.limits.idle_timeout / 4, self.limits.max_connection / 4)))
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if conn.server_close is not None:
                    continue
                if now - conn.opened >= self.limits.max_connection:
                    await self._close(conn, 1001, "Going away", why="maximum connection duration")
                elif now - conn.last_client_activity >= self.limits.idle_timeout:
                    await self._close(conn, 1001, "Going away", why="idle timeout")

    async def _close(self, conn: Connection, code: int, message: str, why: str) -> None:
        conn.server_close = (code, why)
        log.info("[gateway %s] closing %d (%s)", conn.connection_id, code, why)
        await conn.ws.close(code=code, message=message.encode())

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Close every socket (1001) and let their `$disconnect` run, within `timeout`."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for conn in list(self.connections.values()):
            conn.server_close = (1001, "stack stopping")
            try:
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"Going away"), 1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    # ---------------------------------------------------------------- WebSocket

    def _event_common(self, conn: Connection) -> dict[str, Any]:
        return {"connection_id": conn.connection_id, "connected_at": conn.connected_at_ms,
                "domain_name": self.domain_name, "stage": conn.stage, "api_id": self.api_id,
                "source_ip": conn.source_ip}

    def _stage_of(self, request: web.Request) -> str | None:
        """The stage a request addressed (`/` is the stage too); None for any other path."""
        stage = request.match_info.get("stage")
        if stage is None:
            return self.stage
        return stage if stage == self.stage else None

    async def upgrade(self, request: web.Request) -> web.StreamResponse:
        stage = self._stage_of(request)
        if stage is None:
            return _error(404, "Not Found")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=426, text="Upgrade Required: connect with a WebSocket client\n")
        if self._closing:
            return web.Response(status=503)
        connection_id = events.new_connection_id()
        connected_at = events.now_ms()
        source_ip = request.remote or "127.0.0.1"
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name, []).append(value)
        headers.setdefault("X-Forwarded-For", [source_ip])
        headers.setdefault("X-Forwarded-Port", [str(request.url.port or "")])
        headers.setdefault("X-Forwarded-Proto", ["https" if request.secure else "http"])
        query: dict[str, list[str]] = {}
        for name, value in request.query.items():
            query.setdefault(name, []).append(value)
        accept_headers: dict[str, str] = {}
        route = "$connect"
        self.pending.add(connection_id)
        try:
            if "$connect" in self.routes:
                event = events.connect_event(connection_id=connection_id, connected_at=connected_at,
                                             domain_name=self.domain_name, stage=stage, api_id=self.api_id,
                                             source_ip=source_ip, headers=headers, query=query)
                outcome = await self.functions.invoke(self.routes[route], event)
                status = self._status(outcome)
                self._log(outcome, route, connection_id, status)
                if not 200 <= status < 300:
                    return web.Response(status=status, text=_status_text(status))
                if outcome.ok and isinstance(outcome.result, dict):
                    accept_headers = {str(k): str(v) for k, v in (outcome.result.get("headers") or {}).items()}
            protocols = ()
            for name in list(accept_headers):
                if name.lower() == "sec-websocket-protocol":
                    protocols = (accept_headers.pop(name),)
            ws = web.WebSocketResponse(protocols=protocols, autoping=True, heartbeat=None, compress=False,
                                       max_msg_size=self.limits.max_message_bytes + 1)
            for name, value in accept_headers.items():
                ws.headers[name] = value
            conn = Connection(connection_id, ws, stage, source_ip, request.headers.get("User-Agent", ""),
                              connected_at)
            await ws.prepare(request)
        finally:
            self.pending.discard(connection_id)
        self._guard(request, conn)
        self.connections[connection_id] = conn
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(conn)
        finally:
            self.connections.pop(connection_id, None)
            await self._disconnect(conn)
            if task is not None:
                self._tasks.discard(task)
        return ws

    def _guard(self, request: web.Request, conn: Connection) -> None:
        protocol = request.protocol
        inner = getattr(protocol, "_payload_parser", None)
        queue = getattr(conn.ws, "_reader", None)
        if inner is None or queue is None or not hasattr(queue, "set_exception"):
            log.warning("aiohttp internals changed: the %d-byte frame limit is not enforced",
                        self.limits.max_frame_bytes)
            return

        def touched() -> None:
            conn.last_client_activity = time.monotonic()
            conn.last_active_wall = time.time()

        protocol._payload_parser = _FrameGuard(inner, queue, self.limits.max_frame_bytes, touched)

    async def _serve(self, conn: Connection) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                body, is_base64 = msg.data, False
            elif msg.type == WSMsgType.BINARY:
                body, is_base64 = base64.b64encode(msg.data).decode(), True
            elif msg.type == WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                conn.server_close = (msg.data.code, str(msg.data))
                log.info("[gateway %s] closed %d: %s", conn.connection_id, msg.data.code, msg.data)
                return
            else:
                return
            conn.messages_in += 1
            route = select_route(self.route_selection, None if is_base64 else body, self.routes)
            if route not in self.routes:
                await self._api_error(conn, "Forbidden", events.new_request_id())
                continue
            event = events.message_event(route_key=route, body=body, is_base64=is_base64,
                                         **self._event_common(conn))
            outcome = await self.functions.invoke(self.routes[route], event)
            self._log(outcome, route, conn.connection_id, self._status(outcome))
            if not outcome.ok:
                await self._api_error(conn, "Internal server error", event["requestContext"]["requestId"])

    async def _api_error(self, conn: Connection, message: str, request_id: str) -> None:
        frame = json.dumps({"message": message, "connectionId": conn.connection_id, "requestId": request_id})
        if not conn.ws.closed:
            try:
                await conn.ws.send_str(frame)
            except ConnectionError:
                pass

    async def _disconnect(self, conn: Connection) -> None:
        ws = conn.ws
        if conn.server_close is not None:
            code = conn.server_close[0]
            reason = "Going away" if code == 1001 else conn.server_close[1]
        else:
            code = ws.close_code if ws.close_code is not None else 1006
            name = _CLOSE_NAMES.get(code, "UNKNOWN")
            reason = f"Client-side close frame status code '{code}' ({name})"
            if code == 1006:
                reason = "Connection closed abnormally"
        if not ws.closed:
            try:
                await ws.close()
            except Exception:  # noqa: BLE001
                pass
        if "$disconnect" not in self.routes:
            return
        event = events.disconnect_event(status_code=code, reason=reason, **self._event_common(conn))
        outcome = await self.functions.invoke(self.routes["$disconnect"], event)
        self._log(outcome, "$disconnect", conn.connection_id, self._status(outcome), extra=f"close {code}")

    # ---------------------------------------------------------------- management API

    async def manage(self, request: web.Request) -> web.StreamResponse:
        if self._stage_of(request) is None:
            return _error(404, "Not Found")
        data = await request.read()
        if self.signatures is not None and not self.signatures.valid(
                method=request.method, raw_path=request.raw_path, headers=request.headers, body=data):
            return _error(403, "Forbidden")
        connection_id = request.match_info["id"]
        conn = self.connections.get(connection_id)
        if conn is None or conn.ws.closed or conn.server_close is not None:
            return _error(410)
        if request.method == "POST":
            if len(data) > self.limits.max_message_bytes:
                return _error(413, "Message too long")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            try:
                if text is not None:
                    await conn.ws.send_str(text)
                else:
                    await conn.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return _error(410)
            conn.messages_out += 1
            return web.Response(status=200)
        if request.method == "GET":
            body = {"connectedAt": _iso(conn.connected_at_ms / 1000),
                    "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
                    "lastActiveAt": _iso(conn.last_active_wall)}
            return web.json_response(body)
        if request.method == "DELETE":
            conn.server_close = (1000, "deleted through @connections")
            asyncio.get_running_loop().create_task(conn.ws.close(code=1000, message=b""))
            return web.Response(status=204)
        return _error(403, "Forbidden")

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _status(outcome: Outcome) -> int:
        if not outcome.ok:
            return 500
        result = outcome.result
        if isinstance(result, dict) and "statusCode" in result:
            try:
                return int(result["statusCode"])
            except (TypeError, ValueError):
                return 500
        return 200

    @staticmethod
    def _log(outcome: Outcome, route: str, connection_id: str, status: int, extra: str = "") -> None:
        tag = f"[{outcome.function} {route} {connection_id}]"
        if outcome.ok:
            log.info("%s %d in %.0f ms%s", tag, status, outcome.duration_ms, f" ({extra})" if extra else "")
        else:
            log.error("%s failed in %.0f ms: %s: %s", tag, outcome.duration_ms,
                      type(outcome.error).__name__, outcome.error, exc_info=outcome.error)


def _status_text(status: int) -> str:
    return {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}.get(status, "")
