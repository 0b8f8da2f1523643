"""The monitor's state frames stay bounded however many people are present: a list entry
carries `counts` and at most `LIST_NAMES` users per phase, a roster at most `ROSTER_LIMIT`
users per phase plus `counts`, and no state frame exceeds API Gateway's 32 KB frame."""

from __future__ import annotations

import json

import pytest

from monitor.frames import MAX_STATE_FRAME_BYTES, entry, fit
from tests.apigw import ApiGateway

FRAME_LIMIT = 32 * 1024


def test_a_full_roster_of_the_longest_ids_and_names_still_fits_one_frame() -> None:
    user = {"user": "u" * 256, "name": "\U0001f600" * 64}  # 256 characters, 256 bytes of name
    roster = {phase: [user] * 100 for phase in ("view", "edit", "review")}
    counts = {"view": 5000, "edit": 100, "review": 100}
    payload = fit(entry("roadmap", "T" * 5000, counts, roster, 100))
    wire = json.dumps({"stream": "document", "payload": payload}, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(wire) <= MAX_STATE_FRAME_BYTES < FRAME_LIMIT
    assert payload["counts"] == counts  # exact, whatever the lists show
    assert 0 < len(payload["phases"]["view"]) < 100 and len(payload["title"]) == 512


@pytest.fixture
def small_limits(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> ApiGateway:
    monkeypatch.setenv("ROSTER_LIMIT", "3")
    monkeypatch.setenv("LIST_NAMES", "2")
    gateway.reset_runtime()
    return gateway


def test_rosters_and_list_entries_show_a_few_and_count_all(small_limits: ApiGateway) -> None:
    gw = small_limits
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    gw.send(watcher, {"action": "subscribe", "stream": "documents"})
    for n in range(5):
        gw.send(gw.login(f"user{n}", f"User {n}"), {"action": "enter", "document": "roadmap", "phase": "view"})
    roster = gw.last(watcher, "document")
    assert [u["user"] for u in roster["phases"]["view"]] == ["user0", "user1", "user2"]
    assert roster["counts"] == {"view": 5, "edit": 0, "review": 0}
    (listed,) = gw.last(watcher, "documents")["documents"]
    assert [u["user"] for u in listed["phases"]["view"]] == ["user0", "user1"]
    assert listed["counts"] == {"view": 5, "edit": 0, "review": 0}
    late = gw.login("late")  # a snapshot is bounded the same way
    (snapshot,) = [f["payload"] for f in gw.send(late, {"action": "subscribe", "stream": "documents"})
                   if f["stream"] == "documents"]
    assert snapshot["documents"][0]["counts"]["view"] == 5 and len(snapshot["documents"][0]["phases"]["view"]) == 2


def test_a_large_list_comes_in_frames_under_32_kb(gateway: ApiGateway) -> None:
    gw = gateway
    for n in range(300):
        gw.put_document(f"doc-{n:03d}", f"A long title for document number {n:03d} " + "x" * 200)
    reader = gw.login("rita")
    frames = gw.send(reader, {"action": "subscribe", "stream": "documents", "id": 1})
    lists = [f for f in frames if f["stream"] == "documents"]
    assert len(lists) >= 3
    assert [f["payload"]["full"] for f in lists] == [True] + [False] * (len(lists) - 1)
    assert sum(len(f["payload"]["documents"]) for f in lists) == 300
    raw = gw.stub.received(reader)
    assert all(len(frame) < FRAME_LIMIT for frame in raw)
