"""The scheduled sweep heals a missed `$disconnect` within PRESENCE_TTL_SECONDS + one sweep."""

from __future__ import annotations

import time

import pytest

from realtime import keys, runtime
from tests.apigw import ApiGateway


@pytest.fixture
def clock(gateway: ApiGateway):
    """Moves the application's clock; the sweep and every frame read it."""
    offset = [0.0]
    gateway.connect()  # builds the app
    application = runtime.app(gateway.stub.endpoint)
    application.clock = lambda: time.time() + offset[0]
    return offset


def test_missed_disconnect_heals_within_the_bound(gateway: ApiGateway, clock) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes", "Wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    ghost = gw.login("gil", "Gil")
    gw.send(ghost, {"action": "enter", "document": "roadmap", "phase": "edit"})
    assert gw.last(watcher, "users") == {"users": 2}
    assert gw.last(watcher, "document")["phases"]["edit"] == [{"user": "gil", "name": "Gil"}]

    gw.disconnect(ghost, call_handler=False)  # API Gateway lost the $disconnect
    clock[0] = 30  # the watcher keeps heartbeating; the ghost is silent
    gw.send(watcher, {"action": "heartbeat"})
    assert gw.sweep()["removed"] == 0  # not silent long enough to be asked about

    clock[0] = 61  # PRESENCE_TTL_SECONDS (60) later, the next sweep asks and hears 410
    gw.send(watcher, {"action": "heartbeat"})
    report = gw.sweep()
    assert report["removed"] == 1
    assert gw.last(watcher, "users") == {"users": 1}
    assert gw.last(watcher, "document")["phases"]["edit"] == []


def test_live_but_silent_connection_is_kept_and_its_presence_expires(gateway: ApiGateway, clock) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    sleeper = gw.login("sam", "Sam")
    gw.send(sleeper, {"action": "enter", "document": "roadmap", "phase": "view"})

    clock[0] = 90
    gw.send(watcher, {"action": "heartbeat"})
    report = gw.sweep()
    assert report["removed"] == 0 and report["expired_presence"] == 1  # the socket is open: kept
    assert gw.last(watcher, "document")["phases"]["view"] == []

    gw.send(sleeper, {"action": "heartbeat"})  # it wakes up: its presence comes back
    assert gw.last(watcher, "document")["phases"]["view"] == [{"user": "sam", "name": "Sam"}]


def test_connections_past_two_hours_are_removed_without_asking(gateway: ApiGateway, clock) -> None:
    gw = gateway
    old = gw.login("olga")
    gw.stub.reset_stats()
    clock[0] = 2 * 3600 + 5
    assert gw.sweep()["removed"] >= 1
    assert gw.stub.count(old, "GET") == 0
    assert gw.send(old, {"action": "heartbeat", "id": 1})[0]["payload"]["code"] == "unauthenticated"


def test_sweep_repairs_a_drifted_counter(gateway: ApiGateway) -> None:
    gw = gateway
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    shard = keys.counter_shard("wes")
    gw.dynamodb.put_item(TableName="connections", Item={"pk": {"S": shard}, "sk": {"S": "users"}, "n": {"N": "7"}})
    assert gw.sweep()["counter_repaired"] is True
    assert gw.last(watcher, "users") == {"users": 1}
