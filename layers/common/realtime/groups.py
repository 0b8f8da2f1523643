"""Groups: named sets of connections that a broadcast reaches.

A membership item lives in its connection's partition (so removing a connection finds
it) and is indexed by group in `by_group` (so a fan-out is a paginated Query, never a
Scan). The index key is the group *and a shard* of the member. A group has one shard
while it is small, so a broadcast to a document's watchers or to one user's connections
is one Query; a broadcast that finds more members than its shards should hold
(`keys.GROUP_SHARD_MEMBERS` each) grows them (`grow`), and the reads and writes of a
group everyone is in spread over up to `keys.MAX_GROUP_SHARDS` index partitions.

The shard count is kept in an entry of the group's shard 0 (`gsk` ``!<count>``, sorted
first), so the first Query of a broadcast learns it, and in an item writers read (cached
per container: a writer that has not seen the growth yet puts members in the first shards,
which readers read too). Readers skip memberships whose `ttl` has passed: DynamoDB deletes
them late.

The reads use botocore's low-level client, not PynamoDB: reading 1,500 members costs 19.5 µs
of client CPU per member this way and 35.7 µs through a PynamoDB model of `by_group` (1.8x;
`python -m bench fanout`, "the notify path end to end"), and a fan-out is that read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from realtime import keys
from realtime.connections import Connection
from realtime.dynamo import batch_get, query_pages, to_item
from realtime.shard_counts import ShardCounts


#: Shards read at once by one broadcast (their requests wait on the network).
READ_THREADS = 32


@lru_cache(maxsize=1)
def _readers() -> ThreadPoolExecutor:
    """Threads for the shards' reads, made once per container."""
    return ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="group-read")


def inline_share(page_size: int, shards: int) -> int:
    """Members read per shard for a broadcast's inline page: the page spread over the
    shards with a quarter more room, since members hash to shards unevenly (a group of 0.9
    pages stays inline). At most `page_size` of those read are sent inline."""
    return min(page_size, max(1, -(-page_size * 5 // (4 * shards))))


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
    #: Index entries the range holds, as cut (not sent in the fan-out message).
    size: int = field(default=0, compare=False)

    @property
    def index_key(self) -> str:
        return keys.group_index_key(self.group, self.shard)


@dataclass(frozen=True)
class ShardPage:
    """The first members of one shard: the live ones, and the last key read when more may follow."""

    shard: int
    members: list[Member]
    after: str | None


class Groups:
    def __init__(self, client: Any, table: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.table = table
        self.counts = ShardCounts(clock)

    def add(self, connection: Connection, group: str) -> None:
        shards = self.shard_count(group)
        self.client.put_item(
            TableName=self.table,
            Item=to_item({
                "pk": keys.connection_pk(connection.connection_id), "sk": keys.group_sk(group),
                "grp": keys.group_shard(group, connection.connection_id, shards), "gsk": connection.connection_id,
                "uid": connection.user_id, "ttl": connection.ttl,
            }),
        )

    # ---- shard counts ------------------------------------------------------------------

    def shard_count(self, group: str) -> int:
        """How many shards `group` has, as a writer needs it: read at most once per
        `shard_counts.TTL_SECONDS` per group and container (a user's group: one, unread)."""
        if keys.is_user_group(group):
            return 1

        def stored() -> int:
            item = self.client.get_item(TableName=self.table, Key=self._shards_key(group),
                                        ProjectionExpression="gsk").get("Item")
            return (keys.shards_of_gsk(item["gsk"]["S"]) if item and "gsk" in item else None) or 1

        return self.counts.read_through(group, stored)

    def grow(self, group: str, members: int, shards: int) -> int:
        """Give `group` the shards `members` need, if it has fewer (`shards`): called by
        a broadcast, which has just counted them. Returns the count now in force."""
        wanted = keys.group_shards_for(members, shards)
        if wanted <= shards or keys.is_user_group(group):
            return shards
        try:
            self.client.update_item(
                TableName=self.table, Key=self._shards_key(group),
                UpdateExpression="SET grp = :grp, gsk = :gsk, shards = :n",
                ConditionExpression="attribute_not_exists(shards) OR shards < :n",
                ExpressionAttributeValues={":grp": {"S": keys.group_index_key(group, 0)},
                                           ":gsk": {"S": keys.shards_gsk(wanted)}, ":n": {"N": str(wanted)}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # another broadcast grew it as far or further
        return self.counts.remember(group, wanted)

    @staticmethod
    def _shards_key(group: str) -> dict[str, Any]:
        return {"pk": {"S": keys.group_shards_pk(group)}, "sk": {"S": "shards"}}

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
                   now: float | None = None) -> tuple[ShardPage, int | None]:
        """Up to `limit` members of one shard (the live ones, and the last key read when
        more may follow), and the group's shard count if this shard holds it."""
        now = time.time() if now is None else now
        response = self.client.query(
            TableName=self.table, IndexName="by_group", KeyConditionExpression="grp = :g",
            ExpressionAttributeValues={":g": {"S": keys.group_index_key(group, shard)}},
            Limit=limit + 1 if shard == 0 else limit,  # shard 0 holds the shard count too
            # What a member is made of, and no more: half the attributes to parse (the
            # index also holds the table's keys), the largest client cost of a fan-out.
            ProjectionExpression="gsk, uid, #ttl", ExpressionAttributeNames={"#ttl": "ttl"},
        )
        items = response.get("Items", [])
        count = keys.shards_of_gsk(items[0]["gsk"]["S"]) if shard == 0 and items else None
        members = [self._member(item) for item in items if self._live(item, now)]
        more = items[-1]["gsk"]["S"] if items and response.get("LastEvaluatedKey") else None
        return ShardPage(shard, members, more), count

    def first_pages(self, group: str, page_size: int) -> list[ShardPage]:
        """The first members of every shard, in shard order, read concurrently: one round
        trip's wait instead of one per shard in a row (boto3's clients are thread-safe).

        The shards read are those this container last knew of; shard 0 says how many there
        are, and any more are read then."""
        now = time.time()
        known = self.counts.known(group)

        def read(shards: range, count: int) -> list[tuple[ShardPage, int | None]]:
            share = inline_share(page_size, count)
            return list(_readers().map(lambda n: self.first_page(group, n, share, now=now), shards))

        found = read(range(known), known)
        actual = found[0][1] or 1
        if actual > known:
            found += read(range(known, actual), actual)
        self.counts.remember(group, actual)
        return [page for page, _ in found]

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
        values: dict[str, Any] = {":g": {"S": keys.group_index_key(group, shard)}}
        if after is not None:
            condition += " AND gsk > :after"
            values[":after"] = {"S": after}
        for page in query_pages(
            self.client, TableName=self.table, IndexName="by_group", KeyConditionExpression=condition,
            ExpressionAttributeValues=values, ProjectionExpression="gsk", Limit=page_size,
        ):
            if page:
                yield PageRange(group, page[0]["gsk"]["S"], page[-1]["gsk"]["S"], shard, size=len(page))
