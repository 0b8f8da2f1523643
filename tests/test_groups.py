"""Groups' shards grow with them: one Query for a small group, many partitions for a large one.

A group starts on one `by_group` shard. A broadcast that counts more members than its
shards should hold (`keys.GROUP_SHARD_MEMBERS` each, lowered here so a handful of
connections reach it) gives it `keys.SHARD_GROWTH` times as many; members joined
before stay where they were, which the readers still read. However many shards a reader
or writer knew of, every member hears every broadcast exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from realtime import keys
from realtime.connections import Connection
from realtime.groups import Groups
from tests.apigw import ApiGateway

GROUP = "users"


def counting(client: Any) -> list[str]:
    """The names of the DynamoDB operations `client` makes from now on."""
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def member(groups: Groups, n: int, group: str = GROUP) -> str:
    cid = f"conn{n:03d}="
    groups.add(Connection(cid, f"user{n}", ttl=int(time.time()) + 3600), group)
    return cid


def read_all(groups: Groups, group: str = GROUP) -> list[str]:
    """Every member id a broadcast would reach: the first pages and the ranges after them."""
    found: list[str] = []
    for page in groups.first_pages(group, 1000):
        found += [m.connection_id for m in page.members]
        if page.after is not None:
            for cut in groups.ranges(group, page.shard, 1000, after=page.after):
                found += [m.connection_id for chunk in groups.pages(cut, 1000) for m in chunk]
    return found


def stored_count(dynamodb: Any, group: str = GROUP) -> int | None:
    item = dynamodb.get_item(TableName="connections", ConsistentRead=True,
                             Key={"pk": {"S": keys.group_shards_pk(group)}, "sk": {"S": "shards"}}).get("Item")
    return int(item["shards"]["N"]) if item else None


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(keys, "GROUP_SHARD_MEMBERS", 2)
    return 2


def test_shard_counts_grow_by_the_growth_factor_never_shrink_and_stop_at_the_cap() -> None:
    per = keys.GROUP_SHARD_MEMBERS
    assert keys.group_shards_for(0) == 1
    assert keys.group_shards_for(per) == 1
    assert keys.group_shards_for(per + 1) == keys.SHARD_GROWTH
    assert keys.group_shards_for(per * keys.SHARD_GROWTH + 1) == keys.SHARD_GROWTH ** 2
    assert keys.group_shards_for(10, current=16) == 16  # never fewer than it has
    assert keys.group_shards_for(10**12) == keys.MAX_GROUP_SHARDS


def test_the_shard_count_entry_is_read_only_from_its_own_marked_key() -> None:
    assert keys.shards_of_gsk(keys.shards_gsk(64)) == 64
    for gsk in ("conn1=", "!", "!0", "!x", f"!{keys.MAX_GROUP_SHARDS * 4}", "+64"):
        assert keys.shards_of_gsk(gsk) is None, gsk
    assert keys.shards_gsk(1) < "+"  # before the lowest base64 character, so first in shard 0


def test_a_small_group_is_one_shard_and_one_query(dynamodb) -> None:
    groups = Groups(dynamodb, "connections")
    cids = [member(groups, n) for n in range(5)]
    calls = counting(dynamodb)
    assert sorted(read_all(groups)) == cids
    assert calls == ["Query"]
    assert stored_count(dynamodb) is None


def placed(dynamodb: Any, group: str = GROUP) -> dict[str, str]:
    """Each member's `by_group` key, as stored."""
    return {item["gsk"]["S"]: item["grp"]["S"] for item in dynamodb.scan(TableName="connections")["Items"]
            if item["sk"]["S"] == keys.group_sk(group)}


