"""Per-connection and per-user limits (abuse and accidents): each refusal is one `error`
frame or a handshake status, and changes nothing.

- `MAX_PRESENCE` presence entries per connection: `limit_exceeded`;
- `MAX_SUBSCRIPTIONS` per connection: `limit_exceeded`;
- the frame rate, a token bucket per connection (`FRAME_RATE`/s, bursts of `FRAME_BURST`):
  `rate_limited`;
- `MAX_CONNECTIONS_PER_USER` live connections per user: the handshake answers 429.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from realtime import keys, runtime
from realtime.config import ConfigurationError, Settings
from tests.apigw import ApiGateway, token
from tests.reliability import invariants


def table(gw: ApiGateway) -> list:
    """The connections table, but for what every frame moves: the connection's liveness and
    allowance, and its presence's expiry (every frame pushes presence forward)."""
    return invariants.Model.read(gw.dynamodb).without("seen", "deadline", "tat", "expires", "ttl")


def limited(gw: ApiGateway, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    gw.reset_runtime()


def only(frames: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(frames) == 1, frames
    return {"stream": frames[0]["stream"], **frames[0]["payload"]}


def test_presence_past_max_presence_is_refused(gateway: ApiGateway, monkeypatch) -> None:
    gw = gateway
    limited(gw, monkeypatch, MAX_PRESENCE="3")
    for slug in ("a", "b", "c", "d"):
        gw.put_document(slug, slug.upper())
    alice = gw.login("alice")
    for slug in ("a", "b", "c"):
        assert only(gw.send(alice, {"action": "enter", "document": slug, "phase": "view", "id": slug}))["stream"] == "ack"
    assert only(gw.send(alice, {"action": "enter", "document": "a", "phase": "view", "id": 0}))["stream"] == "ack"
    before = table(gw)
    error = only(gw.send(alice, {"action": "enter", "document": "d", "phase": "view", "id": "d"}))
    assert (error["stream"], error["code"], error["id"]) == ("error", "limit_exceeded", "d")
    assert table(gw) == before
    gw.send(alice, {"action": "leave", "document": "a", "phase": "view"})
    assert only(gw.send(alice, {"action": "enter", "document": "d", "phase": "view", "id": 1}))["stream"] == "ack"


def test_subscriptions_past_max_subscriptions_are_refused(gateway: ApiGateway, monkeypatch) -> None:
    gw = gateway
    limited(gw, monkeypatch, MAX_SUBSCRIPTIONS="2")
    alice = gw.login("alice")
    for stream in ("users", "notifications"):
        assert gw.send(alice, {"action": "subscribe", "stream": stream, "id": stream})[-1]["stream"] == "ack"
    assert gw.send(alice, {"action": "subscribe", "stream": "users", "id": 1})[-1]["stream"] == "ack"  # again: fine
    before = table(gw)
    error = only(gw.send(alice, {"action": "subscribe", "stream": "documents", "id": 2}))
    assert (error["code"], error["id"]) == ("limit_exceeded", 2)
    assert table(gw) == before
    gw.send(alice, {"action": "unsubscribe", "stream": "users"})
    assert gw.send(alice, {"action": "subscribe", "stream": "documents", "id": 3})[-1]["stream"] == "ack"


def test_frames_past_the_allowance_are_rate_limited_and_change_nothing(gateway: ApiGateway, monkeypatch) -> None:
    gw = gateway
    limited(gw, monkeypatch, FRAME_RATE="10", FRAME_BURST="5")
    gw.put_document("roadmap", "Roadmap")
    alice = gw.login("alice")
    engine = runtime.app(gw.stub.endpoint)
    frozen = time.time()
    engine.clock = lambda: frozen  # all at once
    answers = [only(gw.send(alice, {"action": "heartbeat", "id": n})) for n in range(5)]
    assert [a["stream"] for a in answers] == ["ack"] * 5
    before = table(gw)
    error = only(gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "edit", "id": "e"}))
    assert (error["stream"], error["code"], error["id"]) == ("error", "rate_limited", "e")
    assert table(gw) == before  # not entered
    engine.clock = lambda: frozen + 0.1  # one frame's worth of time
    assert only(gw.send(alice, {"action": "heartbeat", "id": "h"}))["stream"] == "ack"
    assert only(gw.send(alice, {"action": "heartbeat", "id": "h2"}))["code"] == "rate_limited"
    engine.clock = lambda: frozen + 10  # the bucket refills
    assert [only(gw.send(alice, {"action": "heartbeat", "id": n}))["stream"] for n in range(5)] == ["ack"] * 5


