"""The notify function dying mid-batch and being retried: at least once for every permitted
subscriber, exactly once after `seq` dedupe, never to anyone who may not read.

Lambda's DynamoDB event source with ReportBatchItemFailures retries a batch from the
lowest reported failure; a function that dies (timeout, out of memory) gets the whole
batch again. Both are replayed here against the real handler, with faults injected
inside a record's fan-out. The expected deliveries come from an oracle written from
docs/protocol.md, not from the notifier.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hypothesis import given
from hypothesis import strategies as st

from realtime import runtime
from tests import streams
from tests.apigw import ApiGateway, LambdaContext
from tests.reliability import invariants
from tests.reliability.conftest import fuzz_settings
from tests.reliability.faults import LambdaDied, fail
from tests.streams import image, record

USERS = ("alice", "bob", "carl")
FIELDS = ("slug", "title", "abstract", "image")


def notify(event: dict[str, Any]) -> dict[str, Any]:
    from functions.notify import app

    return app.handler(event, LambdaContext())


def readable(doc: dict[str, Any] | None, user: str) -> bool:
    if doc is None:
        return False
    if doc.get("visibility") != "private":
        return True
    return user == doc.get("owner") or user in doc.get("readers", [])


def expected(history: list[tuple[str, str, dict | None, dict | None]], user: str) -> set[tuple[str, str, str]]:
    """(pk, seq, action) the user must receive, per docs/protocol.md."""
    out = set()
    for slug, seq, old, new in history:
        could, can = readable(old, user), readable(new, user)
        visible = lambda d: {k: d[k] for k in FIELDS[1:] if d and k in d}  # noqa: E731
        if can and not could:
            out.add((slug, seq, "create"))
        elif could and not can:
            out.add((slug, seq, "delete"))
        elif could and can and visible(old) != visible(new):
            out.add((slug, seq, "update"))
    return out


def doc_strategy() -> st.SearchStrategy[dict[str, Any] | None]:
    return st.one_of(st.none(), st.fixed_dictionaries({
        "title": st.sampled_from(["A", "B"]),
        "visibility": st.sampled_from(["public", "private"]),
        "owner": st.sampled_from(USERS),
        "readers": st.lists(st.sampled_from(USERS), max_size=2, unique=True),
        "owner_note": st.sampled_from(["x", "y"]),  # never whitelisted
    }))


class Room:
    def __init__(self, gw: ApiGateway) -> None:
        self.gw = gw
        self.cids = {u: gw.login(u, u.title()) for u in USERS}
        self.carol = gw.anonymous()
        for cid in self.cids.values():
            gw.send(cid, {"action": "subscribe", "stream": "notifications"})
        gw.send(self.carol, {"action": "subscribe", "stream": "documents"})
        self.start = {cid: len(gw.frames(cid)) for cid in [*self.cids.values(), self.carol]}

    def received(self, user: str) -> list[tuple[str, str, str]]:
        cid = self.cids[user]
        return [(f["payload"]["pk"], f["payload"]["seq"], f["payload"]["action"])
                for f in self.gw.frames(cid)[self.start[cid]:] if f["stream"] == "notifications"]


def build_history(changes: list[tuple[str, dict | None]]) -> tuple[list, list[dict]]:
    """Turn successive states of documents into stream records (INSERT/MODIFY/REMOVE)."""
    state: dict[str, dict | None] = {}
    history, records = [], []
    for slug, new in changes:
        old = state.get(slug)
        if old is None and new is None:
            continue
        name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        rec = record(name, slug, old=image(**old) if old else None, new=image(**new) if new else None)
        history.append((slug, rec["dynamodb"]["SequenceNumber"], old, new))
        records.append(rec)
        state[slug] = new
    return history, records


def check_delivery(room: Room, history: list) -> None:
    for user in USERS:
        got = room.received(user)
        want = expected(history, user)
        assert set(got) == want, user  # at least once, and nothing they may not read
        seqs = {seq for _, seq, _ in got}
        assert len(seqs) == len(want)  # exactly once after seq dedupe
    assert [f for f in room.gw.frames(room.carol)[room.start[room.carol]:] if f["stream"] == "notifications"] == []


def run_with_retries(records: list[dict], *, fail_seq: str | None, die: bool, max_invocations: int = 10) -> int:
    """Invoke like Lambda does until the batch succeeds; returns how many invocations it took."""
    pending = list(records)
    failed_once: set[str] = set()
    dynamo = runtime._clients()["dynamodb"]
    current: dict[str, str] = {}

    from realtime import notifier as notifier_module

    original = notifier_module.Notifier.handle_record

    def tracking(self, rec):  # which record is being handled, so the fault can target it
        current["seq"] = rec["dynamodb"]["SequenceNumber"]
        return original(self, rec)

    notifier_module.Notifier.handle_record = tracking
    try:
        for invocation in range(1, max_invocations + 1):
            def targeted(_params: dict) -> bool:
                return current.get("seq") == fail_seq and fail_seq not in failed_once

            def mark() -> BaseException:
                failed_once.add(fail_seq)
                return LambdaDied() if die else _throttled()

            try:
                with fail(dynamo, "Query", "ProvisionedThroughputExceededException", times=1, when=targeted,
                          raise_=mark):
                    result = notify(streams.event(*pending))
            except (LambdaDied, BatchProcessingError):
                continue  # the function failed (or every record did): Lambda retries the whole batch
            failures = [f["itemIdentifier"] for f in result["batchItemFailures"]]
            if not failures:
                return invocation
            seqs = [r["dynamodb"]["SequenceNumber"] for r in pending]
            pending = pending[min(seqs.index(s) for s in failures):]  # from the lowest failure on
        raise AssertionError("the batch never succeeded")
    finally:
        notifier_module.Notifier.handle_record = original


def _throttled() -> BaseException:
    from tests.reliability.faults import client_error

    return client_error("Query", "ProvisionedThroughputExceededException")


@pytest.fixture
def room(gateway: ApiGateway) -> Room:
    return Room(gateway)


@pytest.mark.parametrize("die", [False, True], ids=["record fails", "function dies"])
def test_retried_batch_delivers_everything_once_after_dedupe(room: Room, die: bool) -> None:
    history, records = build_history([
        ("a", {"title": "A"}),
        ("b", {"title": "B", "visibility": "private", "owner": "alice", "readers": ["bob"]}),
        ("a", {"title": "A2"}),
        ("b", {"title": "B", "visibility": "private", "owner": "alice", "readers": []}),
        ("c", {"title": "C", "visibility": "private", "owner": "carl"}),
        ("a", None),
    ])
    fail_seq = records[2]["dynamodb"]["SequenceNumber"]
    invocations = run_with_retries(records, fail_seq=fail_seq, die=die)
    assert invocations == 2
    check_delivery(room, history)
    duplicates = sum(len(room.received(u)) - len(set(room.received(u))) for u in USERS)
    assert duplicates > 0  # records after (or, when it died, before) the failure were delivered twice
    assert invariants.all_problems(room.gw.dynamodb, room.gw.stub.is_live) == []


@fuzz_settings(25)
@given(changes=st.lists(st.tuples(st.sampled_from(["d1", "d2"]), doc_strategy()), min_size=1, max_size=6),
       fail_at=st.integers(0, 5), die=st.booleans())
def test_any_history_any_failure_point(gateway: ApiGateway, changes: list, fail_at: int, die: bool) -> None:
    gw = gateway
    for cid in list(gw.connected_at):  # a fresh room per example
        if gw.stub.is_live(cid):
            gw.disconnect(cid)
    room = Room(gw)
    history, records = build_history(changes)
    if not records:
        return
    fail_seq = records[min(fail_at, len(records) - 1)]["dynamodb"]["SequenceNumber"]
    run_with_retries(records, fail_seq=fail_seq, die=die)
    # A record that fans out to nobody makes no Query to fail on: then one invocation suffices.
    check_delivery(room, history)


def test_a_page_consumer_dying_is_redelivered_by_the_queue(gateway: ApiGateway, monkeypatch) -> None:
    """Pages of a large group go through SQS: a consumer that dies leaves the message to be
    received again; every member gets the notification at least once, once after dedupe."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="fanout", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("FANOUT_PAGE_SIZE", "2")
    monkeypatch.setenv("FANOUT_QUEUE_URL", url)
    gateway.reset_runtime()
    users = [f"u{n}" for n in range(7)]
    cids = {u: gateway.login(u) for u in users}
    for cid in cids.values():
        gateway.send(cid, {"action": "subscribe", "stream": "notifications"})
    sqs.purge_queue(QueueUrl=url)
    seq = "777"
    assert notify(streams.event(record("INSERT", "doc", new=image(title="T"), seq=seq))) == {"batchItemFailures": []}
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) >= 2
    sent = {"n": 0}
    from realtime.sender import Sender

    original = Sender.send_many

    def dies_after_one(self, batch):
        batch = list(batch)
        if sent["n"] == 0:
            sent["n"] += 1
            original(self, batch[:1])
            raise LambdaDied()
        return original(self, batch)

    monkeypatch.setattr(Sender, "send_many", dies_after_one)
    with pytest.raises(LambdaDied):
        notify(streams.sqs_event(messages, arn))  # nothing deleted: every message comes back
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in again) == sorted(m["Body"] for m in messages)
    assert notify(streams.sqs_event(again, arn)) == {"batchItemFailures": []}
    for user, cid in cids.items():
        got = [json.loads(f)["payload"] for f in gateway.stub.received(cid)]
        notes = [(p["pk"], p["seq"]) for p in got if p.get("seq")]
        assert set(notes) == {("doc", seq)}, user
