"""The data-binding notifier: stream records to per-recipient notifications.

Who could read the old image and who can read the new one decides each recipient's
frame (create, update, delete or nothing); only whitelisted fields leave the server;
anonymous connections get nothing; one bad record fails alone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import streams
from tests.apigw import ApiGateway, LambdaContext
from tests.streams import image, record

PUBLIC = image(title="Roadmap", abstract="Where we go", image="r.png", owner="alice", readers=["bob"],
               internal_notes="never leaves the server")
PRIVATE = image(title="Roadmap", abstract="Where we go", image="r.png", visibility="private",
                owner="alice", readers=["bob"], internal_notes="never leaves the server")


def notify(event: dict[str, Any]) -> dict[str, Any]:
    from functions.notify import app

    return app.handler(event, LambdaContext())


class Room:
    """Signed-in users subscribed to notifications (and Carol, anonymous, to the list)."""

    def __init__(self, gw: ApiGateway, *users: str) -> None:
        self.gw = gw
        self.cids = {user: gw.login(user, user.title()) for user in users}
        for cid in self.cids.values():
            gw.send(cid, {"action": "subscribe", "stream": "notifications"})
        self.marks = {user: 0 for user in users}

    def new(self, user: str) -> list[dict[str, Any]]:
        """Notifications `user` received since last asked."""
        frames = [f["payload"] for f in self.gw.frames(self.cids[user]) if f["stream"] == "notifications"]
        fresh, self.marks[user] = frames[self.marks[user]:], len(frames)
        return fresh

    def actions(self) -> dict[str, list[str]]:
        return {user: [n["action"] for n in self.new(user)] for user in self.cids}


@pytest.fixture
def room(gateway: ApiGateway) -> Room:
    return Room(gateway, "alice", "bob", "carl", "dave")


def test_boto3_write_read_back_from_moto_stream(gateway: ApiGateway, room: Room) -> None:
    gateway.put_document("roadmap", "Roadmap", readers=["bob"], owner="alice", internal_notes="secret")
    gateway.put_document("salaries", "Salaries", visibility="private", owner="alice", readers=["bob"])
    records = streams.read_stream(gateway.dynamodb, "documents")
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT"]
    assert notify(streams.event(*records)) == {"batchItemFailures": []}

    roadmap = room.new("carl")
    assert roadmap == [{"action": "create", "model": "document", "pk": "roadmap",
                        "data": {"slug": "roadmap", "title": "Roadmap"},
                        "seq": records[0]["dynamodb"]["SequenceNumber"]}]
    assert [n["pk"] for n in room.new("bob")] == ["roadmap", "salaries"]
    assert [n["pk"] for n in room.new("alice")] == ["roadmap", "salaries"]


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        ("public to private", PUBLIC, PRIVATE, {"alice": [], "bob": [], "carl": ["delete"], "dave": ["delete"]}),
        ("private to public", PRIVATE, PUBLIC, {"alice": [], "bob": [], "carl": ["create"], "dave": ["create"]}),
        ("reader added", PRIVATE, {**PRIVATE, **image(readers=["bob", "carl"])},
         {"alice": [], "bob": [], "carl": ["create"], "dave": []}),
        ("reader removed", PRIVATE, {**PRIVATE, **image(readers=[])},
         {"alice": [], "bob": ["delete"], "carl": [], "dave": []}),
        ("owner change", PRIVATE, {**PRIVATE, **image(owner="dave")},
         {"alice": ["delete"], "bob": [], "carl": [], "dave": ["create"]}),
        ("title change, private", PRIVATE, {**PRIVATE, **image(title="Roadmap 2")},
         {"alice": ["update"], "bob": ["update"], "carl": [], "dave": []}),
        ("title change, public", PUBLIC, {**PUBLIC, **image(title="Roadmap 2")},
         {"alice": ["update"], "bob": ["update"], "carl": ["update"], "dave": ["update"]}),
        ("hidden field only", PUBLIC, {**PUBLIC, **image(internal_notes="changed")},
         {"alice": [], "bob": [], "carl": [], "dave": []}),
    ],
)
def test_visibility_matrix(room: Room, name: str, old, new, expected) -> None:
    assert notify(streams.event(record("MODIFY", "roadmap", old=old, new=new))) == {"batchItemFailures": []}
    assert room.actions() == expected, name


def test_delete_and_insert(room: Room) -> None:
    notify(streams.event(record("INSERT", "roadmap", new=PRIVATE)))
    assert room.actions() == {"alice": ["create"], "bob": ["create"], "carl": [], "dave": []}
    notify(streams.event(record("REMOVE", "roadmap", old=PRIVATE)))
    deletes = {user: room.new(user) for user in ("alice", "bob")}
    for user, frames in deletes.items():
        assert [(f["action"], f["data"]) for f in frames] == [("delete", {"slug": "roadmap"})], user
    assert room.actions() == {"alice": [], "bob": [], "carl": [], "dave": []}


def test_only_whitelisted_fields_leave_the_server(room: Room, gateway: ApiGateway) -> None:
    notify(streams.event(record("INSERT", "roadmap", new=PUBLIC)))
    (frame,) = room.new("carl")
    assert frame["data"] == {"slug": "roadmap", "title": "Roadmap", "abstract": "Where we go", "image": "r.png"}
    raw = b"".join(gateway.stub.received(room.cids["carl"]))
    for secret in (b"never leaves", b"owner", b"readers", b"alice"):
        assert secret not in raw


def test_anonymous_connections_never_get_notifications(gateway: ApiGateway, room: Room) -> None:
    carol = gateway.anonymous()
    gateway.send(carol, {"action": "subscribe", "stream": "users"})
    notify(streams.event(record("INSERT", "roadmap", new=PUBLIC)))
    assert [f for f in gateway.frames(carol) if f["stream"] == "notifications"] == []


def test_partial_batch_failure_reports_only_the_bad_record(room: Room) -> None:
    good_before = record("INSERT", "a", new=PUBLIC)
    bad = record("INSERT", "b", new=PUBLIC)
    del bad["dynamodb"]["Keys"]
    good_after = record("INSERT", "c", new=PUBLIC)
    result = notify(streams.event(good_before, bad, good_after))
    assert result == {"batchItemFailures": [{"itemIdentifier": bad["dynamodb"]["SequenceNumber"]}]}
    assert [n["pk"] for n in room.new("carl")] == ["a", "c"]


def test_gone_recipients_are_removed_and_the_rest_delivered(gateway: ApiGateway, room: Room) -> None:
    gateway.stub.unregister(room.cids["bob"])
    gateway.stub.script(room.cids["carl"], 429)
    assert notify(streams.event(record("INSERT", "roadmap", new=PUBLIC))) == {"batchItemFailures": []}
    assert [n["action"] for n in room.new("carl")] == ["create"]
    assert [n["action"] for n in room.new("dave")] == ["create"]
    bob = gateway.dynamodb.query(TableName="connections", KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": f"c#{room.cids['bob']}"}})
    assert bob["Items"] == []


def test_monitor_follows_creation_rename_visibility_and_deletion(gateway: ApiGateway) -> None:
    gw = gateway
    seen = [0]

    def write(slug: str, title: str | None = None, **fields: Any) -> None:
        """A write by "another AWS service", delivered through the table's real stream."""
        if title is None:
            gw.dynamodb.delete_item(TableName="documents", Key={"slug": {"S": slug}})
        else:
            gw.put_document(slug, title, **fields)
        records = streams.read_stream(gw.dynamodb, "documents")
        assert notify(streams.event(*records[seen[0]:])) == {"batchItemFailures": []}
        seen[0] = len(records)

    write("roadmap", "Roadmap")
    carol = gw.anonymous()
    bob = gw.login("bob")
    for cid in (carol, bob):
        gw.send(cid, {"action": "subscribe", "stream": "documents"})
        gw.send(cid, {"action": "subscribe", "stream": "document", "document": "roadmap"})

    write("plan", "Plan")
    for cid in (carol, bob):
        assert gw.last(cid, "documents") == {"documents": [{"document": "plan", "title": "Plan", "phases": {
            "view": [], "edit": [], "review": []}, "counts": {"view": 0, "edit": 0, "review": 0}}], "full": False}

    write("roadmap", "Road map")
    assert gw.last(bob, "documents")["documents"][0]["title"] == "Road map"
    assert gw.last(bob, "document")["title"] == "Road map"

    write("roadmap", "Road map", visibility="private", owner="bob")
    assert gw.last(carol, "documents") == {"documents": [{"document": "roadmap", "removed": True}], "full": False}
    assert gw.last(carol, "document") == {"document": "roadmap", "removed": True}
    frames_before = len(gw.frames(carol))
    gw.send(bob, {"action": "enter", "document": "roadmap", "phase": "edit"})
    assert gw.frames(carol)[frames_before:] == []  # out of the document's group, and the list hides it
    assert gw.last(bob, "document")["phases"]["edit"] == [{"user": "bob", "name": "bob"}]

    write("roadmap")  # deleted
    assert gw.last(bob, "documents") == {"documents": [{"document": "roadmap", "removed": True}], "full": False}
    assert gw.last(bob, "document") == {"document": "roadmap", "removed": True}


