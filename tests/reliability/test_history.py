"""Catch-up under stress: replays across Query pages, cursors past the retention, readers
revoked between a message and its replay, and live delivery racing the replay.

The client side is modelled from docs/protocol.md ("Catch-up"): a page keeps the highest
`seq` per (stream, model, pk) and drops binding events that are not higher, and drops a
published event whose `event` id it has seen. With that rule, every message logged after the
page's cursor reaches it exactly once, whatever the interleaving of live delivery and replay.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.apigw import ApiGateway, LambdaContext
from tests.reliability.conftest import app_of, fuzz_settings
from tests.streams import Pump


@pytest.fixture
def pump(gateway: ApiGateway) -> Pump:
    return Pump(gateway.dynamodb, "documents", "comments")


def publish(stream: str, to: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
    from devtools.stack.events import published_event
    from functions.publish import app

    return app.handler(published_event(stream, to, payload), LambdaContext())


def subscribe(gw: ApiGateway, cid: str, stream: str, **extra: Any) -> list[dict[str, Any]]:
    return gw.send(cid, {"action": "subscribe", "stream": stream, "id": "s", **extra})


def ack_cursor(replies: list[dict[str, Any]]) -> str:
    (ack,) = [f["payload"] for f in replies if f["stream"] == "ack"]
    return ack["cursor"]


class Page:
    """What a page keeps and shows, by the documented dedupe rule."""

    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}
        self.events: set[str] = set()
        self.shown: list[dict[str, Any]] = []

    def take(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            if frame["stream"] in ("ack", "error"):
                continue
            payload = frame["payload"]
            if "seq" in payload:
                key = json.dumps([frame["stream"], payload.get("model"), payload["pk"]], sort_keys=True)
                if int(payload["seq"]) <= self.seqs.get(key, -1):
                    continue
                self.seqs[key] = int(payload["seq"])
            elif frame.get("event") is not None:
                if frame["event"] in self.events:
                    continue
                self.events.add(frame["event"])
            self.shown.append(frame)


# ---------------------------------------------------------------- pages of the log


def test_a_replay_longer_than_a_query_page_arrives_whole_and_in_order(gateway: ApiGateway, pump: Pump) -> None:
    gw = gateway
    bob = gw.login("bob")
    cursor = ack_cursor(subscribe(gw, bob, "notifications"))
    app_of(gw).services.history.page_size = 2  # DynamoDB pages by 1 MB; the same paths, smaller
    gw.disconnect(bob)
    for n in range(7):
        gw.put_document(f"doc-{n}", f"Doc {n}")
    pump()
    bob = gw.login("bob")
    replayed = [f for f in subscribe(gw, bob, "notifications", since=cursor) if f["stream"] == "notifications"]
    assert [f["payload"]["pk"] for f in replayed] == [f"doc-{n}" for n in range(7)]
    assert [f["cursor"] for f in replayed] == sorted(f["cursor"] for f in replayed)


def test_a_replay_merges_the_group_and_the_user_log_across_their_pages(gateway: ApiGateway) -> None:
    """Alerts to everyone and alerts to Alice are two logs; her replay interleaves them by cursor."""
    gw = gateway
    alice = gw.login("alice")
    cursor = ack_cursor(subscribe(gw, alice, "alerts"))
    app_of(gw).services.history.page_size = 2
    gw.disconnect(alice)
    sent = []
    for n in range(9):
        to = {"user": "alice"} if n % 3 else {"group": "alerts"}
        publish("alerts", to, {"n": n})
        sent.append(n)
    alice = gw.login("alice")
    replayed = [f["payload"]["n"] for f in subscribe(gw, alice, "alerts", since=cursor) if f["stream"] == "alerts"]
    assert replayed == sent


def test_the_limit_counts_messages_across_pages_and_logs(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAY_LIMIT", "5")
    gw = gateway
    gw.reset_runtime()
    alice = gw.login("alice")
    cursor = ack_cursor(subscribe(gw, alice, "alerts"))
    app_of(gw).services.history.page_size = 2
    for n in range(6):
        publish("alerts", {"user": "alice"} if n % 2 else {"group": "alerts"}, {"n": n})
    alice = gw.login("alice")
    replies = subscribe(gw, alice, "alerts", since=cursor)
    assert [f["payload"] for f in replies if f["stream"] == "alerts"] == [{"reset": True}]


# ---------------------------------------------------------------- retention


def clock_of(gw: ApiGateway) -> list[float]:
    """The application's clock, offset by the test (seconds added to the wall clock). Moved back,
    not forward: the connections' records live in wall-clock time."""
    offset = [0.0]
    gw.connect()  # builds the app behind the gateway
    app_of(gw).clock = lambda: time.time() + offset[0]
    return offset


