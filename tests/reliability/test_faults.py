"""Fault injection, with the invariants checked after every run.

Faults: the management API answering 410, 429, 500, hanging or dropping the connection;
DynamoDB throttling (after botocore's retries, and transient on the wire),
ConditionalCheckFailed and transaction conflicts; `$connect`/`$disconnect` dying half way.
Invariants (tests/reliability/invariants.py): every key well formed; counter, user items,
connection records and presence agree; once healed, the counter equals the number of
distinct signed-in users with a live socket and no record of a closed socket is left.
"""

from __future__ import annotations

import pytest

from realtime import runtime
from tests.apigw import ApiGateway
from tests.reliability import invariants
from tests.reliability.conftest import app_of
from tests.reliability.faults import fail, throttle_on_the_wire

THROTTLES = ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded")


def dynamo() -> object:
    return runtime._clients()["dynamodb"]


def healthy(gw: ApiGateway, *, live: bool = True) -> None:
    problems = invariants.all_problems(gw.dynamodb, gw.stub.is_live if live else None)
    assert problems == []


def try_connect(gw: ApiGateway, user: str | None) -> tuple[int, str | None]:
    """`$connect` as API Gateway sees it: a function error refuses the handshake with 500."""
    from tests.apigw import connection_id, token

    cid = connection_id()
    try:
        status, _ = gw.connect(query={"token": token(user, user.title())} if user else None, cid=cid)
    except Exception:  # noqa: BLE001 - the Lambda failed: API Gateway answers 500, no socket opens
        return 500, cid
    return status, cid


def heal(gw: ApiGateway, clock: list[float], seconds: float = 61) -> dict:
    """Time passes (the survivors keep heartbeating), then the scheduled sweep runs."""
    clock[0] += seconds
    for cid in list(gw.connected_at):
        if gw.stub.is_live(cid):
            gw.send(cid, {"action": "heartbeat"})
    return gw.sweep()


# ---- the management API ------------------------------------------------------------------


def test_management_api_faults_during_a_broadcast(gateway: ApiGateway, clock: list[float]) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    cids = {name: gw.login(name, name.title()) for name in ("gone", "throttled", "broken", "slow", "dropped", "fine")}
    for cid in cids.values():
        gw.send(cid, {"action": "subscribe", "stream": "users"})
    gw.send(cids["gone"], {"action": "enter", "document": "roadmap", "phase": "edit"})
    gw.stub.unregister(cids["gone"])  # died without a $disconnect: 410
    gw.stub.script(cids["throttled"], 429, 429)
    gw.stub.fail(cids["broken"], 500)  # 500 on every attempt
    gw.stub.script(cids["slow"], "hang")  # one request times out, the retry succeeds
    gw.stub.script(cids["dropped"], "drop")  # TCP reset without an answer

    broken_before = len(gw.frames(cids["broken"]))
    gw.login("zed")  # a counter change: a broadcast to all six

    for name in ("throttled", "slow", "dropped", "fine"):
        assert gw.last(cids[name], "users") == {"users": 6}, name  # zed in, gone's ghost out
    assert gw.stub.count(cids["throttled"]) >= 3
    assert len(gw.frames(cids["broken"])) == broken_before  # never delivered, never raised
    gw.stub.clear_faults()
    healthy(gw)  # gone removed with its presence and counter share; broken kept (500 is not 410)
    model = invariants.Model.read(gw.dynamodb)
    assert cids["broken"] in model.connections and cids["gone"] not in model.connections
    assert model.presence == []


def test_a_reply_that_keeps_failing_is_dropped_not_raised(gateway: ApiGateway) -> None:
    gw = gateway
    alice = gw.login("alice")
    gw.stub.fail(alice, 500)
    gw.send(alice, {"action": "subscribe", "stream": "users", "id": 1})  # snapshot and ack both fail
    gw.stub.clear_faults()
    assert gw.send(alice, {"action": "heartbeat", "id": 2}) == [{"stream": "ack", "payload": {"id": 2}}]
    healthy(gw)


# ---- DynamoDB ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", THROTTLES)
def test_transient_throttling_is_absorbed_by_retries(gateway: ApiGateway, code: str) -> None:
    gw = gateway
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    with throttle_on_the_wire(dynamo(), "TransactWriteItems", times=2) as fault:
        status, _ = try_connect(gw, "alice")
    assert status == 200 and fault.hits == 2
    with throttle_on_the_wire(dynamo(), "Query", times=2):
        gw.login("bob")
    assert gw.last(watcher, "users") == {"users": 3}
    healthy(gw)


@pytest.mark.parametrize("operation", ["PutItem", "TransactWriteItems", "Query", "BatchGetItem"])
def test_connect_failing_half_way_is_healed_by_the_sweep(gateway: ApiGateway, clock: list[float],
                                                         operation: str) -> None:
    """Throttled past the retries at any step of `$connect`: the handshake is refused (500),
    and whatever was written before the failure is gone after PRESENCE_TTL_SECONDS + one sweep."""
    gw = gateway
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    with fail(dynamo(), operation, "ProvisionedThroughputExceededException", times=None):
        status, cid = try_connect(gw, "alice")
    assert status == 500 and not gw.stub.is_live(cid)
    # Internally consistent or not, the counter must be right once the sweep has run.
    heal(gw, clock)
    healthy(gw)
    assert invariants.Model.read(gw.dynamodb).counter == 1
    assert gw.last(watcher, "users") in ({"users": 1}, None) or gw.last(watcher, "users") == {"users": 1}


