"""Fail-closed visibility (issue 13, finding 1), through the handlers.

Documents are written by other services, so `visibility`, `owner` and `readers` may hold
anything. The one read rule (`DocumentBinding.audience`): a document with no `visibility`
or exactly `"public"` is public; any other value makes it private to its `owner` and
`readers`; an `owner` or `readers` of the wrong shape names no one. A document with no
`visibility` is public even if it lists `readers` (the binding contract).

Each shape is checked wherever a document can be seen: the `documents` snapshot (titles
included), subscribing to its `document` stream, its presence rosters, and the
notifications of its creation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime import keys
from tests import streams
from tests.apigw import ApiGateway, LambdaContext

TITLE = "Quarterly numbers, do not share"
ALICE, BOB, CARL = "alice", "bob", "carl"  # the owner, a listed reader, an outsider
ANONYMOUS = None
EVERYONE = {ALICE, BOB, CARL, ANONYMOUS}
S = lambda value: {"S": value}  # noqa: E731 - DynamoDB's typed form, for readability
READ_BY_BOB = {"readers": {"L": [S(BOB)]}}

#: name -> (the stored attributes beside slug and title, who may read the document)
SHAPES: dict[str, tuple[dict[str, Any], set[str | None]]] = {
    "visibility PRIVATE": ({"visibility": S("PRIVATE"), "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility Private": ({"visibility": S("Private"), "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility 'private '": ({"visibility": S("private "), "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility restricted": ({"visibility": S("restricted"), "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility empty": ({"visibility": S(""), "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility true": ({"visibility": {"BOOL": True}, "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility false": ({"visibility": {"BOOL": False}, "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility a number": ({"visibility": {"N": "1"}, "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "visibility a list": ({"visibility": {"L": [S("public")]}, "owner": S(ALICE), **READ_BY_BOB}, {ALICE, BOB}),
    "readers a number": ({"visibility": S("private"), "owner": S(ALICE), "readers": {"N": "5"}}, {ALICE}),
    "readers with a non-string": ({"visibility": S("private"), "owner": S(ALICE),
                                   "readers": {"L": [S(BOB), {"N": "5"}]}}, {ALICE}),
    "readers a string": ({"visibility": S("private"), "owner": S(ALICE), "readers": S(BOB)}, {ALICE}),
    "owner a number": ({"visibility": S("private"), "owner": {"N": "7"}, **READ_BY_BOB}, {BOB}),
    "owner missing": ({"visibility": S("private"), **READ_BY_BOB}, {BOB}),
    # What stays public: exactly "public", or no visibility at all (even with readers listed).
    "visibility public": ({"visibility": S("public"), "owner": S(ALICE), **READ_BY_BOB}, EVERYONE),
    "no visibility, readers listed": ({"owner": S(ALICE), **READ_BY_BOB}, EVERYONE),
}
CASES = pytest.mark.parametrize("shape", list(SHAPES))


def put(gw: ApiGateway, slug: str, shape: str) -> None:
    attributes, _ = SHAPES[shape]
    gw.dynamodb.put_item(TableName="documents", Item={"slug": S(slug), "title": S(TITLE), **attributes})


def allowed(shape: str) -> set[str | None]:
    return SHAPES[shape][1]


class People:
    """Alice, Bob and Carl signed in, and an anonymous connection."""

    def __init__(self, gw: ApiGateway) -> None:
        self.gw = gw
        self.cids = {ALICE: gw.login(ALICE, "Alice"), BOB: gw.login(BOB, "Bob"), CARL: gw.login(CARL, "Carl"),
                     ANONYMOUS: gw.anonymous()}

    def received(self, who: str | None, stream: str) -> list[dict[str, Any]]:
        return [f["payload"] for f in self.gw.frames(self.cids[who]) if f["stream"] == stream]

    def raw(self, who: str | None) -> str:
        """Everything this connection received, as one string (to look for the title)."""
        return "\n".join(b.decode() for b in self.gw.stub.received(self.cids[who]))


def pump(gw: ApiGateway, since: int) -> int:
    """Deliver the documents table's stream records after the first `since` through notify."""
    from functions.notify import app

    records = streams.read_stream(gw.dynamodb, "documents")
    if records[since:]:
        assert app.handler(streams.event(*records[since:]), LambdaContext()) == {"batchItemFailures": []}
    return len(records)