def test_a_broadcast_that_counts_too_many_members_grows_the_shards(dynamodb, small_shards: int) -> None:
    groups = Groups(dynamodb, "connections")
    early = [member(groups, n) for n in range(5)]
    assert groups.grow(GROUP, 5, 1) == keys.SHARD_GROWTH
    assert stored_count(dynamodb) == keys.SHARD_GROWTH
    late = [member(groups, n) for n in range(5, 40)]
    where = placed(dynamodb)
    assert len({where[cid] for cid in late}) == keys.SHARD_GROWTH  # the new members spread
    assert {where[cid] for cid in early} == {keys.group_index_key(GROUP, 0)}  # the old stay
    assert sorted(read_all(groups)) == sorted(early + late)  # each once


def test_growth_is_kept_once_and_never_undone(dynamodb, small_shards: int) -> None:
    one, other = Groups(dynamodb, "connections"), Groups(dynamodb, "connections")
    assert one.grow(GROUP, 100, 1) == 64
    assert other.grow(GROUP, 5, 1) == keys.SHARD_GROWTH  # a racing broadcast that saw fewer
    assert stored_count(dynamodb) == 64
    calls = counting(dynamodb)
    assert one.grow(GROUP, 100, 64) == 64 and calls == []  # nothing to do costs nothing


def test_a_reader_that_has_not_seen_the_growth_learns_it_from_shard_zero(dynamodb, small_shards: int) -> None:
    writer = Groups(dynamodb, "connections")
    writer.grow(GROUP, 5, 1)
    cids = [member(writer, n) for n in range(30)]
    fresh = Groups(dynamodb, "connections")
    calls = counting(dynamodb)
    assert sorted(read_all(fresh)) == sorted(cids)
    assert calls.count("Query") == keys.SHARD_GROWTH  # shard 0, then the three it named
    calls.clear()
    read_all(fresh)
    assert calls.count("Query") == keys.SHARD_GROWTH  # now all four at once


def test_a_writer_that_has_not_seen_the_growth_still_reaches_every_reader(dynamodb, small_shards: int) -> None:
    now = [1000.0]
    stale = Groups(dynamodb, "connections", clock=lambda: now[0])
    first = member(stale, 0)  # it read the count (one shard) and keeps it for a while
    Groups(dynamodb, "connections").grow(GROUP, 50, 1)
    later = [member(stale, n) for n in range(1, 10)]
    where = placed(dynamodb)
    assert {where[cid] for cid in [first] + later} == {keys.group_index_key(GROUP, 0)}
    assert sorted(read_all(Groups(dynamodb, "connections"))) == sorted([first] + later)
    now[0] += 301  # past shard_counts.TTL_SECONDS it reads the count again, and spreads
    spread = [member(stale, n) for n in range(10, 40)]
    where = placed(dynamodb)
    assert len({where[cid] for cid in spread}) > 1
    assert sorted(read_all(Groups(dynamodb, "connections"))) == sorted([first] + later + spread)


def test_every_member_hears_every_broadcast_once_while_the_group_grows(gateway: ApiGateway,
                                                                      small_shards: int) -> None:
    gw = gateway
    watchers = []
    for n in range(12):
        cid = gw.login(f"user{n:02d}")
        gw.send(cid, {"action": "subscribe", "stream": "users"})
        watchers.append(cid)
    assert stored_count(gw.dynamodb) == 16  # 12 members: past 2 per shard twice
    gw.login("last")
    assert all(gw.last(cid, "users") == {"users": 13} for cid in watchers)
    for cid in watchers:
        counts = [f["payload"]["users"] for f in gw.frames(cid) if f["stream"] == "users"]
        assert len(counts) == len(set(counts)), counts  # no state delivered twice


def test_a_users_own_group_is_one_shard_for_good_and_costs_no_lookup(dynamodb) -> None:
    groups = Groups(dynamodb, "connections")
    mine = keys.user_group("alerts", "alice")
    assert keys.is_user_group(mine) and not keys.is_user_group(keys.group("comments", "x/user/y"))
    calls = counting(dynamodb)
    member(groups, 1, mine)
    assert calls == ["PutItem"]
    assert groups.grow(mine, 10**6, 1) == 1 and stored_count(dynamodb, mine) is None
