"""Broadcasts against a real HTTP stand-in of the @connections API.

A gone recipient (410) is removed with everything it held while the broadcast goes on,
a throttled one (429) is retried, and the others are delivered regardless.
"""

from __future__ import annotations

from realtime import keys
from tests.apigw import ApiGateway


def partition(gw: ApiGateway, pk: str) -> list[dict]:
    return gw.dynamodb.query(TableName="connections", KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {"S": pk}})["Items"]


def test_gone_removed_throttled_retried_others_delivered(gateway: ApiGateway) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    gone, throttled, fine = (gw.login(user) for user in ("gina", "theo", "fred"))
    for cid in (gone, throttled, fine):
        gw.send(cid, {"action": "subscribe", "stream": "users"})
    gw.send(gone, {"action": "enter", "document": "roadmap", "phase": "view"})
    gw.stub.unregister(gone)  # the socket died without a $disconnect
    gw.stub.script(throttled, 429, 429)

    gw.login("zed")  # the counter changes: a broadcast to the users group

    assert gw.last(fine, "users") == {"users": 3}  # gina's ghost went, zed arrived
    assert gw.last(throttled, "users") == {"users": 3}
    assert gw.stub.count(throttled) >= 3  # two 429s, then delivered
    assert partition(gw, f"c#{gone}") == []  # the gone connection and its memberships
    assert all(partition(gw, pk) == [] for pk in keys.presence_pks("roadmap", keys.MAX_ROOM_SHARDS))  # and its presence
    users = {name: partition(gw, keys.user_pk(name)) for name in ("gina", "fred", "theo", "zed")}
    assert users["gina"] == [] and all(users[name] for name in ("fred", "theo", "zed"))


def test_failing_recipient_never_fails_the_broadcast(gateway: ApiGateway) -> None:
    gw = gateway
    broken, fine = gw.login("bea"), gw.login("fay")
    for cid in (broken, fine):
        gw.send(cid, {"action": "subscribe", "stream": "users"})
    gw.stub.fail(broken, 500)
    gw.login("gus")
    assert gw.last(fine, "users") == {"users": 3}
    assert partition(gw, f"c#{broken}") != []  # a 500 is not a 410: the connection is kept


def test_reply_to_a_gone_sender_removes_it(gateway: ApiGateway) -> None:
    gw = gateway
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    leaving = gw.login("lou")
    gw.stub.unregister(leaving)
    gw.send(leaving, {"action": "heartbeat", "id": 1})  # its ack answers 410
    assert partition(gw, f"c#{leaving}") == []
    assert gw.last(watcher, "users") == {"users": 1}


def test_a_mass_disconnect_removes_a_bounded_share_of_the_gone_per_broadcast(gateway: ApiGateway) -> None:
    """Every `$disconnect` of a mass disconnect finds the same gone recipients: each handler
    removes at most MAX_INLINE_REMOVALS of them (their own `$disconnect` removes the rest),
    so its work does not grow with the group, and the counter still ends exact."""
    from realtime.removal import MAX_INLINE_REMOVALS

    gw = gateway
    watcher = gw.login("watcher")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    leaving = [gw.login(f"user{n:02d}") for n in range(MAX_INLINE_REMOVALS + 15)]
    for cid in leaving:
        gw.send(cid, {"action": "subscribe", "stream": "users"})
        gw.stub.unregister(cid)  # every socket closes; no $disconnect has run yet

    gw.login("late")  # its counter broadcast finds all of them gone
    removed = [cid for cid in leaving if partition(gw, f"c#{cid}") == []]
    assert len(removed) == MAX_INLINE_REMOVALS
    assert gw.last(watcher, "users") == {"users": 2 + len(leaving) - MAX_INLINE_REMOVALS}

    for cid in leaving:  # then their own $disconnects arrive
        gw.disconnect(cid)
    assert all(partition(gw, f"c#{cid}") == [] for cid in leaving)
    assert [name for name in ("late", "watcher", *(f"user{n:02d}" for n in range(40)))
            if partition(gw, keys.user_pk(name))] == ["late", "watcher"]
    assert gw.last(watcher, "users") == {"users": 2}
