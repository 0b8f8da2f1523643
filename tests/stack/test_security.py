"""The local stack's own defences (docs/security.md, "The local stack"): only the stage's
paths, signed `@connections`, writes only from the demo page, tokens readable by local
pages only, and a Content-Security-Policy on the demo page."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from devtools.stack import web as webapp
from devtools.stack.signatures import SignatureCheck
from realtime.sigv4 import Signer, encode_connection_id, host_header
from tests.stack.conftest import WAIT, Client, run


def http(method: str, url: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def signed_headers(stack, method: str, path: str, body: bytes, *, secret: str = "local",
                   now: float | None = None) -> dict[str, str]:
    """What the functions send: the project's signer with the stack's credentials."""
    parts = urlsplit(stack.management_endpoint)
    host = host_header(parts.scheme, parts.hostname, parts.port)
    return {"Host": host, **Signer("us-east-1").sign(method, host, path, body, "local", secret, now=now)}


async def open_connection(stack) -> tuple[Client, str]:
    before = set(stack.gateway.connections)
    client = await Client.connect(stack, "sigrid", "Sigrid")
    for _ in range(int(WAIT / 0.01)):
        new = set(stack.gateway.connections) - before
        if new:
            return client, new.pop()
        await asyncio.sleep(0.01)
    raise AssertionError("the gateway never registered the connection")


async def post_then_heartbeat(stack, headers_for) -> tuple[int, bytes, dict]:
    """POST to a live connection with `headers_for(path, body)`, then send a heartbeat: the
    first frame the client gets is the post's body if it was delivered, else the ack."""
    client, connection_id = await open_connection(stack)
    path = "/@connections/" + encode_connection_id(connection_id)
    body = b'{"stream":"forged","payload":{}}'
    status, _, answer = await asyncio.to_thread(http, "POST", stack.management_endpoint + path, body=body,
                                                headers=headers_for(path, body))
    await client.send({"action": "heartbeat", "id": "after"})
    first = await client.recv_raw()
    await client.close()
    return status, answer, first


# ------------------------------------------------------------------ stage paths


@pytest.mark.parametrize("path", ["/other", "/Prod", "/prod2", "/favicon.ico"])
def test_websocket_paths_other_than_root_and_stage_answer_404(stack, path):
    async def scenario():
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(stack.ws_url + path, open_timeout=WAIT)
        return info.value.response.status_code

    assert run(scenario()) == 404
    assert not stack.gateway.connections


@pytest.mark.parametrize("path", ["", "/prod"])
def test_root_and_stage_paths_accept_websockets(stack, path):
    assert stack.stage == "prod"

    async def scenario():
        async with websockets.connect(stack.ws_url + path, open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"action": "heartbeat", "id": 1}))
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    assert run(scenario()) == {"stream": "ack", "payload": {"id": 1}}


def test_connections_api_under_another_stage_answers_404(stack):
    path = "/other/@connections/abc%3D"
    status, _, _ = http("GET", stack.management_endpoint + path, headers=signed_headers(stack, "GET", path, b""))
    assert status == 404


# ------------------------------------------------------------------ @connections signatures


def test_signed_post_from_the_local_credentials_is_delivered(stack):
    status, _, first = run(post_then_heartbeat(stack, lambda path, body: signed_headers(stack, "POST", path, body)))
    assert status == 200
    assert first == {"stream": "forged", "payload": {}}


@pytest.mark.parametrize("forgery", ["unsigned", "other secret", "body changed", "an hour old", "garbled header"])
def test_unsigned_or_wrongly_signed_posts_are_forbidden_and_not_delivered(stack, forgery):
    def headers_for(path: str, body: bytes) -> dict[str, str]:
        if forgery == "unsigned":
            return {}
        if forgery == "other secret":
            return signed_headers(stack, "POST", path, body, secret="not-local")
        if forgery == "body changed":
            return signed_headers(stack, "POST", path, body + b" ")
        if forgery == "an hour old":
            return signed_headers(stack, "POST", path, body, now=time.time() - 3600)
        headers = signed_headers(stack, "POST", path, body)
        headers["Authorization"] = headers["Authorization"].replace("SignedHeaders=", "SignedHeaders=x;")
        return headers

    status, answer, first = run(post_then_heartbeat(stack, headers_for))
    assert (status, json.loads(answer)) == (403, {"message": "Forbidden"})
    assert first == {"stream": "ack", "payload": {"id": "after"}}


