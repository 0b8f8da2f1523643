"""The demo page's web server: `client/` (static), `GET /dev/token`, `GET /dev/config`,
`POST /dev/documents` / `DELETE /dev/documents/{slug}` and `POST /dev/alerts`.

`/dev/token?user=<id>&name=<display name>` answers `{"token": "<JWT>"}`, an HS256 token
signed with the local secret (1 hour). It exists only in the local stack. Pages served
from any loopback origin may fetch it (CORS), so another local app can sign in against
the stack; bound beyond loopback with a `JWT_SECRET` from the environment (a secret that
may be production's) it refuses to mint (403), unless `DEV_ALLOW_REMOTE_TOKENS=1`.
`/dev/config` (JSON) and `/dev/config.js` (`window.REALTIME_CONFIG = {...}`) tell the page
where the WebSocket endpoint is, and scripts where the AWS endpoint (`aws`, `region`) and
the event bus (`eventBusName`) are. The documents routes stand in for "another AWS service"
on the demo page: they write the local documents table with a plain `put_item` /
`delete_item`, so the change reaches browsers through the stream like any other write.
`POST /dev/alerts` (`{"to": {"user": "<id>"} | {"group": "alerts"} | {"connection": "<id>"},
"payload": {...}}`) stands in for a service publishing an alert: it puts a `realtime.publish`
event for stream `alerts` on the local bus (`PutEvents`, answered 202 with the `eventId`);
the rule from the template then runs the publish function, which delivers it or refuses it
(its dead-letter queue). All three take only `Content-Type: application/json` from the
demo's own origin (403 otherwise), so no other site can write through a visitor's browser.

Every answer carries the demo's Content-Security-Policy (`web_security`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

from devtools.stack.web_security import DemoOrigins, content_security_policy, loopback_origin

TOKEN_LIFETIME = 3600

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>serverless-realtime (local)</title>
<link rel="stylesheet" href="/dev/placeholder.css">
<script type="module" src="/dev/placeholder.js"></script></head>
<body>
<h1>serverless-realtime, running locally</h1>
<p>The demo page (<code>client/index.html</code>) is not there yet; this placeholder connects
to the local WebSocket endpoint so you can see the stack working.</p>
<p>Connection: <strong data-testid="connection-state" id="state">connecting</strong> &middot;
signed-in users online: <strong data-testid="users-count" id="users">?</strong></p>
<p>Sign in as someone with <code>?user=alice&amp;name=Alice</code> in this page's URL.</p>
<pre id="log"></pre>
</body></html>
"""

PLACEHOLDER_CSS = """body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .25rem}
#log{background:#f7f7f7;padding:.5rem;max-height:20rem;overflow:auto}
"""

PLACEHOLDER_JS = """const cfg = await (await fetch("/dev/config")).json();
const params = new URLSearchParams(location.search);
let url = cfg.websocket;
if (params.get("user")) {
  const q = new URLSearchParams({user: params.get("user"), name: params.get("name") || params.get("user")});
  const {token} = await (await fetch("/dev/token?" + q)).json();
  url += "?token=" + encodeURIComponent(token);
}
const ws = new WebSocket(url);
const log = (line) => { const el = document.getElementById("log"); el.textContent = line + "\\n" + el.textContent; };
ws.onopen = () => {
  document.getElementById("state").textContent = "open";
  ws.send(JSON.stringify({action: "subscribe", stream: "users", id: 1}));
  ws.send(JSON.stringify({action: "subscribe", stream: "documents", id: 2}));
  setInterval(() => ws.send(JSON.stringify({action: "heartbeat"})), 25000);
};
ws.onclose = (e) => { document.getElementById("state").textContent = "closed " + e.code; };
ws.onmessage = (e) => {
  log(e.data);
  const frame = JSON.parse(e.data);
  if (frame.stream === "users") document.getElementById("users").textContent = frame.payload.users;
};
"""


def mint_token(secret: str, user: str, name: str | None = None, lifetime: int = TOKEN_LIFETIME) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + lifetime}
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm="HS256")


