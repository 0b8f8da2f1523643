"""Comments, the reference app's second bound model: written through the socket, live for
whoever may read their document, through the comments table's real (moto) stream.

Frames (docs/protocol.md): `create`/`update`/`delete` on stream `comments`, answered with
an `ack` carrying `pk` and `version` or an `error`; notifications
`{"action", "model": "comment", "pk": {"document", "id"}, "data", "seq"}`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.apigw import ApiGateway
from tests.streams import Pump


@pytest.fixture
def pump(gateway: ApiGateway) -> Pump:
    return Pump(gateway.dynamodb, "documents", "comments")


@pytest.fixture
def docs(gateway: ApiGateway, pump: Pump) -> None:
    gateway.put_document("roadmap", "Roadmap")
    gateway.put_document("secret", "Secret", visibility="private", owner="alice", readers=["bob"])
    pump()


def comments(gw: ApiGateway, cid: str) -> list[dict[str, Any]]:
    return [f["payload"] for f in gw.frames(cid) if f["stream"] == "comments"]


def answer(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The one ack or error among a frame's replies."""
    (reply,) = [f for f in frames if f["stream"] in ("ack", "error")]
    return {"stream": reply["stream"], **reply["payload"]}


def create(gw: ApiGateway, cid: str, document: str, body: str, rid: Any = "c") -> dict[str, Any]:
    return answer(gw.send(cid, {"action": "create", "stream": "comments",
                                "data": {"document": document, "body": body}, "id": rid}))


def stored(gw: ApiGateway) -> list[dict[str, Any]]:
    return gw.dynamodb.scan(TableName="comments", ConsistentRead=True)["Items"]


def test_a_created_comment_reaches_every_subscriber_the_writer_included(gateway: ApiGateway, docs, pump) -> None:
    gw = gateway
    alice, bob = gw.login("alice", "Alice"), gw.login("bob", "Bob")
    carol = gw.anonymous()
    for cid in (alice, bob, carol):
        snapshot = gw.send(cid, {"action": "subscribe", "stream": "comments", "document": "roadmap", "id": 1})
        assert snapshot[0] == {"stream": "comments", "payload": {"document": "roadmap", "comments": [], "full": True}}
    ack = create(gw, alice, "roadmap", "Ship it", rid="c1")
    assert ack["stream"] == "ack" and ack["id"] == "c1" and ack["version"] == 1
    assert set(ack["pk"]) == {"document", "id"} and ack["pk"]["document"] == "roadmap"

    pump()
    for cid in (alice, bob, carol):
        (event,) = [c for c in comments(gw, cid) if "action" in c]
        assert event["action"] == "create" and event["model"] == "comment" and event["pk"] == ack["pk"]
        assert event["data"]["body"] == "Ship it" and event["data"]["author"] == "alice"
        assert event["data"]["version"] == 1 and event["data"]["created_at"]
        assert set(event["data"]) == {"id", "document", "author", "body", "created_at", "version"}
        assert int(event["seq"]) > 0


def test_the_server_sets_id_author_time_and_version(gateway: ApiGateway, docs) -> None:
    gw = gateway
    alice = gw.login("alice")
    for field, value in (("author", "mallory"), ("id", "mine"), ("version", 7), ("created_at", "1999")):
        error = answer(gw.send(alice, {"action": "create", "stream": "comments", "id": 2,
                                       "data": {"document": "roadmap", "body": "x", field: value}}))
        assert (error["stream"], error["code"]) == ("error", "bad_request"), field
    assert stored(gw) == []
    ack = create(gw, alice, "roadmap", "hello")
    (item,) = stored(gw)
    assert item["author"] == {"S": "alice"} and item["version"] == {"N": "1"}
    assert item["id"]["S"] == ack["pk"]["id"]


@pytest.mark.parametrize("frame", [
    {"data": {"document": "roadmap"}},  # no body
    {"data": {"document": "roadmap", "body": ""}},
    {"data": {"document": "roadmap", "body": "   "}},
    {"data": {"document": "roadmap", "body": "x" * 2001}},
    {"data": {"document": "roadmap", "body": 5}},
    {"data": {"document": 5, "body": "x"}},
    {"data": {"document": "", "body": "x"}},
    {"data": {"body": "x"}},  # no document: the key
    {"data": "roadmap"},
    {"data": {}},
    {},
])
def test_malformed_creates_are_bad_requests_and_write_nothing(gateway: ApiGateway, docs, frame) -> None:
    alice = gateway.login("alice")
    error = answer(gateway.send(alice, {"action": "create", "stream": "comments", "id": 3, **frame}))
    assert (error["stream"], error["code"], error["id"]) == ("error", "bad_request", 3)
    assert stored(gateway) == []