def test_unsigned_requests_cannot_probe_which_connections_exist(stack):
    status, _, answer = http("GET", stack.management_endpoint + "/@connections/neverExisted0A%3D")
    assert (status, json.loads(answer)) == (403, {"message": "Forbidden"})


def test_signature_check_agrees_with_botocore_on_a_boto3_request():
    """boto3's own signing (what `apigatewaymanagementapi` clients send) passes; its
    signature on another path does not."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url="http://127.0.0.1:3001/prod/@connections/a%2Bb%3D", data=b"hi")
    SigV4Auth(Credentials("local", "local"), "execute-api", "us-east-1").add_auth(request)
    headers = {"Host": "127.0.0.1:3001", **dict(request.headers.items())}
    check = SignatureCheck("local", "local")
    assert check.valid(method="POST", raw_path="/prod/@connections/a%2Bb%3D", headers=headers, body=b"hi")
    assert not check.valid(method="POST", raw_path="/prod/@connections/a%2Bb%3E", headers=headers, body=b"hi")
    assert not check.valid(method="DELETE", raw_path="/prod/@connections/a%2Bb%3D", headers=headers, body=b"hi")
    assert not SignatureCheck("local", "other").valid(method="POST", raw_path="/prod/@connections/a%2Bb%3D",
                                                      headers=headers, body=b"hi")


def test_signatures_for_any_region_pass_as_a_sam_local_container_signs_with_the_developers():
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url="http://host.docker.internal:3001/@connections/x%3D", data=b"{}")
    SigV4Auth(Credentials("local", "local"), "execute-api", "eu-west-1").add_auth(request)
    headers = {"Host": "host.docker.internal:3001", **dict(request.headers.items())}
    assert SignatureCheck("local", "local").valid(method="POST", raw_path="/@connections/x%3D", headers=headers,
                                                  body=b"{}")
    assert not SignatureCheck("local", "local", "us-east-1").valid(method="POST", raw_path="/@connections/x%3D",
                                                                   headers=headers, body=b"{}")


# ------------------------------------------------------------------ /dev/documents


def documents_count(stack, slug: str) -> int:
    item = stack.client("dynamodb").get_item(TableName=stack.tables["DocumentsTable"], Key={"slug": {"S": slug}})
    return 1 if "Item" in item else 0


@pytest.mark.parametrize("origin, content_type", [
    ("https://evil.example", "application/json"),   # a cross-site fetch
    (None, "application/json"),                      # no Origin at all
    ("SELF", "text/plain"),                          # a "simple" request: no CORS preflight
    ("SELF", "application/x-www-form-urlencoded"),   # a cross-site <form> post
    ("http://127.0.0.1:1", "application/json"),     # another local page
])
def test_document_writes_from_anywhere_but_the_demo_page_are_forbidden(stack, origin, content_type):
    headers = {"Content-Type": content_type}
    if origin is not None:
        headers["Origin"] = stack.web_url if origin == "SELF" else origin
    body = json.dumps({"slug": "csrf-doc", "title": "Forged"}).encode()
    status, _, answer = http("POST", f"{stack.web_url}/dev/documents", body=body, headers=headers)
    assert status == 403 and json.loads(answer)["error"]
    assert documents_count(stack, "csrf-doc") == 0
    status, _, _ = http("DELETE", f"{stack.web_url}/dev/documents/welcome", headers=headers)
    assert status == 403
    assert documents_count(stack, "welcome") == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_document_writes_from_the_demo_page_under_its_loopback_names_succeed(stack, host):
    origin = f"http://{host}:{stack.web_port}"
    headers = {"Content-Type": "application/json; charset=utf-8", "Origin": origin}
    body = json.dumps({"slug": f"own-{host}", "title": "Mine"}).encode()
    status, _, _ = http("POST", f"{stack.web_url}/dev/documents", body=body, headers=headers)
    assert status == 201
    assert documents_count(stack, f"own-{host}") == 1
    status, _, _ = http("DELETE", f"{stack.web_url}/dev/documents/own-{host}", headers=headers)
    assert status == 200
    assert documents_count(stack, f"own-{host}") == 0


# ------------------------------------------------------------------ /dev/token CORS


@pytest.mark.parametrize("origin", ["http://127.0.0.1:5173", "http://localhost:3000", "http://[::1]:8080",
                                    "https://localhost"])
def test_dev_token_may_be_read_by_pages_on_loopback_origins(stack, origin):
    status, headers, body = http("GET", f"{stack.web_url}/dev/token?user=alice", headers={"Origin": origin})
    assert status == 200 and json.loads(body)["token"]
    assert headers["Access-Control-Allow-Origin"] == origin
    status, headers, _ = http("OPTIONS", f"{stack.web_url}/dev/token",
                              headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
    assert headers["Access-Control-Allow-Methods"] == "GET"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example:8000", "null",
                                    "http://user@localhost:3000", "http://10.0.0.1:8000"])
def test_dev_token_is_not_readable_from_other_origins(stack, origin):
    status, headers, _ = http("GET", f"{stack.web_url}/dev/token?user=alice", headers={"Origin": origin})
    assert status == 200  # a server answer; the browser withholds it without the header
    assert "Access-Control-Allow-Origin" not in headers


def test_only_dev_token_answers_cross_origin_requests(stack):
    for path in ("/dev/config", "/dev/config.js", "/"):
        _, headers, _ = http("GET", stack.web_url + path, headers={"Origin": "http://127.0.0.1:5173"})
        assert "Access-Control-Allow-Origin" not in headers, path


# ------------------------------------------------------------------ the demo page


def test_demo_page_allows_only_its_own_scripts_and_the_websocket_endpoint(stack):
    _, headers, _ = http("GET", stack.web_url + "/")
    directives = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    assert directives["script-src"] == "'self'"
    port = stack.ws_port  # the demo's own endpoint, under any loopback name (?ws= may pick one)
    assert directives["connect-src"] == (f"'self' {stack.ws_url} ws://localhost:{port} ws://[::1]:{port}")
    assert directives["default-src"] == "'self'"
    assert "unsafe" not in headers["Content-Security-Policy"]


class _InlineScripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.found += [f"{tag} {name}=" for name in names if name.startswith("on")]
        self.found += [f"{tag} {name}=javascript:" for name, value in names.items()
                       if (value or "").strip().lower().startswith("javascript:")]
        self._in_script = tag == "script" and "src" not in names

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline <script>: {data.strip()[:40]}")


def inline_scripts(html: str) -> list[str]:
    parser = _InlineScripts()
    parser.feed(html)
    return parser.found


def test_demo_page_has_no_inline_script_the_policy_would_block(stack):
    _, _, page = http("GET", stack.web_url + "/")
    assert b"data-testid" in page  # the demo page itself, not an error page
    assert inline_scripts(page.decode()) == []


def test_placeholder_page_has_no_inline_script_either():
    assert inline_scripts(webapp.PLACEHOLDER) == []
    assert "<style" not in webapp.PLACEHOLDER and "style=" not in webapp.PLACEHOLDER


def test_inline_script_finder_finds_inline_scripts():
    assert inline_scripts('<script>alert(1)</script><a href="javascript:x()" onclick="y()">') == [
        "inline <script>: alert(1)", "a onclick=", "a href=javascript:"]