@pytest.fixture
def people(gateway: ApiGateway) -> People:
    return People(gateway)


@CASES
def test_the_documents_snapshot_lists_a_document_only_for_its_readers(gateway: ApiGateway, people: People,
                                                                      shape: str) -> None:
    gw = gateway
    put(gw, "numbers", shape)
    for who, cid in people.cids.items():
        (snapshot,) = [f["payload"] for f in gw.send(cid, {"action": "subscribe", "stream": "documents"})
                       if f["stream"] == "documents"]
        listed = [d["document"] for d in snapshot["documents"]]
        assert listed == (["numbers"] if who in allowed(shape) else []), who
        assert (TITLE in people.raw(who)) is (who in allowed(shape)), who


@CASES
def test_subscribing_to_the_document_is_forbidden_to_those_not_allowed(gateway: ApiGateway, people: People,
                                                                       shape: str) -> None:
    gw = gateway
    put(gw, "numbers", shape)
    for who, cid in people.cids.items():
        frames = gw.send(cid, {"action": "subscribe", "stream": "document", "document": "numbers", "id": 1})
        if who in allowed(shape):
            assert frames[0]["stream"] == "document" and frames[0]["payload"]["document"] == "numbers", who
            assert frames[-1] == {"stream": "ack", "payload": {"id": 1}}, who
        else:
            assert frames == [{"stream": "error", "payload": {
                "code": "forbidden", "message": "you may not read this document", "id": 1}}], who
            assert TITLE not in people.raw(who), who
    # A refused subscribe joined nothing: the roster reaches only those let in.
    stored = gw.dynamodb.scan(TableName="connections", ConsistentRead=True)["Items"]
    members = {item["gsk"]["S"] for item in stored
               if keys.group_of_shard(item.get("grp", {}).get("S", "")) == "document/numbers"}
    assert members == {people.cids[who] for who in allowed(shape)}


@CASES
def test_presence_broadcasts_reach_only_those_allowed(gateway: ApiGateway, people: People, shape: str) -> None:
    gw = gateway
    put(gw, "numbers", shape)
    for cid in people.cids.values():
        gw.send(cid, {"action": "subscribe", "stream": "documents"})
        gw.send(cid, {"action": "subscribe", "stream": "document", "document": "numbers"})
    marks = {who: len(gw.frames(cid)) for who, cid in people.cids.items()}

    # A reader enters; an outsider may not.
    reader = ALICE if ALICE in allowed(shape) else BOB
    assert gw.send(people.cids[reader], {"action": "enter", "document": "numbers", "phase": "edit", "id": 2})[-1] == {
        "stream": "ack", "payload": {"id": 2}}
    if CARL not in allowed(shape):
        assert gw.send(people.cids[CARL], {"action": "enter", "document": "numbers", "phase": "view", "id": 3}) == [
            {"stream": "error", "payload": {"code": "forbidden", "message": "you may not read this document", "id": 3}}]

    for who, cid in people.cids.items():
        fresh = gw.frames(cid)[marks[who]:]
        rosters = [f for f in fresh if f["stream"] in ("documents", "document")]
        if who in allowed(shape):
            assert {f["stream"] for f in rosters} == {"documents", "document"}, who
        else:
            assert rosters == [], who
            assert TITLE not in people.raw(who), who


@CASES
def test_a_new_document_is_notified_only_to_its_readers(gateway: ApiGateway, people: People, shape: str) -> None:
    gw = gateway
    seen = pump(gw, 0)
    for who, cid in people.cids.items():
        gw.send(cid, {"action": "subscribe", "stream": "documents"})
        if who is not ANONYMOUS:
            gw.send(cid, {"action": "subscribe", "stream": "notifications"})
    marks = {who: len(gw.frames(cid)) for who, cid in people.cids.items()}

    put(gw, "numbers", shape)
    pump(gw, seen)

    for who, cid in people.cids.items():
        fresh = [f for f in gw.frames(cid)[marks[who]:]]
        notified = [f["payload"]["action"] for f in fresh if f["stream"] == "notifications"]
        listed = [d["document"] for f in fresh if f["stream"] == "documents" for d in f["payload"]["documents"]]
        if who in allowed(shape):
            assert listed == ["numbers"], who
            assert notified == ([] if who is ANONYMOUS else ["create"]), who
        else:
            assert fresh == [], who
            assert TITLE not in json.dumps(fresh), who
