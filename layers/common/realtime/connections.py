"""Connection records: who is connected, since when, last seen, and what they hold.

A connection's record (`c#<conn>`/`meta`) carries the user, the last-seen time that
the sweep watches and the set of presences it holds (`pres`), so a frame's single
`touch` tells the caller everything it needs to refresh presence. Its memberships live
in the same partition, so one strongly consistent Query finds all of it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from realtime import keys
from realtime.config import CONNECTION_LIFETIME_SECONDS, CONNECTION_TTL_MARGIN_SECONDS
from realtime.dynamo import Item, batch_delete, batch_get, error_code, from_item, query_pages, to_item


@dataclass(frozen=True)
class Connection:
    """A registered connection, as stored."""

    connection_id: str
    user_id: str | None = None
    name: str | None = None
    connected_at: int = 0  # milliseconds, as API Gateway reports it
    seen: int = 0  # seconds
    ttl: int = 0  # seconds
    presence: frozenset[str] = field(default_factory=frozenset)  # "<encoded slug>#<phase>"

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    def expired(self, now: float) -> bool:
        """Past API Gateway's 2-hour limit: the socket is certainly closed."""
        return now >= self.connected_at / 1000 + CONNECTION_LIFETIME_SECONDS

    @classmethod
    def from_item(cls, item: Item) -> Connection:
        values = from_item(item)
        return cls(
            connection_id=values["conn"],
            user_id=values.get("uid"),
            name=values.get("name"),
            connected_at=int(values.get("connected_at", 0)),
            seen=int(values.get("seen", 0)),
            ttl=int(values.get("ttl", 0)),
            presence=frozenset(values.get("pres", ())),
        )


@dataclass(frozen=True)
class Holdings:
    """Everything one connection holds, as found by `Connections.holdings`."""

    connection: Connection | None
    groups: list[str]


class Connections:
    """The connection records in the connections table."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def register(self, connection_id: str, *, user_id: str | None, name: str | None,
                 connected_at_ms: int, now: float) -> Connection:
        ttl = int(connected_at_ms / 1000) + CONNECTION_LIFETIME_SECONDS + CONNECTION_TTL_MARGIN_SECONDS
        record = Connection(connection_id, user_id, name, connected_at_ms, int(now), ttl)
        self.client.put_item(
            TableName=self.table,
            Item=to_item({
                "pk": keys.connection_pk(connection_id), "sk": keys.META, "conn": connection_id,
                "uid": user_id, "name": name, "connected_at": connected_at_ms, "seen": int(now),
                "sweep": keys.sweep_shard(connection_id), "ttl": ttl,
            }),
        )
        return record

    def touch(self, connection_id: str, now: float) -> Connection | None:
        """Record a frame (last seen = now) and return the record; None if unknown or expired."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET seen = :now",
                ConditionExpression="attribute_exists(pk) AND #ttl > :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        record = Connection.from_item(response["Attributes"])
        return None if record.expired(now) else record

    def get(self, connection_id: str) -> Connection | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(connection_id), ConsistentRead=True).get("Item")
        return Connection.from_item(item) if item else None

    def add_presence(self, connection_id: str, token: str) -> bool:
        """Note that the connection holds presence `token`; False if it is no longer registered."""
        return self._update_presence(connection_id, "ADD", token)

    def remove_presence(self, connection_id: str, token: str) -> bool:
        return self._update_presence(connection_id, "DELETE", token)

    def _update_presence(self, connection_id: str, verb: str, token: str) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression=f"{verb} pres :p",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":p": {"SS": [token]}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def holdings(self, connection_id: str) -> Holdings:
        """One strongly consistent Query of the connection's partition."""
        record: Connection | None = None
        groups: list[str] = []
        for page in query_pages(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.connection_pk(connection_id)}},
            ConsistentRead=True,
        ):
            for item in page:
                sk = item["sk"]["S"]
                if sk == keys.META:
                    record = Connection.from_item(item)
                elif sk.startswith("g" + keys.SEP):
                    groups.append(item["grp"]["S"])
        return Holdings(record, groups)

    @staticmethod
    def membership_keys(connection_id: str, groups: list[str]) -> list[Item]:
        pk = keys.connection_pk(connection_id)
        return [{"pk": {"S": pk}, "sk": {"S": keys.group_sk(g)}} for g in groups]

    def delete_keys(self, item_keys: list[Item]) -> None:
        """Delete items of this table in as few BatchWriteItem calls as possible."""
        batch_delete(self.client, self.table, item_keys)

    def delete(self, connection_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=self._key(connection_id))

    def stale(self, cutoff: float) -> Iterator[str]:
        """Connection ids whose last frame is older than `cutoff` (seconds), shard by shard."""
        for shard in keys.sweep_shards():
            for page in query_pages(
                self.client,
                TableName=self.table,
                IndexName="by_seen",
                KeyConditionExpression="sweep = :s AND seen < :cutoff",
                ExpressionAttributeValues={":s": {"S": shard}, ":cutoff": {"N": str(int(cutoff))}},
            ):
                for item in page:
                    yield item["pk"]["S"][len("c" + keys.SEP):]

    def stale_oldest_first(self, cutoff: float, *, page_size: int = 100) -> Iterator[str]:
        """Connection ids whose last frame is older than `cutoff`, oldest first across every
        sweep shard (each shard's index is ordered by `seen`; the shards are merged), read
        lazily a page at a time so a caller that stops early reads little."""
        def shard(name: str) -> Iterator[tuple[int, str]]:
            for page in query_pages(
                self.client, TableName=self.table, IndexName="by_seen", Limit=page_size,
                KeyConditionExpression="sweep = :s AND seen < :cutoff",
                ExpressionAttributeValues={":s": {"S": name}, ":cutoff": {"N": str(int(cutoff))}},
            ):
                for item in page:
                    yield int(item["seen"]["N"]), item["pk"]["S"][len("c" + keys.SEP):]

        for _, connection_id in heapq.merge(*(shard(name) for name in keys.sweep_shards())):
            yield connection_id

    def count_stale(self, cutoff: float) -> int:
        """How many connections are silent since before `cutoff` (a COUNT Query per shard)."""
        total = 0
        for name in keys.sweep_shards():
            kwargs: dict[str, object] = {
                "TableName": self.table, "IndexName": "by_seen", "Select": "COUNT",
                "KeyConditionExpression": "sweep = :s AND seen < :cutoff",
                "ExpressionAttributeValues": {":s": {"S": name}, ":cutoff": {"N": str(int(cutoff))}},
            }
            while True:
                response = self.client.query(**kwargs)
                total += int(response.get("Count", 0))
                if not response.get("LastEvaluatedKey"):
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return total

    def records(self, connection_ids: list[str]) -> dict[str, Connection]:
        """The records of `connection_ids` that still exist (BatchGetItem, consistent)."""
        found = batch_get(self.client, self.table, [self._key(cid) for cid in connection_ids])
        return {record.connection_id: record for record in map(Connection.from_item, found)}

    def heard_from(self, connection_id: str, now: float) -> None:
        """The management API says the socket is open: move `seen` to `now`, so the sweep
        asks about it again only after another `PRESENCE_TTL_SECONDS` and reaches the
        connections behind it. Presence is untouched: it still expires without frames."""
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(connection_id), UpdateExpression="SET seen = :now",
                ConditionExpression="attribute_exists(pk) AND seen < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # removed meanwhile, or a frame arrived since: nothing to move

    @staticmethod
    def _key(connection_id: str) -> Item:
        return {"pk": {"S": keys.connection_pk(connection_id)}, "sk": {"S": keys.META}}


def is_conditional_failure(exc: Exception) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"
