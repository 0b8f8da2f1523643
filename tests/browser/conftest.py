"""Browser tests: the demo page in a real Chromium (Playwright, sync API) against the local
stack in a child process (`StackProcess`) on free ports.

Chromium is the machine's (Debian's `chromium` package, `CHROMIUM` to point elsewhere);
Playwright never downloads a browser here. Without it: a failure under CI (`.ci/run`
installs it), a skip with the reason elsewhere.

Waits are bounded `expect(...)` calls, never timing assertions: how fast presence reaches
another page (one coalescing interval plus delivery) is measured by `make bench`.

In-page notifications dismiss themselves after a few seconds; pages opened here keep them
for ten minutes (`DEMO_SETTINGS.toastMs`) so a loaded machine cannot make a check miss one,
except where a test asks for the real behaviour.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from devtools.stack.process import StackProcess
from devtools.template import ROOT

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 15_000  # "eventually" on a loaded machine
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1100, "height": 720}
# Toasts stay put unless a test says otherwise (see the module docstring).
DEMO_SETTINGS = {"toastMs": 600_000}


def _chromium_or_fail() -> str:
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if path and os.access(path, os.X_OK):
        return path
    message = (f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (apt-get install -y chromium) "
               "or set CHROMIUM=/path/to/chromium")
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: browser tests may not be skipped)")
    pytest.skip(message)


# Module scope, never session: while Playwright's sync API runs, its event loop counts as
# running in the main thread, and the rest of the suite's `asyncio.run()` would fail.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Any]:
    _chromium_or_fail()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Any) -> Iterator[Any]:
    browser = playwright_instance.chromium.launch(executable_path=_chromium_or_fail(), args=CHROMIUM_ARGS,
                                                  headless=True)
    yield browser
    browser.close()


def start_stack(*, ws_port: int = 0, web_port: int = 0, aws_port: int = 0, secret: str | None = None,
                env: dict[str, str] | None = None) -> StackProcess:
    """The stack in a child process; `env` sets the functions' limits (`ROSTER_LIMIT`,
    `MAX_CONNECTIONS_PER_USER`, ...: devtools/stack/config.py) so a few pages reach them."""
    environment = {"JWT_SECRET": secret or secrets.token_urlsafe(48), "DEV_SEED": "1", "POWERTOOLS_LOG_LEVEL": "ERROR",
                   **(env or {})}
    return StackProcess(ws_port=ws_port, web_port=web_port, aws_port=aws_port, env=environment).start()


def ports(stack: StackProcess) -> dict[str, int]:
    return {"ws_port": urlsplit(stack.ws_url).port, "web_port": urlsplit(stack.web_url).port,
            "aws_port": urlsplit(stack.aws_endpoint).port}


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    running = start_stack()
    try:
        yield running
    finally:
        running.stop()


def dynamodb(stack: StackProcess) -> Any:
    import boto3

    return boto3.client("dynamodb", endpoint_url=stack.aws_endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def documents_table(stack: StackProcess) -> str:
    return stack.tables["DocumentsTable"]


def put_document(stack: StackProcess, slug: str, title: str, *, abstract: str = "", visibility: str = "public",
                 owner: str = "system", readers: list[str] | None = None) -> None:
    """What "another AWS service" does: write the documents table directly."""
    item: dict[str, Any] = {"slug": {"S": slug}, "title": {"S": title}, "abstract": {"S": abstract},
                            "image": {"S": ""}, "visibility": {"S": visibility}, "owner": {"S": owner}}
    if readers:
        item["readers"] = {"L": [{"S": r} for r in readers]}
    dynamodb(stack).put_item(TableName=documents_table(stack), Item=item)


def delete_document(stack: StackProcess, slug: str) -> None:
    dynamodb(stack).delete_item(TableName=documents_table(stack), Key={"slug": {"S": slug}})


def documents_route(stack: StackProcess) -> Any:
    """`POST /dev/documents` and `DELETE /dev/documents/<slug>` for the demo's "another AWS
    service" form: the stack's own route when it has one, else this adapter (boto3 from the
    test process, the same write the stack would do)."""
    import json

    def handle(route: Any) -> None:
        request = route.request
        response = route.fetch()
        if response.status not in (404, 405):
            route.fulfill(response=response)
            return
        if request.method == "POST":
            doc = json.loads(request.post_data or "{}")
            put_document(stack, doc["slug"], doc.get("title") or doc["slug"], abstract=doc.get("abstract", ""),
                         visibility=doc.get("visibility", "public"), owner=doc.get("owner") or "system",
                         readers=doc.get("readers") or None)
            route.fulfill(status=201, json={"written": doc["slug"], "adapter": "tests/browser"})
        elif request.method == "DELETE":
            slug = request.url.rsplit("/", 1)[1]
            from urllib.parse import unquote

            delete_document(stack, unquote(slug))
            route.fulfill(status=200, json={"deleted": unquote(slug), "adapter": "tests/browser"})
        else:
            route.fulfill(response=response)

    return handle


@dataclass
class User:
    """One person: a browser context (its own cookies and storage) with the demo open."""

    context: Any
    page: Any
    name: str

    def testid(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)

    @property
    def users_count(self) -> Any:
        return self.testid("users-count")

    @property
    def state(self) -> Any:
        return self.testid("connection-state")

    def list_phase(self, slug: str, phase: str) -> Any:
        return self.testid(f"doc-{slug}").get_by_test_id(f"phase-{phase}")

    def page_phase(self, phase: str) -> Any:
        return self.testid("doc-page").get_by_test_id(f"phase-{phase}")

    def notifications(self, text: str | None = None) -> Any:
        found = self.testid("notification")
        return found.filter(has_text=text) if text else found

    def close(self) -> None:
        self.context.close()


class People:
    """Opens demo pages; closes whatever is still open at the end of the test."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.open: list[User] = []

    def open_page(self, stack: StackProcess, user: str | None = None, name: str | None = None, *,
                  hash: str = "", wait_open: bool = True, permissions: list[str] | None = None,
                  init_script: str | None = None, viewport: dict[str, int] | None = None,
                  demo_settings: dict[str, Any] | None = None, query: dict[str, str] | None = None,
                  before_goto: Callable[[Any], None] | None = None, base_url: str | None = None) -> User:
        from playwright.sync_api import expect

        context = self.browser.new_context(viewport=viewport or VIEWPORT, permissions=permissions or [])
        context.route("**/dev/documents**", documents_route(stack))
        context.add_init_script(f"window.DEMO_SETTINGS = {json.dumps({**DEMO_SETTINGS, **(demo_settings or {})})};")
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        if before_goto:
            before_goto(page)
        parameters = {"user": user, "name": name or user} if user else {}
        parameters.update(query or {})
        search = f"?{urlencode(parameters)}" if parameters else ""
        page.goto(f"{base_url or stack.web_url}/{search}{hash}")
        person = User(context, page, name or user or "anonymous")
        person.errors = errors  # type: ignore[attr-defined]
        self.open.append(person)
        if wait_open:
            expect(person.state).to_have_text("open")
            if user:
                # Subscribed to notifications (writes after this reach the page).
                expect(page.locator("body")).to_have_attribute("data-notifications", "on")
        return person

    def close_all(self) -> list[str]:
        errors = []
        for person in self.open:
            errors += [f"{person.name}: {e}" for e in getattr(person, "errors", [])]
            try:
                person.context.close()
            except Exception:  # noqa: BLE001 - already closed by the test
                pass
        self.open.clear()
        return errors


