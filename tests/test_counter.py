"""The user counter stays exact under interleaved connects and disconnects of one user,
never goes negative, and is repaired by `reconcile`."""

from __future__ import annotations

import pytest

from realtime import keys
from realtime.counter import UserCounter


@pytest.fixture
def counter(dynamodb) -> UserCounter:
    return UserCounter(dynamodb, "connections")


def user_item(counter: UserCounter, user: str) -> dict | None:
    return counter.client.get_item(TableName="connections", Key=counter._user_key(user)).get("Item")


def test_tabs_count_once(counter: UserCounter) -> None:
    assert counter.join("bob", "c1") is True
    assert counter.join("bob", "c2") is False
    assert counter.join("amy", "c3") is True
    assert counter.value() == 2
    assert counter.leave("bob", "c1") is False
    assert counter.value() == 2
    assert counter.leave("bob", "c2") is True
    assert counter.value() == 1


def test_repeated_or_unknown_leaves_never_go_negative(counter: UserCounter) -> None:
    counter.join("amy", "c1")
    assert counter.leave("amy", "c1") is True
    assert counter.leave("amy", "c1") is False
    assert counter.leave("nobody", "c9") is False
    assert counter.value() == 0


def test_join_racing_the_last_leave(counter: UserCounter) -> None:
    """Bob's last tab is closing (its connection already removed from his set) when a new tab opens."""
    counter.join("bob", "old")
    counter.client.update_item(TableName="connections", Key=counter._user_key("bob"),
                               UpdateExpression="DELETE conns :c", ExpressionAttributeValues={":c": {"SS": ["old"]}})
    assert counter.join("bob", "new") is False  # still counted: the user item exists
    assert counter._remove_user("bob") is False  # the leave's transaction sees the new tab and backs off
    assert counter.value() == 1
    assert user_item(counter, "bob")["conns"]["SS"] == ["new"]


def test_leave_then_join_counts_again(counter: UserCounter) -> None:
    counter.join("bob", "old")
    counter.leave("bob", "old")
    assert counter.join("bob", "new") is True
    assert counter.value() == 1


def test_a_crash_between_steps_is_repaired_by_reconcile(counter: UserCounter) -> None:
    counter.join("amy", "a1")
    counter.join("bob", "b1")
    # The leave removed bob's last connection, then the function died before the transaction.
    counter.client.update_item(TableName="connections", Key=counter._user_key("bob"),
                               UpdateExpression="DELETE conns :c", ExpressionAttributeValues={":c": {"SS": ["b1"]}})
    assert counter.value() == 2
    assert counter.reconcile() == 1
    assert counter.value() == 1
    assert counter.reconcile() is None  # nothing left to repair


def test_drift_to_zero_does_not_go_negative(counter: UserCounter) -> None:
    counter.join("amy", "a1")
    shard = {"pk": {"S": keys.counter_shard("amy")}, "sk": {"S": "users"}}  # amy's shard drifted to 0
    counter.client.put_item(TableName="connections", Item={**shard, "n": {"N": "0"}})
    assert counter.leave("amy", "a1") is False
    assert counter.value() == 0
    assert user_item(counter, "amy") is None


def test_no_item_takes_every_first_connection(counter: UserCounter) -> None:
    """The count is spread over shards: many users' first connections land on many items."""
    for n in range(64):
        counter.join(f"user{n}", f"c{n}")
    assert counter.value() == 64
    shards = {keys.counter_shard(f"user{n}") for n in range(64)}
    assert len(shards) > keys.COUNTER_SHARDS // 2
    counts = [int(counter.client.get_item(TableName="connections", Key={"pk": {"S": s}, "sk": {"S": "users"}})
                  .get("Item", {}).get("n", {}).get("N", "0")) for s in keys.counter_shards()]
    assert sum(counts) == 64 and max(counts) < 64


def test_a_user_at_the_connection_limit_is_refused_and_nothing_changes(dynamodb) -> None:
    from realtime.counter import TooManyConnections

    limited = UserCounter(dynamodb, "connections", max_connections=3)
    for n in range(3):
        limited.join("amy", f"a{n}")
    before = user_item(limited, "amy")
    with pytest.raises(TooManyConnections):
        limited.join("amy", "a3")
    assert user_item(limited, "amy") == before
    assert limited.value() == 1
    limited.leave("amy", "a0")
    assert limited.join("amy", "a3") is False  # room again: counted once, as before
