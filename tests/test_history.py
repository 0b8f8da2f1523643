"""Catch-up: streams that keep history log every message, and a subscribe with `since` replays it.

Frames of such a stream carry `cursor` beside the payload; a subscribe's `ack` carries the
cursor to replay from; `since` replays what the subscription's groups logged after it, as
live delivery decided it, then live delivery goes on; past `REPLAY_LIMIT` or the retention
the answer is `{"reset": true}` (docs/protocol.md, "Catch-up").
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from realtime import history as logs
from tests.apigw import ApiGateway
from tests.streams import Pump


@pytest.fixture
def pump(gateway: ApiGateway) -> Pump:
    return Pump(gateway.dynamodb, "documents", "comments")


def frames(gw: ApiGateway, cid: str, stream: str) -> list[dict[str, Any]]:
    return [f for f in gw.frames(cid) if f["stream"] == stream]


def subscribe(gw: ApiGateway, cid: str, stream: str = "notifications", **extra: Any) -> list[dict[str, Any]]:
    return gw.send(cid, {"action": "subscribe", "stream": stream, "id": "s", **extra})


def ack_of(replies: list[dict[str, Any]]) -> dict[str, Any]:
    (ack,) = [f["payload"] for f in replies if f["stream"] in ("ack", "error")]
    return ack


def logged(gw: ApiGateway) -> list[dict[str, Any]]:
    return gw.dynamodb.scan(TableName="history", ConsistentRead=True)["Items"]


def reconnect(gw: ApiGateway, cid: str, user: str) -> str:
    """The page's socket drops (a `$disconnect`); it comes back as a new connection."""
    gw.disconnect(cid)
    return gw.login(user, user.title())


