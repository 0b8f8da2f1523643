"""Who the demo's web server answers, and what its page may load.

- `DemoOrigins`: the origins the demo page is served from. The write routes
  (`POST`/`DELETE /dev/documents`, `POST /dev/alerts`) take requests only from them, so a page on another
  site cannot write the table through a visitor's browser (a form post or a `text/plain`
  fetch needs no CORS preflight; it does carry `Origin`).
- `loopback_origin`: pages served from this machine (any loopback port) may read
  `/dev/token` (CORS), so another local app can sign its users in against the stack.
- `content_security_policy`: the page runs only its own scripts and talks only to its
  own server and the WebSocket endpoint.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def loopback_origin(origin: str | None) -> bool:
    """True for `http(s)://` + a loopback host (127/8, `localhost`, `[::1]`) + any port."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError when not a number
    except ValueError:
        return False
    if (not port_ok or parts.scheme not in ("http", "https") or parts.path or parts.query or parts.fragment
            or parts.username is not None):
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DemoOrigins:
    """`own`: exact origins (`http://127.0.0.1:8000`). `same_host`: also the origin the request's
    `Host` names, for a stack bound to every interface (its names cannot be listed)."""

    own: frozenset[str]
    same_host: bool = False

    @classmethod
    def for_server(cls, hosts: Iterable[str], port: int, *, any_interface: bool = False) -> DemoOrigins:
        names = set(LOOPBACK_NAMES) | set(hosts)
        return cls(frozenset(f"http://{name}:{port}" for name in names), same_host=any_interface)

    def allows(self, origin: str | None, host_header: str | None) -> bool:
        if not origin:
            return False
        if origin in self.own:
            return True
        return self.same_host and bool(host_header) and origin == f"http://{host_header}"


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def content_security_policy(websocket_url: str) -> str:
    """Scripts from the page's own server only (no inline script, no eval); connections to
    it and to the WebSocket endpoint only."""
    ws = urlsplit(websocket_url)
    origins = [f"{ws.scheme}://{ws.netloc}"]
    if ws.hostname in LOOPBACK_NAMES and ws.port:
        # The demo accepts `?ws=` naming any loopback spelling of its own endpoint.
        origins += [f"{ws.scheme}://{host}:{ws.port}" for host in ("127.0.0.1", "localhost", "[::1]")
                    if f"{ws.scheme}://{host}:{ws.port}" not in origins]
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        f"connect-src 'self' {' '.join(origins)}",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])
