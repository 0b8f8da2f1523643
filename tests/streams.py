"""Lambda-shaped DynamoDB stream events: built by hand, or read back from moto's stream."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from boto3.dynamodb.types import TypeSerializer

REGION = "us-east-1"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/documents/stream/2026-11-25T00:00:00.000"
_seq = itertools.count(100000000000000000000)
_serializer = TypeSerializer()


def image(**values: Any) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def record(event_name: str, slug: str, *, old: dict[str, Any] | None = None, new: dict[str, Any] | None = None,
           seq: str | None = None) -> dict[str, Any]:
    """One record exactly as Lambda delivers it (NEW_AND_OLD_IMAGES)."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(time.time()),
        "Keys": {"slug": {"S": slug}},
        "SequenceNumber": seq or str(next(_seq)),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        dynamodb["OldImage"] = {"slug": {"S": slug}, **old}
    if new is not None:
        dynamodb["NewImage"] = {"slug": {"S": slug}, **new}
    return {
        "eventID": uuid.uuid4().hex, "eventName": event_name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": REGION, "dynamodb": dynamodb, "eventSourceARN": STREAM_ARN,
    }


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def read_stream(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every record on the table's stream so far, in the shape Lambda passes on."""
    import boto3

    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        response = streams.get_records(ShardIterator=iterator)
        for item in response["Records"]:
            item = dict(item)
            item["eventSourceARN"] = arn
            stream_data = dict(item["dynamodb"])
            created = stream_data.get("ApproximateCreationDateTime")
            if hasattr(created, "timestamp"):
                stream_data["ApproximateCreationDateTime"] = int(created.timestamp())
            item["dynamodb"] = stream_data
            records.append(item)
    return records


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """SQS messages (from receive_message) in the shape of Lambda's SQS event source."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000)),
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}


class Pump:
    """Delivers what the bound tables' streams hold since last asked, through the notify
    function, as Lambda's event source mappings would (one batch per table)."""

    def __init__(self, dynamodb: Any, *tables: str) -> None:
        self.dynamodb = dynamodb
        self.tables = tables
        self.seen = {table: 0 for table in tables}

    def __call__(self) -> list[dict[str, Any]]:
        from functions.notify import app
        from tests.apigw import LambdaContext

        answers = []
        for table in self.tables:
            records = read_stream(self.dynamodb, table)
            fresh, self.seen[table] = records[self.seen[table]:], len(records)
            if fresh:
                answers.append(app.handler(event(*fresh), LambdaContext()))
        return answers
