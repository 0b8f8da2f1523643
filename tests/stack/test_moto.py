"""The embedded moto (`devtools.stack.aws.MotoServer`): bounded memory and atomic requests.

- moto tracks every model object it creates (for its dashboard) and never lets go; with the
  whole-table copy that each `TransactWriteItems` makes, a stack with 1,000 connecting
  clients grew to ~6 GB. While the stack's moto runs that tracking is off.
- moto's DynamoDB backend is not thread-safe: a cancelled transaction puts back a copy of
  the table taken before it, undoing the writes other threads made meanwhile. The stack
  runs DynamoDB requests one at a time.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

import boto3
from botocore.config import Config
from moto.core.common_models import BaseModel
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table

from devtools import template as tpl
from devtools.stack.aws import LocalAws, MotoServer


def _client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local", config=Config(retries={"max_attempts": 1}))


def _counter_join(client, table: str, user: str) -> None:
    """What `UserCounter.join` sends for a user's first connection."""
    client.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {"pk": {"S": f"user#{user}"}, "sk": {"S": "user"},
                                               "conns": {"SS": [f"c-{user}"]}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": table, "Key": {"pk": {"S": "counter"}, "sk": {"S": "counter"}},
                    "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    ])


def _live(cls: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is cls)


@contextlib.contextmanager
def _stack_moto(name: str) -> Iterator[tuple[MotoServer, LocalAws]]:
    """The stack's moto server with the template's tables, stopped afterwards."""
    server = MotoServer("127.0.0.1", 0)
    server.start()
    try:
        server.reset()
        aws = LocalAws(server.endpoint, tpl.load_template(None), name)
        aws.create()
        yield server, aws
        aws.close()
    finally:
        server.stop()


def test_moto_keeps_no_copy_of_the_table_per_transaction():
    original_new = BaseModel.__dict__["__new__"]
    with _stack_moto("memtest") as (server, aws):
        client = _client(server.endpoint)
        table = aws.tables["ConnectionsTable"]
        for i in range(40):
            client.put_item(TableName=table, Item={"pk": {"S": f"conn#{i}"}, "sk": {"S": "meta"}})
        items_before, tables_before = _live(Item), _live(Table)
        for i in range(30):
            _counter_join(client, table, f"u{i}")
        # 30 new user items and one counter; with tracking, each transaction would have kept
        # two copies of the table (~2 x 70 items) alive: thousands of items.
        assert _live(Item) - items_before <= 31 + 5
        assert _live(Table) == tables_before
        assert Item.instances_tracked == [] and Table.instances_tracked == []  # type: ignore[attr-defined]
        client.close()
    # moto is left as it was found: tracking on again once the stack's moto stops.
    restored = BaseModel.__dict__["__new__"]
    assert getattr(restored, "__func__", restored) is getattr(original_new, "__func__", original_new)


def test_cancelled_transactions_do_not_undo_concurrent_writes():
    with _stack_moto("racetest") as (server, aws):
        table = aws.tables["ConnectionsTable"]
        seed = _client(server.endpoint)
        seed.put_item(TableName=table, Item={"pk": {"S": "user#taken"}, "sk": {"S": "user"}})
        errors: list[str] = []
        writers, per_writer = 6, 40

        def write(w: int) -> None:
            client = _client(server.endpoint)
            for i in range(per_writer):
                try:
                    client.put_item(TableName=table, Item={"pk": {"S": f"conn#{w}-{i}"}, "sk": {"S": "meta"}})
                except Exception as exc:  # noqa: BLE001 - collected and asserted
                    errors.append(f"put: {exc}")
            client.close()

        def cancel() -> None:
            client = _client(server.endpoint)
            for _ in range(per_writer):
                try:
                    _counter_join(client, table, "taken")  # the user exists: always cancelled
                except client.exceptions.TransactionCanceledException:
                    pass
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"transact: {exc}")
            client.close()

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        threads += [threading.Thread(target=cancel) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        pages = seed.get_paginator("scan").paginate(TableName=table)
        keys = {item["pk"]["S"] for page in pages for item in page["Items"]}
        missing = [f"conn#{w}-{i}" for w in range(writers) for i in range(per_writer) if f"conn#{w}-{i}" not in keys]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        seed.close()
