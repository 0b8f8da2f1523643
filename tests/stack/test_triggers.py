"""Stream, queue and schedule triggers: a boto3 write reaching the right browsers, and
Lambda's event source semantics (batchItemFailures, retries, bisect, on-failure)."""

from __future__ import annotations

import json
import threading
import time

from devtools.stack.triggers import QueuePoller, Scheduler, StreamPoller
from tests.stack.conftest import WAIT, Client, run


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def test_boto3_put_item_reaches_the_right_subscribers(stack):
    """Another process's plain boto3 write -> stream -> poller -> notify -> @connections."""
    ddb = stack.client("dynamodb")
    table = stack.tables["DocumentsTable"]

    async def scenario():
        alice = await Client.connect(stack, "alice", "Alice")
        bob = await Client.connect(stack, "bob", "Bob")
        carol = await Client.connect(stack, label="carol")
        for client in (alice, bob):
            assert (await client.subscribe("notifications"))["stream"] == "ack"
        error = await carol.subscribe("notifications")
        assert error["stream"] == "error" and error["payload"]["code"] == "unauthenticated"

        # A private document only Alice may read, then a public one.
        ddb.put_item(TableName=table, Item={
            "slug": {"S": "secret-plan"}, "title": {"S": "Secret plan"}, "visibility": {"S": "private"},
            "owner": {"S": "alice"}, "readers": {"L": []}, "abstract": {"S": "shh"}})
        ddb.put_item(TableName=table, Item={
            "slug": {"S": "hello-world"}, "title": {"S": "Hello"}, "abstract": {"S": "hi"},
            "owner": {"S": "bob"}, "internal": {"S": "never sent"}})

        mine = await alice.next("notifications", lambda p: p["pk"] == "secret-plan")
        assert mine["action"] == "create" and mine["model"] == "document"
        assert mine["data"] == {"slug": "secret-plan", "title": "Secret plan", "abstract": "shh"}
        int(mine["seq"])
        # Bob gets the public one, and nothing about the private one before it.
        public = await bob.next("notifications", lambda p: p["pk"] == "hello-world",
                                forbid=lambda f: "secret-plan" in json.dumps(f))
        assert public["action"] == "create"
        assert "owner" not in public["data"] and "internal" not in public["data"]
        assert int(public["seq"]) > int(mine["seq"])

        # An update, then a delete, reach both readers of the public document.
        ddb.update_item(TableName=table, Key={"slug": {"S": "hello-world"}},
                        UpdateExpression="SET title = :t", ExpressionAttributeValues={":t": {"S": "Hello again"}})
        ddb.delete_item(TableName=table, Key={"slug": {"S": "hello-world"}})
        for client in (alice, bob):
            update = await client.next("notifications", lambda p: p["pk"] == "hello-world" and p["action"] == "update")
            assert update["data"]["title"] == "Hello again"
            delete = await client.next("notifications", lambda p: p["pk"] == "hello-world" and p["action"] == "delete")
            assert delete["data"] == {"slug": "hello-world"}
        for client in (alice, bob, carol):
            await client.close()

    run(scenario())


