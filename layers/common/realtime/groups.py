"""Groups: named sets of connections that a broadcast reaches.

A membership item lives in its connection's partition (so removing a connection finds
it) and is indexed by group in `by_group` (so a fan-out is a paginated Query, never a
Scan). The index key is the group *and a shard* of the member (`keys.GROUP_SHARDS`), so
the reads and writes of a group everyone is in spread over that many index partitions.
Readers skip memberships whose `ttl` has passed: DynamoDB deletes them late.

The reads use botocore's low-level client, not PynamoDB: reading 1,500 members costs 42 µs
of client CPU per member this way and 65 µs through a PynamoDB model of `by_group` (1.6x;
`python -m bench fanout`, "the notify path end to end"), and a fan-out is that read.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from realtime import keys
from realtime.connections import Connection
from realtime.dynamo import batch_get, query_pages, to_item


@lru_cache(maxsize=1)
def _readers() -> ThreadPoolExecutor:
    """Threads for the shards' reads, made once per container (their requests wait on the network)."""
    return ThreadPoolExecutor(max_workers=keys.GROUP_SHARDS, thread_name_prefix="group-read")


@dataclass(frozen=True)
class Member:
    """A recipient: the connection and, for signed-in connections, its user."""

    connection_id: str
    user_id: str | None


@dataclass(frozen=True)
class PageRange:
    """An inclusive range of connection ids within one shard of a group: one unit of fan-out work."""

    group: str
    first: str
    last: str
    shard: int = 0

    @property
    def index_key(self) -> str:
        return f"{self.group}{keys.SEP}{self.shard}"


class Groups:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def add(self, connection: Connection, group: str) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=to_item({
                "pk": keys.connection_pk(connection.connection_id), "sk": keys.group_sk(group),
                "grp": keys.group_shard(group, connection.connection_id), "gsk": connection.connection_id,
                "uid": connection.user_id, "ttl": connection.ttl,
            }),
        )

    def count(self, connection_id: str) -> int:
        """How many groups the connection is in (one Query of its own partition, keys only)."""
        total = 0
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk AND begins_with(sk, :g)",
            "ExpressionAttributeValues": {":pk": {"S": keys.connection_pk(connection_id)}, ":g": {"S": "g" + keys.SEP}},
            "Select": "COUNT", "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            total += response.get("Count", 0)
            if not response.get("LastEvaluatedKey"):
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def is_member(self, connection_id: str, group: str) -> bool:
        return "Item" in self.client.get_item(
            TableName=self.table, ConsistentRead=True, ProjectionExpression="pk",
            Key={"pk": {"S": keys.connection_pk(connection_id)}, "sk": {"S": keys.group_sk(group)}})

    def discard(self, connection_id: str, group: str) -> None:
        self.client.delete_item(
            TableName=self.table,
            Key={"pk": {"S": keys.connection_pk(connection_id)}, "sk": {"S": keys.group_sk(group)}},
        )

    def pages(self, page: PageRange, page_size: int, *, now: float | None = None) -> Iterator[list[Member]]:
        """Yield the live members of one range a page at a time (memory bounded by the page)."""
        now = time.time() if now is None else now
        # Within a range cut at `page_size` keys, one more than that means one Query, not a
        # second, empty one to learn that the range has ended.
        for items in query_pages(
            self.client, TableName=self.table, IndexName="by_group",
            KeyConditionExpression="grp = :g AND gsk BETWEEN :first AND :last",
            ExpressionAttributeValues={":g": {"S": page.index_key}, ":first": {"S": page.first},
                                       ":last": {"S": page.last}},
            Limit=page_size + 1,
        ):
            members = [self._member(item) for item in items if self._live(item, now)]
            if members:
                yield members

    def first_page(self, group: str, shard: int, limit: int, *,
                   now: float | None = None) -> tuple[list[Member], int, str | None]:
        """Up to `limit` members of one shard: the live ones, how many index items were read,
        and the last key read when more may follow (else None)."""
        now = time.time() if now is None else now
        response = self.client.query(
            TableName=self.table, IndexName="by_group", KeyConditionExpression="grp = :g",
            ExpressionAttributeValues={":g": {"S": f"{group}{keys.SEP}{shard}"}}, Limit=limit,
            # What a member is made of, and no more: half the attributes to parse (the
            # index also holds the table's keys), the largest client cost of a fan-out.
            ProjectionExpression="gsk, uid, #ttl", ExpressionAttributeNames={"#ttl": "ttl"},
        )
        items = response.get("Items", [])
        members = [self._member(item) for item in items if self._live(item, now)]
        more = items[-1]["gsk"]["S"] if items and response.get("LastEvaluatedKey") else None
        return members, len(items), more

    def first_pages(self, group: str, limit: int) -> list[tuple[list[Member], int, str | None]]:
        """`first_page` of every shard, in shard order, read concurrently: one round trip's
        wait instead of `GROUP_SHARDS` in a row (boto3's clients are thread-safe)."""
        now = time.time()
        return list(_readers().map(lambda shard: self.first_page(group, shard, limit, now=now),
                                   range(keys.GROUP_SHARDS)))

    def members(self, group: str, connection_ids: list[str], *, now: float | None = None) -> list[Member]:
        """Those of `connection_ids` still live members of `group` (BatchGetItem, consistent)."""
        now = time.time() if now is None else now
        found: list[Member] = []
        for item in batch_get(self.client, self.table, [
            {"pk": {"S": keys.connection_pk(cid)}, "sk": {"S": keys.group_sk(group)}} for cid in connection_ids
        ]):
            if self._live(item, now):
                found.append(self._member(item))
        return sorted(found, key=lambda m: m.connection_id)

    @staticmethod
    def _member(item: dict[str, Any]) -> Member:
        return Member(item["gsk"]["S"], item["uid"]["S"] if "uid" in item else None)

    @staticmethod
    def _live(item: dict[str, Any], now: float) -> bool:
        return int(item.get("ttl", {}).get("N", "0")) > now

    def ranges(self, group: str, shard: int, page_size: int, *, after: str | None = None) -> Iterator[PageRange]:
        """Cut one shard of the group into ranges of `page_size` keys, reading keys only.

        Starts after connection id `after` (exclusive) when given: the page already sent inline.
        """
        condition = "grp = :g"
        values: dict[str, Any] = {":g": {"S": f"{group}{keys.SEP}{shard}"}}
        if after is not None:
            condition += " AND gsk > :after"
            values[":after"] = {"S": after}
        for page in query_pages(
            self.client, TableName=self.table, IndexName="by_group", KeyConditionExpression=condition,
            ExpressionAttributeValues=values, ProjectionExpression="gsk", Limit=page_size,
        ):
            if page:
                yield PageRange(group, page[0]["gsk"]["S"], page[-1]["gsk"]["S"], shard)
