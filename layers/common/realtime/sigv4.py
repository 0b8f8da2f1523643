"""A minimal AWS Signature Version 4 signer for the API Gateway management API.

Why not botocore's ``SigV4Auth``: it signs about 11,500 requests/s on one core here
(``docs/performance.md``, ``/work/shared/reference/aws-websocket-facts.md``). The fan-out
budget is 5,000 posts/s per process *including* the HTTP work, so botocore's signer alone
would eat roughly half of it. This module does the same computation for the only requests
the sender makes (``POST``/``GET``/``DELETE {endpoint}/@connections/{id}``, no query
string) with the signing key derived once per (date, region, service, secret) and cached,
the one-shot C ``hmac.digest`` and a per-second cache of the timestamp strings. It signs
several times faster than botocore (``python -m bench fanout`` prints both figures).

The result is byte-for-byte the ``Authorization`` header that
``botocore.auth.SigV4Auth(credentials, "execute-api", region)`` computes for the same
request, credentials and timestamp (``tests/test_sigv4.py`` proves it), including
botocore's canonical-path rule for non-S3 services: the path as sent on the wire is
normalised and percent-encoded *again* (``quote(path, safe="/~")``), so a connection id
``abc=`` sent as ``/@connections/abc%3D`` is canonicalised as ``/%40connections/abc%253D``.

Signed headers: ``host``, ``x-amz-date`` and, when the credentials carry a session token
(Lambda's always do), ``x-amz-security-token``. The payload is always hashed (the
``UNSIGNED-PAYLOAD`` shortcut is not used).

Nothing here logs; secrets never leave this module except inside the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

__all__ = [
    "EMPTY_SHA256",
    "Signer",
    "canonical_path",
    "encode_connection_id",
    "host_header",
]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ALGORITHM = "AWS4-HMAC-SHA256"
_sha256 = hashlib.sha256
_hmac_digest = hmac.digest


def encode_connection_id(connection_id: str) -> str:
    """Percent-encode a connection id for the URL path exactly as boto3 does.

    botocore's rest serializer uses ``quote(value, safe="-._~")`` for a (non-greedy) URI
    label, so ``=`` becomes ``%3D``, ``+`` ``%2B`` and ``/`` ``%2F``.
    """
    return quote(connection_id, safe="-._~")


def _remove_dot_segments(path: str) -> str:
    # Same as botocore.utils.remove_dot_segments (RFC 3986 5.2.4 plus collapsing "//").
    if not path:
        return ""
    out: list[str] = []
    for seg in path.split("/"):
        if seg and seg != ".":
            if seg == "..":
                if out:
                    out.pop()
            else:
                out.append(seg)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and out else ""
    return first + "/".join(out) + last


def canonical_path(wire_path: str) -> str:
    """The canonical URI botocore signs for a non-S3 service, given the path as sent."""
    if not wire_path:
        return "/"
    return quote(_remove_dot_segments(wire_path), safe="/~")


def host_header(scheme: str, hostname: str, port: int | None) -> str:
    """The ``Host`` value botocore signs: lowercase host, port only when not default."""
    host = hostname.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return host


class Signer:
    """Sign ``execute-api`` requests (one instance per region; thread-safe enough).

    ``sign`` returns the headers to add to the request: ``X-Amz-Date``,
    ``X-Amz-Security-Token`` (when ``token``) and ``Authorization``. The request itself
    must carry exactly ``Host: <host>`` among the signed headers; any other header the
    caller sends (``Content-Length``, ``User-Agent``, ...) is simply not signed, which
    SigV4 allows.
    """

    __slots__ = ("region", "service", "_keys", "_stamp_second", "_stamp")

    def __init__(self, region: str, service: str = "execute-api") -> None:
        if not region:
            raise ValueError("SigV4 needs a region")
        self.region = region
        self.service = service
        # (date, secret) -> signing key. Region and service are fixed per instance, so
        # the cache key is effectively (date, region, service, secret).
        self._keys: dict[tuple[str, str], bytes] = {}
        self._stamp_second = -1
        self._stamp = ("", "")

    # -- pieces -----------------------------------------------------------------------
    def signing_key(self, secret_key: str, datestamp: str) -> bytes:
        key = self._keys.get((datestamp, secret_key))
        if key is None:
            k = _hmac_digest(("AWS4" + secret_key).encode(), datestamp.encode(), "sha256")
            k = _hmac_digest(k, self.region.encode(), "sha256")
            k = _hmac_digest(k, self.service.encode(), "sha256")
            key = _hmac_digest(k, b"aws4_request", "sha256")
            if len(self._keys) >= 8:  # rotated credentials or a new day: drop the old ones
                self._keys.clear()
            self._keys[(datestamp, secret_key)] = key
        return key

    def _timestamp(self, now: float | None) -> tuple[str, str]:
        second = int(time.time() if now is None else now)
        if second != self._stamp_second:
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._stamp = (amz_date, amz_date[:8])
            self._stamp_second = second
        return self._stamp

    # -- the signature ------------------------------------------------------------------
    def sign(
        self,
        method: str,
        host: str,
        wire_path: str,
        body: bytes,
        access_key: str,
        secret_key: str,
        token: str | None = None,
        *,
        now: float | None = None,
        canonical_uri: str | None = None,
    ) -> dict[str, str]:
        """Headers to add for ``method wire_path`` on ``host`` with ``body``.

        ``now`` is a Unix time (defaults to the clock); ``canonical_uri`` lets a caller
        that already computed ``canonical_path(wire_path)`` skip that step.
        """
        amz_date, datestamp = self._timestamp(now)
        if canonical_uri is None:
            canonical_uri = canonical_path(wire_path)
        payload_hash = _sha256(body).hexdigest() if body else EMPTY_SHA256
        if token:
            canonical_headers = (
                f"host:{host}\nx-amz-date:{amz_date}\nx-amz-security-token:{' '.join(token.split())}\n"
            )
            signed = "host;x-amz-date;x-amz-security-token"
        else:
            canonical_headers = f"host:{host}\nx-amz-date:{amz_date}\n"
            signed = "host;x-amz-date"
        canonical_request = (
            f"{method}\n{canonical_uri}\n\n{canonical_headers}\n{signed}\n{payload_hash}"
        )
        scope = f"{datestamp}/{self.region}/{self.service}/aws4_request"
        string_to_sign = (
            f"{_ALGORITHM}\n{amz_date}\n{scope}\n"
            f"{_sha256(canonical_request.encode()).hexdigest()}"
        )
        signature = _hmac_digest(
            self.signing_key(secret_key, datestamp), string_to_sign.encode(), "sha256"
        ).hex()
        headers = {"X-Amz-Date": amz_date}
        if token:
            headers["X-Amz-Security-Token"] = token
        headers["Authorization"] = (
            f"{_ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers
