"""Connection records: who is connected, since when, when they must be heard from, and
what they hold.

A connection's record (`c#<conn>`/`meta`) carries the user, the set of presences it
holds (`pres`), its frame-rate allowance (`tat`) and its liveness `deadline`, so a
frame's `touch` tells the caller everything it needs. Its memberships live in the same
partition, so one strongly consistent Query finds all of it.

Liveness without a write per heartbeat: the `deadline` (indexed in `by_deadline`, the
sweep's index) is the time by which the connection must be heard from again:
`PRESENCE_TTL_SECONDS` after its last frame while it holds presence, `IDLE_GRACE_SECONDS`
otherwise (idle clients heartbeat every 5 minutes, inside API Gateway's 10-minute idle
timeout). A frame rewrites it only when that moves it by at least `DEADLINE_SLACK_SECONDS`,
so bursts of frames cost one index write, and an idle connection costs one every five
minutes.

The frame rate is a token bucket per connection (GCRA: `tat` is the theoretical arrival
time of the next frame), kept on the record by the same conditional update that
answers the touch: a frame past the allowance changes nothing and is answered
`rate_limited`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from realtime import keys
from realtime.config import CONNECTION_LIFETIME_SECONDS, CONNECTION_TTL_MARGIN_SECONDS
from realtime.dynamo import Item, batch_delete, batch_get, error_code, from_item, query_pages, to_item

#: How long a connection that holds no presence may be silent before the sweep asks about
#: it: the client's idle heartbeat (300 s) and a minute of grace.
IDLE_GRACE_SECONDS = 360
#: A frame rewrites the deadline only when that moves it at least this much.
DEADLINE_SLACK_SECONDS = 20


@dataclass(frozen=True)
class Connection:
    """A registered connection, as stored."""

    connection_id: str
    user_id: str | None = None
    name: str | None = None
    connected_at: int = 0  # milliseconds, as API Gateway reports it
    seen: int = 0  # seconds: when the deadline was last written
    deadline: int = 0  # seconds: heard from by then, or the sweep asks
    ttl: int = 0  # seconds
    presence: frozenset[str] = field(default_factory=frozenset)  # "<encoded room>#<state>"

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
            deadline=int(values.get("deadline", 0)),
            ttl=int(values.get("ttl", 0)),
            presence=frozenset(values.get("pres", ())),
        )


@dataclass(frozen=True)
class Holdings:
    """Everything one connection holds, as found by `Connections.holdings`."""

    connection: Connection | None
    groups: list[str]


class Touched(Enum):
    OK = "ok"
    UNKNOWN = "unknown"  # not registered (or past its lifetime)
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class Touch:
    outcome: Touched
    connection: Connection | None = None


class Presenced(Enum):
    ADDED = "added"
    UNKNOWN = "unknown"
    LIMIT = "limit"


@dataclass(frozen=True)
class FrameRate:
    """A token bucket: `rate` frames per second on average, bursts of `burst`."""

    rate: float = 10.0
    burst: int = 20

    @property
    def step(self) -> float:
        return 1.0 / self.rate

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.step


class Connections:
    """The connection records in the connections table."""

    def __init__(self, client: Any, table: str, *, presence_grace: int = 60,
                 frame_rate: FrameRate | None = None) -> None:
        self.client = client
        self.table = table
        self.presence_grace = presence_grace
        self.frame_rate = frame_rate or FrameRate()

    def register(self, connection_id: str, *, user_id: str | None, name: str | None,
                 connected_at_ms: int, now: float) -> Connection:
        ttl = int(connected_at_ms / 1000) + CONNECTION_LIFETIME_SECONDS + CONNECTION_TTL_MARGIN_SECONDS
        # Heard from soon (its first frames, subscribes, follow at once) or asked about: a
        # handshake that failed half way leaves a record no frame will ever touch.
        deadline = int(now) + self.presence_grace
        record = Connection(connection_id, user_id, name, connected_at_ms, int(now), deadline, ttl)
        self.client.put_item(
            TableName=self.table,
            Item=to_item({
                "pk": keys.connection_pk(connection_id), "sk": keys.META, "conn": connection_id,
                "uid": user_id, "name": name, "connected_at": connected_at_ms, "seen": int(now),
                "deadline": deadline, "sweep": keys.sweep_shard(connection_id), "ttl": ttl,
            }),
        )
        return record

    def touch(self, connection_id: str, now: float, *, heard: bool = True) -> Touch:
        """Count one frame against the connection's allowance and return its record.

        `heard=False` leaves the deadline to the frame's own write (`add_presence`,
        `remove_presence`): one write of the `by_deadline` entry instead of two.

        GCRA: with `tat` the theoretical arrival time of the next frame, a frame at `now`
        is allowed when `tat <= now + tolerance`, and moves `tat` to `max(tat, now) + step`.
        DynamoDB has no `max`: a bucket with spare room (`tat < now`) is one update, a
        bucket in use a second, conditional on the allowance."""
        rate = self.frame_rate
        try:
            response = self.client.update_item(
                TableName=self.table, Key=self._key(connection_id),
                UpdateExpression="SET tat = :next",
                ConditionExpression="attribute_exists(pk) AND #ttl > :now AND (attribute_not_exists(tat) OR tat < :now)",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": {"N": repr(now)}, ":next": {"N": repr(now + rate.step)}},
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item")
            if not old or int(old.get("ttl", {}).get("N", "0")) <= now:
                return Touch(Touched.UNKNOWN)
            try:
                response = self.client.update_item(
                    TableName=self.table, Key=self._key(connection_id),
                    UpdateExpression="SET tat = tat + :step",
                    ConditionExpression="attribute_exists(pk) AND tat <= :limit",
                    ExpressionAttributeValues={":step": {"N": repr(rate.step)},
                                               ":limit": {"N": repr(now + rate.tolerance)}},
                    ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self.client.exceptions.ConditionalCheckFailedException as again:
                if not again.response.get("Item"):
                    return Touch(Touched.UNKNOWN)
                return Touch(Touched.RATE_LIMITED, Connection.from_item(again.response["Item"]))
        record = Connection.from_item(response["Attributes"])
        if record.expired(now):
            return Touch(Touched.UNKNOWN)
        return Touch(Touched.OK, self.heard(record, now) if heard else record)

    def _moved_deadline(self, record: Connection, now: float, *, holding: bool) -> int | None:
        """The deadline a frame at `now` sets, or None when it would move less than the slack."""
        deadline = int(now) + (self.presence_grace if holding else IDLE_GRACE_SECONDS)
        return deadline if deadline - record.deadline >= DEADLINE_SLACK_SECONDS else None

    def heard(self, record: Connection, now: float) -> Connection:
        """Push the deadline forward when that matters (see the module's docstring)."""
        deadline = self._moved_deadline(record, now, holding=bool(record.presence))
        if deadline is None:
            return record
        self.client.update_item(
            TableName=self.table, Key=self._key(record.connection_id),
            UpdateExpression="SET deadline = :d, seen = :now", ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":d": {"N": str(deadline)}, ":now": {"N": str(int(now))}},
        )
        return Connection(record.connection_id, record.user_id, record.name, record.connected_at, int(now),
                          deadline, record.ttl, record.presence)

    def get(self, connection_id: str) -> Connection | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(connection_id), ConsistentRead=True).get("Item")
        return Connection.from_item(item) if item else None

    def add_presence(self, connection_id: str, token: str, *, now: float, limit: int) -> Presenced:
        """Note that the connection holds presence `token` (at most `limit` of them), and that it
        must now be heard from within the presence grace."""
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(connection_id),
                UpdateExpression="ADD pres :p SET deadline = :d, seen = :now",
                ConditionExpression=("attribute_exists(pk) AND (attribute_not_exists(pres) OR contains(pres, :t) "
                                     "OR size(pres) < :max)"),
                ExpressionAttributeValues={":p": {"SS": [token]}, ":t": {"S": token}, ":max": {"N": str(limit)},
                                           ":d": {"N": str(int(now) + self.presence_grace)},
                                           ":now": {"N": str(int(now))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            return Presenced.LIMIT if exc.response.get("Item") else Presenced.UNKNOWN
        return Presenced.ADDED

    def remove_presence(self, record: Connection, token: str, *, now: float) -> bool:
        """Note that the connection no longer holds `token`; in the same write, the deadline
        this frame sets (the idle grace once it holds nothing), when that moves it."""
        expression, values = "DELETE pres :p", {":p": {"SS": [token]}}
        deadline = self._moved_deadline(record, now, holding=bool(record.presence - {token}))
        if deadline is not None:
            expression += " SET deadline = :d, seen = :now"
            values.update({":d": {"N": str(deadline)}, ":now": {"N": str(int(now))}})
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(record.connection_id), UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues=values,
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
                    groups.append(sk[len("g" + keys.SEP):])
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

    def stale_oldest_first(self, now: float, *, page_size: int = 100) -> Iterator[str]:
        """Connection ids whose deadline has passed, longest overdue first across every sweep
        shard (each shard's index is ordered by `deadline`; the shards are merged), read
        lazily a page at a time so a caller that stops early reads little."""
        def shard(name: str) -> Iterator[tuple[int, str]]:
            for page in query_pages(
                self.client, TableName=self.table, IndexName="by_deadline", Limit=page_size,
                KeyConditionExpression="sweep = :s AND deadline < :now",
                ExpressionAttributeValues={":s": {"S": name}, ":now": {"N": str(int(now))}},
            ):
                for item in page:
                    yield int(item["deadline"]["N"]), item["pk"]["S"][len("c" + keys.SEP):]

        for _, connection_id in heapq.merge(*(shard(name) for name in keys.sweep_shards())):
            yield connection_id

    def count_stale(self, now: float) -> int:
        """How many connections are past their deadline (a COUNT Query per shard)."""
        total = 0
        for name in keys.sweep_shards():
            kwargs: dict[str, object] = {
                "TableName": self.table, "IndexName": "by_deadline", "Select": "COUNT",
                "KeyConditionExpression": "sweep = :s AND deadline < :now",
                "ExpressionAttributeValues": {":s": {"S": name}, ":now": {"N": str(int(now))}},
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
        """The management API says the socket is open though silent: give it another idle
        grace, so the sweep asks about it again only then and reaches the connections behind
        it. Presence is untouched: its rosters still drop it without frames."""
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(connection_id), UpdateExpression="SET deadline = :d",
                ConditionExpression="attribute_exists(pk) AND deadline < :d",
                ExpressionAttributeValues={":d": {"N": str(int(now) + IDLE_GRACE_SECONDS)}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # removed meanwhile, or a frame arrived since: nothing to move

    @staticmethod
    def _key(connection_id: str) -> Item:
        return {"pk": {"S": keys.connection_pk(connection_id)}, "sk": {"S": keys.META}}


def is_conditional_failure(exc: Exception) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"
