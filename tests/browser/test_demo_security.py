"""The demo page's security (issue 13): `?ws=` cannot send the token to another host, the
page runs under a strict Content-Security-Policy, and refused handshakes stop the retries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.browser.conftest import People, header_proxy, put_document


def record_websockets(urls: list[str]):
    def attach(page: Any) -> None:
        page.on("websocket", lambda ws: urls.append(ws.url))
    return attach


def test_a_ws_override_naming_another_host_is_ignored_and_the_page_says_why(stack, people: People):
    urls: list[str] = []
    alice = people.open_page(stack, "alice", "Alice", query={"ws": "ws://evil.example:3001/"},
                             before_goto=record_websockets(urls))
    expect(alice.testid("ws-ignored")).to_contain_text("Ignored ?ws=evil.example:3001")
    expect(alice.testid("ws-ignored")).to_contain_text("would send your token there")
    expect(alice.state).to_have_text("open")  # on the configured endpoint instead
    assert urls and all(urlsplit(url).hostname == "127.0.0.1" for url in urls), urls


def test_a_ws_override_naming_loopback_is_used(stack, people: People):
    urls: list[str] = []
    port = urlsplit(stack.ws_url).port
    people.open_page(stack, "alice", "Alice", query={"ws": f"ws://localhost:{port}"},
                     before_goto=record_websockets(urls))
    assert urls and all(urlsplit(url).hostname == "localhost" for url in urls), urls


def test_a_ws_override_that_is_not_a_websocket_url_is_ignored(stack, people: People):
    urls: list[str] = []
    alice = people.open_page(stack, query={"ws": "javascript:alert(1)"}, before_goto=record_websockets(urls))
    expect(alice.testid("ws-ignored")).to_contain_text("ws:// or wss://")
    assert urls and all(urlsplit(url).hostname == "127.0.0.1" for url in urls), urls


RECORD_CSP_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def test_the_demo_runs_under_a_strict_content_security_policy(stack, people: People):
    policy = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
              f"connect-src 'self' {stack.ws_url}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    with header_proxy(stack.web_url, {"Content-Security-Policy": policy}) as served:
        alice = people.open_page(stack, "alice", "Alice", hash="#/doc/roadmap", init_script=RECORD_CSP_VIOLATIONS,
                                 base_url=served)
        # The page works: scripts ran, the socket is open, controls answer, toasts render.
        expect(alice.page_phase("view")).to_have_text("Alice (alice)")
        alice.testid("enter-edit").click()
        expect(alice.page_phase("edit")).to_have_text("Alice (alice)")
        put_document(stack, "under-csp", "Under CSP", abstract="Rendered without inline anything.")
        expect(alice.notifications("Under CSP")).to_have_count(1)
        alice.notifications("Under CSP").get_by_role("link").click()
        expect(alice.testid("doc-page").get_by_role("heading", level=2)).to_have_text("Under CSP")
        alice.page.get_by_role("link", name="← All documents").click()
        expect(alice.page.locator("#page")).to_contain_text("Pick a document")
        assert alice.page.evaluate("window.__csp") == []
        # The policy was in force and the recorder works (else the check above could not fail):
        # an inline script is refused and reported.
        alice.page.evaluate("""() => { const s = document.createElement('script');
                                        s.textContent = 'window.__inline = true'; document.head.append(s); }""")
        alice.page.wait_for_function("window.__csp.length > 0")
        assert alice.page.evaluate("window.__inline === undefined")
        assert alice.page.evaluate("window.__csp")[0].startswith("script-src")


def test_refused_handshakes_stop_after_five_until_retry(stack, people: People):
    urls: list[str] = []

    def bad_tokens(page: Any) -> None:
        page.on("websocket", lambda ws: urls.append(ws.url))
        page.route("**/dev/token**", lambda route: route.fulfill(json={"token": "not-a-valid-jwt"}))

    alice = people.open_page(stack, "alice", "Alice", wait_open=False, before_goto=bad_tokens)
    expect(alice.state).to_have_text("refused", timeout=60_000)
    expect(alice.testid("retry-connection")).to_be_visible()
    expect(alice.page.locator("#notice")).to_contain_text("stopped trying")
    assert len(urls) == 5, urls
    alice.page.wait_for_timeout(3_000)  # a sixth attempt would come within the backoff
    assert len(urls) == 5, urls

    alice.page.unroute("**/dev/token**")
    alice.testid("retry-connection").click()
    expect(alice.state).to_have_text("open")
    expect(alice.testid("retry-connection")).to_be_hidden()
    assert len(urls) == 6


def test_an_oversize_frame_is_refused_by_the_page_and_the_socket_stays_open(stack, people: People):
    """API Gateway closes a socket on a frame of 32 KB; the client refuses anything over the
    server's 8,192 bytes before sending, so the page keeps its connection."""
    alice = people.open_page(stack, "alice", "Alice")
    outcome = alice.page.evaluate("""async () => {
        const opened = window.realtime.socket;
        let code = null;
        try { await window.realtime.request({action: 'heartbeat', pad: 'é'.repeat(20000)}); } catch (e) { code = e.code; }
        await window.realtime.request({action: 'heartbeat'});  // the same socket still answers
        return {code, same: window.realtime.socket === opened, state: window.realtime.state};
    }""")
    assert outcome == {"code": "too_large", "same": True, "state": "open"}
