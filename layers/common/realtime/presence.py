"""Presence: who is in which state of which room, with expiry.

A generic capability: the application names the rooms (the reference app's rooms are
documents, its states the phases view, edit and review) and decides who may enter.
All presence items share one partition (`presence`), so a room's roster is a strongly
consistent Query of its prefix and every roster is one paginated Query. An item expires
`PRESENCE_TTL_SECONDS` after its connection's last frame; readers ignore expired items
and the sweep deletes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from realtime import keys
from realtime.connections import Connection
from realtime.dynamo import batch_delete, query_pages

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


class Presence:
    def __init__(self, client: Any, table: str, *, ttl_seconds: int, states: tuple[str, ...]) -> None:
        self.client = client
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.states = states

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

    def refresh(self, connection: Connection, now: float) -> set[str]:
        """Push every presence the connection holds forward; return the rooms whose roster changed."""
        changed: set[str] = set()
        for token in sorted(connection.presence):
            held = Held.from_token(token)
            if self.put(connection, held, now):
                changed.add(held.room)
        return changed

    def delete(self, connection_id: str, held: Held, now: float) -> bool:
        """Delete one presence; True if it was live (the roster changed)."""
        response = self.client.delete_item(
            TableName=self.table, Key=self._key(held, connection_id), ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes", {}).get("expires")
        return old is not None and int(old["N"]) > now

    def keys(self, connection_id: str, held: Iterable[Held]) -> list[dict[str, Any]]:
        return [self._key(h, connection_id) for h in held]

    def remove(self, connection_id: str, held: Iterable[Held]) -> None:
        batch_delete(self.client, self.table, self.keys(connection_id, held))

    def roster(self, room: str, now: float) -> Roster:
        """The live roster of one room: every state, each a sorted list of distinct users."""
        items = self._query(now, prefix=keys.presence_prefix(room))
        return self._rosters(items, [room])[room]

    def rosters(self, now: float) -> dict[str, Roster]:
        """Every room's live roster, read in bulk (rooms with nobody present are absent)."""
        items = self._query(now)
        return self._rosters(items, sorted({item["room"]["S"] for item in items}))

    def expired(self, now: float) -> list[tuple[str, Held]]:
        """(connection id, presence) of every expired item still stored."""
        found = []
        for page in query_pages(
            self.client, TableName=self.table, KeyConditionExpression="pk = :pk",
            FilterExpression="expires <= :now",
            ExpressionAttributeValues={":pk": {"S": keys.PRESENCE_PK}, ":now": {"N": str(int(now))}},
            ConsistentRead=True,
        ):
            found.extend((item["conn"]["S"], Held(item["room"]["S"], item["state"]["S"])) for item in page)
        return found

    def empty_roster(self) -> Roster:
        return {state: [] for state in self.states}

    def _query(self, now: float, prefix: str | None = None) -> list[dict[str, Any]]:
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": keys.PRESENCE_PK}, ":now": {"N": str(int(now))}}
        if prefix is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        items: list[dict[str, Any]] = []
        for page in query_pages(
            self.client, TableName=self.table, KeyConditionExpression=condition,
            FilterExpression="expires > :now", ExpressionAttributeValues=values, ConsistentRead=True,
        ):
            items.extend(page)
        return items

    def _rosters(self, items: list[dict[str, Any]], rooms: list[str]) -> dict[str, Roster]:
        seen: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for item in items:
            state = item["state"]["S"]
            if state in self.states:
                seen[(item["room"]["S"], state)][item["uid"]["S"]] = item.get("name", {}).get("S", "")
        result: dict[str, Roster] = {}
        for room in rooms:
            roster = self.empty_roster()
            for state in self.states:
                users = seen.get((room, state), {})
                roster[state] = [{"user": uid, "name": name}
                                 for uid, name in sorted(users.items(), key=lambda kv: (kv[1], kv[0]))]
            result[room] = roster
        return result

    @staticmethod
    def _key(held: Held, connection_id: str) -> dict[str, Any]:
        return {"pk": {"S": keys.PRESENCE_PK}, "sk": {"S": keys.presence_sk(held.room, held.state, connection_id)}}
