"""The reference scenario, end to end through the three handlers with API Gateway-shaped events.

Alice and Bob sign in, Carol is anonymous. The counter goes 0 -> 1 -> 2, Bob's second tab
keeps it at 2, and it drops to 1 when Alice leaves. Presence shows on the documents list
and on the document stream for those who may read the document, and a private document
stays invisible to everyone else.
"""

from __future__ import annotations

from tests.apigw import ApiGateway


def users(gw: ApiGateway, cid: str) -> int | None:
    payload = gw.last(cid, "users")
    return None if payload is None else payload["users"]


def test_reference_scenario(gateway: ApiGateway) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    gw.put_document("salaries", "Salaries", visibility="private", owner="alice", readers=[])

    carol = gw.anonymous()
    replies = gw.send(carol, {"action": "subscribe", "stream": "users", "id": 1})
    assert replies == [{"stream": "users", "payload": {"users": 0}}, {"stream": "ack", "payload": {"id": 1}}]
    listing = gw.send(carol, {"action": "subscribe", "stream": "documents"})
    assert listing[0]["payload"]["full"] is True
    assert [d["document"] for d in listing[0]["payload"]["documents"]] == ["roadmap"]  # no private document

    alice = gw.login("alice", "Alice")
    assert users(gw, carol) == 1
    bob = gw.login("bob", "Bob")
    assert users(gw, carol) == 2
    bob_tab = gw.login("bob", "Bob")
    assert users(gw, carol) == 2  # a second tab of the same user counts once

    for cid in (alice, bob):
        gw.send(cid, {"action": "subscribe", "stream": "documents"})
    alice_docs = gw.last(alice, "documents")
    assert [d["document"] for d in alice_docs["documents"]] == ["roadmap", "salaries"]
    assert alice_docs["documents"][0]["phases"] == {"view": [], "edit": [], "review": []}
    gw.send(bob, {"action": "subscribe", "stream": "document", "document": "roadmap"})

    # Alice edits the roadmap: Bob sees it on the list and on the document page, Carol on the list.
    replies = gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "edit", "id": "e1"})
    edit = [{"user": "alice", "name": "Alice"}]
    assert [f["stream"] for f in replies] == ["documents", "ack"]  # her own list shows it, then the ack
    assert replies[1]["payload"] == {"id": "e1"}
    counts = {"view": 0, "edit": 1, "review": 0}  # how many are there, however many names are shown
    assert gw.last(bob, "document") == {"document": "roadmap", "title": "Roadmap",
                                        "phases": {"view": [], "edit": edit, "review": []}, "counts": counts}
    for cid in (bob, carol):
        update = gw.last(cid, "documents")
        assert update == {"documents": [{"document": "roadmap", "title": "Roadmap",
                                         "phases": {"view": [], "edit": edit, "review": []}, "counts": counts}],
                          "full": False}

    # Alice reviews her private document: only she may see that.
    frames_before = {cid: len(gw.frames(cid)) for cid in (bob, bob_tab, carol)}
    gw.send(alice, {"action": "enter", "document": "salaries", "phase": "review"})
    assert gw.last(alice, "documents")["documents"][0]["document"] == "salaries"
    for cid, count in frames_before.items():
        assert all("salaries" not in str(f) for f in gw.frames(cid)[count:])
    assert gw.send(bob, {"action": "subscribe", "stream": "document", "document": "salaries", "id": 9}) == [
        {"stream": "error", "payload": {"id": 9, "code": "forbidden", "message": "you may not read this document"}}
    ]

    # Alice leaves: the counter drops to 1 and her presence disappears.
    gw.disconnect(alice)
    assert users(gw, carol) == 1
    assert gw.last(bob, "document")["phases"]["edit"] == []
    assert gw.last(carol, "documents")["documents"][0]["phases"]["edit"] == []

    gw.disconnect(bob)
    assert users(gw, carol) == 1  # Bob's other tab is still open
    gw.disconnect(bob_tab)
    assert users(gw, carol) == 0


def test_two_tabs_in_one_phase_show_the_user_once(gateway: ApiGateway) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("carl")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    tabs = [gw.login("bob", "Bob") for _ in range(2)]
    for tab in tabs:
        gw.send(tab, {"action": "enter", "document": "roadmap", "phase": "view"})
    assert gw.last(watcher, "document")["phases"]["view"] == [{"user": "bob", "name": "Bob"}]
    gw.send(tabs[0], {"action": "leave", "document": "roadmap", "phase": "view"})
    assert gw.last(watcher, "document")["phases"]["view"] == [{"user": "bob", "name": "Bob"}]
    gw.disconnect(tabs[1])
    assert gw.last(watcher, "document")["phases"]["view"] == []


def test_slugs_with_separators_stay_apart(gateway: ApiGateway) -> None:
    gw = gateway
    for slug in ("a", "a#b", "a%23b"):
        gw.put_document(slug, slug.upper())
    watcher = gw.login("wes")
    for slug in ("a", "a#b", "a%23b"):
        gw.send(watcher, {"action": "subscribe", "stream": "document", "document": slug})
    amy = gw.login("amy", "Amy")
    gw.send(amy, {"action": "enter", "document": "a#b", "phase": "view"})
    rosters = {f["payload"]["document"]: f["payload"]["phases"]["view"]
               for f in gw.frames(watcher) if f["stream"] == "document"}
    assert rosters == {"a": [], "a#b": [{"user": "amy", "name": "Amy"}], "a%23b": []}
