"""The server's limits as a page meets them, lowered in the stack's environment so a few
pages reach them: too many connections for one user (`MAX_CONNECTIONS_PER_USER`: the
handshake is refused with 429, which a browser cannot tell from any other failure) ends
in `refused` with the Retry button; too many frames (`FRAME_RATE`/`FRAME_BURST`) is
answered `rate_limited`, and the page says so and recovers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from devtools.stack.process import StackProcess
from tests.browser.conftest import People, start_stack

MAX_CONNECTIONS = 2
FRAME_BURST = 10
#: One frame back every 10 s: the burst below is limited however slowly the stack
#: answers it (it would need over 100 s to refill), and the page recovers within seconds.
FRAME_RATE = 0.1


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    running = start_stack(env={"MAX_CONNECTIONS_PER_USER": str(MAX_CONNECTIONS), "FRAME_RATE": str(FRAME_RATE),
                               "FRAME_BURST": str(FRAME_BURST)})
    try:
        yield running
    finally:
        running.stop()


def test_a_tab_past_max_connections_per_user_ends_refused_until_one_closes_and_retry(stack, people: People):
    tabs = [people.open_page(stack, "alice", "Alice") for _ in range(MAX_CONNECTIONS)]
    urls: list[str] = []
    third = people.open_page(stack, "alice", "Alice", wait_open=False,
                             before_goto=lambda page: page.on("websocket", lambda ws: urls.append(ws.url)))
    expect(third.state).to_have_text("refused", timeout=60_000)
    assert len(urls) == 5, urls  # maxRefusals handshakes, then it stopped
    expect(third.testid("retry-connection")).to_be_visible()
    expect(third.page.locator("#notice")).to_contain_text("too many connections")
    for tab in tabs:
        expect(tab.state).to_have_text("open")  # the others are not disturbed

    tabs[0].close()
    expect(tabs[1].users_count).to_have_text("1")  # still one user: her other tab
    third.testid("retry-connection").click()
    expect(third.state).to_have_text("open")
    expect(third.testid("retry-connection")).to_be_hidden()
    expect(third.page.locator("body")).to_have_attribute("data-notifications", "on")


def test_a_burst_of_frames_is_answered_rate_limited_and_the_page_says_so_then_recovers(stack, people: People):
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/welcome")
    expect(bob.testid("comment-form")).to_be_visible()
    bob.testid("comment-body").fill("Sent too fast")
    # Twice the burst at once (the page's own sends; the server answers each beyond the
    # allowance with an error frame), then the comment, behind them on the same socket.
    bob.page.evaluate(f"() => {{ for (let i = 0; i < {2 * FRAME_BURST}; i += 1) window.realtime.send({{action: 'heartbeat'}}); }}")
    bob.testid("comment-submit").click()
    expect(bob.testid("comment-error")).to_have_text("Too many messages at once: wait a moment and try again.")
    expect(bob.state).to_have_text("open")  # limited, not disconnected
    # As it says: a moment later the same comment goes through (refused frames cost nothing).
    deadline = time.monotonic() + 60
    while bob.testid("comment-list").locator("li.comment").filter(has_text="Sent too fast").count() == 0:
        assert time.monotonic() < deadline, "the allowance never came back"
        bob.page.wait_for_timeout(2_000)
        if bob.testid("comment-body").input_value():
            bob.testid("comment-submit").click()
    expect(bob.testid("comment-error")).to_be_hidden()