VISIBILITIES = ("public", "private")


def document_item(body: Any) -> dict[str, Any]:
    """Validate a demo form's document; raise ValueError with what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    slug = body.get("slug")
    if not isinstance(slug, str) or not slug.strip() or len(slug) > 256:
        raise ValueError("slug must be a non-empty string of at most 256 characters")
    item: dict[str, Any] = {"slug": {"S": slug.strip()}}
    for name in ("title", "abstract", "image", "owner"):
        value = body.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 2000:
            raise ValueError(f"{name} must be a string")
        item[name] = {"S": value}
    visibility = body.get("visibility") or "public"
    if visibility not in VISIBILITIES:
        raise ValueError("visibility must be public or private")
    item["visibility"] = {"S": visibility}
    readers = body.get("readers") or []
    if isinstance(readers, str):
        readers = [r.strip() for r in readers.split(",") if r.strip()]
    if not isinstance(readers, list) or not all(isinstance(r, str) and r for r in readers):
        raise ValueError("readers must be a list of user ids")
    if readers:
        item["readers"] = {"L": [{"S": r} for r in readers]}
    return item


ALERTS_STREAM = "alerts"
ALERT_SOURCE = "devtools.demo"


def alert_entry(body: Any, bus: str) -> dict[str, Any]:
    """A demo form's alert as one `PutEvents` entry; raise ValueError with what is wrong.

    Only the shape a form can get wrong is checked here (an object with `to` and `payload`
    objects): the publish function checks the rest, as it does for any other publisher,
    and an event it refuses goes to its dead-letter queue."""
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    unknown = sorted(set(body) - {"to", "payload"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0][:64]!r} (to and payload only)")
    to, payload = body.get("to"), body.get("payload")
    if not isinstance(to, dict) or not to:
        raise ValueError('to must be an object: {"user": "<id>"}, {"group": "alerts"} or {"connection": "<id>"}')
    if not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    detail = {"stream": ALERTS_STREAM, "to": to, "payload": payload}
    return {"Source": ALERT_SOURCE, "DetailType": "realtime.publish", "EventBusName": bus,
            "Detail": json.dumps(detail, separators=(",", ":"), ensure_ascii=False)}


def make_app(*, client_dir: Path, secret: str, config: Callable[[], dict[str, Any]],
             origins: DemoOrigins, documents: Callable[[], tuple[Any, str]] | None = None,
             alerts: Callable[[], tuple[Any, str]] | None = None,
             token_refusal: str | None = None) -> web.Application:
    """`documents` gives (a DynamoDB client, the documents table's name) for the write routes,
    `alerts` (an EventBridge client, the bus's name) for `POST /dev/alerts`; `origins` are the
    demo page's own; `token_refusal`, when set, is why `/dev/token` is off."""
    app = web.Application()
    resolved: list[tuple[Any, str]] = []
    resolved_bus: list[tuple[Any, str]] = []

    async def secure(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = content_security_policy(config()["websocket"])
        response.headers["X-Content-Type-Options"] = "nosniff"

    app.on_response_prepare.append(secure)

    def refused_write(request: web.Request) -> web.Response | None:
        """403 unless the demo page itself sent JSON: a cross-site form or fetch cannot."""
        if not origins.allows(request.headers.get("Origin"), request.headers.get("Host")):
            return web.json_response({"error": "writes are taken only from the demo page's own origin"}, status=403)
        if request.content_type != "application/json":
            return web.json_response({"error": "send Content-Type: application/json"}, status=403)
        return None

    def cors(request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        headers = {"Vary": "Origin"}
        if loopback_origin(origin):
            headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        return headers

    def target() -> tuple[Any, str]:
        if documents is None:
            raise web.HTTPNotFound()
        if not resolved:  # one client for the server's life
            resolved.append(documents())
        return resolved[0]

    async def put_document(request: web.Request) -> web.Response:
        client, table = target()
        if (refusal := refused_write(request)) is not None:
            return refusal
        try:
            item = document_item(await request.json())
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            return web.json_response({"error": str(exc)}, status=400)
        await asyncio.get_running_loop().run_in_executor(None, lambda: client.put_item(TableName=table, Item=item))
        return web.json_response({"written": item["slug"]["S"]}, status=201)

    async def delete_document(request: web.Request) -> web.Response:
        client, table = target()
        if (refusal := refused_write(request)) is not None:
            return refusal
        slug = request.match_info["slug"]
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: client.delete_item(TableName=table, Key={"slug": {"S": slug}}))
        return web.json_response({"deleted": slug})

    async def post_alert(request: web.Request) -> web.Response:
        """Stands in for another AWS service: `PutEvents` on the local bus, as `aws events put-events` would."""
        if alerts is None:
            raise web.HTTPNotFound()
        if (refusal := refused_write(request)) is not None:
            return refusal
        if not resolved_bus:
            resolved_bus.append(alerts())
        client, bus = resolved_bus[0]
        try:
            entry = alert_entry(await request.json(), bus)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        answer = await asyncio.get_running_loop().run_in_executor(None, lambda: client.put_events(Entries=[entry]))
        (result,) = answer.get("Entries") or [{}]
        if answer.get("FailedEntryCount") or "EventId" not in result:
            return web.json_response({"error": result.get("ErrorMessage") or "the bus did not take the event"},
                                     status=502)
        return web.json_response({"eventId": result["EventId"], "bus": bus}, status=202)

    async def token(request: web.Request) -> web.Response:
        headers = {"Cache-Control": "no-store", **cors(request)}
        if token_refusal is not None:
            return web.json_response({"error": token_refusal}, status=403, headers=headers)
        user = (request.query.get("user") or "").strip()
        if not user or len(user) > 128:
            return web.json_response({"error": "give ?user=<id> (and optionally &name=<display name>)"}, status=400,
                                     headers=headers)
        name = (request.query.get("name") or "").strip() or None
        return web.json_response({"token": mint_token(secret, user, name)}, headers=headers)

    async def token_preflight(request: web.Request) -> web.Response:
        headers = cors(request)
        if "Access-Control-Allow-Origin" in headers:
            headers.update({"Access-Control-Allow-Methods": "GET", "Access-Control-Max-Age": "600"})
        return web.Response(status=204, headers=headers)

    async def placeholder_js(request: web.Request) -> web.Response:
        return web.Response(text=PLACEHOLDER_JS, content_type="application/javascript")

    async def placeholder_css(request: web.Request) -> web.Response:
        return web.Response(text=PLACEHOLDER_CSS, content_type="text/css")

    async def config_json(request: web.Request) -> web.Response:
        return web.json_response(config(), headers={"Cache-Control": "no-store"})

    async def config_js(request: web.Request) -> web.Response:
        body = f"window.REALTIME_CONFIG = {json.dumps(config())};\n"
        return web.Response(text=body, content_type="application/javascript", headers={"Cache-Control": "no-store"})

    async def index(request: web.Request) -> web.StreamResponse:
        page = client_dir / "index.html"
        if page.is_file():
            return web.FileResponse(page, headers={"Cache-Control": "no-cache"})
        return web.Response(text=PLACEHOLDER, content_type="text/html")

    async def static(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        root = client_dir.resolve()
        target = (root / relative).resolve()
        if root not in target.parents and target != root:
            raise web.HTTPNotFound()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(target, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/dev/token", token)
    app.router.add_route("OPTIONS", "/dev/token", token_preflight)
    app.router.add_get("/dev/placeholder.js", placeholder_js)
    app.router.add_get("/dev/placeholder.css", placeholder_css)
    app.router.add_get("/dev/config", config_json)
    app.router.add_get("/dev/config.js", config_js)
    app.router.add_post("/dev/documents", put_document)
    app.router.add_delete("/dev/documents/{slug}", delete_document)
    app.router.add_post("/dev/alerts", post_alert)
    app.router.add_get("/", index)
    app.router.add_get("/{path:.+}", static)
    return app
