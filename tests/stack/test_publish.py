"""Publishing and catch-up on the local stack: `PutEvents` on the local bus runs the publish
function through the template's rule (moto's EventBridge, the stack's router), over real
sockets; a page that drops and comes back with its cursors is sent what it missed.

What the README shows (`aws events put-events ...`) is what these tests do with boto3.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from devtools.stack.eventbridge import EventRouter
from tests.stack.conftest import WAIT, Client, run


def put_alert(stack: Any, to: dict[str, str], payload: Any, *, stream: str = "alerts") -> str:
    """What another AWS service does (`aws events put-events --entries ...`)."""
    answer = stack.client("events").put_events(Entries=[{
        "Source": "billing.exports", "DetailType": "realtime.publish", "EventBusName": stack.event_bus_name,
        "Detail": json.dumps({"stream": stream, "to": to, "payload": payload})}])
    assert answer["FailedEntryCount"] == 0, answer
    return answer["Entries"][0]["EventId"]


def router(stack: Any) -> EventRouter:
    return stack.trigger(EventRouter)


def dead_letters(stack: Any) -> list[dict[str, Any]]:
    assert router(stack).wait_idle(WAIT)
    sqs = stack.client("sqs")
    url = stack.queues["PublishDeadLetterQueue"]
    found = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append({"body": json.loads(message["Body"]), "attributes": message.get("MessageAttributes", {})})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


async def subscribed(client: Client, stream: str, **extra: Any) -> dict[str, Any]:
    """Subscribe and return the ack (history streams' acks carry the cursor)."""
    rid = await client.request(action="subscribe", stream=stream, **extra)
    frame = await client.until(lambda f: f.get("stream") in ("ack", "error") and f["payload"].get("id") == rid)
    assert frame["stream"] == "ack", frame
    return frame["payload"]


def http_post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_template_rule_is_on_the_local_bus(stack) -> None:
    rules = stack.client("events").list_rules(EventBusName=stack.event_bus_name)["Rules"]
    assert [json.loads(r["EventPattern"]) for r in rules] == [
        {"detail-type": ["realtime.publish"], "account": ["123456789012"]}]
    assert stack.event_bus_name == "realtime-realtime"
    config = stack.config()
    assert config["eventBusName"] == stack.event_bus_name and config["aws"] == stack.aws_endpoint


def test_put_events_on_the_local_bus_reaches_every_tab_of_the_user(stack) -> None:
    async def scenario() -> None:
        tabs = [await Client.connect(stack, "paula", "Paula") for _ in range(2)]
        other = await Client.connect(stack, "quentin", "Quentin")
        for client in (*tabs, other):
            await subscribed(client, "alerts")
        put_alert(stack, {"user": "paula"}, {"text": "Your export is ready"})
        for tab in tabs:
            assert await tab.next("alerts") == {"text": "Your export is ready"}
        put_alert(stack, {"group": "alerts"}, {"text": "for everyone"})
        # Quentin's next alert is the one to everyone: the one to Paula never reached him.
        assert await other.next("alerts") == {"text": "for everyone"}
        for client in (*tabs, other):
            await client.close()

    run(scenario())


def test_an_invalid_event_is_dead_lettered_with_its_reason_and_never_delivered(stack) -> None:
    async def scenario() -> None:
        client = await Client.connect(stack, "rita", "Rita")
        await subscribed(client, "alerts")
        dead_letters(stack)  # whatever earlier tests left
        event_id = put_alert(stack, {"user": "rita"}, {"blob": "x" * 40_000})
        (letter,) = dead_letters(stack)
        assert letter["body"]["reason"] == "too_large" and letter["body"]["event"]["id"] == event_id
        put_alert(stack, {"user": "rita"}, {"text": "valid"})
        assert await client.next("alerts") == {"text": "valid"}  # the first never came before it
        await client.close()

    run(scenario())


def test_a_failing_function_is_retried_then_its_invocation_record_goes_to_the_queue(stack) -> None:
    dead_letters(stack)
    calls: list[str] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        calls.append(event["id"])
        raise RuntimeError("DynamoDB is down")

    with stack.functions.override("PublishFunction", broken):
        event_id = put_alert(stack, {"group": "alerts"}, {"text": "x"})
        (letter,) = dead_letters(stack)
    assert calls == [event_id] * 3  # the first attempt and EventInvokeConfig's 2 retries
    record = letter["body"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"]["id"] == event_id
    assert record["responsePayload"]["errorMessage"] == "DynamoDB is down"


def test_post_dev_alerts_publishes_on_the_local_bus(stack) -> None:
    async def scenario() -> None:
        client = await Client.connect(stack, "sam", "Sam")
        await subscribed(client, "alerts")
        status, answer = http_post(f"{stack.web_url}/dev/alerts", {"to": {"user": "sam"}, "payload": {"text": "hi"}},
                                   {"Content-Type": "application/json", "Origin": stack.web_url})
        assert status == 202 and answer["eventId"] and answer["bus"] == stack.event_bus_name
        assert await client.next("alerts") == {"text": "hi"}
        await client.close()

    run(scenario())


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({"Content-Type": "application/json", "Origin": "https://evil.example"}, {"to": {"user": "sam"}, "payload": {}}, 403),
    ({"Content-Type": "text/plain", "Origin": "SELF"}, {"to": {"user": "sam"}, "payload": {}}, 403),
    ({"Content-Type": "application/json"}, {"to": {"user": "sam"}, "payload": {}}, 403),
    ({"Content-Type": "application/json", "Origin": "SELF"}, {"to": "sam", "payload": {}}, 400),
    ({"Content-Type": "application/json", "Origin": "SELF"}, {"to": {"user": "sam"}, "payload": "hi"}, 400),
    ({"Content-Type": "application/json", "Origin": "SELF"}, {"to": {"user": "sam"}, "payload": {}, "x": 1}, 400),
    ({"Content-Type": "application/json", "Origin": "SELF"}, ["not", "an", "object"], 400),
])
def test_post_dev_alerts_refuses_other_origins_and_malformed_bodies(stack, headers: dict[str, str], body: Any,
                                                                   status: int) -> None:
    dead_letters(stack)
    headers = {k: (stack.web_url if v == "SELF" else v) for k, v in headers.items()}
    got, answer = http_post(f"{stack.web_url}/dev/alerts", body, headers)
    assert got == status and answer["error"]
    assert router(stack).wait_idle(WAIT) and dead_letters(stack) == []  # nothing reached the bus


