"""The demo as the seed's concurrency monitor (issue 15): opening a document is viewing it,
the list reads by title, names come with the user id beside them, the seed's image exists."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import People, put_document


def test_opening_a_document_enters_view_and_leaving_it_leaves_view(stack, people: People):
    bob = people.open_page(stack, "bob", "Bob")
    expect(bob.list_phase("release-notes", "view")).to_have_text("view nobody")
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/release-notes")
    expect(bob.list_phase("release-notes", "view")).to_have_text("view Alice (alice)")
    expect(alice.page_phase("view")).to_have_text("Alice (alice)")
    expect(alice.testid("leave-view")).to_be_enabled()
    alice.page.get_by_role("link", name="← All documents").click()
    expect(bob.list_phase("release-notes", "view")).to_have_text("view nobody")


def test_opening_another_document_moves_the_view(stack, people: People):
    bob = people.open_page(stack, "bob", "Bob")
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/release-notes")
    expect(bob.list_phase("release-notes", "view")).to_have_text("view Alice (alice)")
    alice.page.goto(alice.page.url.replace("#/doc/release-notes", "#/doc/welcome"))
    expect(bob.list_phase("welcome", "view")).to_have_text("view Alice (alice)")
    expect(bob.list_phase("release-notes", "view")).to_have_text("view nobody")


def test_an_anonymous_visitor_opening_a_document_only_watches(stack, people: People):
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/roadmap")
    expect(bob.page_phase("view")).to_have_text("Bob (bob)")
    anon = people.open_page(stack, hash="#/doc/roadmap")
    expect(anon.page_phase("view")).to_have_text("Bob (bob)")
    expect(anon.testid("enter-view")).to_be_disabled()
    expect(anon.page.locator(".problem:visible")).to_have_count(0)  # no failed enter shown


def test_a_display_name_is_shown_with_the_user_id_beside_it(stack, people: People):
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/welcome")
    # Mallory calls herself "Bob": the id beside the name tells them apart.
    people.open_page(stack, "mallory", "Bob", hash="#/doc/welcome")
    expect(bob.page_phase("view")).to_contain_text("Bob (bob)")
    expect(bob.page_phase("view")).to_contain_text("Bob (mallory)")
    expect(bob.list_phase("welcome", "view")).to_contain_text("Bob (mallory)")


def test_a_user_without_a_name_is_shown_by_id_once(stack, people: People):
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/welcome")
    people.open_page(stack, "carol", hash="#/doc/welcome")  # the name defaults to the id
    expect(bob.page_phase("view")).to_contain_text("carol")
    expect(bob.page_phase("view")).not_to_contain_text("carol (carol)")


def test_documents_are_listed_by_title_and_a_new_one_takes_its_place(stack, people: People):
    put_document(stack, "aaa-zulu", "Zulu")  # first by slug, last by title
    anon = people.open_page(stack)
    expect(anon.testid("doc-aaa-zulu")).to_be_visible()
    put_document(stack, "zzz-alpha", "Alpha")  # last by slug, first by title
    expect(anon.testid("doc-zzz-alpha")).to_be_visible()
    titles = anon.page.locator("[data-testid^=doc-] > a").all_inner_texts()
    assert titles == sorted(titles, key=str.casefold), titles
    assert titles[0] == "Alpha" and titles[-1] == "Zulu", titles


def test_the_home_page_says_where_notifications_appear(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    home = alice.page.locator("#page")
    expect(home).to_contain_text("Notifications panel")
    expect(home).not_to_contain_text("appear here")
    expect(alice.page.get_by_role("heading", name="Notifications")).to_be_visible()


def test_the_seeded_welcome_image_is_served(stack, people: People):
    anon = people.open_page(stack)
    response = anon.page.request.get(f"{stack.web_url}/static/welcome.png")
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert response.body()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_abstract_and_image_show_from_the_document_snapshot(stack, people: People):
    """A page that heard no notification about the document yet: its fields come with the
    `document` subscribe's snapshot."""
    anon = people.open_page(stack, hash="#/doc/welcome")  # anonymous: no notifications at all
    expect(anon.testid("doc-abstract")).to_have_text("Start here: what this demo shows.")
    image = anon.testid("doc-image")
    expect(image).to_have_attribute("src", f"{stack.web_url}/static/welcome.png")
    assert image.evaluate("(img) => img.complete && img.naturalWidth > 0"), "the image did not load"


def test_display_names_are_shown_as_the_server_cleaned_them(stack, people: People):
    """The server folds look-alikes (NFKC), drops control, bidi and zero-width characters,
    makes every run of spaces one, and caps the name at 64 characters."""
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/welcome")
    raw = "\u202eEvil\u200b \uff2d\uff41\uff4c\uff4c\uff4f\uff52\uff59\t\t" + "x" * 100  # RLO, ZWSP, full-width
    people.open_page(stack, "mallory", raw, hash="#/doc/welcome")
    shown = ("Evil Mallory " + "x" * 100)[:64]
    name = bob.page_phase("view").locator(".person").filter(has_text="(mallory)").locator(".name")
    expect(name).to_have_text(shown)
    text = name.inner_text()
    assert len(text) == 64 and "\u202e" not in text and "\u200b" not in text, repr(text)
    expect(bob.list_phase("welcome", "view").locator(".name").filter(has_text="Evil Mallory")).to_have_text(shown)
