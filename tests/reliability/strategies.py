"""Hypothesis strategies for hostile client frames, and an independent oracle of docs/protocol.md."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from hypothesis import strategies as st

WRITES = ("create", "update", "delete")
ACTIONS = ("subscribe", "unsubscribe", "enter", "leave", "heartbeat", *WRITES)
STREAMS = ("users", "documents", "document", "notifications", "comments")
BINDINGS = ("notifications", "comments")
PHASES = ("view", "edit", "review")
MAX_BYTES = 8192

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)

#: Slugs a hostile client would try: separators, percent signs, slashes, unicode, control
#: characters, the key layout itself, and lengths around the limit.
nasty_slugs = st.one_of(
    st.sampled_from(["roadmap", "a#b", "a%23b", "x/y", "ü-doc", "view#edit", "secret", "%", "#", "##",
                     "roadmap#view#AAAA", "document/roadmap", "c#meta", "presence", "users", "counter",
                     "a\x00b", "tab\there", "line\nbreak", "\u202eevil", "\ud800", "x" * 256, "x" * 257,
                     "\U0001f600" * 60, "\U0001f600" * 256, " ", "..", "../etc"]),
    st.text(alphabet=st.sampled_from("#%/ab:\\ \x00\x7f\u00e9\u2028\ufeff"), min_size=0, max_size=12),
    st.text(max_size=300),
)
weird_values = st.one_of(json_values, st.sampled_from([[], {}, 0, -1, True, False, None, 1.5, "", " "]))


@st.composite
def structured_frames(draw: Any) -> dict[str, Any]:
    """Objects shaped like client frames, every field possibly wrong, missing or hostile."""
    frame: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        frame["action"] = draw(st.one_of(st.sampled_from(ACTIONS), st.sampled_from(ACTIONS), st.text(max_size=10),
                                         st.sampled_from(["Subscribe", "subscribe ", "$connect", "$default"]),
                                         weird_values))
    if draw(st.booleans()):
        frame["stream"] = draw(st.one_of(st.sampled_from(STREAMS), st.sampled_from(STREAMS), st.text(max_size=10),
                                         weird_values))
    if draw(st.booleans()):
        frame["document"] = draw(st.one_of(nasty_slugs, nasty_slugs, weird_values))
    if draw(st.booleans()):
        frame["phase"] = draw(st.one_of(st.sampled_from(PHASES), st.sampled_from(PHASES), st.text(max_size=8),
                                        weird_values))
    if draw(st.booleans()):
        frame["id"] = draw(st.one_of(st.integers(), st.text(max_size=20), weird_values))
    if draw(st.integers(0, 4)) == 0:  # fields that must be ignored, naming other connections among others
        frame.update(draw(st.dictionaries(
            st.sampled_from(["connectionId", "connection_id", "conn", "user", "uid", "name", "sub", "to",
                             "requestContext", "pk", "sk", "group"]),
            st.one_of(st.just("VICTIM"), json_values), max_size=3)))
    return frame


def frame_bytes(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False).encode("utf-8", "surrogatepass")


def deep_json(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"action":"heartbeat","x":' + "[" * depth + "]" * depth + "}"


def _spec_slug_ok(slug: Any) -> bool:
    return (isinstance(slug, str) and 0 < len(slug) <= 256
            and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in slug))


def flatten(frame: dict[str, Any]) -> dict[str, Any]:
    """Channels' envelope `{"stream": s, "payload": {...}}` means the flat frame it carries."""
    if "action" not in frame and isinstance(frame.get("payload"), dict) and "stream" in frame:
        return {**frame["payload"], "stream": frame["stream"]}
    return frame


def valid_id(frame: Any) -> Any:
    """The id an answer to this frame echoes (a string or an integer), else None."""
    if not isinstance(frame, dict):
        return None
    rid = flatten(frame).get("id")
    return rid if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None


def _slug_codes(slug: Any) -> set[str] | None:
    """bad_request for a slug the spec refuses; the parser may refuse more (unassigned
    characters, key length): those are allowed too."""
    if not _spec_slug_ok(slug):
        return {"bad_request"}
    from monitor.documents import valid_slug
    from realtime.keys import InvalidKey

    try:
        valid_slug(slug)
    except InvalidKey:
        return {"bad_request"}
    return None


