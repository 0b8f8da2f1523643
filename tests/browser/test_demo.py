"""The demo page in a real Chromium against the local stack: counter, presence,
notifications, the "another AWS service" form, and a gateway killed and restarted.

Two users are two browser contexts (separate storage, separate sockets), side by side.
"""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.browser.conftest import (
    People,
    delete_document,
    dynamodb,
    ports,
    put_document,
    screenshot,
    start_stack,
)

PHASES = ("view", "edit", "review")


def live_connections(stack, user: str) -> int:
    """Connections of `user` registered in the stack's connections table."""
    client = dynamodb(stack)
    pages = client.get_paginator("scan").paginate(
        TableName=stack.tables["ConnectionsTable"], FilterExpression="sk = :meta AND uid = :uid",
        ExpressionAttributeValues={":meta": {"S": "meta"}, ":uid": {"S": user}})
    return sum(len(page["Items"]) for page in pages)


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    """A bounded wait for a condition outside the page (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_counter_two_users_then_one(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice")
    expect(alice.users_count).to_have_text("1")
    bob = people.open_page(stack, "bob", "Bob")
    expect(bob.users_count).to_have_text("2")
    expect(alice.users_count).to_have_text("2")
    screenshot(alice.page, "counter-two-users.png", tmp_path)
    bob.close()
    expect(alice.users_count).to_have_text("1")


def test_second_tab_of_one_user_counts_once(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    expect(alice.users_count).to_have_text("1")
    # Same user, another context (another tab): still one user online.
    again = people.open_page(stack, "alice", "Alice")
    expect(again.users_count).to_have_text("1")
    expect(alice.users_count).to_have_text("1")


def test_anonymous_sees_public_documents_and_cannot_enter(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    anon = people.open_page(stack, hash="#/doc/welcome")
    expect(anon.testid("signed-in-as")).to_have_text("Anonymous")
    expect(anon.users_count).to_have_text("1")  # Alice; anonymous connections are not counted
    expect(anon.testid("doc-welcome")).to_be_visible()
    expect(anon.testid("doc-roadmap")).to_be_visible()
    expect(anon.testid("doc-design-review")).to_have_count(0)  # private
    expect(anon.testid("doc-alice-notes")).to_have_count(0)
    for phase in PHASES:
        expect(anon.testid(f"enter-{phase}")).to_be_disabled()
    # Alice sees her private documents.
    expect(alice.testid("doc-alice-notes")).to_be_visible()
    expect(alice.testid("doc-design-review")).to_be_visible()


def test_presence_badges_reach_the_other_user(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/welcome")
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/welcome")
    for person in (alice, bob):
        # Opening the page is viewing it; nobody edits or reviews yet.
        expect(person.page_phase("view")).to_contain_text("Alice (alice)")
        expect(person.page_phase("view")).to_contain_text("Bob (bob)")
        for phase in ("edit", "review"):
            expect(person.page_phase(phase)).to_have_text("nobody")
            expect(person.testid(f"leave-{phase}")).to_be_disabled()

    enter = alice.testid("enter-edit")
    expect(enter).to_be_enabled()
    enter.click()
    expect(bob.list_phase("welcome", "edit")).to_have_text("edit Alice (alice)")
    expect(bob.page_phase("edit")).to_have_text("Alice (alice)")
    expect(alice.testid("leave-edit")).to_be_enabled()
    expect(alice.testid("enter-edit")).to_be_disabled()

    bob.testid("enter-edit").click()
    expect(alice.page_phase("edit")).to_have_text("Alice (alice), Bob (bob)")
    expect(alice.list_phase("welcome", "edit")).to_contain_text("Bob (bob)")

    bob.testid("enter-review").click()
    expect(alice.list_phase("welcome", "review")).to_have_text("review Bob (bob)")
    expect(alice.page_phase("review")).to_have_text("Bob (bob)")
    screenshot(alice.page, "document-page.png", tmp_path)

    # Leaving takes the badge away again; other phases stay.
    alice.testid("leave-edit").click()
    expect(bob.page_phase("edit")).to_have_text("Bob (bob)")
    expect(bob.list_phase("welcome", "edit")).not_to_contain_text("Alice")
    expect(bob.page_phase("review")).to_have_text("Bob (bob)")

    # Navigating away from the document page leaves its phases, viewing included.
    bob.page.get_by_role("link", name="← All documents").click()
    expect(alice.page_phase("edit")).to_have_text("nobody")
    expect(alice.page_phase("review")).to_have_text("nobody")
    expect(alice.page_phase("view")).to_have_text("Alice (alice)")
    expect(alice.list_phase("welcome", "review")).to_have_text("review nobody")


def test_presence_on_the_list_from_another_document(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/roadmap")
    bob = people.open_page(stack, "bob", "Bob")  # the list only
    expect(bob.list_phase("roadmap", "view")).to_have_text("view Alice (alice)")  # she opened it
    alice.testid("enter-review").click()
    expect(bob.list_phase("roadmap", "review")).to_have_text("review Alice (alice)")
    screenshot(bob.page, "document-list.png", tmp_path)
    # Anonymous visitors see presence on public documents too.
    anon = people.open_page(stack)
    expect(anon.testid("doc-roadmap")).to_be_visible()
    expect(anon.list_phase("roadmap", "view")).to_have_text("view Alice (alice)")


def test_notifications_public_to_both_private_to_its_reader(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice")
    bob = people.open_page(stack, "bob", "Bob")

    put_document(stack, "launch-plan", "Launch plan", abstract="When and how we ship.")
    for person in (alice, bob):
        toast = person.notifications("Launch plan")
        expect(toast).to_have_count(1)
        expect(toast).to_contain_text("New document: Launch plan")
        expect(toast).to_contain_text("When and how we ship.")
        # The new document joins the list too.
        expect(person.testid("doc-launch-plan")).to_be_visible()

    # Private to Bob (owned by Carol): Bob is told, Alice is not.
    put_document(stack, "bob-secret", "Bob's secret", visibility="private", owner="carol", readers=["bob"])
    expect(bob.notifications("Bob's secret")).to_have_count(1)
    expect(bob.testid("doc-bob-secret")).to_be_visible()
    # Absence by order: a later public write reaches Alice; the private one would have come first.
    put_document(stack, "marker-1", "Marker one")
    expect(alice.notifications("Marker one")).to_have_count(1)
    expect(bob.notifications("Marker one")).to_have_count(1)
    expect(alice.notifications("Bob's secret")).to_have_count(0)
    expect(alice.testid("doc-bob-secret")).to_have_count(0)
    screenshot(bob.page, "notifications.png", tmp_path)

    # Update and delete are notified too; clicking a notification opens the document.
    put_document(stack, "launch-plan", "Launch plan v2", abstract="Moved to Tuesday.")
    updated = alice.notifications("Document updated: Launch plan v2")
    expect(updated).to_have_count(1)
    updated.get_by_role("link").click()
    expect(alice.page).to_have_url(f"{stack.web_url}/?user=alice&name=Alice#/doc/launch-plan")
    expect(alice.testid("doc-page").get_by_role("heading", level=2)).to_have_text("Launch plan v2")
    expect(alice.testid("doc-page")).to_contain_text("Moved to Tuesday.")

    delete_document(stack, "launch-plan")
    expect(bob.notifications("Document removed: Launch plan v2")).to_have_count(1)
    expect(bob.testid("doc-launch-plan")).to_have_count(0)
    # Alice was on its page: it says so.
    expect(alice.testid("doc-page")).to_contain_text("deleted")


def test_another_aws_service_form_writes_a_document(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice")
    bob = people.open_page(stack, "bob", "Bob")
    form = alice.page.locator("#service-form")
    form.get_by_label("Slug").fill("from-the-form")
    form.get_by_label("Title").fill("From the form")
    form.get_by_label("Abstract").fill("Written by the stand-in for another AWS service.")
    form.get_by_label("Visibility").select_option("private")
    form.get_by_label("Readers").fill("bob")
    form.get_by_role("button", name="Write to DynamoDB").click()
    expect(alice.page.locator("#service-result")).to_contain_text("Written")
    # Private, owner Alice (the signed-in writer), reader Bob: both are told.
    expect(bob.notifications("New document: From the form")).to_have_count(1)
    expect(alice.notifications("New document: From the form")).to_have_count(1)
    screenshot(alice.page, "another-aws-service.png", tmp_path)
    form.get_by_role("button", name="Delete it").click()
    expect(bob.notifications("Document removed: From the form")).to_have_count(1)


def test_gateway_killed_and_restarted(browser, people: People, tmp_path):
    first = start_stack()
    secret, fixed = first.info["jwt_secret"], ports(first)
    second = None
    try:
        alice = people.open_page(first, "alice", "Alice", hash="#/doc/welcome")
        bob = people.open_page(first, "bob", "Bob")
        expect(alice.users_count).to_have_text("2")
        alice.testid("enter-edit").click()
        expect(bob.list_phase("welcome", "edit")).to_have_text("edit Alice (alice)")
        alice.page.evaluate("window.__sameDocument = true")

        first.stop()
        expect(alice.state).to_have_text("reconnecting")
        expect(bob.state).to_have_text("reconnecting")
        screenshot(alice.page, "reconnecting.png", tmp_path)

        second = start_stack(secret=secret, **fixed)
        # The page reconnects by itself (backoff with jitter: allow for a few attempts).
        expect(alice.state).to_have_text("open", timeout=45_000)
        expect(bob.state).to_have_text("open", timeout=45_000)
        assert alice.page.evaluate("window.__sameDocument === true"), "the page reloaded instead of reconnecting"
        # Re-subscribed and re-entered: the new gateway's state is right again.
        expect(alice.users_count).to_have_text("2")
        expect(bob.list_phase("welcome", "edit")).to_have_text("edit Alice (alice)")
        expect(alice.page_phase("edit")).to_have_text("Alice (alice)")
        bob.close()
        expect(alice.users_count).to_have_text("1")  # only a live `users` subscription says so
        put_document(second, "after-restart", "After the restart")
        expect(alice.notifications("After the restart")).to_have_count(1)
    finally:
        if second is not None:
            second.stop()
        first.stop()


def test_proactive_renewal_never_flickers_presence(stack, people: People):
    """The 2-hour renewal, brought forward: `reconnect()` on an open client opens the new
    socket, replays on it, then closes the old one. The other user must never see Alice
    leave, nor the counter drop."""
    alice = people.open_page(stack, "alice", "Alice", hash="#/doc/welcome")
    bob = people.open_page(stack, "bob", "Bob", hash="#/doc/welcome")
    alice.testid("enter-edit").click()
    expect(bob.page_phase("edit")).to_have_text("Alice (alice)")
    expect(bob.list_phase("welcome", "edit")).to_have_text("edit Alice (alice)")
    expect(bob.users_count).to_have_text("2")
    # Bob's page records every moment Alice is missing or the counter is not 2.
    bob.page.evaluate("""() => {
        window.__flicker = [];
        const check = () => {
            const page = document.querySelector('[data-testid=doc-page] [data-testid=phase-edit]');
            const badge = document.querySelector('[data-testid=doc-welcome] [data-testid=phase-edit]');
            const users = document.querySelector('[data-testid=users-count]').textContent;
            if (!page || !page.textContent.includes('Alice')) window.__flicker.push('page: ' + (page && page.textContent));
            if (!badge || !badge.textContent.includes('Alice')) window.__flicker.push('list: ' + (badge && badge.textContent));
            if (users !== '2') window.__flicker.push('users: ' + users);
        };
        new MutationObserver(check).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    alice.page.evaluate("""() => new Promise((resolve) => {
        window.__renewed = false;
        window.realtime.on('renewed', () => { window.__renewed = true; resolve(); });
        window.__firstSocket = window.realtime.socket;
        window.realtime.reconnect();
    })""")
    assert alice.page.evaluate("window.realtime.socket !== window.__firstSocket"), "no new socket"
    expect(alice.state).to_have_text("open")
    # Wait until the gateway has run the old socket's $disconnect (one connection of Alice's
    # left in the table), then for a change made after it to reach Bob: any flicker the
    # disconnect caused was rendered before that.
    wait_for(lambda: live_connections(stack, "alice") == 1, "the old socket's $disconnect")
    alice.testid("enter-review").click()
    expect(bob.page_phase("review")).to_have_text("Alice (alice)")
    assert bob.page.evaluate("window.__flicker") == []
    expect(bob.page_phase("edit")).to_have_text("Alice (alice)")
    expect(bob.users_count).to_have_text("2")


# Records what the page shows through the Notification API (headless Chromium displays
# nothing), keeping the real constructor's permission.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__shown = [];
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.__shown.push({title, body: options && options.body, notification: this});
    }
  }
  Object.defineProperty(Recorded, 'permission', {get: () => Real.permission});
  Recorded.requestPermission = Real.requestPermission.bind(Real);
  window.Notification = Recorded;
})();
"""


def test_browser_notifications_when_permitted(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice", permissions=["notifications"],
                             init_script=RECORD_NOTIFICATIONS)
    assert alice.page.evaluate("Notification.permission") == "granted"
    put_document(stack, "system-note", "System note", abstract="Shown by the browser.")
    # Not wait_for_function: Playwright evaluates its predicate with eval, which the page's
    # Content-Security-Policy (script-src 'self') refuses.
    wait_for(lambda: alice.page.evaluate("window.__shown.some((n) => n.title.includes('System note'))"),
             "the browser notification")
    shown = alice.page.evaluate("window.__shown.map(({title, body}) => ({title, body}))")
    assert {"title": "New document: System note", "body": "Shown by the browser."} in shown
    expect(alice.notifications()).to_have_count(0)  # no in-page toast: the browser shows it
    # Clicking the browser's notification opens the document.
    alice.page.evaluate("window.__shown.find((n) => n.title.includes('System note')).notification.onclick()")
    expect(alice.testid("doc-page").get_by_role("heading", level=2)).to_have_text("System note")