def test_a_page_that_drops_is_sent_what_it_missed_once_and_in_order(stack) -> None:
    """Three document writes and one alert while the page was away; it comes back with the
    cursors its acks gave it (it heard nothing on either stream before the drop)."""
    ddb = stack.client("dynamodb")
    table = stack.tables["DocumentsTable"]

    async def scenario() -> None:
        page = await Client.connect(stack, "tess", "Tess")
        cursors = {stream: (await subscribed(page, stream))["cursor"] for stream in ("notifications", "alerts")}
        await page.close()

        for n, slug in enumerate(("away-1", "away-2", "away-1")):
            ddb.put_item(TableName=table, Item={"slug": {"S": slug}, "title": {"S": f"Away {n}"}})
        put_alert(stack, {"user": "tess"}, {"text": "while you were away"})
        assert router(stack).wait_idle(WAIT)
        witness = await Client.connect(stack, "uma", "Uma")  # a marker written after the four
        await subscribed(witness, "notifications")
        ddb.put_item(TableName=table, Item={"slug": {"S": "away-marker"}, "title": {"S": "marker"}})
        await witness.next("notifications", lambda p: p["pk"] == "away-marker")

        back = await Client.connect(stack, "tess", "Tess")
        missed = []
        for stream in ("notifications", "alerts"):
            rid = await back.request(action="subscribe", stream=stream, since=cursors[stream])
            while True:
                frame = await back.until(lambda f: True)
                if frame["stream"] == "ack" and frame["payload"]["id"] == rid:
                    break
                missed.append(frame)
        notes = [(f["payload"]["action"], f["payload"]["pk"]) for f in missed if f["stream"] == "notifications"]
        assert notes == [("create", "away-1"), ("create", "away-2"), ("update", "away-1"), ("create", "away-marker")]
        assert [f["payload"] for f in missed if f["stream"] == "alerts"] == [{"text": "while you were away"}]
        assert all(f["cursor"] for f in missed)
        for client in (back, witness):
            await client.close()

    run(scenario())
