"""`devtools.stack.moto_speedups`: moto answers exactly as before, without whole-table work.

The same seeded sequence of requests (writes, transactions that commit or are cancelled,
Queries of the table and of both indexes with paging) runs against unpatched and patched
moto; every answer, the final table and the stream records must be identical.
"""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devtools import template as tpl
from devtools.stack import moto_speedups

NAMES = {"ConnectionsTable": "conns", "DocumentsTable": "docs"}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in ("ResponseMetadata", "ConsumedCapacity")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _call(log: list[Any], fn: Any, **kwargs: Any) -> None:
    try:
        log.append(_clean(fn(**kwargs)))
    except ClientError as exc:
        log.append(("error", exc.response["Error"]["Code"], exc.response.get("CancellationReasons")))


def _query_all(log: list[Any], client: Any, **kwargs: Any) -> None:
    """A paginated Query: every page, as the library pages (Limit + ExclusiveStartKey)."""
    start = None
    for _ in range(100):
        page = client.query(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
        log.append(_clean(page))
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def _scenario(seed: int) -> list[Any]:
    rng = random.Random(seed)
    client = boto3.client("dynamodb", region_name="us-east-1")
    tpl.create_tables(client, tpl.load_template(None), NAMES)
    log: list[Any] = []
    groups = ["users", "documents", "doc#a", "doc#b"]
    for step in range(400):
        conn = f"conn#{rng.randrange(40):03d}"
        kind = rng.random()
        if kind < 0.25:
            group = rng.choice(groups)
            _call(log, client.put_item, TableName="conns",
                  Item={"pk": {"S": conn}, "sk": {"S": f"member#{group}"}, "grp": {"S": group},
                        "gsk": {"S": conn}})
        elif kind < 0.35:
            _call(log, client.put_item, TableName="conns",
                  Item={"pk": {"S": conn}, "sk": {"S": "conn"}, "sweep": {"S": "all"},
                        "deadline": {"N": str(rng.randrange(1000))}, "blob": {"B": bytes([step % 256, 0, 255])},
                        "tags": {"SS": ["a", "b"]}, "nested": {"M": {"l": {"L": [{"N": "1.5"}, {"NULL": True}]}}}},
                  ReturnValues="ALL_OLD")
        elif kind < 0.45:
            _call(log, client.delete_item, TableName="conns",
                  Key={"pk": {"S": conn}, "sk": {"S": f"member#{rng.choice(groups)}"}}, ReturnValues="ALL_OLD")
        elif kind < 0.6:  # the counter's transactions: some commit, some are cancelled half way
            user = f"user#{rng.randrange(10)}"
            _call(log, client.transact_write_items, TransactItems=[
                {"Update": {"TableName": "conns", "Key": {"pk": {"S": "counter"}, "sk": {"S": "counter"}},
                            "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"Put": {"TableName": "conns", "Item": {"pk": {"S": user}, "sk": {"S": "user"}},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": "docs", "Item": {"slug": {"S": f"s{step}"}, "title": {"S": user}}}},
            ])
        elif kind < 0.65:
            _call(log, client.transact_write_items, TransactItems=[
                {"Delete": {"TableName": "conns", "Key": {"pk": {"S": f"user#{rng.randrange(10)}"},
                                                          "sk": {"S": "user"}},
                            "ConditionExpression": "attribute_exists(pk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                {"Update": {"TableName": "conns", "Key": {"pk": {"S": "counter"}, "sk": {"S": "counter"}},
                            "UpdateExpression": "ADD n :minus", "ConditionExpression": "n > :zero",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}}}},
            ])
        elif kind < 0.75:
            _query_all(log, client, TableName="conns", KeyConditionExpression="pk = :p",
                       ExpressionAttributeValues={":p": {"S": conn}}, ConsistentRead=True,
                       Limit=rng.choice([1, 2, 100]), ScanIndexForward=rng.random() < 0.7)
        elif kind < 0.77:
            _call(log, client.get_item, TableName="conns", Key={"pk": {"S": conn}, "sk": {"S": "conn"}},
                  ConsistentRead=True, ReturnConsumedCapacity="TOTAL")
            _call(log, client.update_item, TableName="conns", Key={"pk": {"S": conn}, "sk": {"S": "conn"}},
                  UpdateExpression="SET deadline = :s", ExpressionAttributeValues={":s": {"N": str(step)}},
                  ReturnValues=rng.choice(["ALL_NEW", "UPDATED_OLD", "NONE"]))
        elif kind < 0.8:
            _query_all(log, client, TableName="conns", KeyConditionExpression="pk = :p AND begins_with(sk, :m)",
                       ExpressionAttributeValues={":p": {"S": conn}, ":m": {"S": "member#"}})
        elif kind < 0.92:
            after = rng.random() < 0.3  # a key range, as the fan-out's pages read
            _query_all(log, client, TableName="conns", IndexName="by_group",
                       KeyConditionExpression="grp = :g" + (" AND gsk > :k" if after else ""),
                       ExpressionAttributeValues={":g": {"S": rng.choice(groups)},
                                                  **({":k": {"S": "conn#020"}} if after else {})},
                       Limit=rng.choice([3, 7, 1000]))
        else:
            _query_all(log, client, TableName="conns", IndexName="by_deadline",
                       KeyConditionExpression="sweep = :s AND deadline < :t",
                       ExpressionAttributeValues={":s": {"S": "all"}, ":t": {"N": str(rng.randrange(1000))}},
                       Limit=5)
    log.append(sorted(_clean(client.scan(TableName="conns"))["Items"], key=repr))
    log.append(sorted(_clean(client.scan(TableName="docs"))["Items"], key=repr))
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = client.describe_table(TableName="docs")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    log.append([(r["eventName"], r["dynamodb"].get("Keys"), r["dynamodb"].get("NewImage")) for r in records])
    return log


