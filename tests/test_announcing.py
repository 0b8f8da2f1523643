"""Coalesced state broadcasts (`realtime.announcing`): handlers only mark what changed; the
announce function broadcasts the latest state at most once per interval per group, and
the final state after any burst always arrives.

These run the deployed mechanism: moto's SQS queue with real `DelaySeconds`, drained
through the announce function's handler as Lambda's event source mapping would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from realtime import runtime
from tests.apigw import ApiGateway, LambdaContext
from tests.reliability import invariants
from tests.streams import sqs_event


class Announcements:
    """The announce queue, and the function that drains it."""

    def __init__(self, gw: ApiGateway, sqs: Any, url: str, arn: str) -> None:
        self.gw, self.sqs, self.url, self.arn = gw, sqs, url, arn

    def messages(self, wait: int = 0) -> list[dict[str, Any]]:
        return self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=wait).get("Messages", [])

    def drain(self, quiet: float = 2.5) -> int:
        """Deliver every message as it becomes visible, until none has come for `quiet` seconds."""
        from functions.announce import app

        handled = 0
        deadline = time.monotonic() + quiet
        while time.monotonic() < deadline:
            batch = self.messages(wait=1)
            if not batch:
                continue
            assert app.handler(sqs_event(batch, self.arn), LambdaContext()) == {"batchItemFailures": []}
            for message in batch:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            handled += len(batch)
            deadline = time.monotonic() + quiet
        return handled


@pytest.fixture
def announce(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> Announcements:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="announce")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("ANNOUNCE_QUEUE_URL", url)
    monkeypatch.setenv("BROADCAST_INTERVAL_MS", "1000")
    monkeypatch.setenv("FRAME_BURST", "200")  # the bursts below are the changes, not abuse
    gateway.reset_runtime()
    return Announcements(gateway, sqs, url, arn)


def rosters(gw: ApiGateway, cid: str, slug: str) -> list[dict[str, Any]]:
    return [f["payload"] for f in gw.frames(cid) if f["stream"] == "document" and f["payload"]["document"] == slug]


def stored_roster(gw: ApiGateway, slug: str) -> dict[str, list[str]]:
    now = runtime.app(gw.stub.endpoint).clock()
    live = invariants.Model.read(gw.dynamodb).live_rosters(now).get(slug, {})
    return {phase: live.get(phase, []) for phase in ("view", "edit", "review")}


def names(payload: dict[str, Any]) -> dict[str, list[str]]:
    return {phase: sorted(u["user"] for u in users) for phase, users in payload["phases"].items()}


def test_handlers_only_mark_the_change_and_ack_at_once(gateway: ApiGateway, announce: Announcements) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    alice = gw.login("alice", "Alice")
    replies = gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "edit", "id": "e"})
    assert replies == [{"stream": "ack", "payload": {"id": "e"}}]  # no broadcast inside the handler
    assert rosters(gw, watcher, "roadmap")[-1]["phases"]["edit"] == []
    announce.drain()
    assert names(rosters(gw, watcher, "roadmap")[-1])["edit"] == ["alice"]


def test_a_burst_of_100_changes_is_a_few_broadcasts_ending_in_the_final_state(
        gateway: ApiGateway, announce: Announcements) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    gw.send(watcher, {"action": "subscribe", "stream": "documents"})
    announce.drain()
    before = {"document": len(rosters(gw, watcher, "roadmap")),
              "documents": sum(f["stream"] == "documents" for f in gw.frames(watcher))}
    people = [gw.login(f"user{n}", f"User {n}") for n in range(10)]
    changes = 0
    for round_ in range(5):  # 10 people enter and leave: 100 roster changes in a few seconds
        for cid in people:
            gw.send(cid, {"action": "enter", "document": "roadmap", "phase": "edit"})
            gw.send(cid, {"action": "leave" if round_ < 4 or cid != people[0] else "enter",
                          "document": "roadmap", "phase": "edit"})
            changes += 2
    assert changes == 100
    announce.drain()

    got = rosters(gw, watcher, "roadmap")[before["document"]:]
    lists = [f for f in gw.frames(watcher) if f["stream"] == "documents"][before["documents"]:]
    assert 1 <= len(got) <= 4 and 1 <= len(lists) <= 4  # a handful, however many changes
    assert names(got[-1]) == stored_roster(gw, "roadmap") == {"view": [], "edit": ["user0"], "review": []}
    entry = next(e for e in lists[-1]["payload"]["documents"] if e["document"] == "roadmap")
    assert entry["counts"] == {"view": 0, "edit": 1, "review": 0}


def test_a_change_made_while_an_announcement_runs_is_announced_too(gateway: ApiGateway,
                                                                   announce: Announcements) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    alice = gw.login("alice", "Alice")
    announce.drain()  # her count
    gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "view"})
    (message,) = announce.messages(wait=3)
    assert json.loads(message["Body"])["topic"] == "$presence"
    engine = runtime.app(gw.stub.endpoint)
    original = engine.lifecycle.publisher.announce

    def meanwhile(topic: str, key: str, follow_up: bool = False) -> Any:
        if topic == "$presence":  # the mark is cleared: bob enters while the roster is read
            gw.send(bob, {"action": "enter", "document": "roadmap", "phase": "view"})
        return original(topic, key, follow_up)

    bob = gw.login("bob", "Bob")
    for extra in announce.messages(wait=2):  # bob's count, delivered first
        engine.announce(extra["Body"])
        announce.sqs.delete_message(QueueUrl=announce.url, ReceiptHandle=extra["ReceiptHandle"])
    engine.services.coalescer.announce = meanwhile
    assert engine.announce(message["Body"]) is True
    engine.services.coalescer.announce = original
    announce.sqs.delete_message(QueueUrl=announce.url, ReceiptHandle=message["ReceiptHandle"])
    announce.drain()
    assert names(rosters(gw, watcher, "roadmap")[-1])["view"] == ["alice", "bob"]


def users_watcher(gw: ApiGateway, announce: Announcements) -> str:
    """A connection subscribed to `users`, its subscription's announcement already out."""
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "users"})
    announce.drain()
    return watcher


