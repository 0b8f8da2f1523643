"""Published events: any AWS service puts a `realtime.publish` event on the bus; the publish
function delivers it to a group, a user's connections or one connection of the stream, or
refuses it (logged, counted, dead-lettered, never delivered, never retried).

The events are what EventBridge hands the function (`devtools.stack.events.published_event`),
the tables and queues moto's, the sockets the `@connections` stand-in's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devtools.stack.events import bus_event, published_event
from tests.apigw import ApiGateway, LambdaContext

REGION = "us-east-1"


class Bus:
    """The publish function behind a rule, its dead-letter queue, and what it answered."""

    def __init__(self, gw: ApiGateway, sqs: Any, dead_letter_url: str) -> None:
        self.gw = gw
        self.sqs = sqs
        self.dead_letter_url = dead_letter_url

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        from functions.publish import app

        return app.handler(event, LambdaContext())

    def publish(self, stream: str, to: dict[str, str], payload: Any) -> dict[str, Any]:
        return self.deliver(published_event(stream, to, payload))

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def bus(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> Bus:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="publish-dead-letters")["QueueUrl"]
    monkeypatch.setenv("PUBLISH_DEAD_LETTER_QUEUE_URL", url)
    gateway.reset_runtime()
    return Bus(gateway, sqs, url)


@pytest.fixture
def refusals() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("realtime.published")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def alerts(gw: ApiGateway, cid: str) -> list[dict[str, Any]]:
    return [f for f in gw.frames(cid) if f["stream"] == "alerts"]


def subscribed(gw: ApiGateway, user: str | None) -> str:
    cid = gw.login(user, user.title()) if user else gw.anonymous()
    gw.send(cid, {"action": "subscribe", "stream": "alerts", "id": 1})
    return cid


def test_an_event_to_a_user_reaches_each_of_their_subscribed_connections_and_no_one_else(
        gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    tab1, tab2, other = subscribed(gw, "alice"), subscribed(gw, "alice"), subscribed(gw, "bob")
    unsubscribed = gw.login("alice")
    answer = bus.publish("alerts", {"user": "alice"}, {"text": "Your export is ready"})
    assert answer == {"delivered": 2, "rejected": None}
    for cid in (tab1, tab2):
        (frame,) = alerts(gw, cid)
        assert frame["payload"] == {"text": "Your export is ready"}
        assert set(frame) == {"stream", "payload", "cursor", "event"}
    assert alerts(gw, other) == [] and gw.frames(unsubscribed) == []


def test_an_event_to_the_group_reaches_every_subscriber(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    cids = [subscribed(gw, user) for user in ("alice", "bob", "carl")]
    bus.publish("alerts", {"group": "alerts"}, {"text": "Maintenance at 18:00"})
    assert [[f["payload"]["text"] for f in alerts(gw, cid)] for cid in cids] == [["Maintenance at 18:00"]] * 3


def test_an_event_to_a_connection_reaches_it_only_while_it_is_subscribed(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    mine, sibling = subscribed(gw, "alice"), subscribed(gw, "alice")
    bus.publish("alerts", {"connection": mine}, {"text": "for this tab"})
    assert [f["payload"] for f in alerts(gw, mine)] == [{"text": "for this tab"}]
    assert alerts(gw, sibling) == []
    assert "cursor" not in alerts(gw, mine)[0]  # not logged: a reconnected page is another connection

    gw.send(mine, {"action": "unsubscribe", "stream": "alerts"})
    assert bus.publish("alerts", {"connection": mine}, {"text": "again"}) == {"delivered": 0, "rejected": None}
    assert len(alerts(gw, mine)) == 1


def test_unsubscribing_stops_the_events_to_the_user(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    cid = subscribed(gw, "alice")
    gw.send(cid, {"action": "unsubscribe", "stream": "alerts"})
    assert bus.publish("alerts", {"user": "alice"}, {"text": "x"})["delivered"] == 0
    members = gw.dynamodb.scan(TableName="connections", ConsistentRead=True)["Items"]
    assert not [m for m in members if m["sk"]["S"].startswith("g#")]


def test_an_event_to_a_user_is_replayed_to_that_user_only(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    cursors = {}
    for user in ("alice", "bob"):
        cid = gw.login(user)
        (ack,) = [f["payload"] for f in gw.send(cid, {"action": "subscribe", "stream": "alerts", "id": 1})]
        cursors[user] = ack["cursor"]
        gw.disconnect(cid)
    bus.publish("alerts", {"user": "alice"}, {"text": "for alice"})
    bus.publish("alerts", {"group": "alerts"}, {"text": "for everyone"})
    replayed = {}
    for user in ("alice", "bob"):
        cid = gw.login(user)
        replies = gw.send(cid, {"action": "subscribe", "stream": "alerts", "since": cursors[user], "id": 2})
        replayed[user] = [f["payload"]["text"] for f in replies if f["stream"] == "alerts"]
    assert replayed == {"alice": ["for alice", "for everyone"], "bob": ["for everyone"]}


def test_an_event_delivered_twice_carries_its_event_id_both_times(gateway: ApiGateway, bus: Bus) -> None:
    """EventBridge and Lambda retry with the same event: a page drops the second copy by its `event`."""
    gw = gateway
    cid = subscribed(gw, "alice")
    event = published_event("alerts", {"user": "alice"}, {"text": "once"})
    bus.deliver(event)
    bus.deliver(event)  # a retry after a fault that struck once the event was sent
    first, second = alerts(gw, cid)
    assert first["event"] == second["event"] == event["id"]
    assert first["cursor"] != second["cursor"]


def test_an_event_is_logged_once_for_its_target_group(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    for _ in range(3):
        subscribed(gw, "alice")
    bus.publish("alerts", {"user": "alice"}, {"text": "x"})
    (entry,) = gw.dynamodb.scan(TableName="history", ConsistentRead=True)["Items"]
    assert entry["log"] == {"S": "alerts/user/alice"}


def test_anonymous_connections_never_get_an_event_of_a_signed_in_stream(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    anonymous = gw.anonymous()
    refused = gw.send(anonymous, {"action": "subscribe", "stream": "alerts", "id": 1})
    assert refused[0]["payload"]["code"] == "unauthenticated"
    bus.publish("alerts", {"connection": anonymous}, {"text": "x"})
    assert alerts(gw, anonymous) == []


def test_a_user_id_is_encoded_into_its_group(gateway: ApiGateway, bus: Bus) -> None:
    """A user id holding `/` or `#` cannot reach into another user's (or stream's) group."""
    gw = gateway
    odd = subscribed(gw, "team/alice#1")
    plain = subscribed(gw, "team")
    bus.publish("alerts", {"user": "team/alice#1"}, {"text": "x"})
    assert len(alerts(gw, odd)) == 1 and alerts(gw, plain) == []


OVERSIZED = {"blob": "x" * (32 * 1024)}


@pytest.mark.parametrize(("event", "reason"), [
    (published_event("nope", {"group": "alerts"}, {"text": "x"}), "unknown_stream"),
    (published_event("users", {"group": "users"}, {"users": 999}), "not_accepted"),
    (published_event("notifications", {"group": "notifications"}, {"action": "delete"}), "not_accepted"),
    (published_event("alerts", {"group": "notifications"}, {"text": "x"}), "target_refused"),
    (published_event("alerts", {"group": "alerts", "user": "alice"}, {"text": "x"}), "bad_target"),
    (published_event("alerts", {"room": "alerts"}, {"text": "x"}), "bad_target"),
    (published_event("alerts", {"user": ""}, {"text": "x"}), "bad_target"),
    (published_event("alerts", {"user": "a\u0000b"}, {"text": "x"}), "bad_target"),
    (published_event("alerts", {"connection": "not an id!"}, {"text": "x"}), "bad_target"),
    (published_event("alerts", {"group": "alerts"}, ["not", "an", "object"]), "bad_payload"),
    (published_event("alerts", {"group": "alerts"}, {"reset": True}), "bad_payload"),
    (published_event("alerts", {"group": "alerts"}, {"removed": True}), "bad_payload"),
    (published_event("alerts", {"group": "alerts"}, OVERSIZED), "too_large"),
    (bus_event(detail_type="realtime.publish", source="t",
               detail={"stream": "alerts", "to": {"group": "alerts"}, "payload": {}, "extra": 1}), "bad_detail"),
    (bus_event(detail_type="realtime.publish", source="t", detail="not an object"), "bad_detail"),
    ({**published_event("alerts", {"group": "alerts"}, {}), "id": None}, "not_an_event"),
    (bus_event(detail_type="Something Else", source="t",
               detail={"stream": "alerts", "to": {"group": "alerts"}, "payload": {}}), "not_an_event"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_an_invalid_event_is_refused_dead_lettered_counted_and_never_delivered(
        gateway: ApiGateway, bus: Bus, refusals: list[logging.LogRecord], capsys: pytest.CaptureFixture[str],
        event: dict[str, Any], reason: str) -> None:
    gw = gateway
    listeners = [subscribed(gw, "alice")]
    for stream in ("users", "notifications"):
        gw.send(listeners[0], {"action": "subscribe", "stream": stream})
    before = {cid: len(gw.frames(cid)) for cid in listeners}
    capsys.readouterr()

    answer = bus.deliver(event)  # returns: EventBridge and Lambda never retry it

    assert answer == {"delivered": 0, "rejected": reason}
    assert {cid: len(gw.frames(cid)) for cid in listeners} == before
    (letter,) = bus.dead_letters()
    assert letter["reason"] == reason and letter["message"]
    assert letter["event"] == event
    (record,) = refusals
    assert record.reason == reason and "blob" not in record.getMessage()
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for doc in metrics for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"PublishRejected", f"PublishRejected.{reason}"} <= names
    assert gw.dynamodb.scan(TableName="history")["Items"] == []


def test_a_payload_of_exactly_32_kb_is_delivered(gateway: ApiGateway, bus: Bus) -> None:
    gw = gateway
    cid = subscribed(gw, "alice")
    payload = {"blob": ""}
    payload["blob"] = "x" * (32 * 1024 - len(json.dumps(payload, separators=(",", ":"))))
    assert bus.publish("alerts", {"user": "alice"}, payload) == {"delivered": 1, "rejected": None}
    assert alerts(gw, cid)[0]["payload"] == payload


def test_a_refused_event_too_large_for_the_queue_is_dead_lettered_without_its_detail(
        gateway: ApiGateway, bus: Bus) -> None:
    event = published_event("alerts", {"group": "alerts"}, {"blob": "x" * 260_000})
    assert bus.deliver(event)["rejected"] == "too_large"
    (letter,) = bus.dead_letters()
    assert letter["event"]["id"] == event["id"] and "detail" not in letter["event"]
    assert letter["detail_omitted_bytes"] > 260_000


def test_a_fault_a_retry_can_fix_fails_the_invocation(gateway: ApiGateway, bus: Bus) -> None:
    """Lambda's async retries and on-failure destination then apply (template: EventInvokeConfig)."""
    gateway.dynamodb.delete_table(TableName="history")
    subscribed(gateway, "alice")
    with pytest.raises(Exception, match="ResourceNotFound|not found|Requested resource"):
        bus.publish("alerts", {"user": "alice"}, {"text": "x"})
    assert bus.dead_letters() == []


