"""A network cable the browser tests can pull: a real TCP relay between the page and the
local gateway. Real sockets, not Playwright's WebSocket routing (which swaps the page's
`WebSocket` for a shim) nor `set_offline` (Chromium's offline emulation leaves WebSockets
alone)."""

from __future__ import annotations

import socket
import struct
import threading
from urllib.parse import urlsplit, urlunsplit


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a dead network or gateway looks to the other side (the
    shutdown first wakes a relay thread blocked reading it)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Cable:
    """Relays `ws://127.0.0.1:<port>` to the gateway behind `target` (a ws:// URL). `cut()`
    resets every connection through it and resets each new one at once (its handshake never
    completes) until `restore()`."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = urlunsplit((parts.scheme, f"127.0.0.1:{self._server.getsockname()[1]}", parts.path, "", ""))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        #: Connections the page made while the cable was cut (each one reset at once).
        self.refused = 0
        threading.Thread(target=self._accept, name="cable", daemon=True).start()

    def __enter__(self) -> Cable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            live, self._open = self._open, set()
        for sock in live:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                near, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                cut = self._cut
                if cut:
                    self.refused += 1
            if cut:
                _reset(near)
                continue
            try:
                far = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                _reset(near)
                continue
            far.settimeout(None)
            with self._lock:
                self._open.update((near, far))
            for source, sink in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(source, sink), name="cable-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        # One side ended: end the other. Shut down before closing: a plain close leaves the
        # socket open while the other relay thread is still blocked reading it.
        for sock in (source, sink):
            with self._lock:
                self._open.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
