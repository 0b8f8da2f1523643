"""The scheduled sweep heals a missed `$disconnect` within PRESENCE_TTL_SECONDS + one sweep."""

from __future__ import annotations

import json
import time

import pytest

from realtime import keys, runtime
from realtime.connections import IDLE_GRACE_SECONDS
from tests.apigw import ApiGateway, LambdaContext
from tests.reliability import invariants


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


# ---- a bounded, fair sweep (issue 13, finding 4) ------------------------------------------

#: How long a connection holding no presence may be silent before the sweep asks about it.
IDLE = IDLE_GRACE_SECONDS
GHOSTS = 2000
LIVE_BUT_SILENT = 30  # the oldest of them: open sockets whose clients stopped heartbeating
HOLDING_PRESENCE = 20


@pytest.fixture
def quiet_clock(gateway: ApiGateway):
    """`clock`, without the connection that fixture opens (it would be silent too)."""
    offset = [0.0]
    runtime.app(gateway.stub.endpoint).clock = lambda: time.time() + offset[0]
    return offset


class BudgetedContext(LambdaContext):
    """A Lambda context whose remaining time is ample for `reads` reads, then gone: the
    sweep's budget, spent deterministically whatever the machine's speed."""

    def __init__(self, reads: int) -> None:
        self.reads = reads

    def get_remaining_time_in_millis(self) -> int:
        self.reads -= 1
        return 600_000 if self.reads >= 0 else 0


@pytest.fixture
def fast_moto():
    """moto's index and partition reads without the whole-table sort (as the local stack runs
    it; results unchanged, tests/stack/test_moto_speedups.py), so thousands of items stay quick."""
    from devtools.stack import moto_speedups

    moto_speedups.apply()
    yield
    moto_speedups.restore()