# ---------------------------------------------------------------- the helper for Lambda code


@pytest.fixture
def events_bus(aws: None) -> Iterator[tuple[Any, str, Any, str]]:
    """A bus with the template's rule, its matches copied to a queue (what the function would get)."""
    from devtools import template as tpl

    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name="realtime-bus")
    rule = tpl.load_template()["Resources"]["PublishRule"]["Properties"]
    pattern = tpl.resolve(rule["EventPattern"], {"AWS::AccountId": "123456789012"})
    events.put_rule(Name="publish", EventBusName="realtime-bus", EventPattern=json.dumps(pattern))
    url = sqs.create_queue(QueueName="matched")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_targets(Rule="publish", EventBusName="realtime-bus", Targets=[{"Id": "q", "Arn": arn}])
    yield events, "realtime-bus", sqs, url


def test_the_helper_puts_an_event_the_rule_matches_and_the_function_delivers(
        gateway: ApiGateway, bus: Bus, events_bus: tuple[Any, str, Any, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import realtime

    events, name, sqs, url = events_bus
    monkeypatch.setenv("REALTIME_EVENT_BUS", name)
    cid = subscribed(gateway, "alice")
    event_id = realtime.publish("alerts", {"text": "Your export is ready"}, user="alice", client=events)
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    matched = json.loads(message["Body"])
    assert matched["id"] == event_id and matched["detail-type"] == "realtime.publish"
    assert matched["detail"] == {"stream": "alerts", "to": {"user": "alice"}, "payload": {"text": "Your export is ready"}}
    assert bus.deliver(matched) == {"delivered": 1, "rejected": None}
    assert alerts(gateway, cid)[0]["payload"] == {"text": "Your export is ready"}


@pytest.mark.parametrize("call", [
    lambda publish, c: publish("alerts", {"text": "x"}, client=c),  # no target
    lambda publish, c: publish("alerts", {"text": "x"}, user="a", group="alerts", client=c),
    lambda publish, c: publish("alerts", {"blob": "x" * 40_000}, user="a", client=c),
    lambda publish, c: publish("alerts", {"reset": True}, user="a", client=c),
    lambda publish, c: publish("alerts", {"n": float("nan")}, user="a", client=c),
])
def test_the_helper_refuses_a_malformed_event_before_sending_it(call: Any) -> None:
    from realtime import publish

    class Unreachable:
        def put_events(self, **kwargs: Any) -> None:
            raise AssertionError("a malformed event was sent")

    with pytest.raises(ValueError):
        call(publish, Unreachable())


def test_the_helper_raises_when_eventbridge_refuses_the_entry() -> None:
    from realtime import publish
    from realtime.eventbus import PublishError

    class Throttled:
        def put_events(self, **kwargs: Any) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]}

    with pytest.raises(PublishError, match="ThrottlingException") as raised:
        publish("alerts", {"text": "x"}, user="alice", client=Throttled())
    assert raised.value.code == "ThrottlingException"