def test_a_body_of_exactly_2000_characters_is_accepted(gateway: ApiGateway, docs) -> None:
    frame = {"action": "create", "stream": "comments", "data": {"document": "roadmap", "body": "é" * 2000}, "id": 1}
    raw = json.dumps(frame, ensure_ascii=False)  # 4,000 bytes of UTF-8 for the body: within a frame
    assert answer(gateway.send(gateway.login("alice"), raw, raw=True))["stream"] == "ack"


def test_who_may_create(gateway: ApiGateway, docs) -> None:
    gw = gateway
    carol = gw.anonymous()
    assert create(gw, carol, "roadmap", "hi")["code"] == "unauthenticated"
    dave = gw.login("dave")
    assert create(gw, dave, "secret", "let me in")["code"] == "forbidden"  # not a reader
    assert create(gw, dave, "nowhere", "hi")["code"] == "forbidden"  # no such document: no one reads it
    assert stored(gw) == []
    assert create(gw, gw.login("bob"), "secret", "reader's note")["stream"] == "ack"


def test_only_the_author_updates_or_deletes_at_the_stored_version(gateway: ApiGateway, docs, pump) -> None:
    gw = gateway
    alice, bob = gw.login("alice"), gw.login("bob")
    gw.send(bob, {"action": "subscribe", "stream": "comments", "document": "roadmap"})
    ack = create(gw, alice, "roadmap", "first")
    pk = ack["pk"]

    def update(cid: str, version: Any, body: str = "edited") -> dict[str, Any]:
        return answer(gw.send(cid, {"action": "update", "stream": "comments", "pk": pk, "version": version,
                                    "data": {"body": body}, "id": "u"}))

    assert update(bob, 1)["code"] == "forbidden"
    assert update(alice, 2)["code"] == "conflict"
    (before,) = stored(gw)
    assert before["body"] == {"S": "first"} and before["version"] == {"N": "1"}
    assert update(alice, 1) == {"stream": "ack", "id": "u", "pk": pk, "version": 2}
    assert update(alice, 1)["code"] == "conflict"  # someone (she) wrote since version 1

    gone = answer(gw.send(alice, {"action": "delete", "stream": "comments", "pk": pk, "version": 1, "id": "d"}))
    assert gone["code"] == "conflict"
    assert answer(gw.send(bob, {"action": "delete", "stream": "comments", "pk": pk, "version": 2, "id": "d"}))[
        "code"] == "forbidden"
    deleted = answer(gw.send(alice, {"action": "delete", "stream": "comments", "pk": pk, "version": 2, "id": "d"}))
    assert deleted == {"stream": "ack", "id": "d", "pk": pk}
    assert stored(gw) == []
    assert update(alice, 2)["code"] == "not_found"

    pump()
    assert [(c["action"], c["data"].get("body")) for c in comments(gw, bob) if "action" in c] == [
        ("create", "first"), ("update", "edited"), ("delete", None)]
    assert [c["data"] for c in comments(gw, bob) if c.get("action") == "delete"] == [pk]


@pytest.mark.parametrize(("frame", "code"), [
    ({"action": "update", "pk": {"document": "roadmap"}, "version": 1, "data": {"body": "x"}}, "bad_request"),
    ({"action": "update", "pk": "roadmap", "version": 1, "data": {"body": "x"}}, "bad_request"),
    ({"action": "update", "pk": {"document": "roadmap", "id": "1"}, "data": {"body": "x"}}, "bad_request"),
    ({"action": "update", "pk": {"document": "roadmap", "id": "1"}, "version": "1", "data": {"body": "x"}},
     "bad_request"),
    ({"action": "update", "pk": {"document": "roadmap", "id": "1"}, "version": 1, "data": {"document": "x"}},
     "bad_request"),  # the key cannot change
    ({"action": "update", "pk": {"document": "roadmap", "id": "1"}, "version": 1, "data": {"body": "x"}},
     "not_found"),
    ({"action": "delete", "pk": {"document": "roadmap", "id": "1"}, "version": 0}, "bad_request"),
    ({"action": "delete", "pk": {"document": "roadmap", "id": "1"}, "version": 1}, "not_found"),
    ({"action": "create", "stream": "users", "data": {"body": "x"}}, "unknown_action"),
    ({"action": "create", "stream": "nope", "data": {"body": "x"}}, "bad_request"),
    ({"action": "update", "stream": "notifications", "pk": "roadmap", "data": {"title": "x"}}, "forbidden"),
])
def test_every_refused_write_is_one_error_and_changes_nothing(gateway: ApiGateway, docs, frame, code) -> None:
    alice = gateway.login("alice")
    before = gateway.dynamodb.get_item(TableName="documents", Key={"slug": {"S": "roadmap"}})["Item"]
    error = answer(gateway.send(alice, {"stream": "comments", **frame, "id": 9}))
    assert (error["stream"], error["code"], error["id"]) == ("error", code, 9)
    assert stored(gateway) == []
    assert gateway.dynamodb.get_item(TableName="documents", Key={"slug": {"S": "roadmap"}})["Item"] == before


