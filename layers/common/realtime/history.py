"""History: every message of a stream that keeps history, logged for catch-up after a reconnect.

A message is logged once per group it goes to (a binding change to `group_names(instance)`,
a published event to its target group), never once per recipient: the entry holds the
serialised `Delivery` that live delivery used, so a replay decides for each subscriber
exactly as live delivery did when the message was sent (who could read the old and the
new image, who was in the audience). Entries live in the history table (`HISTORY_TABLE`),
keyed by group (`log`) and cursor (`cursor`), and expire after `HISTORY_HOURS` (DynamoDB
TTL on `ttl`, seconds; readers also skip what has expired but is not deleted yet).

Cursors are ordered like the messages of one group, and unique:
`<13-digit milliseconds><4 hex: a counter within the millisecond><8 hex: this container>`
(25 characters), so they compare as strings. DynamoDB has no sequence: milliseconds order
messages from different containers (their clocks agree to well under a second), the
counter orders one container's messages within a millisecond (a batch of stream records
is handled in well under one), and the container's random tag makes two containers'
cursors differ. A position without a message (what a subscribe's `ack` carries) is the
13 digits alone, which sorts before every cursor of that millisecond.
"""

from __future__ import annotations

import heapq
import json
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from realtime.deliveries import Delivery, delivery_from_message
from realtime.dynamo import query_pages

CURSOR = re.compile(r"\d{13}(?:[0-9a-f]{12})?")
#: How far behind the clock a replay's end is put. A message's cursor is taken just before
#: its log entry is written (retries included), so an entry older than this is never
#: written after the replay has read the log: a position this far back misses nothing.
SKEW_SECONDS = 5
#: A cursor further ahead of the clock than this was not issued here.
FUTURE_SECONDS = 60
_COUNTER_LIMIT = 0x10000


class InvalidCursor(ValueError):
    """A `since` that is not a cursor or position this server issues."""


def valid_cursor(value: object) -> str:
    if not isinstance(value, str) or not CURSOR.fullmatch(value):
        raise InvalidCursor("since must be a cursor from a frame (or an ack) of this stream")
    return value


def cursor_seconds(cursor: str) -> float:
    """When a cursor (or a position) was taken, in epoch seconds."""
    return int(cursor[:13]) / 1000


def position(now: float, behind: float = 0.0) -> str:
    """A place in every log: after everything logged before `now - behind` (seconds)."""
    return f"{max(0, int((now - behind) * 1000)):013d}"


class Cursors:
    """Issues this container's cursors: increasing, even when the clock steps back."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or secrets.token_hex(4)
        self._lock = threading.Lock()  # the local stack runs many invocations on threads
        self._ms = 0
        self._count = 0

    def next(self, now: float) -> str:
        ms = int(now * 1000)
        with self._lock:
            if ms > self._ms:
                self._ms, self._count = ms, 0
            else:
                self._count += 1
                if self._count == _COUNTER_LIMIT:
                    self._ms, self._count = self._ms + 1, 0
            return f"{self._ms:013d}{self._count:04x}{self.tag}"


@dataclass(frozen=True)
class Entry:
    """One logged message of one group."""

    group: str
    cursor: str
    delivery: Delivery


@dataclass(frozen=True)
class Replay:
    """What a log holds after a cursor: the entries, in order, or `reset` when it cannot say
    (more than the replay limit, or a cursor past the retention or from the future)."""

    entries: tuple[Entry, ...] = ()
    reset: bool = False


class History:
    """The history table: `append` one entry per message and group, `after` to replay."""

    def __init__(self, client: Any, table: str, *, hours: int, limit: int, page_size: int | None = None,
                 cursors: Cursors | None = None) -> None:
        self.client = client
        self.table = table
        self.hours = hours
        self.limit = limit
        #: Items per Query page (DynamoDB also ends a page at 1 MB).
        self.page_size = page_size or limit + 1
        self.cursors = cursors or Cursors()

    @property
    def retention_seconds(self) -> int:
        return self.hours * 3600

    def cursor(self, now: float) -> str:
        return self.cursors.next(now)

    def append(self, group: str, cursor: str, delivery: Delivery, now: float) -> None:
        """Log one message for one group (a PutItem: one write per message and group)."""
        self.client.put_item(TableName=self.table, Item={
            "log": {"S": group}, "cursor": {"S": cursor},
            "delivery": {"S": json.dumps(delivery.to_message(), separators=(",", ":"), ensure_ascii=False)},
            "ttl": {"N": str(int(now) + self.retention_seconds)},
        })

    def after(self, groups: Sequence[str], since: str, now: float) -> Replay:
        """Everything logged in `groups` after `since`, merged in cursor order (at most `limit`)."""
        taken = cursor_seconds(since)
        if taken < now - self.retention_seconds or taken > now + FUTURE_SECONDS:
            return Replay(reset=True)
        merged = heapq.merge(*(self._read(group, since, now) for group in groups), key=lambda e: e.cursor)
        entries: list[Entry] = []
        for entry in merged:
            if len(entries) == self.limit:
                return Replay(reset=True)
            entries.append(entry)
        return Replay(tuple(entries))

    def _read(self, group: str, since: str, now: float) -> Iterator[Entry]:
        """One group's entries after `since`, oldest first: a strongly consistent, paginated Query
        that stops one item past the limit (enough to know the limit is passed)."""
        wanted = self.limit + 1
        for page in query_pages(
            self.client, TableName=self.table, KeyConditionExpression="#log = :g AND #cursor > :since",
            ExpressionAttributeNames={"#log": "log", "#cursor": "cursor"},
            ExpressionAttributeValues={":g": {"S": group}, ":since": {"S": since}},
            ConsistentRead=True, Limit=min(self.page_size, wanted),
        ):
            for item in page:
                if int(item.get("ttl", {}).get("N", "0")) <= now:
                    continue  # expired, not deleted yet
                yield Entry(group, item["cursor"]["S"], delivery_from_message(json.loads(item["delivery"]["S"])))
                wanted -= 1
                if wanted == 0:
                    return