def _run(seed: int, *, patched: bool) -> list[Any]:
    with mock_aws():
        if patched:
            assert moto_speedups.apply()
        try:
            return _scenario(seed)
        finally:
            if patched:
                moto_speedups.restore()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_answers_are_unchanged(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    before = (Table.__dict__["query"], Table.__dict__["all_items"], DynamoResult.__dict__.get("execute_result"))
    plain = _run(seed, patched=False)
    fast = _run(seed, patched=True)
    after = (Table.__dict__["query"], Table.__dict__["all_items"], DynamoResult.__dict__.get("execute_result"))
    assert after == before  # the last user restored moto as it was
    assert len(fast) == len(plain)
    for n, (a, b) in enumerate(zip(plain, fast)):
        assert a == b, f"answer {n} differs"
    cancelled = [entry for entry in plain if isinstance(entry, tuple) and entry[1] == "TransactionCanceledException"]
    assert cancelled, "the scenario must cancel some transactions"


def test_a_cancelled_transaction_undoes_only_its_own_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        assert moto_speedups.apply()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            tpl.create_tables(client, tpl.load_template(None), NAMES)
            client.put_item(TableName="conns", Item={"pk": {"S": "a"}, "sk": {"S": "x"}, "v": {"N": "1"}})
            with pytest.raises(ClientError) as raised:
                client.transact_write_items(TransactItems=[
                    {"Update": {"TableName": "conns", "Key": {"pk": {"S": "a"}, "sk": {"S": "x"}},
                                "UpdateExpression": "SET v = :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
                    {"Put": {"TableName": "docs", "Item": {"slug": {"S": "new"}}}},
                    {"ConditionCheck": {"TableName": "conns", "Key": {"pk": {"S": "missing"}, "sk": {"S": "x"}},
                                        "ConditionExpression": "attribute_exists(pk)"}},
                ])
            reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
            assert reasons == ["None", "None", "ConditionalCheckFailed"]
            item = client.get_item(TableName="conns", Key={"pk": {"S": "a"}, "sk": {"S": "x"}})["Item"]
            assert item["v"] == {"N": "1"}  # updated in place, then put back
            assert "Item" not in client.get_item(TableName="docs", Key={"slug": {"S": "new"}})
            table = client.describe_table(TableName="docs")["Table"]
            streams = boto3.client("dynamodbstreams", region_name="us-east-1")
            shard = streams.describe_stream(StreamArn=table["LatestStreamArn"])["StreamDescription"]["Shards"]
            iterator = streams.get_shard_iterator(StreamArn=table["LatestStreamArn"], ShardId=shard[0]["ShardId"],
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            assert streams.get_records(ShardIterator=iterator)["Records"] == []  # nothing was written
        finally:
            moto_speedups.restore()