def test_the_snapshot_is_the_latest_fifty_oldest_first(gateway: ApiGateway, docs, monkeypatch) -> None:
    gw = gateway
    monkeypatch.setenv("FRAME_BURST", "100")  # 57 frames at once: within this connection's allowance
    gw.reset_runtime()
    alice = gw.login("alice")
    for n in range(55):
        assert create(gw, alice, "roadmap", f"comment {n:02d}", rid=n)["stream"] == "ack"
    create(gw, alice, "secret", "elsewhere")
    (snapshot,) = comments(gw, alice) or [None]  # alice is not subscribed yet: nothing so far
    assert snapshot is None
    reply = gw.send(alice, {"action": "subscribe", "stream": "comments", "document": "roadmap"})
    bodies = [c["body"] for c in reply[0]["payload"]["comments"]]
    assert bodies == [f"comment {n:02d}" for n in range(5, 55)]


def test_subscribing_needs_read_access_to_the_document(gateway: ApiGateway, docs) -> None:
    gw = gateway
    for cid, slug, code in ((gw.anonymous(), "secret", "forbidden"), (gw.login("dave"), "secret", "forbidden"),
                            (gw.login("dave"), "nowhere", "not_found")):
        error = answer(gw.send(cid, {"action": "subscribe", "stream": "comments", "document": slug, "id": 4}))
        assert error["code"] == code
    error = answer(gw.send(gw.login("bob"), {"action": "subscribe", "stream": "comments", "id": 5}))
    assert error["code"] == "bad_request"  # which document's comments?


def test_a_reader_who_loses_the_document_stops_getting_its_comments(gateway: ApiGateway, docs, pump) -> None:
    gw = gateway
    alice, bob = gw.login("alice"), gw.login("bob")
    for cid in (alice, bob):
        gw.send(cid, {"action": "subscribe", "stream": "comments", "document": "secret"})
    create(gw, alice, "secret", "before")
    pump()
    assert [c["data"]["body"] for c in comments(gw, bob) if "action" in c] == ["before"]

    gw.put_document("secret", "Secret", visibility="private", owner="alice", readers=[])  # bob removed
    pump()
    assert comments(gw, bob)[-1] == {"document": "secret", "removed": True}
    create(gw, alice, "secret", "after")
    pump()
    assert [c["data"]["body"] for c in comments(gw, bob) if "action" in c] == ["before"]
    assert [c["data"]["body"] for c in comments(gw, alice) if "action" in c] == ["before", "after"]
    assert answer(gw.send(bob, {"action": "create", "stream": "comments", "id": 1,
                                "data": {"document": "secret", "body": "still here?"}}))["code"] == "forbidden"


def test_writes_from_other_services_notify_like_socket_writes(gateway: ApiGateway, docs, pump) -> None:
    gw = gateway
    bob = gw.login("bob")
    gw.send(bob, {"action": "subscribe", "stream": "comments", "document": "roadmap"})
    gw.dynamodb.put_item(TableName="comments", Item={
        "document": {"S": "roadmap"}, "id": {"S": "0000000000001-ops"}, "author": {"S": "ops-bot"},
        "body": {"S": "Deployed"}, "created_at": {"S": "2026-12-01T00:00:00.000+00:00"}, "version": {"N": "1"},
        "internal": {"S": "never sent"}})
    pump()
    (event,) = [c for c in comments(gw, bob) if "action" in c]
    assert event["pk"] == {"document": "roadmap", "id": "0000000000001-ops"}
    assert event["data"]["author"] == "ops-bot" and "internal" not in event["data"]


def test_channels_demultiplexer_envelope_is_the_same_frame(gateway: ApiGateway, docs) -> None:
    gw = gateway
    alice = gw.login("alice")
    replies = gw.send(alice, {"stream": "comments", "payload": {"action": "create", "id": "env",
                                                                "data": {"document": "roadmap", "body": "hi"}}})
    assert answer(replies)["stream"] == "ack" and answer(replies)["id"] == "env"
    replies = gw.send(alice, {"stream": "users", "payload": {"action": "subscribe", "id": 7}})
    assert replies == [{"stream": "users", "payload": {"users": 1}}, {"stream": "ack", "payload": {"id": 7}}]
