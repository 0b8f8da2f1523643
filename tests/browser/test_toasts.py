"""In-page notifications (issue 15): never over a control, a few at most, gone by themselves.

Checked on the document page, where toasts used to cover the Review phase's Enter/Leave
buttons and the "another AWS service" form, at 1280x900 and at a phone's width.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import People, put_document, screenshot

DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 900, "height": 1000}
PHONE = {"width": 390, "height": 844}

# Every visible control outside the toasts, and every toast, in page coordinates; the pairs
# whose boxes overlap (by more than a hairline).
OVERLAPS = """() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return {left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX, bottom: r.bottom + scrollY,
            label: (el.getAttribute('data-testid') || el.name || el.textContent || el.tagName).trim().slice(0, 40)};
  };
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const toasts = [...document.querySelectorAll('[data-testid=notification]')].filter(visible).map(box);
  const controls = [...document.querySelectorAll('button, input, select, textarea, a[href]')]
    .filter((el) => visible(el) && !el.closest('[data-testid=notification]')).map(box);
  const overlaps = [];
  for (const t of toasts) for (const c of controls) {
    const w = Math.min(t.right, c.right) - Math.max(t.left, c.left);
    const h = Math.min(t.bottom, c.bottom) - Math.max(t.top, c.top);
    if (w > 1 && h > 1) overlaps.push(`${t.label} over ${c.label}`);
  }
  return {toasts: toasts.length, controls: controls.length, overlaps};
}"""


def write_documents(stack, prefix: str, count: int) -> list[str]:
    titles = [f"{prefix} note {n}" for n in range(1, count + 1)]
    for n, title in enumerate(titles, 1):
        put_document(stack, f"{prefix.lower()}-note-{n}", title, abstract=f"Number {n} of a burst of writes.")
    return titles


@pytest.mark.parametrize(("viewport", "shot"), [(DESKTOP, "toasts-desktop.png"), (TABLET, None),
                                                (PHONE, "toasts-phone.png")], ids=["1280x900", "900x1000", "phone"])
def test_toasts_never_cover_a_button_or_input(stack, people: People, tmp_path, viewport, shot):
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/roadmap", viewport=viewport)
    expect(alice.testid("enter-review")).to_be_visible()
    titles = write_documents(stack, f"Burst{viewport['width']}", 8)
    expect(alice.notifications(titles[-1])).to_have_count(1)
    found = alice.page.evaluate(OVERLAPS)
    assert found["toasts"] >= 1 and found["controls"] >= 10, found
    assert found["overlaps"] == []
    # Nor does anything stick out sideways (a control off-screen is as good as covered).
    assert alice.page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    if shot:
        screenshot(alice.page, shot, tmp_path, full_page=True)


def test_at_most_three_toasts_show_newest_first(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    titles = write_documents(stack, "Capped", 6)
    expect(alice.notifications(titles[-1])).to_have_count(1)
    expect(alice.notifications()).to_have_count(3)
    expect(alice.notifications().first).to_contain_text(titles[-1])
    expect(alice.notifications(titles[0])).to_have_count(0)


# Counts toasts as they are added, whatever happens to them later.
COUNT_TOASTS = """() => {
  window.__toastsAdded = 0;
  new MutationObserver((records) => {
    for (const r of records) window.__toastsAdded += [...r.addedNodes].filter((n) => n.dataset?.testid === 'notification').length;
  }).observe(document.getElementById('toasts'), {childList: true});
}"""


def wait_until(condition, what: str, timeout: float = 15.0) -> None:
    """Polls `condition` (not Playwright's wait_for_function: it uses eval, which the page's
    Content-Security-Policy refuses)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_toasts_go_by_themselves(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice", demo_settings={"toastMs": 1500})
    alice.page.evaluate(COUNT_TOASTS)
    put_document(stack, "short-lived", "Short-lived")
    wait_until(lambda: alice.page.evaluate("window.__toastsAdded >= 1"), "a toast shown")
    expect(alice.notifications()).to_have_count(0)


def test_a_dismissed_toast_is_gone_at_once(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    put_document(stack, "dismiss-me", "Dismiss me")
    toast = alice.notifications("Dismiss me")
    expect(toast).to_have_count(1)
    toast.get_by_role("button", name="Dismiss notification").click()
    expect(toast).to_have_count(0)