def seed_ghosts(gw: ApiGateway, now: float) -> list[str]:
    """GHOSTS connections silent for 100 s and more (one second apart, oldest first in the
    returned list), stored as `Connections.register`, `UserCounter.join` and `Presence.put`
    store them: a record, a counted user each, and presence in `roadmap` for some, whose
    room's announcement is due since the first of them expired (as the room's last
    announcement would have scheduled it). None has a socket (410), except the
    LIVE_BUT_SILENT oldest."""
    from realtime.dynamo import to_item

    ghosts = [f"ghost{n:05d}=" for n in range(GHOSTS)]
    items = []
    shards: dict[str, int] = {}
    for age, cid in enumerate(reversed(ghosts)):  # the last is the youngest: seen 100 s ago
        seen = int(now) - 100 - age
        user = f"u-{cid[:-1]}"
        holds = ghosts.index(cid) % (GHOSTS // HOLDING_PRESENCE) == 1
        token = keys.presence_token("roadmap", "edit")
        items.append(to_item({"pk": keys.connection_pk(cid), "sk": keys.META, "conn": cid, "uid": user, "name": user,
                              "connected_at": seen * 1000, "seen": seen, "sweep": keys.sweep_shard(cid),
                              "deadline": seen + 60,  # every one of them overdue
                              "ttl": seen + 2 * 3600 + 600, "pres": {token} if holds else None}))
        items.append(to_item({"pk": keys.user_pk(user), "sk": "user", "conns": {cid}, "uid": user,
                              "cshard": keys.counter_shard(user)}))
        shards[keys.counter_shard(user)] = shards.get(keys.counter_shard(user), 0) + 1
        if holds:
            items.append(to_item({"pk": keys.presence_pk("roadmap", cid), "sk": keys.presence_sk("edit", cid),
                                  "expires": seen + 60, "ttl": seen + 60, "room": "roadmap", "state": "edit",
                                  "conn": cid, "uid": user, "name": user}))
    for start in range(0, len(items), 25):
        gw.dynamodb.batch_write_item(RequestItems={"connections": [
            {"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
    for shard, count in shards.items():
        gw.dynamodb.update_item(TableName="connections", Key={"pk": {"S": shard}, "sk": {"S": "users"}},
                                UpdateExpression="ADD n :n", ExpressionAttributeValues={":n": {"N": str(count)}})
    due = now - 100 - GHOSTS + 60  # the oldest presence expired then: the room is due since
    gw.dynamodb.put_item(TableName="connections", Item=to_item({
        "pk": keys.announcement_pk("$presence", "roadmap"), "sk": "pending", "due": int(due),
        "deadline": int(due) + 120, "sweep": keys.stuck_shard("$presence", "roadmap"), "ttl": int(now) + 86400}))
    gw.stub.register(*ghosts[:LIVE_BUT_SILENT])
    return ghosts


def drift(gw: ApiGateway, user: str, value: int) -> None:
    """The counter shard of `user` drifts to `value` (a crash between two steps, say)."""
    gw.dynamodb.put_item(TableName="connections", Item={"pk": {"S": keys.counter_shard(user)}, "sk": {"S": "users"},
                                                        "n": {"N": str(value)}})


def stored_connections(gw: ApiGateway) -> set[str]:
    return set(invariants.Model.read(gw.dynamodb).connections)


def emitted(capsys: pytest.CaptureFixture[str], metric: str) -> list[float]:
    """The values of one EMF metric the handlers printed since last asked."""
    values = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and f'"{metric}"' in line:
            values.extend(json.loads(line)[metric])
    return values


def test_thousands_of_silent_connections_do_not_starve_presence_expiry_or_the_counter_repair(
        gateway: ApiGateway, quiet_clock, fast_moto, capsys: pytest.CaptureFixture[str]) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes", "Wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    ghosts = seed_ghosts(gw, time.time())
    assert invariants.all_problems(gw.dynamodb) == []  # stored exactly as the engine stores them
    drift(gw, "wes", 9999)  # and the counter drifted
    assert len(gw.send(watcher, {"action": "heartbeat"})) == 0
    capsys.readouterr()

    # The first sweep after the ghosts' PRESENCE_TTL_SECONDS, with a budget for ~1.5 pages.
    report = gw.sweep(BudgetedContext(reads=150))

    assert report["expired_presence"] == 1  # the room's announcement, due since the first presence expired
    assert gw.last(watcher, "document")["phases"]["edit"] == []  # no ghost in the roster
    assert report["counter_repaired"] is True
    assert invariants.all_problems(gw.dynamodb) == []  # the counter agrees with what is stored
    assert gw.last(watcher, "users") == {"users": invariants.Model.read(gw.dynamodb).counter}
    # The budget ran out long before the ghosts did, and the run says how many it left.
    assert 0 < report["removed"] < GHOSTS - LIVE_BUT_SILENT
    assert report["live"] == LIVE_BUT_SILENT
    left = GHOSTS - LIVE_BUT_SILENT - report["removed"]
    assert report["left_over"] == left
    assert emitted(capsys, "SweepLeftOver") == [left]
    # Oldest first: what is left is exactly the youngest ghosts (and the live ones).
    assert stored_connections(gw) == {watcher, *ghosts[:LIVE_BUT_SILENT], *ghosts[GHOSTS - left:]}

    # The next run starts with the leftovers, oldest first; the live ones are not asked again.
    gw.stub.reset_stats()
    second = gw.sweep(BudgetedContext(reads=150))
    assert second["removed"] > 0 and second["live"] == 0
    assert all(gw.stub.count(cid, "GET") == 0 for cid in ghosts[:LIVE_BUT_SILENT])
    still = left - second["removed"]
    assert second["left_over"] == still
    assert stored_connections(gw) == {watcher, *ghosts[:LIVE_BUT_SILENT], *ghosts[GHOSTS - still:]}
    assert gw.last(watcher, "users") == {"users": invariants.Model.read(gw.dynamodb).counter}
    assert invariants.all_problems(gw.dynamodb) == []


def test_presence_expires_and_the_counter_is_repaired_when_no_budget_is_left(gateway: ApiGateway,
                                                                            quiet_clock) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    ghost = gw.login("gil", "Gil")
    gw.send(ghost, {"action": "enter", "document": "roadmap", "phase": "edit"})
    gw.disconnect(ghost, call_handler=False)
    drift(gw, "wes", 7)
    quiet_clock[0] = 61
    gw.send(watcher, {"action": "heartbeat"})

    report = gw.sweep(BudgetedContext(reads=0))  # the stale check may not even start

    assert (report["checked"], report["removed"], report["left_over"]) == (0, 0, 1)
    assert report["expired_presence"] == 1 and gw.last(watcher, "document")["phases"]["edit"] == []
    assert report["counter_repaired"] is True and gw.last(watcher, "users") == {"users": 2}
    assert gw.stub.count(ghost, "GET") == 0


def test_a_connection_the_management_api_cannot_answer_for_is_kept_and_asked_again(gateway: ApiGateway,
                                                                                    quiet_clock) -> None:
    gw = gateway
    unsure = gw.login("uma")
    gw.stub.fail(unsure, 500)  # every GET, through the sender's retries
    quiet_clock[0] = IDLE + 1
    report = gw.sweep()
    assert (report["asked"], report["unknown"], report["removed"], report["left_over"]) == (1, 1, 0, 0)
    gw.stub.clear_faults()
    gw.stub.unregister(unsure)
    assert gw.sweep()["removed"] == 1  # the next run asks again and hears 410


def test_a_live_connection_is_asked_about_once_per_silence(gateway: ApiGateway, quiet_clock) -> None:
    gw = gateway
    quiet = gw.login("quinn")
    quiet_clock[0] = IDLE + 1
    assert gw.sweep()["live"] == 1
    assert gw.sweep()["asked"] == 0  # heard from just now: not past its deadline again yet
    quiet_clock[0] = 2 * (IDLE + 1)
    assert gw.sweep()["live"] == 1
    assert gw.stub.count(quiet, "GET") == 2


def test_the_configured_budget_bounds_a_run_without_a_lambda_context(gateway: ApiGateway) -> None:
    """Without a Lambda context (tools, the tests), SWEEP_BUDGET_SECONDS is the bound, on the
    injected timer."""
    from realtime.sweep import Sweep

    gw = gateway
    for user in ("a", "b", "c"):
        gw.disconnect(gw.login(user), call_handler=False)
    engine = runtime.app(gw.stub.endpoint)
    later = time.time() + IDLE + 1
    engine.clock = lambda: later
    ticks = iter(range(100))
    sweep = Sweep(engine.services, engine.lifecycle.remover, engine.lifecycle.publisher,
                  timer=lambda: float(next(ticks)) * engine.services.settings.sweep_budget_seconds / 2)
    report = sweep.run()  # half the budget is left when the page starts, none at the first removal
    assert (report.checked, report.asked, report.removed, report.left_over) == (3, 3, 0, 3)
