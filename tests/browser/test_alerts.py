"""Alerts in the demo (issue 14): the "send an alert to a user" form stands in for another
AWS service publishing a `realtime.publish` event (`POST /dev/alerts` puts it on the local
bus; the template's rule runs the publish function), and the pages of that user show it
as a toast."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import People, screenshot


def send_alert(person, to: str, text: str, title: str = "") -> None:
    form = person.testid("alert-form")
    form.get_by_label("To user").fill(to)
    form.get_by_label("Title").fill(title)
    form.get_by_label("Text").fill(text)
    person.testid("alert-send").click()


def alerts(person, text: str | None = None):
    found = person.page.locator("[data-testid=notification][data-action=alert]")
    return found.filter(has_text=text) if text else found


def test_an_alert_from_the_form_reaches_every_page_of_that_user_and_nobody_else(stack, people: People, tmp_path):
    alice = people.open_page(stack, "alice", "Alice")
    alice_again = people.open_page(stack, "alice", "Alice", hash="#/doc/welcome")  # another tab
    bob = people.open_page(stack, "bob", "Bob")
    for person in (alice, alice_again, bob):
        expect(person.page.locator("body")).to_have_attribute("data-alerts", "on")

    send_alert(bob, "alice", "Your export is ready", title="Exports")
    expect(bob.testid("alert-result")).to_contain_text("Published: event ")
    for tab in (alice, alice_again):
        expect(alerts(tab, "Your export is ready")).to_have_count(1)
        expect(alerts(tab, "Your export is ready")).to_contain_text("Alert: Exports")
    expect(alice_again.users_count).to_have_text("2")  # for the screenshot: the page settled
    expect(alice_again.page_phase("view")).to_have_text("Alice (alice)")
    expect(alice_again.list_phase("welcome", "view")).to_have_text("view Alice (alice)")
    screenshot(alice_again.page, "alerts.png", tmp_path)
    # Absence by order: Bob's own alert comes after Alice's would have.
    send_alert(alice, "bob", "Meeting moved")
    expect(alerts(bob, "Meeting moved")).to_have_count(1)
    expect(alerts(bob)).to_have_count(1)
    expect(alerts(alice)).to_have_count(1)


def test_the_alert_form_starts_with_the_signed_in_user(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    expect(alice.testid("alert-to")).to_have_value("alice")
    send_alert(alice, "alice", "Note to self")
    expect(alerts(alice, "Note to self")).to_have_count(1)
    expect(alerts(alice, "Note to self")).to_contain_text("Alert")


def test_an_alert_is_text_never_markup(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    send_alert(alice, "alice", '<img src=x data-injected="1"> & <b>bold</b>')
    toast = alerts(alice, "<b>bold</b>")
    expect(toast).to_have_count(1)
    expect(alice.page.locator("[data-injected]")).to_have_count(0)


def test_the_form_says_when_the_bus_did_not_take_the_event(stack, people: People):
    """A bus that refuses `PutEvents` cannot be provoked on the local stack: the answer the
    web server gives then (502) is stood in for at the network layer."""
    alice = people.open_page(stack, "alice", "Alice")
    alice.page.route("**/dev/alerts", lambda route: route.fulfill(
        status=502, json={"error": "ThrottlingException: rate exceeded"}))
    send_alert(alice, "alice", "Will not arrive")
    expect(alice.testid("alert-result")).to_have_text(
        "The event bus did not take it (502): ThrottlingException: rate exceeded")
    expect(alice.testid("alert-result")).to_have_attribute("data-ok", "no")


def test_an_anonymous_visitor_gets_no_alerts_but_may_send_one(stack, people: People):
    alice = people.open_page(stack, "alice", "Alice")
    anon = people.open_page(stack)
    expect(anon.page.locator("body")).not_to_have_attribute("data-alerts", "on")
    expect(anon.page.locator("#notice")).to_be_hidden()  # not subscribing is not an error
    send_alert(anon, "alice", "From a service, not a person")
    expect(alerts(alice, "From a service, not a person")).to_have_count(1)
    expect(alerts(anon)).to_have_count(0)
