"""Presence: who is in which state of which room, with expiry.

A generic capability: the application names the rooms (the reference app's rooms are
documents, its states the phases view, edit and review) and decides who may enter.
A room's presence items are spread over shards by connection, so a crowded room has no
hot key; its roster is the union of those partitions, read with strongly consistent
Queries. A room starts on one shard (one Query for its roster); a reader that counts more
than `keys.ROOM_SHARD_MEMBERS` present per shard grows them (`keys.room_shards_for`) and
keeps the count in the room's shard 0, where readers find it and writers read it (cached,
`realtime.shard_counts`). After a growth each presence moves to its new shard on its next
heartbeat; the copy left behind expires with it and counts once (rosters are by user).
An item expires `PRESENCE_TTL_SECONDS` after its connection's last frame; readers ignore
expired items (and DynamoDB's TTL deletes them).

Each room also has a *summary* (how many are in each state and the first few names),
kept by the room's coalesced announcement (`realtime.announcing`): what a list of every
room shows, without reading every room.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime import keys
from realtime.connections import Connection
from realtime.dynamo import batch_delete, query_pages
from realtime.shard_counts import ShardCounts

#: state -> the users there, each `{"user": <id>, "name": <display name>}`, sorted by name.
Roster = dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class Held:
    """One presence a connection holds: a state of a room."""

    room: str
    state: str

    @property
    def token(self) -> str:
        return keys.presence_token(self.room, self.state)

    @classmethod
    def from_token(cls, token: str) -> Held:
        room, _, state = token.rpartition(keys.SEP)
        return cls(keys.decode(room), state)


@dataclass(frozen=True)
class RoomState:
    """A room as read by its announcement: the whole roster, how many are in each state,
    and when the first live presence will expire (None: nobody is there)."""

    room: str
    roster: Roster
    counts: dict[str, int]
    next_expiry: float | None = None

    def bounded(self, limit: int) -> Roster:
        """At most `limit` users per state (the counts say how many there are)."""
        return {state: users[:limit] for state, users in self.roster.items()}


@dataclass(frozen=True)
class Summary:
    """What a room's summary item holds: counts and the first `names` users per state."""

    room: str
    counts: dict[str, int] = field(default_factory=dict)
    roster: Roster = field(default_factory=dict)
    updated: float = 0.0