def test_a_notification_carries_its_cursor_beside_the_payload(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    alice = gw.login("alice", "Alice")
    subscribe(gw, alice)
    gw.put_document("roadmap", "Roadmap")
    pump()
    (frame,) = frames(gw, alice, "notifications")
    assert set(frame) == {"stream", "payload", "cursor"}
    assert logs.CURSOR.fullmatch(frame["cursor"]) and len(frame["cursor"]) == 25
    assert frame["payload"]["action"] == "create" and frame["payload"]["pk"] == "roadmap"


def test_the_subscribe_ack_of_a_history_stream_carries_a_cursor_and_others_do_not(gateway: ApiGateway) -> None:
    gw = gateway
    alice = gw.login("alice")
    history_ack = ack_of(subscribe(gw, alice))
    assert set(history_ack) == {"id", "cursor"} and logs.CURSOR.fullmatch(history_ack["cursor"])
    assert ack_of(subscribe(gw, alice, "users")) == {"id": "s"}


def test_a_subscribe_with_since_replays_what_was_missed_in_order_then_live_goes_on(
        gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    bob = gw.login("bob", "Bob")
    cursor = ack_of(subscribe(gw, bob))["cursor"]
    gw.disconnect(bob)  # dropped: nothing reaches bob now
    gw.put_document("one", "One")
    gw.put_document("two", "Two")
    gw.put_document("one", "One, renamed")
    pump()

    bob = gw.login("bob", "Bob")
    replies = subscribe(gw, bob, since=cursor)
    replayed = [f for f in replies if f["stream"] == "notifications"]
    assert [(f["payload"]["action"], f["payload"]["pk"]) for f in replayed] == [
        ("create", "one"), ("create", "two"), ("update", "one")]
    assert [f["cursor"] for f in replayed] == sorted(f["cursor"] for f in replayed)
    assert replies[-1]["stream"] == "ack" and replies[-1]["payload"]["cursor"] >= replayed[-1]["cursor"]

    gw.put_document("three", "Three")
    pump()
    live = frames(gw, bob, "notifications")[-1]
    assert (live["payload"]["pk"], live["cursor"] > replayed[-1]["cursor"]) == ("three", True)


def test_the_acks_cursor_replays_nothing_sent_before_the_subscribe(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    gw.put_document("before", "Before")
    pump()
    bob = gw.login("bob")
    cursor = ack_of(subscribe(gw, bob))["cursor"]
    bob = reconnect(gw, bob, "bob")
    assert [f["stream"] for f in subscribe(gw, bob, since=cursor)] == ["ack"]


def test_a_replay_resumes_after_the_last_cursor_the_page_saw(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    bob = gw.login("bob", "Bob")
    subscribe(gw, bob)
    gw.put_document("seen", "Seen")
    pump()
    (seen,) = frames(gw, bob, "notifications")
    gw.disconnect(bob)
    gw.put_document("missed", "Missed")
    pump()
    bob = gw.login("bob", "Bob")
    replayed = [f["payload"]["pk"] for f in subscribe(gw, bob, since=seen["cursor"]) if f["stream"] == "notifications"]
    assert replayed == ["missed"]


def test_a_replay_decides_each_message_for_the_subscriber_as_live_delivery_did(
        gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    cursors = {user: ack_of(subscribe(gw, cid))["cursor"]
               for user, cid in (("bob", gw.login("bob")), ("carl", gw.login("carl")))}
    gw.put_document("pay", "Pay", visibility="private", owner="alice", readers=["bob"])
    gw.put_document("news", "News")
    pump()
    seen = {}
    for user in ("bob", "carl"):
        cid = gw.login(user)
        seen[user] = [f["payload"]["pk"] for f in subscribe(gw, cid, since=cursors[user]) if f["stream"] == "notifications"]
    assert seen == {"bob": ["pay", "news"], "carl": ["news"]}


def test_anonymous_connections_replay_no_binding_events_of_a_stream_they_may_read(
        gateway: ApiGateway, pump: Pump) -> None:
    """Comments are readable anonymously for public documents: a replay gives them to the
    anonymous subscriber, exactly as live delivery did."""
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    pump()
    writer = gw.login("alice")
    anonymous = gw.anonymous()
    cursor = ack_of(subscribe(gw, anonymous, "comments", document="roadmap"))["cursor"]
    gw.disconnect(anonymous)
    gw.send(writer, {"action": "create", "stream": "comments", "data": {"document": "roadmap", "body": "hi"}})
    pump()
    anonymous = gw.anonymous()
    replayed = [f["payload"] for f in subscribe(gw, anonymous, "comments", document="roadmap", since=cursor)
                if f["stream"] == "comments"]
    assert [(p["action"], p["data"]["body"]) for p in replayed] == [("create", "hi")]


def test_a_message_is_logged_once_per_group_not_once_per_recipient(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    for user in ("alice", "bob", "carl", "dave"):
        subscribe(gw, gw.login(user))
    gw.put_document("roadmap", "Roadmap")
    pump()
    (entry,) = logged(gw)
    assert entry["log"] == {"S": "notifications"}
    assert json.loads(entry["delivery"]["S"])["kind"] == "change"


def test_a_log_entry_expires_after_history_hours(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    before = time.time()
    gw.put_document("roadmap", "Roadmap")
    pump()
    (entry,) = logged(gw)
    expires = int(entry["ttl"]["N"])
    assert before + 24 * 3600 - 1 <= expires <= time.time() + 24 * 3600 + 1


def test_comments_replay_only_their_documents_log(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    gw.put_document("a", "A")
    gw.put_document("b", "B")
    pump()
    alice = gw.login("alice")
    cursor = ack_of(subscribe(gw, alice, "comments", document="a"))["cursor"]
    for document in ("a", "b", "a"):
        gw.send(alice, {"action": "create", "stream": "comments", "data": {"document": document, "body": document}})
    pump()
    bob = gw.login("bob")
    replayed = [f["payload"] for f in subscribe(gw, bob, "comments", document="a", since=cursor)
                if f["stream"] == "comments"]
    assert [p["data"]["body"] for p in replayed] == ["a", "a"]


def test_a_replay_past_the_limit_answers_reset_with_the_subscriptions_parameters(
        gateway: ApiGateway, pump: Pump, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAY_LIMIT", "2")
    gw = gateway
    gw.reset_runtime()
    gw.put_document("roadmap", "Roadmap")
    pump()
    alice = gw.login("alice")
    cursor = ack_of(subscribe(gw, alice, "comments", document="roadmap"))["cursor"]
    for body in ("1", "2", "3"):
        gw.send(alice, {"action": "create", "stream": "comments", "data": {"document": "roadmap", "body": body}})
    pump()
    bob = gw.login("bob")
    replies = subscribe(gw, bob, "comments", document="roadmap", since=cursor)
    assert replies == [{"stream": "comments", "payload": {"reset": True, "document": "roadmap"}},
                       {"stream": "ack", "payload": {"id": "s"}}]


def test_a_replay_of_exactly_the_limit_is_not_a_reset(gateway: ApiGateway, pump: Pump,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAY_LIMIT", "2")
    gw = gateway
    gw.reset_runtime()
    bob = gw.login("bob")
    cursor = ack_of(subscribe(gw, bob))["cursor"]
    gw.put_document("one", "One")
    gw.put_document("two", "Two")
    pump()
    bob = reconnect(gw, bob, "bob")
    replies = subscribe(gw, bob, since=cursor)
    assert [f["payload"].get("pk") for f in replies if f["stream"] == "notifications"] == ["one", "two"]


def test_a_cursor_older_than_the_retention_answers_reset(gateway: ApiGateway) -> None:
    gw = gateway
    alice = gw.login("alice")
    old = logs.position(time.time() - 24 * 3600 - 60)
    assert subscribe(gw, alice, since=old) == [{"stream": "notifications", "payload": {"reset": True}},
                                               {"stream": "ack", "payload": {"id": "s"}}]


def test_a_cursor_from_the_future_answers_reset(gateway: ApiGateway) -> None:
    gw = gateway
    alice = gw.login("alice")
    ahead = logs.position(time.time() + 3600)
    assert subscribe(gw, alice, since=ahead)[0] == {"stream": "notifications", "payload": {"reset": True}}


@pytest.mark.parametrize("since", [12, "", "yesterday", "1700000000000xyz", "1700000000000" + "0" * 13, None])
def test_a_malformed_since_is_bad_request_and_joins_nothing(gateway: ApiGateway, since: Any) -> None:
    gw = gateway
    alice = gw.login("alice")
    (error,) = subscribe(gw, alice, since=since)
    assert error["stream"] == "error" and error["payload"]["code"] == "bad_request"
    members = gw.dynamodb.scan(TableName="connections", ConsistentRead=True)["Items"]
    assert not [m for m in members if m["sk"]["S"].startswith("g#")]


def test_since_on_a_stream_that_keeps_no_history_is_bad_request(gateway: ApiGateway) -> None:
    gw = gateway
    alice = gw.login("alice")
    (error,) = subscribe(gw, alice, "users", since=logs.position(time.time()))
    assert error["payload"]["code"] == "bad_request" and "no history" in error["payload"]["message"]


def test_a_replay_with_nothing_new_acks_a_later_position(gateway: ApiGateway) -> None:
    """So a subscription that hears nothing for a day does not fall out of the retention."""
    gw = gateway
    alice = gw.login("alice")
    old = logs.position(time.time() - 3600)
    replies = subscribe(gw, alice, since=old)
    assert [f["stream"] for f in replies] == ["ack"]
    assert replies[0]["payload"]["cursor"] > old


def test_without_a_history_table_a_since_answers_reset_and_frames_carry_no_cursor(
        gateway: ApiGateway, pump: Pump, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HISTORY_TABLE")
    gw = gateway
    gw.reset_runtime()
    alice = gw.login("alice")
    assert ack_of(subscribe(gw, alice)) == {"id": "s"}
    gw.put_document("roadmap", "Roadmap")
    pump()
    assert "cursor" not in frames(gw, alice, "notifications")[0]
    assert subscribe(gw, alice, since=logs.position(time.time()))[0]["payload"] == {"reset": True}
    assert logged(gw) == []


def test_a_replay_frame_that_cannot_be_delivered_stops_the_replay_with_a_reset(
        gateway: ApiGateway, pump: Pump) -> None:
    """A gap would be silent (the page's cursor would move past it): a reset is not."""
    gw = gateway
    bob = gw.login("bob")
    cursor = ack_of(subscribe(gw, bob))["cursor"]
    gw.put_document("one", "One")
    gw.put_document("two", "Two")
    pump()
    bob = reconnect(gw, bob, "bob")
    gw.stub.script(bob, 400)  # the replay's first frame is refused; later posts land
    replies = subscribe(gw, bob, since=cursor)
    assert replies == [{"stream": "notifications", "payload": {"reset": True}},
                       {"stream": "ack", "payload": {"id": "s"}}]


def test_cursors_increase_within_a_millisecond_and_when_the_clock_steps_back() -> None:
    cursors = logs.Cursors("0badf00d")
    issued = [cursors.next(1_700_000_000.0001) for _ in range(3)] + [cursors.next(1_699_999_999.0)]
    assert issued == sorted(issued) and len(set(issued)) == 4
    assert issued[0] == "1700000000000" + "0000" + "0badf00d"
    assert all(logs.cursor_seconds(c) == 1_700_000_000.0 for c in issued)


def test_two_containers_never_issue_the_same_cursor() -> None:
    one, two = logs.Cursors(), logs.Cursors()
    assert one.tag != two.tag and one.next(1.0) != two.next(1.0)
