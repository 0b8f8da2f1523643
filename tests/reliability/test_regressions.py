"""Regressions for library bugs this suite found (each names the commit that fixed it)."""

from __future__ import annotations

import time

from tests.apigw import ApiGateway
from tests.reliability.conftest import app_of


def test_refreshing_presence_within_one_second_broadcasts_nothing(gateway: ApiGateway) -> None:
    """Presence.put read UPDATED_OLD, which omits attributes a SET left unchanged (moto does;
    the local stack runs on moto): every frame of a present connection within the same second
    looked like a new presence and re-broadcast an unchanged roster to every subscriber."""
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    alice = gw.login("alice", "Alice")
    frozen = time.time()
    app_of(gw).clock = lambda: frozen
    gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "view"})
    heard = len(gw.frames(watcher))
    for _ in range(3):
        gw.send(alice, {"action": "heartbeat"})
    gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "view"})  # again: no change
    assert gw.frames(watcher)[heard:] == []
