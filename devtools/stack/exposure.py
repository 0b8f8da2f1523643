"""Who can reach the local stack: loopback only, unless the developer says otherwise.

Nothing in the local stack is meant for a network: `/dev/token` mints tokens for any user,
moto accepts any credentials, the documents routes write the table for whoever asks, and
the `@connections` credentials (`local`/`local`) are published. So binding to anything but
loopback is refused unless `DEV_ALLOW_REMOTE=1`, and then a warning names what is exposed.
"""

from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str) -> bool:
    """True when every address `host` stands for is a loopback address (127/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)


def refusal(host: str) -> str:
    """Why the stack will not start on `host` without DEV_ALLOW_REMOTE=1."""
    return (f"DEV_HOST={host} is not a loopback address, and the local stack is not safe on a network: "
            "/dev/token mints tokens for any user, moto serves every table to any credentials, "
            "/dev/documents writes for anyone. Bind to 127.0.0.1 (the default), or set DEV_ALLOW_REMOTE=1 "
            "to expose it anyway.")


def warning(host: str, *, ws_port: int, web_port: int, aws_port: int, tokens: str) -> str:
    """The banner's warning when bound beyond loopback. `tokens`: what `/dev/token` does,
    "off" (refused), "development" (the kept development secret) or "environment"."""
    bar = "!" * 78
    token_line = {
        "off": f"!!   (/dev/token on :{web_port} stays off: JWT_SECRET comes from the environment;"
               " DEV_ALLOW_REMOTE_TOKENS=1 turns it on)",
        "development": f"!!   - get a token for any user from /dev/token on :{web_port} (development secret)",
        "environment": f"!!   - get a token for any user from /dev/token on :{web_port}, signed with JWT_SECRET"
                       " from the environment: valid wherever that secret is",
    }[tokens]
    return "\n".join([
        bar,
        f"!! WARNING: DEV_ALLOW_REMOTE=1: the local stack listens on {host}, not only on loopback.",
        "!! Anyone who can reach this machine can:",
        f"!!   - read and write every table and queue through moto on :{aws_port} (any credentials)",
        f"!!   - open WebSockets on :{ws_port}, and write or delete documents through /dev/documents",
        f"!!   - post to any connection through @connections on :{ws_port} (signed with the published",
        "!!     local credentials local/local)",
        token_line,
        "!! Use it on a network you trust, and stop it when done.",
        bar,
    ])
