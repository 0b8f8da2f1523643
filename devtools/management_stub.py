"""A local stand-in of API Gateway's ``@connections`` management API, over real HTTP.

moto's ``apigatewaymanagementapi`` accepts every id and never answers 410, so it cannot
exercise cleanup, retries or timeouts. This stub can:

* ``POST /@connections/{id}``: record the body (200); ``GET``: ``{"connectedAt",
  "identity": {"sourceIp", "userAgent"}, "lastActiveAt"}`` (200); ``DELETE``: forget the
  connection (204). Any path prefix (the stage, ``/prod``) is accepted.
* Unknown ids answer 410 with ``x-amzn-ErrorType: GoneException`` and ``{"message": null}``,
  so boto3's client raises ``client.exceptions.GoneException``. 429 carries
  ``LimitExceededException``, 403 ``ForbiddenException``, 5xx ``InternalServerErrorException``.
* Per-id fault scripts: ``stub.script(id, 429, 429)`` answers 429 twice then behaves
  normally; ``stub.fail(id, 500)`` answers 500 forever; ``"hang"`` sleeps ``hang_seconds``
  before answering; ``"drop"`` closes the TCP connection without an answer.
* ``latency`` seconds added to every request (the benchmark uses 10 ms).
* Counters: requests in total and per (method, id), the highest number of requests in
  flight at once, distinct client connections seen, the headers of recent requests.
* ``drop_idle_connections()`` closes every keep-alive connection that has no request in
  flight, as a server does when its idle timeout fires.

Use it in a background thread (tests)::

    with ManagementStub(latency=0.01) as stub:
        stub.register("abc=")
        ... Sender(stub.endpoint, ...) ...
        assert stub.received("abc=") == [b"hello"]

or in a separate process (the benchmark, so that the stub and the client under measurement
do not share a GIL): ``StubProcess(latency=0.01, accept_all=True)`` runs
``python -m devtools.management_stub`` and reads counters over ``GET /_stub/stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import unquote

from aiohttp import web

__all__ = ["ManagementStub", "StubProcess"]

_ERROR_TYPES = {
    400: "BadRequestException",
    403: "ForbiddenException",
    404: "NotFoundException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
}
_MARKER = "/@connections/"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, message: str | None = None) -> web.Response:
    kind = _ERROR_TYPES.get(status, "InternalServerErrorException" if status >= 500 else "UnknownError")
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        headers={"x-amzn-ErrorType": kind, "Content-Type": "application/json"},
    )


class ManagementStub:
    """The ``@connections`` stand-in. Thread-safe accessors; the server runs on its own loop."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        accept_all: bool = False,
        gone_prefix: str | None = None,
        flaky_prefix: str | None = None,
        record_bodies: bool = True,
        hang_seconds: float = 10.0,
        keepalive_timeout: float = 75.0,
        stage: str = "",
    ) -> None:
        self.latency = latency
        self.host = host
        self.port = port
        self.accept_all = accept_all  # every id is live unless gone_prefix/marked gone
        self.gone_prefix = gone_prefix
        self.flaky_prefix = flaky_prefix  # first request of such an id answers 429
        self.record_bodies = record_bodies
        self.hang_seconds = hang_seconds
        self.keepalive_timeout = keepalive_timeout
        self.stage = stage.strip("/")
        self._lock = threading.Lock()
        self._live: dict[str, dict[str, Any]] = {}
        self._gone: set[str] = set()
        self._received: dict[str, list[bytes]] = collections.defaultdict(list)
        self._scripts: dict[str, collections.deque] = {}
        self._persistent: dict[str, Any] = {}
        self._flaked: set[str] = set()
        self._active_by_handler: collections.Counter = collections.Counter()
        self.reset_stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._server: web.Server | None = None

    # -- registry ------------------------------------------------------------------------
    def register(self, *connection_ids: str, source_ip: str = "203.0.113.7") -> None:
        now = time.time()
        with self._lock:
            for cid in connection_ids:
                self._gone.discard(cid)
                self._live[cid] = {"connectedAt": now, "lastActiveAt": now, "sourceIp": source_ip}

    def unregister(self, *connection_ids: str) -> None:
        """Mark ids as closed: they answer 410 from now on (also in ``accept_all`` mode)."""
        with self._lock:
            for cid in connection_ids:
                self._live.pop(cid, None)
                self._gone.add(cid)

    def is_live(self, connection_id: str) -> bool:
        with self._lock:
            return self._is_live(connection_id)

    def _is_live(self, cid: str) -> bool:
        if cid in self._live:
            return True
        if not self.accept_all or cid in self._gone:
            return False
        return not (self.gone_prefix and cid.startswith(self.gone_prefix))

    def received(self, connection_id: str) -> list[bytes]:
        with self._lock:
            return list(self._received.get(connection_id, ()))

    def all_received(self) -> dict[str, list[bytes]]:
        with self._lock:
            return {k: list(v) for k, v in self._received.items()}

    # -- faults --------------------------------------------------------------------------
    def script(self, connection_id: str, *steps: int | str) -> None:
        """Answer the next requests for this id with ``steps`` (a status, "hang" or "drop"),
        then behave normally."""
        with self._lock:
            self._scripts[connection_id] = collections.deque(steps)

    def fail(self, connection_id: str, step: int | str) -> None:
        """Answer every request for this id with ``step`` until ``clear_faults``."""
        with self._lock:
            self._persistent[connection_id] = step

    def clear_faults(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._persistent.clear()

    # -- statistics ----------------------------------------------------------------------
    def reset_stats(self) -> None:
        with self._lock:
            self.requests_total = 0
            self.counts: collections.Counter = collections.Counter()  # (method, id) -> n
            self.in_flight = 0
            self.max_in_flight = 0
            self.delivered = 0
            self.gone_answers = 0
            self.peers: set = set()
            self.recent: collections.deque = collections.deque(maxlen=2000)

    def count(self, connection_id: str, method: str = "POST") -> int:
        with self._lock:
            return self.counts[(method, connection_id)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests_total,
                "delivered": self.delivered,
                "gone_answers": self.gone_answers,
                "max_in_flight": self.max_in_flight,
                "connections": len(self.peers),
            }

    def recent_requests(self) -> list[dict[str, Any]]:
        """``{"method", "path", "headers"}`` of the most recent requests (oldest first)."""
        with self._lock:
            return list(self.recent)

    # -- HTTP ----------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        if raw_path.startswith("/_stub/"):
            return await self._control(request, raw_path)
        idx = raw_path.find(_MARKER)
        if idx < 0 or (self.stage and raw_path[:idx].strip("/") != self.stage):
            return _error(404, "Not Found")
        cid = unquote(raw_path[idx + len(_MARKER):])
        method = request.method
        body = await request.read() if method == "POST" else b""
        handler = request.protocol
        with self._lock:
            self.requests_total += 1
            self.counts[(method, cid)] += 1
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight
            self._active_by_handler[handler] += 1
            self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
            self.recent.append({"method": method, "path": raw_path, "headers": dict(request.headers)})
            step = None
            queue = self._scripts.get(cid)
            if queue:
                step = queue.popleft()
            elif cid in self._persistent:
                step = self._persistent[cid]
            elif self.flaky_prefix and cid.startswith(self.flaky_prefix) and cid not in self._flaked:
                self._flaked.add(cid)
                step = 429
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if step == "hang":
                await asyncio.sleep(self.hang_seconds)
            elif step == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)  # never reaches the client: aborted
            elif isinstance(step, int) and step != 200:
                if step == 410:
                    with self._lock:
                        self.gone_answers += 1
                return _error(step, "Too Many Requests" if step == 429 else
                              (None if step == 410 else "Internal server error"))
            return self._answer(method, cid, body)
        finally:
            with self._lock:
                self.in_flight -= 1
                self._active_by_handler[handler] -= 1
                if self._active_by_handler[handler] <= 0:
                    del self._active_by_handler[handler]

    def _answer(self, method: str, cid: str, body: bytes) -> web.Response:
        with self._lock:
            if not self._is_live(cid):
                self.gone_answers += 1
                return _error(410, None)
            info = self._live.get(cid)
            if method == "POST":
                self.delivered += 1
                if self.record_bodies:
                    self._received[cid].append(body)
                if info is not None:
                    info["lastActiveAt"] = time.time()
                return web.Response(status=200)
            if method == "GET":
                now = time.time()
                info = info or {"connectedAt": now, "lastActiveAt": now, "sourceIp": "203.0.113.7"}
                doc = {
                    "connectedAt": _iso(info["connectedAt"]),
                    "identity": {"sourceIp": info["sourceIp"], "userAgent": "stub"},
                    "lastActiveAt": _iso(info["lastActiveAt"]),
                }
                return web.Response(status=200, body=json.dumps(doc).encode(),
                                    headers={"Content-Type": "application/json"})
            if method == "DELETE":
                self._live.pop(cid, None)
                self._gone.add(cid)
                return web.Response(status=204)
        return _error(400, "Unsupported method")

    async def _control(self, request: web.BaseRequest, path: str) -> web.Response:
        if path == "/_stub/stats":
            return web.json_response(self.stats())
        if path == "/_stub/reset" and request.method == "POST":
            self.reset_stats()
            return web.json_response({"ok": True})
        if path == "/_stub/drop-idle" and request.method == "POST":
            return web.json_response({"dropped": self._drop_idle()})
        return _error(404, "Not Found")

    def _drop_idle(self) -> int:
        assert self._server is not None
        dropped = 0
        with self._lock:
            active = set(self._active_by_handler)
        for handler, transport in list(self._server._connections.items()):  # noqa: SLF001
            if handler not in active and transport is not None and not transport.is_closing():
                transport.close()
                dropped += 1
        return dropped

    def drop_idle_connections(self) -> int:
        """Close every client connection that has no request in flight; returns how many."""
        assert self._loop is not None

        async def go() -> int:
            return self._drop_idle()

        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    # -- lifecycle ------------------------------------------------------------------------
    async def start_async(self) -> None:
        self._server = web.Server(self._handle, access_log=None,
                                  keepalive_timeout=self.keepalive_timeout)
        self._runner = web.ServerRunner(self._server, access_log=None, handle_signals=False,
                                       shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # noqa: SLF001
        self.port = sock.getsockname()[1]
        self._loop = asyncio.get_running_loop()

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def endpoint(self) -> str:
        stage = f"/{self.stage}" if self.stage else ""
        return f"http://{self.host}:{self.port}{stage}"

    def start(self) -> "ManagementStub":
        """Run the server on its own event loop in a daemon thread."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="management-stub", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> "ManagementStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StubProcess:
    """The stub in a child process (``python -m devtools.management_stub``)."""

    def __init__(self, **options: Any) -> None:
        args = [sys.executable, "-m", "devtools.management_stub", "--port", "0"]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, str(value)]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"management stub did not start: {line!r}")
        self.endpoint = line.split(" ", 1)[1]

    def _call(self, method: str, path: str) -> dict[str, Any]:
        req = urllib.request.Request(self.endpoint.rstrip("/") + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stub/stats")

    def reset(self) -> None:
        self._call("POST", "/_stub/reset")

    def drop_idle_connections(self) -> int:
        return self._call("POST", "/_stub/drop-idle")["dropped"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "StubProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.management_stub", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--accept-all", action="store_true", help="every id is live")
    parser.add_argument("--gone-prefix", help="ids with this prefix answer 410 (with --accept-all)")
    parser.add_argument("--flaky-prefix", help="the first request for such an id answers 429")
    parser.add_argument("--no-record-bodies", action="store_true")
    parser.add_argument("--stage", default="")
    parser.add_argument("--register", nargs="*", default=[])
    ns = parser.parse_args(list(argv) if argv is not None else None)
    stub = ManagementStub(latency=ns.latency, host=ns.host, port=ns.port, accept_all=ns.accept_all,
                          gone_prefix=ns.gone_prefix, flaky_prefix=ns.flaky_prefix,
                          record_bodies=not ns.no_record_bodies, stage=ns.stage)
    stub.register(*ns.register)

    async def serve() -> None:
        await stub.start_async()
        print(f"READY {stub.endpoint}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await stub.stop_async()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