@pytest.fixture
def people(browser: Any) -> Iterator[People]:
    opened = People(browser)
    yield opened
    errors = opened.close_all()
    assert not errors, f"uncaught errors in the page: {errors}"


@contextmanager
def header_proxy(target: str, headers: dict[str, str]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 in front of `target` (the stack's web server) that adds
    `headers` to every answer, as a deployment's web server would (a Content-Security-Policy,
    say). Real, not Playwright's `route.fulfill`: Chromium treats an intercepted page as not
    local and then blocks its WebSocket to 127.0.0.1 (local network access checks)."""
    import urllib.error
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            try:
                with urllib.request.urlopen(target + self.path, timeout=30) as upstream:  # noqa: S310 - local
                    status, body, upstream_headers = upstream.status, upstream.read(), upstream.headers
            except urllib.error.HTTPError as error:
                status, body, upstream_headers = error.code, error.read(), error.headers
            self.send_response(status)
            for name in ("Content-Type", "Cache-Control"):
                if upstream_headers.get(name):
                    self.send_header(name, upstream_headers[name])
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="header-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def screenshot(page: Any, name: str, tmp_path: Path, *, full_page: bool = False) -> Path:
    """Screenshots for the README: written to docs/screenshots/ when missing or when
    UPDATE_SCREENSHOTS=1 (so a plain test run leaves the tree clean), else to tmp_path."""
    target = SCREENSHOTS / name
    if target.exists() and os.environ.get("UPDATE_SCREENSHOTS") != "1":
        target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=full_page)
    return target
