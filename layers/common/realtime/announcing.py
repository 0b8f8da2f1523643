"""Coalesced state broadcasts: at most one announcement per topic and key per interval.

A step that changes state (a presence change, the user count, a document's place in a
list) only *marks* what changed: `Coalescer.mark(topic, key)`. The first mark of a quiet
(topic, key) writes a pending item and sends one SQS message delayed by the interval;
later marks find it pending and do nothing, and each container remembers what it saw
pending, so a busy key costs a handful of reads per interval, not one per change. When
the message arrives, the announce function clears the mark (conditionally: one writer
per pending period) and only then reads the state and broadcasts it, so a change made
after the clear is marked anew and nothing is ever left unannounced.

The interval is `BROADCAST_INTERVAL_MS` for audiences of up to `GROUP_POST_BUDGET`
members per second, and grows with the audience beyond that (members / budget seconds),
so no group's state broadcasts exceed the budget. Why this mechanism, and not the
table's stream with a batching window, is in docs/data-model.md.

Without a queue (tests, single-process tools) marks are announced at once; marks due
later (presence expiring) are found by the sweep, which also re-sends marks whose
message was lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime import keys

logger = logging.getLogger(__name__)

#: SQS's longest delay; longer intervals are waited out in hops.
MAX_DELAY_SECONDS = 900
#: A pending mark whose message has not been handled this long after it was due is lost:
#: the sweep sends it again.
LOST_AFTER_SECONDS = 120
#: A container trusts what it saw pending until this long before it is due.
MEMO_MARGIN_SECONDS = 0.5
PENDING_SK = "pending"
#: Without a queue, how often one call may announce the same topic and key.
INLINE_ROUNDS = 2


@dataclass(frozen=True)
class Announced:
    """What an announcement reached (sizes the next interval) and, optionally, when the
    same key must be announced again even if nothing is marked (presence expiring)."""

    members: int = 0
    again_at: float | None = None


#: (topic, key, follow_up) -> what it reached. A follow-up is the second round of one
#: call without a queue: it leaves the gone recipients it finds to a later step.
Announce = Callable[[str, str, bool], Announced]


class AnnounceQueue:
    """The SQS queue that carries marks to the announce function, with their delay."""

    def __init__(self, client: Callable[[], Any], queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def send(self, topic: str, key: str, due: float, delay: float) -> None:
        self._client().send_message(
            QueueUrl=self.queue_url, DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(round(delay)))),
            MessageBody=json.dumps({"v": 1, "topic": topic, "key": key, "due": due}, separators=(",", ":")))


@dataclass(frozen=True)
class Mark:
    topic: str
    key: str
    due: float

    @classmethod
    def parse(cls, body: str) -> Mark:
        data = json.loads(body)
        if (not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("topic"), str)
                or not isinstance(data.get("key"), str) or not isinstance(data.get("due"), (int, float))):
            raise ValueError("not an announcement message")
        return cls(data["topic"], data["key"], float(data["due"]))


class Coalescer:
    def __init__(self, client: Any, table: str, *, queue: AnnounceQueue | None, interval: float = 1.0,
                 budget: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.queue = queue
        self.interval = interval
        self.budget = budget
        self.clock = clock
        self.announce: Announce = lambda topic, key, follow_up: Announced()
        #: (topic, key) -> (due, interval) of a pending announcement this container saw.
        self._seen: dict[tuple[str, str], tuple[float, float]] = {}
        self._pending_inline: list[tuple[str, str]] = []
        self._draining = False

    def interval_for(self, members: int) -> float:
        return max(self.interval, members / self.budget)

    # ---- marking -------------------------------------------------------------------------

    def mark(self, topic: str, key: str = "", *, at: float | None = None) -> None:
        """Make sure (topic, key) is announced within one interval (or at `at`, if later)."""
        now = self.clock()
        if self.queue is None and (at is None or at <= now):
            self._inline(topic, key)
            return
        seen = self._seen.get((topic, key))
        if seen is not None and now < seen[0] - MEMO_MARGIN_SECONDS and seen[0] <= max(now + seen[1], at or 0):
            return
        item = self.client.get_item(TableName=self.table, Key=self._key(topic, key)).get("Item") or {}
        interval = self.interval_for(int(item.get("members", {}).get("N", "0")))
        wanted = max(now + interval, at or 0.0)
        pending = float(item["due"]["N"]) if "due" in item else None
        if pending is not None and now < pending + LOST_AFTER_SECONDS and pending <= wanted:
            self._seen[(topic, key)] = (pending, interval)
            return
        # Nothing pending (or it is due later than wanted, or lost): schedule at `wanted`.
        condition = "attribute_not_exists(due) OR due > :wanted OR due < :lost"
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(topic, key),
                UpdateExpression="SET due = :wanted, deadline = :deadline, sweep = :shard, #ttl = :ttl",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":wanted": {"N": repr(wanted)}, ":lost": {"N": repr(now - LOST_AFTER_SECONDS)},
                    ":deadline": {"N": str(int(wanted + LOST_AFTER_SECONDS))},
                    ":shard": {"S": keys.stuck_shard(topic, key)}, ":ttl": {"N": str(int(now) + 86400)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            other = exc.response.get("Item") or {}
            if "due" in other:  # someone else scheduled it, as soon or sooner
                self._seen[(topic, key)] = (float(other["due"]["N"]), interval)
            return
        self._seen[(topic, key)] = (wanted, interval)
        if self.queue is not None:
            self.queue.send(topic, key, wanted, wanted - now)

    def _inline(self, topic: str, key: str) -> None:
        """Without a queue: announce now. Marks made while announcing (what the removal of a
        gone recipient changed, a list a roster feeds) are announced after it, each (topic,
        key) at most `INLINE_ROUNDS` times per call: what a second round still finds is left
        to a later step, as a queue's next interval would leave it."""
        if (topic, key) not in self._pending_inline:
            self._pending_inline.append((topic, key))
        if self._draining:
            return
        self._draining = True
        rounds: dict[tuple[str, str], int] = {}
        try:
            while self._pending_inline:
                item = self._pending_inline.pop(0)
                if rounds.get(item, 0) >= INLINE_ROUNDS:
                    continue
                rounds[item] = rounds.get(item, 0) + 1
                self._announce(*item, self.clock(), follow_up=rounds[item] > 1)
        finally:
            self._draining = False
            self._pending_inline.clear()

    # ---- announcing ----------------------------------------------------------------------

    def handle(self, mark: Mark) -> bool:
        """One message from the queue: announce if it is due; True if it announced."""
        now = self.clock()
        if mark.due > now + 1:  # an interval longer than SQS's longest delay: wait again
            assert self.queue is not None
            self.queue.send(mark.topic, mark.key, mark.due, mark.due - now)
            return False
        return self._claim_and_announce(mark.topic, mark.key, now)

    def run_due(self) -> int:
        """The sweep: marks due for a while whose message never came (lost, or no queue):
        announce them, or send them again. Returns how many were found."""
        now = self.clock()
        found = 0
        for shard in keys.stuck_shards():
            kwargs: dict[str, Any] = {
                "TableName": self.table, "IndexName": "by_deadline",
                "KeyConditionExpression": "sweep = :s AND deadline < :now",
                "ExpressionAttributeValues": {":s": {"S": shard}, ":now": {"N": str(int(now + LOST_AFTER_SECONDS))}},
            }
            while True:
                response = self.client.query(**kwargs)
                for item in response.get("Items", []):
                    topic, key = self._parse_pk(item["pk"]["S"])
                    due = self._due(topic, key)
                    if due is None or due > now:
                        continue
                    found += 1
                    if self.queue is None or now > due + LOST_AFTER_SECONDS:
                        self._claim_and_announce(topic, key, now)
                if not response.get("LastEvaluatedKey"):
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def _claim_and_announce(self, topic: str, key: str, now: float) -> bool:
        try:  # one writer per pending period: only the one that clears the mark announces
            self.client.update_item(
                TableName=self.table, Key=self._key(topic, key),
                UpdateExpression="REMOVE due, deadline, sweep", ConditionExpression="due <= :now",
                ExpressionAttributeValues={":now": {"N": repr(now + 1)}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        self._seen.pop((topic, key), None)
        self._announce(topic, key, now)
        return True

    def _announce(self, topic: str, key: str, now: float, *, follow_up: bool = False) -> None:
        announced = self.announce(topic, key, follow_up)
        if self.queue is not None or announced.members:
            self.client.update_item(
                TableName=self.table, Key=self._key(topic, key),
                UpdateExpression="SET members = :m, announced = :now, #ttl = :ttl",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":m": {"N": str(announced.members)}, ":now": {"N": repr(now)},
                                           ":ttl": {"N": str(int(now) + 86400)}},
            )
        if announced.again_at is not None:
            self.mark(topic, key, at=announced.again_at)

    def _due(self, topic: str, key: str) -> float | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(topic, key), ConsistentRead=True).get("Item")
        return float(item["due"]["N"]) if item and "due" in item else None

    @staticmethod
    def _key(topic: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": keys.announcement_pk(topic, key)}, "sk": {"S": PENDING_SK}}

    @staticmethod
    def _parse_pk(pk: str) -> tuple[str, str]:
        _, topic, key = pk.split(keys.SEP, 2)
        return keys.decode(topic), keys.decode(key)
