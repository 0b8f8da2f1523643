"""Comments on the document page, two users in two browser contexts against the local
stack: live for both, only your own to edit or delete, a conflict between two tabs, the
2,000-character limit on both sides, and read-only for anonymous visitors."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import People, screenshot

DOC = "#/doc/welcome"


def add_comment(person, body: str) -> None:
    person.testid("comment-body").fill(body)
    person.testid("comment-submit").click()


def comment(person, text: str):
    """The comment showing `text` (its element carries the id, author and version)."""
    return person.testid("comment-list").locator("li.comment").filter(has_text=text)


def comment_id(person, text: str) -> str:
    expect(comment(person, text)).to_have_count(1)
    return comment(person, text).get_attribute("data-testid").removeprefix("comment-")


def test_a_comment_reaches_the_other_user_live_with_its_author(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice", hash=DOC)
    bob = people.open_page(stack, "bob", "Bob", hash=DOC)
    expect(bob.testid("comment-form")).to_be_visible()
    add_comment(alice, "First, from Alice")
    expect(comment(bob, "First, from Alice")).to_have_count(1)
    expect(comment(bob, "First, from Alice")).to_have_attribute("data-author", "alice")
    expect(comment(bob, "First, from Alice").get_by_test_id("comment-author")).to_have_text("alice")
    expect(alice.testid("comment-body")).to_have_value("")
    # Alice's own copy is confirmed by the notification (its time replaces "sending…").
    expect(comment(alice, "First, from Alice").locator("time")).to_have_count(1)
    add_comment(bob, "Then Bob")
    expect(comment(alice, "Then Bob")).to_have_count(1)
    texts = alice.testid("comment-list").get_by_test_id("comment-text").all_inner_texts()
    assert texts[-2:] == ["First, from Alice", "Then Bob"], texts  # oldest first
    expect(alice.page_phase("view")).to_have_text("Alice (alice), Bob (bob)")  # for the screenshot
    alice.testid("comment-form").scroll_into_view_if_needed()
    screenshot(alice.page, "comments.png", tmp_path)


def test_only_the_author_may_edit_or_delete_and_both_changes_reach_the_other_user(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice", hash=DOC)
    bob = people.open_page(stack, "bob", "Bob", hash=DOC)
    add_comment(alice, "Alice's to change")
    cid = comment_id(bob, "Alice's to change")
    expect(bob.testid(f"comment-edit-{cid}")).to_have_count(0)
    expect(bob.testid(f"comment-delete-{cid}")).to_have_count(0)

    expect(alice.testid(f"comment-edit-{cid}")).to_be_enabled()
    alice.testid(f"comment-edit-{cid}").click()
    alice.testid(f"comment-edit-body-{cid}").fill("Alice's, changed")
    alice.testid(f"comment-save-{cid}").click()
    expect(comment(bob, "Alice's, changed")).to_have_attribute("data-version", "2")
    expect(comment(alice, "Alice's, changed")).to_have_attribute("data-version", "2")

    # The server says the same as the page: Bob's page asking anyway is refused.
    code = bob.page.evaluate("""(id) => window.realtime.binding('comments')
        .delete({document: 'welcome', id}, 2).then(() => 'deleted', (e) => e.code)""", cid)
    assert code == "forbidden"
    expect(comment(alice, "Alice's, changed")).to_have_count(1)

    alice.testid(f"comment-delete-{cid}").click()
    expect(bob.testid(f"comment-{cid}")).to_have_count(0)
    expect(alice.testid(f"comment-{cid}")).to_have_count(0)


def test_an_edit_from_a_stale_tab_is_a_conflict_and_saves_nothing(stack, people: People):
    first = people.open_page(stack, "alice", "Alice", hash=DOC)
    second = people.open_page(stack, "alice", "Alice", hash=DOC)  # her other tab
    bob = people.open_page(stack, "bob", "Bob", hash=DOC)
    add_comment(first, "Version one")
    cid = comment_id(second, "Version one")
    second.testid(f"comment-edit-{cid}").click()  # starts from version 1
    second.testid(f"comment-edit-body-{cid}").fill("Second tab's edit of version one")

    first.testid(f"comment-edit-{cid}").click()
    first.testid(f"comment-edit-body-{cid}").fill("Version two, from the first tab")
    first.testid(f"comment-save-{cid}").click()
    expect(second.testid(f"comment-{cid}")).to_have_attribute("data-version", "2")  # it heard of it

    second.testid(f"comment-save-{cid}").click()
    expect(second.testid("comment-error")).to_contain_text("Someone changed this comment since it was shown")
    expect(second.testid(f"comment-{cid}").get_by_test_id("comment-text")).to_have_text("Version two, from the first tab")
    # Nothing was saved: a later comment reaches Bob after the first tab's version, and the
    # second tab's never does.
    add_comment(first, "Marker after the conflict")
    expect(comment(bob, "Marker after the conflict")).to_have_count(1)
    expect(bob.testid(f"comment-{cid}")).to_have_attribute("data-version", "2")
    expect(comment(bob, "Second tab's edit")).to_have_count(0)


def test_a_comment_is_at_most_2000_characters_in_the_page_and_on_the_server(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice", hash=DOC)
    bob = people.open_page(stack, "bob", "Bob", hash=DOC)
    alice.testid("comment-body").fill("é" * 2001)  # characters, not bytes: 4,002 bytes of UTF-8
    expect(alice.testid("comment-remaining")).to_have_text("1 character too many")
    expect(alice.testid("comment-submit")).to_be_disabled()
    # A page that skips the check is refused by the server, and nothing is stored.
    code = alice.page.evaluate("""() => window.realtime.binding('comments')
        .create({document: 'welcome', body: 'x'.repeat(2001)}).then(() => 'created', (e) => e.code)""")
    assert code == "bad_request"

    longest = "y" * 1999 + "z"
    alice.testid("comment-body").fill(longest)
    expect(alice.testid("comment-remaining")).to_have_text("0 characters left")
    alice.testid("comment-submit").click()
    expect(comment(bob, longest)).to_have_count(1)
    assert len(comment(bob, longest).get_by_test_id("comment-text").inner_text()) == 2000
    expect(comment(bob, "x" * 2001)).to_have_count(0)


def test_an_anonymous_visitor_reads_comments_but_cannot_write_them(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice", hash=DOC)
    add_comment(alice, "Public remark")
    cid = comment_id(alice, "Public remark")
    anon = people.open_page(stack, hash=DOC)
    expect(comment(anon, "Public remark")).to_have_count(1)
    expect(anon.testid("comment-form")).to_have_count(0)
    expect(anon.testid("comments")).to_contain_text("Sign in to comment.")
    expect(anon.testid(f"comment-edit-{cid}")).to_have_count(0)
    # Live for anonymous readers too.
    add_comment(alice, "Second public remark")
    expect(comment(anon, "Second public remark")).to_have_count(1)
    code = anon.page.evaluate("""() => window.realtime.binding('comments')
        .create({document: 'welcome', body: 'anonymous'}).then(() => 'created', (e) => e.code)""")
    assert code == "unauthenticated"