def test_one_writer_per_pending_mark(gateway: ApiGateway, announce: Announcements) -> None:
    """A message delivered twice (SQS is at least once) announces once."""
    gw = gateway
    watcher = users_watcher(gw, announce)
    gw.login("amy")
    (message,) = announce.messages(wait=3)
    engine = runtime.app(gw.stub.endpoint)
    before = len(gw.frames(watcher))
    assert [engine.announce(message["Body"]), engine.announce(message["Body"])] == [True, False]
    assert [f["payload"] for f in gw.frames(watcher)[before:]] == [{"users": 2}]


def test_marks_within_an_interval_send_one_message(gateway: ApiGateway, announce: Announcements) -> None:
    gw = gateway
    watcher = users_watcher(gw, announce)
    for user in ("amy", "ben", "cat", "dan"):
        gw.login(user)
    bodies = [json.loads(m["Body"]) for m in announce.messages(wait=3)]
    assert [(b["topic"], b["key"]) for b in bodies] == [("users", "")]


def test_the_interval_grows_past_the_budget(gateway: ApiGateway, announce: Announcements) -> None:
    """A group of 5,000 at 1,000 posts/s: at most one state broadcast every 5 seconds."""
    gateway.connect()  # builds the app
    coalescer = runtime.app(gateway.stub.endpoint).services.coalescer
    assert coalescer.interval_for(10) == 1.0
    assert coalescer.interval_for(1000) == 1.0
    assert coalescer.interval_for(5000) == 5.0
    assert coalescer.interval_for(1_000_000) == 1000.0  # waited out in hops of SQS's 15 minutes
    gateway.dynamodb.put_item(TableName="connections", Item={
        "pk": {"S": "a#users#"}, "sk": {"S": "pending"}, "members": {"N": "5000"}})
    coalescer.mark("users")
    (message,) = announce.messages(wait=1) or [None]
    assert message is None  # not visible before its delay
    due = json.loads(announce.sqs.receive_message(QueueUrl=announce.url, WaitTimeSeconds=6)["Messages"][0]["Body"])
    assert due["due"] - time.time() < 1.5


def test_a_lost_message_is_announced_by_the_sweep(gateway: ApiGateway, announce: Announcements) -> None:
    gw = gateway
    watcher = users_watcher(gw, announce)
    gw.login("amy")
    announce.sqs.purge_queue(QueueUrl=announce.url)  # the mark's message is lost
    engine = runtime.app(gw.stub.endpoint)
    engine.clock = lambda: time.time() + 130  # past the mark's due time and the grace for its message
    report = gw.sweep()
    assert report["expired_presence"] >= 1
    assert gw.last(watcher, "users") == {"users": 2}
