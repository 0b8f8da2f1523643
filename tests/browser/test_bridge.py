"""`client/bridge.js` (the Django Channels `WebSocketBridge` look-alike) against the local
stack, loaded as a module by a page the stack serves: demultiplexed callbacks get the
real server's frames, and the demultiplexer envelope (`stream(name).send(payload)`) writes
through the server (a comment create), which the demo page of another user shows."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.browser.conftest import People

OPEN_BRIDGE = """async () => {
  const {WebSocketBridge} = await import('/bridge.js');
  const config = await (await fetch('/dev/config')).json();
  const token = async () => (await (await fetch('/dev/token?user=carol&name=Carol')).json()).token;
  window.__bridged = [];
  const bridge = new WebSocketBridge({token});
  bridge.connect(config.websocket);
  bridge.listen();
  bridge.demultiplex('comments', (payload, stream) => window.__bridged.push({stream, payload}));
  bridge.demultiplex('users', (payload, stream) => window.__bridged.push({stream, payload}));
  window.__bridge = bridge;
  await bridge.subscribe('users');
  await bridge.subscribe('comments', {document: 'welcome'});
}"""


def bridged(page, stream: str) -> list[dict]:
    return [item["payload"] for item in page.evaluate("window.__bridged") if item["stream"] == stream]


def wait_until(condition, what: str, timeout: float = 15.0) -> None:
    """A bounded wait (Playwright's wait_for_function uses eval, which the CSP refuses)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_the_bridge_demultiplexes_real_frames_and_writes_through_the_envelope(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/welcome")
    host = people.open_page(stack)  # a page of the stack's origin to load the module in
    host.page.evaluate(OPEN_BRIDGE)
    # The subscribes' snapshots came through the demultiplexer: the counter, the comments.
    assert {"users": 2} in bridged(host.page, "users")
    assert any(p.get("document") == "welcome" and p.get("full") for p in bridged(host.page, "comments"))

    host.page.evaluate("""() => window.__bridge.stream('comments')
        .send({action: 'create', data: {document: 'welcome', body: 'Sent through the bridge'}})""")
    wait_until(lambda: any(p.get("action") == "create" and p.get("data", {}).get("body") == "Sent through the bridge"
                           for p in bridged(host.page, "comments")), "the bridge's own create, demultiplexed")
    created = next(p for p in bridged(host.page, "comments") if p.get("action") == "create")
    assert created["model"] == "comment" and created["data"]["author"] == "carol"
    # The demo page of another user shows it: the write went through the server.
    expect(alice.testid("comment-list").locator("li.comment").filter(has_text="Sent through the bridge")) \
        .to_have_attribute("data-author", "carol")