class Presence:
    def __init__(self, client: Any, table: str, *, ttl_seconds: int, states: tuple[str, ...],
                 summary_names: int = 3) -> None:
        self.client = client
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.states = states
        self.summary_names = summary_names
        self.counts = ShardCounts()

    def put(self, connection: Connection, held: Held, now: float) -> bool:
        """Create or refresh a presence item; True if it was absent or expired (the roster changed)."""
        expires = int(now) + self.ttl_seconds
        response = self.client.update_item(
            TableName=self.table,
            Key=self._key(held, connection.connection_id),
            UpdateExpression="SET expires = :e, #ttl = :e, room = :r, #state = :s, conn = :c, uid = :u, #name = :n",
            ExpressionAttributeNames={"#ttl": "ttl", "#name": "name", "#state": "state"},
            ExpressionAttributeValues={
                ":e": {"N": str(expires)}, ":r": {"S": held.room}, ":s": {"S": held.state},
                ":c": {"S": connection.connection_id}, ":u": {"S": connection.user_id or ""},
                ":n": {"S": connection.name or connection.user_id or ""},
            },
            # ALL_OLD, not UPDATED_OLD: a refresh within the same second leaves `expires`
            # unchanged, and UPDATED_OLD may then omit it (moto does), which would look like
            # a new presence and re-broadcast an unchanged roster on every frame.
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes", {}).get("expires")
        return old is None or int(old["N"]) <= now

    def refresh(self, connection: Connection, now: float, tokens: Iterable[str] | None = None) -> set[str]:
        """Push the presences the connection holds (or those of them in `tokens`) forward;
        return the rooms whose roster changed."""
        changed: set[str] = set()
        for token in sorted(connection.presence if tokens is None else tokens):
            held = Held.from_token(token)
            if self.put(connection, held, now):
                changed.add(held.room)
        return changed

    def delete(self, connection_id: str, held: Held, now: float) -> bool:
        """Delete one presence, wherever the room's growth left it; True if it was live
        (the roster changed)."""
        live = False
        for key in self._keys(held, connection_id):
            response = self.client.delete_item(TableName=self.table, Key=key, ReturnValues="ALL_OLD")
            old = response.get("Attributes", {}).get("expires")
            live = live or (old is not None and int(old["N"]) > now)
        return live

    def keys(self, connection_id: str, held: Iterable[Held]) -> list[dict[str, Any]]:
        return [key for h in held for key in self._keys(h, connection_id)]

    def remove(self, connection_id: str, held: Iterable[Held]) -> None:
        batch_delete(self.client, self.table, self.keys(connection_id, held))

    # ---- reading a room ------------------------------------------------------------------

    def room(self, room: str, now: float) -> RoomState:
        """The live roster of one room: every state, each a sorted list of distinct users.

        Reads the shards this container knows of; shard 0 says how many there are, and any
        more are read then. Grows them if they hold too many."""
        seen: dict[str, dict[str, str]] = defaultdict(dict)
        next_expiry: float | None = None
        known = self.counts.known(room)
        stored, present, n = 1, 0, 0
        while n < max(known, stored):
            for page in query_pages(
                self.client, TableName=self.table, KeyConditionExpression="pk = :pk",
                FilterExpression="expires > :now OR attribute_exists(shards)",
                ExpressionAttributeValues={":pk": {"S": keys.presence_shard_pk(room, n)},
                                           ":now": {"N": str(int(now))}},
                ConsistentRead=True,
            ):
                for item in page:
                    if item["sk"]["S"] == keys.ROOM_SHARDS_SK:
                        stored = int(item["shards"]["N"])
                        continue
                    present += 1
                    state = item["state"]["S"]
                    if state in self.states:
                        seen[state][item["uid"]["S"]] = item.get("name", {}).get("S", "")
                    expires = float(item["expires"]["N"])
                    next_expiry = expires if next_expiry is None else min(next_expiry, expires)
            n += 1
        self._grow(room, present, self.counts.remember(room, stored))
        roster = {state: [{"user": uid, "name": name}
                          for uid, name in sorted(seen.get(state, {}).items(), key=lambda kv: (kv[1], kv[0]))]
                  for state in self.states}
        return RoomState(room, roster, {state: len(users) for state, users in roster.items()}, next_expiry)

    def roster(self, room: str, now: float) -> Roster:
        return self.room(room, now).roster

    def empty_roster(self) -> Roster:
        return {state: [] for state in self.states}

    def empty_counts(self) -> dict[str, int]:
        return {state: 0 for state in self.states}

    # ---- summaries -------------------------------------------------------------------------

    def summarize(self, state: RoomState, now: float, *, roster_limit: int = 100) -> tuple[bool, bool]:
        """Store the room's summary; return whether it changed, and whether the roster (up
        to `roster_limit` per state, with the counts) changed since the last time."""
        summary = json.dumps({"counts": state.counts, "roster": state.bounded(self.summary_names)},
                             sort_keys=True, separators=(",", ":"))
        roster = hashlib.blake2b(json.dumps({"counts": state.counts, "roster": state.bounded(roster_limit)},
                                            sort_keys=True).encode(), digest_size=12).hexdigest()
        key = {"pk": {"S": keys.summary_pk(state.room)}, "sk": {"S": keys.encode(state.room)}}
        old = self.client.update_item(
            TableName=self.table, Key=key, UpdateExpression="SET body = :b, digest = :d, updated = :t, room = :r",
            ExpressionAttributeValues={":b": {"S": summary}, ":d": {"S": roster}, ":t": {"N": repr(now)},
                                       ":r": {"S": state.room}},
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
        return old.get("body", {}).get("S") != summary, old.get("digest", {}).get("S") != roster

    def summaries(self) -> dict[str, Summary]:
        """Every room's summary (rooms never entered are absent)."""
        found: dict[str, Summary] = {}
        for pk in keys.summary_pks():
            for page in query_pages(self.client, TableName=self.table, KeyConditionExpression="pk = :pk",
                                    ExpressionAttributeValues={":pk": {"S": pk}}):
                for item in page:
                    body: Mapping[str, Any] = json.loads(item["body"]["S"])
                    room = item["room"]["S"]
                    found[room] = Summary(room, dict(body["counts"]), dict(body["roster"]),
                                          float(item["updated"]["N"]))
        return found

    # ---- shards ----------------------------------------------------------------------------

    def shard_count(self, room: str) -> int:
        """How many shards `room` has, as a writer needs it (read at most once per
        `shard_counts.TTL_SECONDS` per room and container)."""
        def stored() -> int:
            item = self.client.get_item(TableName=self.table, Key=self._count_key(room),
                                        ProjectionExpression="shards").get("Item")
            return int(item["shards"]["N"]) if item else 1

        return self.counts.read_through(room, stored)

    def _grow(self, room: str, present: int, shards: int) -> None:
        wanted = keys.room_shards_for(present, shards)
        if wanted <= shards:
            return
        try:
            self.client.update_item(
                TableName=self.table, Key=self._count_key(room), UpdateExpression="SET shards = :n",
                ConditionExpression="attribute_not_exists(shards) OR shards < :n",
                ExpressionAttributeValues={":n": {"N": str(wanted)}})
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # another reader grew it as far or further
        self.counts.remember(room, wanted)

    def _key(self, held: Held, connection_id: str) -> dict[str, Any]:
        """Where the connection's presence goes now."""
        return self._presence_key(held, connection_id, self.shard_count(held.room))

    def _keys(self, held: Held, connection_id: str) -> list[dict[str, Any]]:
        """Where the connection's presence may be: its shard now first, then those it had
        under each smaller count (until its next heartbeat after a growth)."""
        found: list[dict[str, Any]] = []
        for count in reversed(keys.shard_counts(self.shard_count(held.room))):
            key = self._presence_key(held, connection_id, count)
            if key not in found:
                found.append(key)
        return found

    @staticmethod
    def _presence_key(held: Held, connection_id: str, shards: int) -> dict[str, Any]:
        return {"pk": {"S": keys.presence_pk(held.room, connection_id, shards)},
                "sk": {"S": keys.presence_sk(held.state, connection_id)}}

    @staticmethod
    def _count_key(room: str) -> dict[str, Any]:
        return {"pk": {"S": keys.presence_shard_pk(room, 0)}, "sk": {"S": keys.ROOM_SHARDS_SK}}
