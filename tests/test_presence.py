"""A room's presence shards grow with it: one Query for a small room's roster, many
partitions for a crowded one, and nobody counted twice or left behind while it grows.

`keys.ROOM_SHARD_MEMBERS` is lowered here so that a handful of connections crowd a room.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from realtime import keys
from realtime.connections import Connection
from realtime.presence import Held, Presence

ROOM = "roadmap"
VIEW = Held(ROOM, "view")


def presence(dynamodb: Any) -> Presence:
    """The room's presence as one container sees it (its own memory of shard counts)."""
    return Presence(dynamodb, "connections", ttl_seconds=60, states=("view", "edit"))


def person(n: int) -> Connection:
    return Connection(f"conn{n:03d}=", f"user{n:03d}", f"User {n:03d}")


def viewers(state: Any) -> list[str]:
    return [entry["user"] for entry in state.roster["view"]]


def stored_count(dynamodb: Any) -> int | None:
    item = dynamodb.get_item(TableName="connections", ConsistentRead=True, Key={
        "pk": {"S": keys.presence_shard_pk(ROOM, 0)}, "sk": {"S": keys.ROOM_SHARDS_SK}}).get("Item")
    return int(item["shards"]["N"]) if item else None


def partitions(dynamodb: Any, cid: str) -> set[str]:
    """Where the connection's presence items are."""
    return {item["pk"]["S"] for item in dynamodb.scan(TableName="connections")["Items"]
            if item["sk"]["S"] == keys.presence_sk("view", cid)}


def calls(client: Any) -> list[str]:
    made: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: made.append(model.name))
    return made


def crowd(dynamodb: Any) -> tuple[Presence, list[Connection], float]:
    """Forty people in the room, read once: at 2 a shard, it has grown."""
    room = presence(dynamodb)
    now = time.time()
    people = [person(n) for n in range(40)]
    for one in people:
        room.put(one, VIEW, now)
    room.room(ROOM, now)
    return room, people, now


def moving(dynamodb: Any, people: list[Connection]) -> list[Connection]:
    """Those whose presence belongs in another shard since the growth."""
    shards = stored_count(dynamodb) or 1
    return [one for one in people
            if keys.presence_pk(ROOM, one.connection_id, shards) != keys.presence_pk(ROOM, one.connection_id)]


@pytest.fixture
def crowded(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(keys, "ROOM_SHARD_MEMBERS", 2)
    return 2


def test_room_shard_counts_grow_by_the_growth_factor_and_stop_at_the_cap() -> None:
    per = keys.ROOM_SHARD_MEMBERS
    assert keys.room_shards_for(per) == 1
    assert keys.room_shards_for(per + 1) == keys.SHARD_GROWTH
    assert keys.room_shards_for(3, current=16) == 16
    assert keys.room_shards_for(10**9) == keys.MAX_ROOM_SHARDS
    assert keys.shard_counts(keys.MAX_ROOM_SHARDS) == [1, 4, 16, 64]


def test_a_small_room_is_one_shard_and_its_roster_one_query(dynamodb) -> None:
    room = presence(dynamodb)
    now = time.time()
    for n in range(5):
        room.put(person(n), VIEW, now)
    made = calls(dynamodb)
    assert viewers(room.room(ROOM, now)) == [f"user{n:03d}" for n in range(5)]
    assert made == ["Query"]
    assert stored_count(dynamodb) is None


def test_a_crowded_room_grows_and_new_presences_spread(dynamodb, crowded: int) -> None:
    room = presence(dynamodb)
    now = time.time()
    for n in range(5):
        room.put(person(n), VIEW, now)
    room.room(ROOM, now)  # 5 present, 2 a shard: grows to 4
    assert stored_count(dynamodb) == keys.SHARD_GROWTH
    for n in range(5, 40):
        room.put(person(n), VIEW, now)
    spread = {pk for n in range(5, 40) for pk in partitions(dynamodb, person(n).connection_id)}
    assert len(spread) > 1
    assert viewers(presence(dynamodb).room(ROOM, now)) == [f"user{n:03d}" for n in range(40)]  # a fresh reader too


def test_after_a_growth_a_heartbeat_moves_a_presence_and_it_counts_once(dynamodb, crowded: int) -> None:
    room, people, now = crowd(dynamodb)
    moved = moving(dynamodb, people)[0]
    room.put(moved, VIEW, now + 25)  # its heartbeat
    assert len(partitions(dynamodb, moved.connection_id)) == 2  # the new copy, and the old until it expires
    state = room.room(ROOM, now + 25)
    assert viewers(state).count(moved.user_id) == 1 and state.counts["view"] == 40
    assert moved.user_id in viewers(room.room(ROOM, now + 70))  # the old copy expired; the new one is live


def test_a_leave_after_a_growth_removes_the_presence_wherever_it_is(dynamodb, crowded: int) -> None:
    room, people, now = crowd(dynamodb)
    leaving = moving(dynamodb, people)[:2]
    room.put(leaving[0], VIEW, now + 1)  # one has beaten since (two copies), one has not
    for one in leaving:
        assert room.delete(one.connection_id, VIEW, now + 2) is True
        assert partitions(dynamodb, one.connection_id) == set()
    assert not set(viewers(room.room(ROOM, now + 2))) & {one.user_id for one in leaving}


def test_a_disconnect_after_a_growth_lists_every_place_its_presence_may_be(dynamodb, crowded: int) -> None:
    room, people, now = crowd(dynamodb)
    for one in people[:10]:
        room.put(one, VIEW, now + 1)
        room.remove(one.connection_id, [VIEW])
        assert partitions(dynamodb, one.connection_id) == set()
