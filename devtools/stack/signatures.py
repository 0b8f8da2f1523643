"""SigV4 checks for the local `@connections` API, with botocore's own signer.

API Gateway's management API takes only IAM-signed requests. The local one requires a
signature from the stack's credentials (`local`/`local`, what the functions run with):
the credentials are published, so this keeps out what cannot sign (a page in a browser:
an `Authorization` header from another origin needs a CORS preflight the gateway never
grants), not someone who reads the README.

The check recomputes the signature the way the signer did: botocore's `SigV4Auth` over
the request as received (method, path as sent, the headers the client listed as signed,
the body), at the client's `X-Amz-Date`, and compares. A request dated more than 15
minutes from now is refused too (as AWS does: the same signature cannot be replayed later).
Any region is accepted: a `sam local invoke` container signs with the developer's.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timezone

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
MAX_SKEW_SECONDS = 15 * 60

_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")  # botocore.auth.SIGV4_TIMESTAMP
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>[0-9]{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})")


class _Received(AWSRequest):
    """A request as received: its body is the bytes read (AWSRequest's `body` prepares the
    whole request again on every read, a tenth of the check's time)."""

    @property
    def body(self) -> bytes:
        return self.data


def _parse_amz_date(value: str) -> datetime | None:
    """`20260101T120000Z` (botocore's SIGV4_TIMESTAMP) as a UTC datetime; None when it is not one."""
    if _AMZ_DATE.fullmatch(value) is None:
        return None
    try:
        return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
                        int(value[13:15]), tzinfo=timezone.utc)
    except ValueError:
        return None


class SignatureCheck:
    """Whether a request was signed with `access_key`/`secret_key` (for `region`; None: for
    any region, as a `sam local invoke` container signs with the developer's region)."""

    def __init__(self, access_key: str, secret_key: str, region: str | None = None) -> None:
        self.access_key = access_key
        self.region = region
        self._credentials = Credentials(access_key, secret_key)

    def valid(self, *, method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
              now: datetime | None = None) -> bool:
        """`raw_path` as sent (percent-encoded, query included); `headers` as received."""
        headers = {name.lower(): value for name, value in headers.items()}
        match = _AUTHORIZATION.fullmatch(headers.get("authorization", "").strip())
        if match is None:
            return False
        amz_date = headers.get("x-amz-date", "")
        signed_at = _parse_amz_date(amz_date)
        if signed_at is None:
            return False
        now = now or datetime.now(timezone.utc)
        signed = match["signed"].split(";")
        if (match["key"] != self.access_key or self.region not in (None, match["region"]) or match["service"] != SERVICE
                or match["date"] != amz_date[:8] or abs((now - signed_at).total_seconds()) > MAX_SKEW_SECONDS
                or "host" not in signed or "x-amz-date" not in signed
                or any(name not in headers for name in signed)):
            return False
        request = _Received(method=method, url=f"http://{headers['host']}{raw_path}", data=body,
                            headers={name: headers[name] for name in signed})
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(self._credentials, SERVICE, match["region"])
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        return hmac.compare_digest(expected, match["signature"])