def _write_codes(frame: dict[str, Any]) -> set[str] | None:
    """A create/update/delete frame's shape on the `comments` stream (docs/protocol.md)."""
    action = frame["action"]
    data = frame.get("data")
    if action in ("create", "update"):
        allowed = {"document", "body"} if action == "create" else {"body"}
        if not isinstance(data, dict) or not data or set(data) - allowed:
            return {"bad_request"}
        body = data.get("body")
        if (action == "create" and "body" not in data) or (
                "body" in data and (not isinstance(body, str) or not body.strip() or len(body) > 2000)):
            return {"bad_request"}
        if action == "create" and (_slug_codes(data.get("document")) or "document" not in data):
            return {"bad_request"}
    if action in ("update", "delete"):
        pk, version = frame.get("pk"), frame.get("version")
        if not isinstance(pk, dict) or set(pk) != {"document", "id"} or any(_slug_codes(v) for v in pk.values()):
            return {"bad_request"}
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            return {"bad_request"}
    return None


def expected_parse_error(frame: Any, size: int) -> set[str] | None:
    """The error codes docs/protocol.md allows for this frame before any table is read,
    or None when the frame is well formed. Written from the spec, not from the parser."""
    if size > MAX_BYTES:
        return {"too_large"}
    if not isinstance(frame, dict):
        return {"bad_request"}
    frame = flatten(frame)
    if "id" in frame and valid_id(frame) is None:
        return {"bad_request"}
    action = frame.get("action")
    if not isinstance(action, str):
        return {"bad_request"}
    if action not in ACTIONS:
        return {"unknown_action"}
    if action == "heartbeat":
        return None
    stream = frame.get("stream")
    if action in ("enter", "leave"):
        codes = _slug_codes(frame.get("document"))
        if codes:
            return codes
        phase = frame.get("phase")
        return {"bad_request"} if not isinstance(phase, str) or phase not in PHASES else None
    if not isinstance(stream, str) or stream not in STREAMS:
        return {"bad_request"}
    if action in WRITES:
        if stream not in BINDINGS:
            return {"unknown_action"}
        if stream == "notifications":
            return {"forbidden"}  # documents are written by other services only
        return _write_codes(frame)
    if stream in ("document", "comments"):
        return _slug_codes(frame.get("document"))
    return None


VALID_TEMPLATES = (
    {"action": "subscribe", "stream": "users"},
    {"action": "subscribe", "stream": "documents"},
    {"action": "subscribe", "stream": "notifications"},
    {"action": "subscribe", "stream": "document", "document": "roadmap"},
    {"action": "unsubscribe", "stream": "document", "document": "a#b"},
    {"action": "enter", "document": "roadmap", "phase": "edit"},
    {"action": "enter", "document": "secret", "phase": "view"},
    {"action": "leave", "document": "roadmap", "phase": "edit"},
    {"action": "heartbeat"},
    {"action": "subscribe", "stream": "comments", "document": "roadmap"},
    {"action": "create", "stream": "comments", "data": {"document": "roadmap", "body": "hi"}},
    {"action": "create", "stream": "comments", "data": {"document": "secret", "body": "hi"}},
    {"action": "update", "stream": "comments", "pk": {"document": "roadmap", "id": "0000000000001-ab"},
     "version": 1, "data": {"body": "edited"}},
    {"action": "delete", "stream": "comments", "pk": {"document": "roadmap", "id": "0000000000001-ab"}, "version": 1},
    {"action": "update", "stream": "notifications", "pk": "roadmap", "data": {"title": "mine now"}},
    {"stream": "users", "payload": {"action": "subscribe"}},
    {"stream": "document", "payload": {"action": "subscribe", "document": "roadmap"}},
)


@st.composite
def near_valid_frames(draw: Any) -> dict[str, Any]:
    """A valid frame with zero to two fields removed, retyped or made hostile."""
    frame = dict(draw(st.sampled_from(VALID_TEMPLATES)))
    if draw(st.booleans()):
        frame["id"] = draw(st.one_of(st.integers(-5, 2**64), st.text(max_size=5), weird_values))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["action", "stream", "document", "phase", "id", "data", "pk", "version"]))
        how = draw(st.sampled_from(["drop", "weird", "slug"]))
        if how == "drop":
            frame.pop(name, None)
        elif how == "weird":
            frame[name] = draw(weird_values)
        else:
            frame[name] = draw(nasty_slugs)
    return frame
