"""Catch-up in a real browser (issue 14): a page cut off from the gateway for 30 s while
three documents change and an alert is published to its user sees all four when it is
back, once each and in order, and nothing it had seen before; past the server's replay
limit it is told (a reset), says so, and subscribes again for what comes next.

The cut is real (a TCP relay between the page and the gateway, `network.Cable`: open
connections reset, new handshakes reset). The page's clock is Playwright's, so the 30 s
of reconnect attempts take a few seconds of wall time: the client's backoff, its
refusal count and its `refusedAfterMs` all run on it. The page is served through a local
proxy whose Content-Security-Policy allows the relay (the demo's own allows only the
gateway's port).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import expect

from devtools.stack.process import StackProcess
from devtools.stack.web_security import content_security_policy
from tests.browser.conftest import People, User, header_proxy, put_document, start_stack
from tests.browser.network import Cable
from tests.browser.test_alerts import send_alert

# Every toast the page adds, in order, whatever happens to it later.
RECORD_TOASTS = """() => {
  window.__toasts = [];
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) {
      if (n.dataset?.testid === 'notification') window.__toasts.push(n.querySelector('strong').textContent);
    }
  }).observe(document.getElementById('toasts'), {childList: true});
}"""

CUT_SECONDS = 30
REPLAY_LIMIT = 2


@pytest.fixture(scope="module")
def small_replay_stack() -> Iterator[StackProcess]:
    running = start_stack(env={"REPLAY_LIMIT": str(REPLAY_LIMIT)})
    try:
        yield running
    finally:
        running.stop()


def toasts(person: User) -> list[str]:
    return person.page.evaluate("window.__toasts")


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """A bounded wait outside the page (Playwright's wait_for_function uses eval, which the
    page's Content-Security-Policy refuses)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def run_page_clock(person: User, seconds: int) -> None:
    """Let `seconds` pass on the page's clock, a second at a time, with a little real time
    after each for what its timers start (a token fetch, a handshake the cable resets)."""
    for _ in range(seconds):
        person.page.clock.run_for(1000)
        time.sleep(0.1)


@contextmanager
def behind_a_cable(stack: StackProcess, people: People, user: str, name: str,
                   sent: list[dict[str, Any]] | None = None) -> Iterator[tuple[User, Cable]]:
    """`user`'s demo page, its socket through a `Cable`, its clock Playwright's, recording
    its toasts (and, into `sent`, the frames it sends)."""
    def prepare(page: Any) -> None:
        page.clock.install()
        if sent is not None:
            page.on("websocket", lambda ws: ws.on("framesent", lambda data: sent.append(json.loads(data))))

    with Cable(stack.ws_url) as cable, \
            header_proxy(stack.web_url, {"Content-Security-Policy": content_security_policy(cable.url)}) as served:
        person = people.open_page(stack, user, name, base_url=served, query={"ws": cable.url},
                                  before_goto=prepare, demo_settings={"maxToasts": 10})
        expect(person.page.locator("body")).to_have_attribute("data-alerts", "on")
        person.page.evaluate(RECORD_TOASTS)
        yield person, cable


def cut(person: User, cable: Cable) -> None:
    """Stop the page's clock (the test lets its time pass) and cut the cable."""
    person.page.clock.pause_at(person.page.evaluate("Date.now()") + 1)
    cable.cut()
    expect(person.state).to_have_text("reconnecting")


def reconnect(person: User, cable: Cable) -> None:
    cable.restore()
    deadline = time.monotonic() + 60
    while person.state.inner_text() != "open":
        assert time.monotonic() < deadline, "the page never came back"
        run_page_clock(person, 1)
    person.page.clock.resume()


def test_a_page_cut_off_for_30_seconds_sees_what_it_missed_once_and_in_order(stack, people: People):
    with behind_a_cable(stack, people, "alice", "Alice") as (alice, cable):
        # Her other tab, on another network: it hears the alert live (so it was logged).
        elsewhere = people.open_page(stack, "alice", "Alice")
        bob = people.open_page(stack, "bob", "Bob")
        put_document(stack, "catchup-before", "Before the cut")
        expect(alice.notifications("Before the cut")).to_have_count(1)

        cut(alice, cable)
        for n in (1, 2, 3):
            put_document(stack, f"catchup-{n}", f"Changed while away {n}")
            expect(bob.notifications(f"Changed while away {n}")).to_have_count(1)
        send_alert(bob, "alice", "Your export is ready")
        expect(elsewhere.page.locator("[data-action=alert]").filter(has_text="Your export is ready")).to_have_count(1)

        # At least 30 s, and more failed handshakes than maxRefusals (5): still trying.
        away = 0
        while away < CUT_SECONDS or cable.refused <= 5:
            assert away < 4 * CUT_SECONDS, f"only {cable.refused} attempts in {away} s"
            run_page_clock(alice, 1)
            away += 1
        expect(alice.state).to_have_text("reconnecting")  # not refused: it was open before the cut
        reconnect(alice, cable)

        missed = ["New document: Changed while away 1", "New document: Changed while away 2",
                  "New document: Changed while away 3", "Alert"]
        wait_until(lambda: len(toasts(alice)) >= 5, "what the page missed")
        # A write after the catch-up arrives after it: nothing else came in between, or later.
        put_document(stack, "catchup-after", "After the cut")
        wait_until(lambda: len(toasts(alice)) >= 6, "the write after the cut")
        assert toasts(alice) == ["New document: Before the cut", *missed, "New document: After the cut"]
        expect(alice.page.locator("[data-action=alert]")).to_contain_text("Your export is ready")
        expect(alice.page.locator("#notice")).to_be_hidden()  # nothing was missed for good


def test_past_the_replay_limit_the_page_says_so_and_subscribes_again_without_since(small_replay_stack,
                                                                                 people: People):
    stack = small_replay_stack
    sent: list[dict[str, Any]] = []
    with behind_a_cable(stack, people, "carol", "Carol", sent) as (carol, cable):
        bob = people.open_page(stack, "bob", "Bob")
        put_document(stack, "reset-before", "Before the cut")
        expect(carol.notifications("Before the cut")).to_have_count(1)

        cut(carol, cable)
        for n in range(1, REPLAY_LIMIT + 2):  # one more than the server replays
            put_document(stack, f"reset-{n}", f"Missed {n}")
            expect(bob.notifications(f"Missed {n}")).to_have_count(1)
        run_page_clock(carol, 5)
        reconnect(carol, cable)

        expect(carol.testid("missed")).to_have_text(
            "Some notifications sent while this page was offline could not be caught up on.")
        wait_until(lambda: len([f for f in sent if f.get("action") == "subscribe"
                                and f.get("stream") == "notifications"]) >= 3, "the subscribe after the reset")
        subscribes = [f for f in sent if f.get("action") == "subscribe" and f.get("stream") == "notifications"]
        assert [("since" in f) for f in subscribes] == [False, True, False], subscribes
        # Live again: the next write reaches the page, once; none of the missed ones came.
        put_document(stack, "reset-after", "After the reset")
        expect(carol.notifications("After the reset")).to_have_count(1)
        assert toasts(carol) == ["New document: Before the cut", "New document: After the reset"]