def sent_ago(gw: ApiGateway, seconds: float, user: str) -> str:
    """Subscribe to alerts, then get one alert, `seconds` ago; return the subscribe's cursor."""
    clock = clock_of(gw)
    clock[0] = -seconds
    cursor = ack_cursor(subscribe(gw, gw.login(user), "alerts"))
    publish("alerts", {"user": user}, {"text": f"{seconds:.0f} s ago"})
    clock[0] = 0.0
    return cursor


def test_a_cursor_inside_the_retention_replays(gateway: ApiGateway) -> None:
    cursor = sent_ago(gateway, 23 * 3600 + 3000, "bob")  # HISTORY_HOURS is 24
    replies = subscribe(gateway, gateway.login("bob"), "alerts", since=cursor)
    assert [f["payload"] for f in replies if f["stream"] == "alerts"] == [{"text": "85800 s ago"}]


def test_a_cursor_past_the_retention_resets(gateway: ApiGateway) -> None:
    cursor = sent_ago(gateway, 24 * 3600 + 60, "bob")
    replies = subscribe(gateway, gateway.login("bob"), "alerts", since=cursor)
    assert [f["payload"] for f in replies if f["stream"] == "alerts"] == [{"reset": True}]


def test_an_entry_past_its_ttl_is_not_replayed_before_dynamodb_deletes_it(
        gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB deletes expired items up to days late; a retention raised since the write
    must not bring back what had expired."""
    gw = gateway
    monkeypatch.setenv("HISTORY_HOURS", "1")
    gw.reset_runtime()
    cursor = sent_ago(gw, 2 * 3600, "bob")
    (entry,) = gw.dynamodb.scan(TableName="history")["Items"]
    assert int(entry["ttl"]["N"]) < time.time()  # expired, still stored
    monkeypatch.setenv("HISTORY_HOURS", "24")
    gw.reset_runtime()
    replies = subscribe(gw, gw.login("bob"), "alerts", since=cursor)
    assert [f["stream"] for f in replies] == ["ack"]


# ---------------------------------------------------------------- revoked readers


def test_a_reader_revoked_between_the_messages_and_the_replay_sees_nothing_after_the_revocation(
        gateway: ApiGateway, pump: Pump) -> None:
    """Each message is decided as of when it was sent (docs/protocol.md): Bob gets the update
    he could read, then the delete that took his access, and nothing written after it."""
    gw = gateway
    gw.put_document("plan", "Plan", visibility="private", owner="alice", readers=["bob"])
    pump()
    bob = gw.login("bob")
    cursor = ack_cursor(subscribe(gw, bob, "notifications"))
    gw.disconnect(bob)
    gw.put_document("plan", "Plan v2", visibility="private", owner="alice", readers=["bob"])
    gw.put_document("plan", "Plan v2", visibility="private", owner="alice", readers=[])
    gw.put_document("plan", "Plan v3: the secret part", visibility="private", owner="alice", readers=[])
    pump()
    bob = gw.login("bob")
    replies = subscribe(gw, bob, "notifications", since=cursor)
    replayed = [(f["payload"]["action"], f["payload"]["data"]) for f in replies if f["stream"] == "notifications"]
    assert replayed == [("update", {"slug": "plan", "title": "Plan v2"}), ("delete", {"slug": "plan"})]
    assert "secret" not in json.dumps(gw.frames(bob))


def test_a_reader_revoked_before_the_replay_of_a_documents_comments_is_refused_it(
        gateway: ApiGateway, pump: Pump) -> None:
    """The subscribe is authorized as of now, before anything is replayed."""
    gw = gateway
    gw.put_document("plan", "Plan", visibility="private", owner="alice", readers=["bob"])
    pump()
    alice, bob = gw.login("alice"), gw.login("bob")
    cursor = ack_cursor(subscribe(gw, bob, "comments", document="plan"))
    gw.disconnect(bob)
    gw.send(alice, {"action": "create", "stream": "comments", "data": {"document": "plan", "body": "while you were out"}})
    gw.put_document("plan", "Plan", visibility="private", owner="alice", readers=[])
    pump()
    bob = gw.login("bob")
    (error,) = subscribe(gw, bob, "comments", document="plan", since=cursor)
    assert error["stream"] == "error" and error["payload"]["code"] == "forbidden"
    assert "while you were out" not in json.dumps(gw.frames(bob))


def test_events_to_one_user_are_never_replayed_to_another(gateway: ApiGateway) -> None:
    gw = gateway
    cursors = {}
    for user in ("alice", "mallory"):
        cid = gw.login(user)
        cursors[user] = ack_cursor(subscribe(gw, cid, "alerts"))
        gw.disconnect(cid)
    publish("alerts", {"user": "alice"}, {"text": "alice's secret"})
    mallory = gw.login("mallory")
    assert [f["stream"] for f in subscribe(gw, mallory, "alerts", since=cursors["mallory"])] == ["ack"]
    # Mallory may not forge her way into Alice's log either: `since` is all she chooses.
    assert "secret" not in json.dumps(gw.frames(mallory))


# ---------------------------------------------------------------- live delivery racing the replay

PHASES = ("seen", "missed", "joined", "read")
# seen:   delivered live before the drop;            missed: sent while the page was away;
# joined: sent after the subscribe joined the group, before it read the log (live *and* replayed);
# read:   sent after the log was read, while the replay is being sent (live only).
STREAM_OF = {"doc": "notifications", "alert": "alerts"}


@fuzz_settings(quick=12)
@given(plan=st.lists(st.tuples(st.sampled_from(PHASES), st.sampled_from(("doc", "alert"))), min_size=1, max_size=6))
def test_live_delivery_during_a_replay_leaves_no_gap_and_no_duplicate_after_dedupe(
        gateway: ApiGateway, pump: Pump, plan: list[tuple[str, str]]) -> None:
    gw = gateway
    tag = f"{time.monotonic_ns():x}"
    user = f"u{tag}"
    page = Page()
    sent: dict[str, list[str]] = {"notifications": [], "alerts": []}
    phase_of: dict[str, str] = {}

    def send(phase: str, stream: str | None = None) -> None:
        for n, (when, kind) in enumerate(plan):
            if when != phase or (stream is not None and STREAM_OF[kind] != stream):
                continue
            name = f"{tag}-{n}"
            sent[STREAM_OF[kind]].append(name)
            phase_of[name] = phase
            if kind == "doc":
                gw.put_document(name, name)
                pump()
            else:
                publish("alerts", {"user": user}, {"name": name})

    cid = gw.login(user)
    cursors = {stream: ack_cursor(subscribe(gw, cid, stream)) for stream in ("notifications", "alerts")}
    before = len(gw.frames(cid))
    send("seen")
    page.take(gw.frames(cid)[before:])
    for frame in page.shown:
        cursors[frame["stream"]] = max(cursors[frame["stream"]], frame["cursor"])
    gw.disconnect(cid)
    send("missed")

    history = app_of(gw).services.history
    real_after = history.after

    def racing_after(groups: list[str], since: str, now: float) -> Any:
        stream = "notifications" if groups == ["notifications"] else "alerts"
        send("joined", stream)
        replay = real_after(groups, since, now)
        worker = threading.Thread(target=send, args=("read", stream))  # another Lambda, while this one replays
        worker.start()
        worker.join()
        return replay

    cid = gw.login(user)
    history.after = racing_after  # type: ignore[method-assign]
    try:
        for stream in ("notifications", "alerts"):
            subscribe(gw, cid, stream, since=cursors[stream])
    finally:
        history.after = real_after  # type: ignore[method-assign]
    page.take(gw.frames(cid))

    for stream, names in sent.items():
        shown = [f["payload"].get("pk") or f["payload"].get("name") for f in page.shown if f["stream"] == stream]
        assert sorted(shown) == sorted(names), f"{stream}: each message exactly once"
        missed = [name for name in names if phase_of[name] == "missed"]
        assert [name for name in shown if phase_of[name] == "missed"] == missed, f"{stream}: missed, in order"