def test_a_fractional_frame_rate_refills_one_frame_per_its_period(gateway: ApiGateway, monkeypatch) -> None:
    gw = gateway
    limited(gw, monkeypatch, FRAME_RATE="0.5", FRAME_BURST="2")  # one frame back every 2 s
    alice = gw.login("alice")
    engine = runtime.app(gw.stub.endpoint)
    frozen = time.time()
    engine.clock = lambda: frozen
    assert [only(gw.send(alice, {"action": "heartbeat", "id": n}))["stream"] for n in range(2)] == ["ack"] * 2
    assert only(gw.send(alice, {"action": "heartbeat", "id": "x"}))["code"] == "rate_limited"
    engine.clock = lambda: frozen + 1.5  # not yet a whole period
    assert only(gw.send(alice, {"action": "heartbeat", "id": "y"}))["code"] == "rate_limited"
    engine.clock = lambda: frozen + 2.0
    assert only(gw.send(alice, {"action": "heartbeat", "id": "z"}))["stream"] == "ack"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "ten"])
def test_a_frame_rate_that_is_not_a_positive_number_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="FRAME_RATE"):
        Settings.from_env({"CONNECTIONS_TABLE": "c", "FRAME_RATE": value})


def test_a_flapping_connection_is_rate_limited_and_costs_others_little(gateway: ApiGateway, monkeypatch) -> None:
    """Forty enter/leave frames at once: the allowance answers past its burst, so the others'
    rosters change a bounded number of times however hard one connection flaps."""
    gw = gateway
    limited(gw, monkeypatch, FRAME_RATE="10", FRAME_BURST="20")
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    mallory = gw.login("mallory")
    engine = runtime.app(gw.stub.endpoint)
    frozen = time.time()
    engine.clock = lambda: frozen
    before = len(gw.frames(watcher))
    codes = []
    for n in range(20):
        for action in ("enter", "leave"):
            frames = gw.send(mallory, {"action": action, "document": "roadmap", "phase": "edit", "id": n})
            codes.append(frames[-1]["payload"].get("code", "ok"))
    assert codes.count("ok") == 20 and codes.count("rate_limited") == 20  # a burst's worth, then refused
    assert len(gw.frames(watcher)) - before <= 20  # never more than one frame per accepted change


def test_connections_past_the_per_user_limit_are_refused_429(gateway: ApiGateway, monkeypatch) -> None:
    gw = gateway
    limited(gw, monkeypatch, MAX_CONNECTIONS_PER_USER="2")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    tabs = [gw.login("amy") for _ in range(2)]
    before = table(gw)
    status, cid = gw.connect(query={"token": token("amy", "Amy")})
    assert status == 429
    assert table(gw) == before  # nothing registered, nothing counted
    assert cid not in invariants.Model.read(gw.dynamodb).connections and not gw.stub.is_live(cid)
    assert gw.last(watcher, "users") == {"users": 2}

    gw.disconnect(tabs[0])
    assert gw.connect(query={"token": token("amy", "Amy")})[0] == 200  # room again


def test_a_crashed_tab_does_not_lock_its_user_out(gateway: ApiGateway, monkeypatch) -> None:
    """At the limit, the user's connections API Gateway says are gone are removed first."""
    gw = gateway
    limited(gw, monkeypatch, MAX_CONNECTIONS_PER_USER="2")
    first, crashed = gw.login("amy"), gw.login("amy")
    gw.disconnect(crashed, call_handler=False)  # its $disconnect never came
    assert gw.connect(query={"token": token("amy", "Amy")})[0] == 200
    model = invariants.Model.read(gw.dynamodb)
    assert crashed not in model.connections and first in model.connections
    assert len(model.users["amy"]) == 2


def test_racing_first_connections_of_many_users_count_exactly(moto_server: str) -> None:
    """The sharded counter under racing connects and disconnects of many different users."""
    import threading

    import boto3

    from devtools.template import create_tables
    from realtime.counter import UserCounter

    def counter() -> UserCounter:
        return UserCounter(boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server),
                           "connections")

    create_tables(counter().client, names={"ConnectionsTable": "connections"})

    users = [f"user{n}" for n in range(40)]
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []

    def life(user: str) -> None:
        mine = counter()
        try:
            barrier.wait()
            mine.join(user, f"{user}-a")
            mine.join(user, f"{user}-b")
            mine.leave(user, f"{user}-a")
            if user.endswith(("0", "5")):
                mine.leave(user, f"{user}-b")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=life, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    left = [u for u in users if not u.endswith(("0", "5"))]
    assert counter().value() == len(left)
    assert counter().reconcile() is None  # nothing drifted
    shards = {keys.counter_shard(u) for u in users}
    assert len(shards) > 1
