"""Property-based fuzzing of the message handler (`functions.message.app.handler`) with
API Gateway-shaped events: arbitrary bytes, invalid UTF-8 and base64, deep or huge JSON,
wrong types in every field, hostile slugs, fields naming other connections.

After every example: the handler returned 200 without raising; a bad frame got exactly
one `error` frame with the code docs/protocol.md prescribes (its `id` echoed when it is a
string or integer) and changed nothing (the table is identical but for the connection's
liveness and frame allowance, `seen`, `deadline` and `tat`; the watcher heard nothing); every key in the table follows docs/data-model.md; the counter,
the user items, the connection records and the presence items agree.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.apigw import ApiGateway, LambdaContext, request_context
from tests.reliability import invariants
from tests.reliability.conftest import app_of, fuzz_settings
from tests.reliability.strategies import (
    MAX_BYTES, deep_json, expected_parse_error, flatten, frame_bytes, nasty_slugs, near_valid_frames,
    structured_frames, valid_id,
)

DOCUMENTS = {  # slug -> (visibility, owner)
    "roadmap": ("public", None), "a#b": ("public", None), "a%23b": ("public", None), "x/y": ("public", None),
    "ü-doc": ("public", None), "view#edit": ("public", None), "%": ("public", None),
    "secret": ("private", "zoe"), "roadmap#view#AAAA": ("private", "alice"),
}


class Arena:
    """Alice (signed in), Carol (anonymous), and Wes watching everything."""

    def __init__(self, gw: ApiGateway) -> None:
        self.gw = gw
        for slug, (visibility, owner) in DOCUMENTS.items():
            gw.put_document(slug, slug.upper(), visibility=visibility if visibility == "private" else None,
                            owner=owner)
        self.alice = gw.login("alice", "Alice")
        self.carol = gw.anonymous()
        self.wes = gw.login("wes", "Wes")
        for frame in ({"action": "subscribe", "stream": "users"}, {"action": "subscribe", "stream": "documents"},
                      {"action": "subscribe", "stream": "notifications"}):
            gw.send(self.wes, frame)
        for slug in DOCUMENTS:
            if DOCUMENTS[slug][0] == "public":
                gw.send(self.wes, {"action": "subscribe", "stream": "document", "document": slug})
        gw.send(self.alice, {"action": "enter", "document": "roadmap", "phase": "view"})
        # Time stands still: presence never expires during the run, so any broadcast or
        # change a frame causes is the frame's doing, not the clock's.
        frozen = time.time()
        app_of(gw).clock = lambda: frozen

    def deliver(self, cid: str, body: Any, *, is_base64: bool) -> list[dict[str, Any]]:
        """One API Gateway MESSAGE event with exactly this body; the frames `cid` got back."""
        before = len(self.gw.stub.received(cid))
        event = {"requestContext": {**request_context("$default", "MESSAGE", cid, self.gw.connected_at[cid]),
                                    "messageId": uuid.uuid4().hex},
                 "body": body, "isBase64Encoded": is_base64}
        result = self.gw.handlers["$default"](event, LambdaContext())
        assert result == {"statusCode": 200}
        return [json.loads(f) for f in self.gw.stub.received(cid)[before:]]


@pytest.fixture
def arena(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> Arena:
    # Hundreds of frames from one connection while time stands still: past any frame rate.
    # The allowance itself is tested on its own (tests/test_limits.py).
    monkeypatch.setenv("FRAME_BURST", "100000")
    gateway.reset_runtime()
    return Arena(gateway)


def semantic_error(arena: Arena, cid: str, frame: dict[str, Any]) -> set[str] | None:
    """The errors a well-formed frame may get from who sends it and what exists
    (docs/protocol.md); None when it succeeds."""
    anonymous = cid == arena.carol
    frame = flatten(frame)
    action, stream, slug = frame["action"], frame.get("stream"), frame.get("document")
    if action in ("enter", "leave") and anonymous:
        return {"unauthenticated"}
    if action == "subscribe" and stream == "notifications" and anonymous:
        return {"unauthenticated"}
    if action in ("create", "update", "delete"):
        if anonymous:
            return {"unauthenticated"}
        if action == "create":
            slug = frame["data"]["document"]
            readable = slug in DOCUMENTS and (DOCUMENTS[slug][0] == "public" or DOCUMENTS[slug][1] == "alice")
            return None if readable else {"forbidden"}  # nobody may comment on what they cannot read
        return {"not_found", "forbidden", "conflict"}  # alice's own comment, someone else's, or gone
    if action == "enter" or (action == "subscribe" and stream in ("document", "comments")):
        if slug not in DOCUMENTS:
            return {"not_found"}
        visibility, owner = DOCUMENTS[slug]
        if visibility == "private" and (anonymous or owner != "alice"):
            return {"forbidden"}
    return None


def check(arena: Arena, cid: str, body: Any, *, is_base64: bool, frame: Any, size: int) -> None:
    gw = arena.gw
    before = invariants.Model.read(gw.dynamodb)
    watcher_before = len(gw.stub.received(arena.wes))
    replies = arena.deliver(cid, body, is_base64=is_base64)

    expected = expected_parse_error(frame, size)
    if expected is None and isinstance(frame, dict):
        expected = semantic_error(arena, cid, frame)
    errors = [f for f in replies if f["stream"] == "error"]
    if expected is not None:
        assert len(replies) == 1 and len(errors) == 1, (frame, replies)
        payload = errors[0]["payload"]
        assert payload["code"] in expected, (frame, payload)
        assert isinstance(payload["message"], str) and payload["message"]
        rid = valid_id(frame)
        if rid is not None:  # echoed, oversize frames included: the client waits on that id
            assert payload.get("id") == rid, (frame, payload)
        else:
            assert "id" not in payload, (frame, payload)
        # A bad frame changes nothing: same table but for the connection's liveness and frame
        # allowance (every frame counts against it), and nobody hears of it.
        model = invariants.Model.read(gw.dynamodb)
        assert model.without("seen", "deadline", "tat") == before.without("seen", "deadline", "tat"), frame
        assert len(gw.stub.received(arena.wes)) == watcher_before, frame
    else:
        assert errors == [], (frame, replies)
        rid = valid_id(frame)
        if rid is not None:
            assert replies[-1]["stream"] == "ack" and replies[-1]["payload"]["id"] == rid, (frame, replies)
        elif "id" in flatten(frame):
            raise AssertionError(f"an unusable id was accepted: {frame}")
        model = invariants.Model.read(gw.dynamodb)
    problems = invariants.key_problems(model.items) + invariants.consistency_problems(model)
    assert problems == [], (frame, problems)
    assert model.counter == 2  # alice and wes: no frame ever changes the counter


@fuzz_settings(80)
@given(frame=st.one_of(structured_frames(), near_valid_frames()), anonymous=st.booleans(), binary=st.booleans())
def test_structured_frames(arena: Arena, frame: dict[str, Any], anonymous: bool, binary: bool) -> None:
    cid = arena.carol if anonymous else arena.alice
    raw = frame_bytes(frame)
    if binary:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:  # an encoded lone surrogate: not UTF-8, so bad_request whatever it says
            frame = None
        check(arena, cid, base64.b64encode(raw).decode(), is_base64=True, frame=frame, size=len(raw))
    else:
        text = raw.decode("utf-8", "surrogatepass")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, so bad_request whatever it says
            frame, size = None, 0
        check(arena, cid, text, is_base64=False, frame=frame, size=size)


@fuzz_settings(60)
@given(data=st.binary(max_size=400), anonymous=st.booleans())
def test_arbitrary_bytes_as_binary_frames(arena: Arena, data: bytes, anonymous: bool) -> None:
    cid = arena.carol if anonymous else arena.alice
    frame: Any
    try:
        frame = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        frame = None  # not UTF-8 or not JSON: bad_request
    check(arena, cid, base64.b64encode(data).decode(), is_base64=True, frame=frame, size=len(data))


@fuzz_settings(40)
@given(text=st.one_of(st.text(max_size=400), st.text(alphabet='{}[]":,0123456789 actionheartbt\\u', max_size=200)),
       anonymous=st.booleans())
def test_arbitrary_text_frames(arena: Arena, text: str, anonymous: bool) -> None:
    cid = arena.carol if anonymous else arena.alice
    frame: Any
    try:
        size = len(text.encode("utf-8"))
        frame = json.loads(text)
    except (UnicodeEncodeError, ValueError, RecursionError):
        frame, size = None, 0
    check(arena, cid, text, is_base64=False, frame=frame, size=size)


@fuzz_settings(30)
@given(body=st.one_of(st.text(max_size=100), st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode() + "!")))
def test_invalid_base64_bodies(arena: Arena, body: str) -> None:
    """`isBase64Encoded` with a body that may not be base64 at all."""
    try:
        frame: Any = json.loads(base64.b64decode(body, validate=True).decode("utf-8"))
        size = len(base64.b64decode(body, validate=True))
    except Exception:  # noqa: BLE001 - any failure to decode is a bad_request
        frame, size = None, 0
    check(arena, arena.alice, body, is_base64=True, frame=frame, size=size)


@fuzz_settings(25)
@given(depth=st.integers(1, 20_000), kind=st.sampled_from(["list", "object", "inside"]))
def test_deep_json(arena: Arena, depth: int, kind: str) -> None:
    text = deep_json(depth, kind)
    try:
        frame: Any = json.loads(text)
    except RecursionError:
        frame = None
    check(arena, arena.alice, text, is_base64=False, frame=frame, size=len(text))


@fuzz_settings(15)
@given(size=st.integers(MAX_BYTES - 40, 140_000), fill=st.sampled_from(["x", "é", "\U0001f600"]),
       binary=st.booleans())
def test_huge_frames(arena: Arena, size: int, fill: str, binary: bool) -> None:
    """Around and far over 8,192 bytes (API Gateway passes up to 128 KB to the handler)."""
    prefix = '{"action":"heartbeat","id":"big","pad":"'
    pad = fill * max(0, (size - len(prefix) - 2) // len(fill.encode()))
    text = prefix + pad + '"}'
    raw = text.encode()
    body = base64.b64encode(raw).decode() if binary else text
    check(arena, arena.alice, body, is_base64=binary, frame=json.loads(text), size=len(raw))


@fuzz_settings(30)
@given(slug=nasty_slugs, phase=st.sampled_from(["view", "edit", "review"]),
       action=st.sampled_from(["enter", "leave"]))
def test_hostile_slugs_never_break_the_key_layout(arena: Arena, slug: str, phase: str, action: str) -> None:
    """Documents with hostile slugs exist too: entering and leaving them keeps every key well formed."""
    if slug not in DOCUMENTS and expected_parse_error({"action": "enter", "document": slug, "phase": "view"}, 0) is None:
        arena.gw.put_document(slug, "T")
        DOCUMENTS[slug] = ("public", None)
    frame = {"action": action, "document": slug, "phase": phase, "id": 1}
    raw = frame_bytes(frame)
    try:
        text, size = raw.decode("utf-8"), len(raw)
    except UnicodeDecodeError:
        text, size, frame = raw.decode("utf-8", "surrogatepass"), 0, None  # type: ignore[assignment]
    check(arena, arena.alice, text, is_base64=False, frame=frame, size=size)