def _records_handler(calls, fail):
    """A stand-in notify handler recording sequence numbers; `fail(record, attempt)` decides."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def handler(event, context):
        records = event["Records"]
        if records and records[0].get("eventSource") != "aws:dynamodb":
            return {"batchItemFailures": []}
        with lock:
            calls.append([(r["dynamodb"]["Keys"]["slug"]["S"], r["dynamodb"]["SequenceNumber"]) for r in records])
            failures = []
            for record in records:
                seq = record["dynamodb"]["SequenceNumber"]
                seen[seq] = seen.get(seq, 0) + 1
                outcome = fail(record, seen[seq])
                if outcome == "raise":
                    raise RuntimeError("handler crashed")
                if outcome:
                    failures.append({"itemIdentifier": seq})
        return {"batchItemFailures": failures}

    return handler


def test_stream_partial_failure_resumes_from_the_lowest_failed_record(stack):
    ddb = stack.client("dynamodb")
    table = stack.tables["DocumentsTable"]
    calls = []
    handler = _records_handler(calls, lambda r, attempt: r["dynamodb"]["Keys"]["slug"]["S"] == "pf-2" and attempt == 1)
    with stack.functions.override("NotifyFunction", handler):
        for i in range(1, 5):
            ddb.put_item(TableName=table, Item={"slug": {"S": f"pf-{i}"}, "title": {"S": str(i)}})
        wait_for(lambda: sum(s.startswith("pf-4") for batch in calls for s, _ in batch) >= 1
                 and sum(s == "pf-2" for batch in calls for s, _ in batch) >= 2, "redelivery")
    delivered = [slug for batch in calls for slug, _ in batch]
    # pf-1 was acknowledged: never again. pf-2 came back, with whatever followed it in its batch.
    assert delivered.count("pf-1") == 1
    assert delivered.count("pf-2") == 2
    first_pf2_batch = next(batch for batch in calls if any(s == "pf-2" for s, _ in batch))
    retry = next(batch for batch in calls[calls.index(first_pf2_batch) + 1:] if any(s == "pf-2" for s, _ in batch))
    assert retry[0][0] == "pf-2"
    assert [s for s, _ in retry] == [s for s, _ in first_pf2_batch][[s for s, _ in first_pf2_batch].index("pf-2"):]


def test_stream_errors_retry_bisect_then_go_to_the_failure_destination(stack):
    ddb = stack.client("dynamodb")
    sqs = stack.client("sqs")
    table = stack.tables["DocumentsTable"]
    poller = stack.trigger(StreamPoller, "NotifyFunction")
    calls = []
    handler = _records_handler(calls, lambda r, attempt: "raise" if r["dynamodb"]["Keys"]["slug"]["S"] == "poison" else False)
    discarded_before = len(poller.discarded)
    with stack.functions.override("NotifyFunction", handler):
        ddb.put_item(TableName=table, Item={"slug": {"S": "poison"}, "title": {"S": "bad"}})
        ddb.put_item(TableName=table, Item={"slug": {"S": "after-poison"}, "title": {"S": "good"}})
        wait_for(lambda: any(s == "after-poison" for batch in calls for s, _ in batch)
                 and len(poller.discarded) > discarded_before, "the shard moving past the poison record")
    poison_attempts = [batch for batch in calls if any(s == "poison" for s, _ in batch)]
    assert len(poison_attempts) == 1 + poller.max_retries
    info = poller.discarded[-1]
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["DDBStreamBatchInfo"]["batchSize"] == 1  # bisected down to the poison record
    messages = sqs.receive_message(QueueUrl=stack.queues["NotifyFailureQueue"], MaxNumberOfMessages=10)["Messages"]
    assert any(json.loads(m["Body"])["DDBStreamBatchInfo"]["startSequenceNumber"]
               == info["DDBStreamBatchInfo"]["startSequenceNumber"] for m in messages)


def test_fanout_queue_deletes_only_what_the_function_did_not_report(stack):
    sqs = stack.client("sqs")
    url = stack.queues["FanoutQueue"]
    poller = stack.trigger(QueuePoller, "NotifyFunction")
    seen = []

    def handler(event, context):
        records = event["Records"]
        if records and records[0].get("eventSource") != "aws:sqs":
            return {"batchItemFailures": []}
        seen.extend(records)
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "fail"]}

    deleted_before = poller.deleted
    with stack.functions.override("NotifyFunction", handler):
        for body in ("ok-1", "fail", "ok-2"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        wait_for(lambda: poller.deleted - deleted_before >= 2 and len(seen) >= 3, "the batch handled")
    record = seen[0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":realtime-fanout")
    for key in ("messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody", "awsRegion"):
        assert key in record
    assert poller.deleted - deleted_before == 2
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # the failed one, back after the timeout


def test_scheduled_sweep_runs_the_disconnect_function(stack):
    scheduler = stack.trigger(Scheduler, "DisconnectFunction")
    assert scheduler.interval == 3600  # the fixture's override of the template's rate(1 minute)
    outcome = scheduler.fire()
    assert outcome.ok, outcome.error
    assert {"checked", "removed", "expired_presence"} <= set(outcome.result)
