"""Truncated rosters, as the server sends them: list entries carry at most `LIST_NAMES`
(3) users per phase, a document's roster at most `ROSTER_LIMIT` (lowered to 2 here, in
the stack's environment, so a handful of real pages exceed it), both with the exact
`counts`. The page lists who it was given, says "and N more", and puts the count in
`data-count`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from devtools.stack.process import StackProcess
from tests.browser.conftest import People, start_stack

ROSTER_LIMIT = 2
VIEWERS = ("ann", "ben", "cat", "dan")  # four: one more than LIST_NAMES


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    running = start_stack(env={"ROSTER_LIMIT": str(ROSTER_LIMIT)})
    try:
        yield running
    finally:
        running.stop()


def test_four_viewers_show_three_names_and_one_more_on_the_list(stack, people: People):
    for user in VIEWERS:
        people.open_page(stack, user, user.title(), hash="#/doc/roadmap")  # opening it is viewing it
    watcher = people.open_page(stack, "zoe", "Zoe")  # the list only
    badge = watcher.list_phase("roadmap", "view")
    expect(badge).to_have_attribute("data-count", "4")
    expect(badge.get_by_test_id("more-view")).to_have_text(" and 1 more")
    expect(badge.locator(".person")).to_have_count(3)
    expect(watcher.list_phase("roadmap", "edit")).to_have_attribute("data-count", "0")
    expect(watcher.list_phase("roadmap", "edit")).to_have_text("edit nobody")


def test_a_roster_past_roster_limit_says_how_many_more_and_counts_everyone(stack, people: People):
    pages = [people.open_page(stack, user, user.title(), hash="#/doc/welcome") for user in VIEWERS[:3]]
    watcher = pages[0]
    row = watcher.page_phase("view")
    expect(row).to_have_attribute("data-count", "3")
    expect(row.locator(".person")).to_have_count(ROSTER_LIMIT)
    expect(row.get_by_test_id("more-view")).to_have_text(" and 1 more")
    # One more viewer: the count follows, the names stay at the limit.
    people.open_page(stack, VIEWERS[3], VIEWERS[3].title(), hash="#/doc/welcome")
    expect(row).to_have_attribute("data-count", "4")
    expect(row.get_by_test_id("more-view")).to_have_text(" and 2 more")
    expect(row.locator(".person")).to_have_count(ROSTER_LIMIT)
    # Back under the limit: no "more" at all.
    pages[1].page.get_by_role("link", name="← All documents").click()
    pages[2].page.get_by_role("link", name="← All documents").click()
    expect(row).to_have_attribute("data-count", "2")
    expect(row.get_by_test_id("more-view")).to_have_count(0)
    expect(row.locator(".person")).to_have_count(2)