@pytest.fixture
def small_pages(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch):
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="fanout")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("FANOUT_PAGE_SIZE", "2")
    monkeypatch.setenv("FANOUT_QUEUE_URL", url)
    gateway.reset_runtime()
    return sqs, url, arn


def test_large_groups_are_split_into_queued_pages(gateway: ApiGateway, small_pages) -> None:
    sqs, url, arn = small_pages
    room = Room(gateway, *(f"user{n}" for n in range(5)))
    sequence = "4242"
    notify(streams.event(record("INSERT", "roadmap", new=PUBLIC, seq=sequence)))

    received_inline = [u for u in room.cids if room.new(u)]
    assert len(received_inline) == 2  # the first page, sent by the notifier itself
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    pages = [json.loads(m["Body"]) for m in messages]
    # The other 3 members, in ranges of at most 2 keys within their shards of the group's index.
    assert len(pages) >= 2 and all(p["group"] == "notifications" and "shard" in p for p in pages)
    bad = {**messages[0], "MessageId": "bad-1", "Body": "{not json"}
    result = notify(streams.sqs_event([*messages, bad], arn))
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad-1"}]}

    for user in room.cids:
        frames = [f["payload"] for f in gateway.frames(room.cids[user]) if f["stream"] == "notifications"]
        assert [(f["action"], f["seq"]) for f in frames] == [("create", sequence)], user