@pytest.mark.parametrize("operation", ["BatchWriteItem", "Query", "UpdateItem", "DeleteItem", "TransactWriteItems"])
def test_disconnect_failing_half_way_is_healed_by_the_sweep(gateway: ApiGateway, clock: list[float],
                                                            operation: str) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    leaving = gw.login("lou", "Lou")
    gw.send(leaving, {"action": "enter", "document": "roadmap", "phase": "view"})
    with fail(dynamo(), operation, "ProvisionedThroughputExceededException", times=None):
        try:
            gw.disconnect(leaving)
        except Exception:  # noqa: BLE001 - $disconnect is best effort: nobody retries it
            pass
    report = heal(gw, clock)
    healthy(gw)
    assert gw.last(watcher, "users") == {"users": 1}
    assert gw.last(watcher, "document")["phases"]["view"] == []
    assert report["removed"] + report["expired_presence"] >= 0


@pytest.mark.parametrize("times", [1, 3, 7])
def test_transaction_conflicts_on_join_and_leave_are_retried(gateway: ApiGateway, times: int) -> None:
    gw = gateway
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    with fail(dynamo(), "TransactWriteItems", "TransactionCanceledException", times=times,
              reasons=[None, "TransactionConflict"]) as fault:
        alice = gw.login("alice")
    assert fault.hits == times and gw.last(watcher, "users") == {"users": 2}
    with fail(dynamo(), "TransactWriteItems", "TransactionCanceledException", times=times,
              reasons=["TransactionConflict", None]):
        gw.disconnect(alice)
    assert gw.last(watcher, "users") == {"users": 1}
    healthy(gw)


def test_endless_transaction_conflicts_refuse_the_handshake_and_count_nobody(gateway: ApiGateway,
                                                                             clock: list[float]) -> None:
    gw = gateway
    with fail(dynamo(), "TransactWriteItems", "TransactionCanceledException", times=None,
              reasons=[None, "TransactionConflict"]):
        status, cid = try_connect(gw, "alice")
    assert status == 500
    heal(gw, clock)
    healthy(gw)
    assert invariants.Model.read(gw.dynamodb).counter == 0


def test_conditional_check_failed_when_the_last_tab_leaves_in_between(gateway: ApiGateway) -> None:
    """join: the user item exists (so the transaction is cancelled), then vanishes before
    `ADD conns` (ConditionalCheckFailed): the join starts over and counts the user once."""
    gw = gateway
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    first = gw.login("bob")

    def add_conns(body: dict) -> bool:
        return "ADD conns" in str(body.get("UpdateExpression", ""))

    def first_tab_leaves_then_condition_fails() -> BaseException:
        gw.stub.unregister(first)
        app_of(gw).disconnect(first)  # the whole leave runs in between: user item deleted
        return dynamo().exceptions.ConditionalCheckFailedException(
            {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}},
            "UpdateItem")

    with fail(dynamo(), "UpdateItem", "ConditionalCheckFailedException", times=1, when=add_conns,
              raise_=first_tab_leaves_then_condition_fails) as fault:
        second = gw.login("bob")
    assert fault.hits == 1
    model = invariants.Model.read(gw.dynamodb)
    assert model.users.get("bob") == {second}
    assert gw.last(watcher, "users") == {"users": 2}
    healthy(gw)


def test_throttled_message_handling_answers_internal_and_changes_nothing_half_way(gateway: ApiGateway) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    alice = gw.login("alice")
    for operation in ("UpdateItem", "GetItem", "PutItem", "Query"):
        with fail(dynamo(), operation, "ProvisionedThroughputExceededException", times=None):
            replies = gw.send(alice, {"action": "subscribe", "stream": "document", "document": "roadmap", "id": 9})
        errors = [f for f in replies if f["stream"] == "error"]
        assert errors == [{"stream": "error", "payload": {"id": 9, "code": "internal", "message": "internal error"}}] \
            or replies[-1] == {"stream": "ack", "payload": {"id": 9}}, (operation, replies)
        assert len(errors) <= 1
        healthy(gw)
    assert gw.send(alice, {"action": "heartbeat", "id": "ok"}) == [{"stream": "ack", "payload": {"id": "ok"}}]


@pytest.mark.parametrize("times", [1, None])
def test_publishing_failures_never_raise_from_the_message_handler(gateway: ApiGateway, times: int | None) -> None:
    """enter changes the roster, then broadcasting it is throttled (once, or past every retry):
    one `internal` error at most, the handler returns 200, the table stays consistent."""
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    alice = gw.login("alice", "Alice")
    with fail(dynamo(), "Query", "ProvisionedThroughputExceededException", times=times):
        replies = gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "edit", "id": 3})
    assert replies == [{"stream": "error", "payload": {"id": 3, "code": "internal", "message": "internal error"}}]
    healthy(gw)
    if times == 1:  # the handler's second attempt published the change
        assert gw.last(watcher, "document")["phases"]["edit"] == [{"user": "alice", "name": "Alice"}]
