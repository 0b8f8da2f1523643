"""A connection's liveness deadline: each frame moves it with at most one write, and an
`enter` or `leave` carries that write in its own update of what the connection holds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from realtime import keys, runtime
from realtime.connections import IDLE_GRACE_SECONDS
from tests.apigw import ApiGateway

PRESENCE_GRACE = 60  # PRESENCE_TTL_SECONDS in the test settings


@pytest.fixture
def clock(gateway: ApiGateway) -> list[float]:
    """Moves the application's clock (every frame reads it)."""
    offset = [0.0]
    gateway.connect()  # builds the app
    runtime.app(gateway.stub.endpoint).clock = lambda: time.time() + offset[0]
    return offset


def deadline_writes(gw: ApiGateway) -> list[str]:
    """The update expressions of every request that writes a connection record's deadline, from now on."""
    written: list[str] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["sk"]["S"] == keys.META and "deadline" in params.get("UpdateExpression", ""):
            written.append(params["UpdateExpression"])

    runtime._clients()["dynamodb"].meta.events.register("provide-client-params.dynamodb.UpdateItem", seen)
    return written


def record(gw: ApiGateway, cid: str) -> dict[str, Any]:
    return runtime._clients()["dynamodb"].get_item(
        TableName="connections", ConsistentRead=True,
        Key={"pk": {"S": keys.connection_pk(cid)}, "sk": {"S": keys.META}})["Item"]


def test_an_enter_writes_the_deadline_once_with_the_presence(gateway: ApiGateway, clock: list[float]) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    cid = gw.login("ada")
    clock[0] = 100  # past the slack: the touch alone would have moved it
    writes = deadline_writes(gw)
    [ack] = gw.send(cid, {"action": "enter", "document": "roadmap", "phase": "view", "id": 1})
    assert ack["stream"] == "ack"
    assert len(writes) == 1 and "ADD pres" in writes[0]
    assert int(record(gw, cid)["deadline"]["N"]) >= int(time.time() + 100) + PRESENCE_GRACE - 1


def test_leaving_the_last_presence_moves_the_deadline_to_the_idle_grace_in_the_same_write(
        gateway: ApiGateway, clock: list[float]) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    cid = gw.login("ada")
    gw.send(cid, {"action": "enter", "document": "roadmap", "phase": "view"})
    clock[0] = 30
    writes = deadline_writes(gw)
    gw.send(cid, {"action": "leave", "document": "roadmap", "phase": "view", "id": 2})
    assert len(writes) == 1 and writes[0].startswith("DELETE pres")
    held = record(gw, cid)
    assert "pres" not in held
    assert int(held["deadline"]["N"]) >= int(time.time() + 30) + IDLE_GRACE_SECONDS - 1


def test_leaving_one_of_two_presences_keeps_the_presence_grace(gateway: ApiGateway, clock: list[float]) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    cid = gw.login("ada")
    gw.send(cid, {"action": "enter", "document": "roadmap", "phase": "view"})
    gw.send(cid, {"action": "enter", "document": "roadmap", "phase": "edit"})
    clock[0] = 30
    gw.send(cid, {"action": "leave", "document": "roadmap", "phase": "view"})
    deadline = int(record(gw, cid)["deadline"]["N"])
    assert deadline <= int(time.time() + 30) + PRESENCE_GRACE + 1


def test_a_leave_does_not_first_push_forward_the_presence_it_deletes(gateway: ApiGateway,
                                                                     clock: list[float]) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    cid = gw.login("ada")
    gw.send(cid, {"action": "enter", "document": "roadmap", "phase": "view"})
    clock[0] = 30
    presence_writes: list[str] = []
    runtime._clients()["dynamodb"].meta.events.register(
        "provide-client-params.dynamodb.UpdateItem",
        lambda params, **_: presence_writes.append(params["Key"]["pk"]["S"])
        if params["Key"]["pk"]["S"].startswith("p" + keys.SEP) else None)
    gw.send(cid, {"action": "leave", "document": "roadmap", "phase": "view"})
    assert presence_writes == []


def test_a_refused_enter_still_counts_as_heard(gateway: ApiGateway, clock: list[float]) -> None:
    gw = gateway
    gw.put_document("secret", "Secret", visibility="private", owner="bob")
    cid = gw.login("ada")
    clock[0] = 100
    writes = deadline_writes(gw)
    [error] = gw.send(cid, {"action": "enter", "document": "secret", "phase": "view", "id": 3})
    assert error["stream"] == "error"
    assert len(writes) == 1 and "pres" not in writes[0]
    assert int(record(gw, cid)["deadline"]["N"]) >= int(time.time() + 100) + IDLE_GRACE_SECONDS - 1
