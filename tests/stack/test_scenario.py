"""The core issue's reference scenario, over real sockets through the local stack."""

from __future__ import annotations

import asyncio
import json

from tests.stack.conftest import WAIT, Client, run

PHASES = ("view", "edit", "review")


def names(phases: dict, phase: str) -> list[str]:
    return [entry["user"] for entry in phases[phase]]


def slugs(payload: dict) -> set[str]:
    return {entry["document"] for entry in payload["documents"]}


def test_reference_scenario(stack):
    async def scenario():
        carol = await Client.connect(stack, label="carol")  # anonymous
        assert (await carol.subscribe("users"))["payload"] == {"users": 0}
        carol_docs = await carol.subscribe("documents")
        # Private documents are invisible to an anonymous connection.
        assert slugs(carol_docs["payload"]) == {"welcome", "roadmap", "release-notes"}
        for entry in carol_docs["payload"]["documents"]:
            assert set(entry["phases"]) == set(PHASES) and all(v == [] for v in entry["phases"].values())

        alice = await Client.connect(stack, "alice", "Alice")
        assert await carol.next("users") == {"users": 1}
        bob = await Client.connect(stack, "bob", "Bob")
        assert await carol.next("users") == {"users": 2}
        bob2 = await Client.connect(stack, "bob", "Bob", label="bob-tab-2")
        # Bob's second tab does not count: a fresh snapshot still says 2 ...
        assert (await bob2.subscribe("users"))["payload"] == {"users": 2}

        alice_docs = await alice.subscribe("documents")
        assert slugs(alice_docs["payload"]) == {"welcome", "roadmap", "release-notes", "design-review", "alice-notes"}
        bob_docs = await bob.subscribe("documents")
        assert slugs(bob_docs["payload"]) == {"welcome", "roadmap", "release-notes", "design-review"}

        # Who may read what, on the document stream.
        assert (await carol.subscribe("document", document="design-review"))["payload"]["code"] == "forbidden"
        assert (await bob.subscribe("document", document="alice-notes"))["payload"]["code"] == "forbidden"
        assert (await bob.subscribe("document", document="no-such-doc"))["payload"]["code"] == "not_found"
        welcome = await bob.subscribe("document", document="welcome")
        assert welcome["payload"]["document"] == "welcome"
        assert welcome["payload"]["phases"] == {p: [] for p in PHASES}
        assert (await bob.subscribe("document", document="design-review"))["stream"] == "document"

        # Alice edits "welcome": the document stream and every list subscriber see it.
        await alice.request(action="enter", document="welcome", phase="edit")
        update = await bob.next("document", lambda p: p["document"] == "welcome")
        assert update["phases"]["edit"] == [{"user": "alice", "name": "Alice"}]
        for client in (carol, alice, bob):
            listed = await client.next("documents", lambda p: not p["full"])
            assert listed["documents"][0]["document"] == "welcome"
            assert names(listed["documents"][0]["phases"], "edit") == ["alice"]

        # Alice enters her private notes, then reviews the roadmap. Carol and Bob must get the
        # roadmap change without ever hearing about alice-notes (it would have come first).
        await alice.request(action="enter", document="alice-notes", phase="view")
        await alice.request(action="enter", document="roadmap", phase="review")
        about_notes = lambda f: "alice-notes" in str(f)  # noqa: E731
        for client in (carol, bob):
            listed = await client.next("documents", lambda p: slugs(p) == {"roadmap"}, forbid=about_notes)
            assert names(listed["documents"][0]["phases"], "review") == ["alice"]
        # Her own list hears of both (in one coalesced update, or two).
        mine = await alice.next("documents", lambda p: "alice-notes" in slugs(p))
        notes = next(entry for entry in mine["documents"] if entry["document"] == "alice-notes")
        assert names(notes["phases"], "view") == ["alice"]

        # An anonymous connection cannot enter presence; Bob may join the private review.
        rid = await carol.request(action="enter", document="welcome", phase="view")
        error = await carol.next("error", lambda p: p.get("id") == rid)
        assert error["code"] == "unauthenticated"
        await bob.request(action="enter", document="design-review", phase="review")
        shared = await alice.next("documents", lambda p: slugs(p) == {"design-review"})
        assert names(shared["documents"][0]["phases"], "review") == ["bob"]

        # Alice leaves: the counter drops to 1 (Bob's two tabs still count once) and her
        # presence disappears from the document stream.
        await alice.close()
        assert await carol.next("users") == {"users": 1}
        gone = await bob.next("document", lambda p: p["document"] == "welcome" and p["phases"]["edit"] == [])
        assert gone["phases"] == {p: [] for p in PHASES}
        await bob2.close()
        assert (await carol.subscribe("users"))["payload"] == {"users": 1}
        await bob.close()
        assert await carol.next("users") == {"users": 0}
        await carol.close()

    run(scenario())


def test_heartbeat_and_binary_frames(stack):
    async def scenario():
        dana = await Client.connect(stack, "dana", "Dana")
        rid = await dana.request(action="heartbeat")
        assert (await dana.next("ack")) == {"id": rid}
        # A binary frame reaches the handler base64-encoded (isBase64Encoded) and still works.
        await dana.ws.send(b'{"action":"subscribe","stream":"users","id":"bin"}')
        assert (await dana.next("users"))["users"] >= 1
        assert await dana.next("ack") == {"id": "bin"}
        # A malformed frame is answered, never closes the connection.
        await dana.send("not json")
        assert (await dana.next("error"))["code"] == "bad_request"
        rid = await dana.request(action="heartbeat")
        assert await dana.next("ack") == {"id": rid}
        await dana.close()

    run(scenario())


def test_demo_form_routes_write_the_documents_table(stack):
    """`POST /dev/documents` stands in for another AWS service: its write notifies like any other."""
    import urllib.error
    import urllib.request

    def call(method: str, path: str, body: object = None) -> tuple[int, dict]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(stack.web_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Origin": stack.web_url})
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    async def scenario():
        reader = await Client.connect(stack, "rita", "Rita")
        await reader.request(action="subscribe", stream="notifications")
        await reader.until(lambda f: f["stream"] == "ack")
        status, _ = await asyncio.to_thread(call, "POST", "/dev/documents",
                                            {"slug": "form-doc", "title": "From the form", "visibility": "private",
                                             "owner": "rita", "readers": "sam, tom"})
        assert status == 201
        created = await reader.until(lambda f: f["stream"] == "notifications")
        assert created["payload"]["action"] == "create" and created["payload"]["pk"] == "form-doc"
        status, _ = await asyncio.to_thread(call, "DELETE", "/dev/documents/form-doc")
        assert status == 200
        deleted = await reader.until(lambda f: f["stream"] == "notifications")
        assert deleted["payload"]["action"] == "delete"
        await reader.ws.close()

    run(scenario())
    item = stack.client("dynamodb").get_item(TableName=stack.tables["DocumentsTable"], Key={"slug": {"S": "form-doc"}})
    assert "Item" not in item
    for bad in ({"title": "no slug"}, {"slug": "x", "visibility": "secret"}, {"slug": "x", "readers": [1]},
                b"not json", [1, 2]):
        status, answer = call("POST", "/dev/documents", bad)
        assert status == 400 and answer["error"], bad
