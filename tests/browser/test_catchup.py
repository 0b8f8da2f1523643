"""Catch-up in a real browser (issue 14): a page cut off from the gateway for 30 s while
three documents change and an alert is published to its user sees all four when it is
back, once each and in order, and nothing it had seen before.

The cut is real (a TCP relay between the page and the gateway, `network.Cable`: open
connections reset, new handshakes reset). The page's clock is Playwright's, so the 30 s
of reconnect attempts take a few seconds of wall time: the client's backoff, its
refusal count and its `refusedAfterMs` all run on it. The page is served through a local
proxy whose Content-Security-Policy allows the relay (the demo's own allows only the
gateway's port).
"""

from __future__ import annotations

import time

from playwright.sync_api import expect

from devtools.stack.web_security import content_security_policy
from tests.browser.conftest import People, header_proxy, put_document
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


def toasts(person) -> list[str]:
    return person.page.evaluate("window.__toasts")


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """A bounded wait outside the page (Playwright's wait_for_function uses eval, which the
    page's Content-Security-Policy refuses)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def run_page_clock(person, seconds: int) -> None:
    """Let `seconds` pass on the page's clock, a second at a time, with a little real time
    after each for what its timers start (a token fetch, a handshake the cable resets)."""
    for _ in range(seconds):
        person.page.clock.run_for(1000)
        time.sleep(0.1)


def test_a_page_cut_off_for_30_seconds_sees_what_it_missed_once_and_in_order(stack, people: People):
    def prepare(page) -> None:
        page.clock.install()

    with Cable(stack.ws_url) as cable, \
            header_proxy(stack.web_url, {"Content-Security-Policy": content_security_policy(cable.url)}) as served:
        alice = people.open_page(stack, "alice", "Alice", base_url=served, query={"ws": cable.url},
                                 before_goto=prepare, demo_settings={"maxToasts": 10})
        expect(alice.page.locator("body")).to_have_attribute("data-alerts", "on")
        # Her other tab, on another network: it hears the alert live (so it was logged).
        elsewhere = people.open_page(stack, "alice", "Alice")
        bob = people.open_page(stack, "bob", "Bob")
        alice.page.evaluate(RECORD_TOASTS)

        put_document(stack, "catchup-before", "Before the cut")
        expect(alice.notifications("Before the cut")).to_have_count(1)

        alice.page.clock.pause_at(alice.page.evaluate("Date.now()") + 1)
        cable.cut()
        expect(alice.state).to_have_text("reconnecting")
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

        cable.restore()
        deadline = time.monotonic() + 60
        while alice.state.inner_text() != "open":
            assert time.monotonic() < deadline, "the page never came back"
            run_page_clock(alice, 1)
        alice.page.clock.resume()

        missed = ["New document: Changed while away 1", "New document: Changed while away 2",
                  "New document: Changed while away 3", "Alert"]
        wait_until(lambda: len(toasts(alice)) >= 5, "what the page missed")
        # A write after the catch-up arrives after it: nothing else came in between, or later.
        put_document(stack, "catchup-after", "After the cut")
        wait_until(lambda: len(toasts(alice)) >= 6, "the write after the cut")
        assert toasts(alice) == ["New document: Before the cut", *missed, "New document: After the cut"]
        expect(alice.page.locator("[data-action=alert]")).to_contain_text("Your export is ready")