def test_core_broadcasts_use_the_same_page_split(gateway: ApiGateway, small_pages) -> None:
    sqs, url, arn = small_pages
    watchers = [gateway.login(f"w{n}") for n in range(4)]
    for cid in watchers:
        gateway.send(cid, {"action": "subscribe", "stream": "users"})
    sqs.purge_queue(QueueUrl=url)
    gateway.login("newcomer")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert messages and all(json.loads(m["Body"])["delivery"]["kind"] == "frame" for m in messages)
    notify(streams.sqs_event(messages, arn))
    assert all(gateway.last(cid, "users") == {"users": 5} for cid in watchers)


@pytest.fixture
def fanout_queue(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch):
    """The fan-out queue (moto SQS), with redelivery delays cut to one second each."""
    import boto3

    from realtime import broadcast

    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="fanout")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("FANOUT_QUEUE_URL", url)
    monkeypatch.setattr(broadcast, "REDELIVERY_DELAYS", (1, 1, 1, 1, 1))
    gateway.reset_runtime()
    return sqs, url, arn


def _queued(sqs: Any, url: str) -> list[dict[str, Any]]:
    """What the queue holds once the redelivery delay has passed (nothing is visible before)."""
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=3).get("Messages", [])


def test_recipients_whose_posts_keep_failing_get_the_notification_later(gateway: ApiGateway, fanout_queue) -> None:
    sqs, url, arn = fanout_queue
    room = Room(gateway, "alice", "bob", "dave")
    gateway.stub.fail(room.cids["bob"], 500)  # past the sender's retries in this invocation
    gateway.stub.fail(room.cids["dave"], 503)
    notify(streams.event(record("INSERT", "roadmap", new=PUBLIC, seq="77")))
    assert room.actions() == {"alice": ["create"], "bob": [], "dave": []}

    messages = _queued(sqs, url)
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert (body["group"], sorted(body["recipients"]), body["attempt"]) == (
        "notifications", sorted([room.cids["bob"], room.cids["dave"]]), 1)

    gateway.stub.clear_faults()  # bob's endpoint recovers; dave unsubscribes meanwhile
    gateway.send(room.cids["dave"], {"action": "unsubscribe", "stream": "notifications"})
    dave_posts = gateway.stub.count(room.cids["dave"])
    assert notify(streams.sqs_event(messages, arn)) == {"batchItemFailures": []}
    assert [(n["action"], n["seq"]) for n in room.new("bob")] == [("create", "77")]
    assert room.new("alice") == [] and room.new("dave") == []
    assert gateway.stub.count(room.cids["dave"]) == dave_posts  # no longer a member: not tried
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", []) == []


def test_a_recipient_failing_every_round_is_given_up_after_the_last(gateway: ApiGateway, fanout_queue) -> None:
    import logging

    from realtime import broadcast

    given_up: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = given_up.append  # type: ignore[method-assign]
    logging.getLogger("realtime.broadcast").addHandler(handler)

    sqs, url, arn = fanout_queue
    room = Room(gateway, "alice", "bob")
    gateway.stub.fail(room.cids["bob"], 500)
    notify(streams.event(record("INSERT", "roadmap", new=PUBLIC, seq="78")))
    attempts = []
    while messages := _queued(sqs, url) if len(attempts) < 10 else []:
        attempts.append(json.loads(messages[0]["Body"])["attempt"])
        notify(streams.sqs_event(messages, arn))
    assert attempts == list(range(1, len(broadcast.REDELIVERY_DELAYS) + 1))
    assert room.new("bob") == [] and [n["seq"] for n in room.new("alice")] == ["78"]
    logging.getLogger("realtime.broadcast").removeHandler(handler)
    assert [(r.levelname, r.recipients) for r in given_up if "given up" in r.getMessage()] == [("ERROR", 1)]


def test_state_frames_are_not_redelivered(gateway: ApiGateway, fanout_queue) -> None:
    """A counter or roster frame delivered late would overwrite a newer one: not queued again."""
    sqs, url, _ = fanout_queue
    watcher = gateway.login("wes")
    gateway.send(watcher, {"action": "subscribe", "stream": "users"})
    gateway.stub.fail(watcher, 500)
    gateway.login("newcomer")
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", []) == []


@pytest.mark.parametrize("body", [
    {"recipients": "not-a-list", "attempt": 1},
    {"recipients": [1, 2], "attempt": 1},
    {"recipients": ["c1"], "attempt": 0},
    {"recipients": ["c1"], "attempt": 99},
    {"recipients": ["c1"]},
])
def test_malformed_redelivery_messages_fail_alone(gateway: ApiGateway, fanout_queue, body: dict) -> None:
    _, _, arn = fanout_queue
    frame = json.dumps({"stream": "notifications", "payload": {"action": "create", "model": "document", "pk": "x",
                                                               "data": {"slug": "x"}, "seq": "1"}})
    delivery = {"kind": "change", "old": None, "new": {"everyone": True}, "gained": frame,
                "signed_in_only": True, "redeliver": True}

    def message(message_id: str, fields: dict) -> dict:
        return {"MessageId": message_id, "ReceiptHandle": "r", "Attributes": {}, "MessageAttributes": {},
                "md5OfBody": "", "eventSource": "aws:sqs",
                "Body": json.dumps({"v": 1, "group": "notifications", "delivery": delivery, **fields})}

    good = message("ok", {"recipients": ["nobody-here"], "attempt": 1})
    assert notify(streams.sqs_event([good, message("bad", body)], arn)) == {
        "batchItemFailures": [{"itemIdentifier": "bad"}]}
