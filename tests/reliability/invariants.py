"""Invariants of the connections table, checked after every fuzz example and fault run.

`key_problems` checks every item's key against the layout in docs/data-model.md;
`consistency_problems` checks that the counter, the user items, the connection records and
the presence items agree with one another; `live_problems` checks them against the sockets
that are really open (what API Gateway, here the @connections stand-in, knows).
Each returns a list of human-readable problems: empty means the invariant holds.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from monitor.documents import valid_slug
from realtime import keys
from realtime.dynamo import from_item

CONNECTIONS = "connections"
PHASES = ("view", "edit", "review")
#: API Gateway connection ids: base64 of random bytes (the tests and the local stack use the same shape).
CONNECTION_ID = re.compile(r"^[A-Za-z0-9+/=_-]{1,128}$")
ENCODED = re.compile(r"^[A-Za-z0-9_.~%-]+$")
#: The reference application's groups: its streams' names, one group per document for the
#: `document` and `comments` streams, and one per user for `alerts` (events published to a user).
FIXED_GROUPS = {"users", "documents", "notifications", "alerts"}
DOCUMENT_GROUP_PREFIXES = ("document/", "comments/", "alerts/user/")


def scan(client: Any, table: str = CONNECTIONS) -> list[dict[str, Any]]:
    """Every item (typed), following pagination: a test-only Scan."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = client.scan(**kwargs)
        items.extend(response.get("Items", []))
        if not response.get("LastEvaluatedKey"):
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _encoded_slug_problem(encoded: str) -> str | None:
    if not ENCODED.match(encoded):
        return f"encoded slug {encoded!r} holds characters outside the unreserved set"
    slug = keys.decode(encoded)
    if keys.encode(slug) != encoded:
        return f"encoded slug {encoded!r} is not the canonical encoding of {slug!r}"
    try:
        valid_slug(slug)
    except keys.InvalidKey as exc:
        return f"encoded slug {encoded!r} decodes to an invalid slug: {exc}"
    return None


def _token_problem(token: str, phases: tuple[str, ...]) -> str | None:
    encoded, sep, phase = token.rpartition(keys.SEP)
    if not sep or keys.SEP in encoded:
        return f"presence token {token!r} is not <encoded slug>#<phase>"
    if phase not in phases:
        return f"presence token {token!r} names an unknown phase"
    return _encoded_slug_problem(encoded)


def key_problems(items: Iterable[dict[str, Any]], phases: tuple[str, ...] = PHASES) -> list[str]:
    """Every key against the layout of docs/data-model.md."""
    problems: list[str] = []
    counter_shards = set(keys.counter_shards())
    summary_pks = set(keys.summary_pks())
    list_pks = set(keys.state_pks("documents"))
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        values = from_item(item)
        where = f"({pk!r}, {sk!r})"

        def bad(text: str) -> None:
            problems.append(f"{where}: {text}")

        if pk in counter_shards:
            if sk != "users" or set(values) - {"pk", "sk", "n"} or not isinstance(values.get("n"), int):
                bad("not a counter shard")
            elif values["n"] < 0:
                bad("a counter shard below zero")
        elif pk.startswith("u" + keys.SEP):
            user = keys.decode(pk[2:])
            if sk != "user" or values.get("uid") != user or not user or any(ord(ch) < 32 for ch in user):
                bad("bad user item")
            if values.get("cshard") != keys.counter_shard(user):
                bad("user item on the wrong counter shard")
            for conn in values.get("conns", ()):
                if not CONNECTION_ID.match(conn):
                    bad(f"bad connection id {conn!r} in conns")
        elif pk.startswith("p" + keys.SEP):
            head, _, shard = pk.rpartition(keys.SEP)
            encoded = head[2:]
            if sk == keys.ROOM_SHARDS_SK:
                if shard != "0" or values.get("shards") not in _ROOM_SHARD_COUNTS or set(values) != {"pk", "sk", "shards"}:
                    bad("not a room's shard count")
                continue
            state, sep, conn = sk.partition(keys.SEP)
            if not sep or keys.SEP in conn:
                bad("presence sort key is not <phase>#<conn>")
                continue
            for problem in (_encoded_slug_problem(encoded),
                            None if state in phases else f"unknown phase {state!r}",
                            None if CONNECTION_ID.match(conn) else f"bad connection id {conn!r}",
                            None if pk in {keys.presence_pk(keys.decode(encoded), conn, count)
                                           for count in _ROOM_SHARD_COUNTS} else "presence on the wrong shard",
                            None if values.get("conn") == conn else "conn attribute differs from the key",
                            None if values.get("room") == keys.decode(encoded) else "room attribute differs from the key",
                            None if values.get("state") == state else "state attribute differs from the key",
                            None if values.get("ttl") == values.get("expires") else "ttl differs from expires"):
                if problem:
                    bad(problem)
        elif pk in summary_pks:
            if pk != keys.summary_pk(values.get("room", "")) or sk != keys.encode(values.get("room", "")):
                bad("room summary under the wrong key")
            problem = _encoded_slug_problem(sk)
            if problem:
                bad(problem)
        elif pk.startswith("a" + keys.SEP):
            if sk != "pending" or pk.count(keys.SEP) != 2:
                bad("not an announcement item")
            elif ("due" in values) != ("deadline" in values) or ("due" in values) != ("sweep" in values):
                bad("a half-written announcement mark")
        elif pk in list_pks or pk == f"st{keys.SEP}documents{keys.SEP}built":
            if pk in list_pks and sk.startswith(keys.SEP):  # what was last announced of an entry
                slug = keys.decode(sk[len(keys.SEP):])
                if pk != keys.state_pk("documents", slug) or sk != keys.state_note_sk(slug) \
                        or set(values) != {"pk", "sk", "announced", "announced_aud"}:
                    bad("documents list note under the wrong key")
            elif pk in list_pks and (pk != keys.state_pk("documents", values.get("slug", ""))
                                     or sk != keys.state_sk(values.get("slug", ""))
                                     or "announced" in values):
                bad("documents list entry under the wrong key")
        elif pk.startswith("c" + keys.SEP):
            conn = pk[2:]
            if not CONNECTION_ID.match(conn):
                bad(f"bad connection id {conn!r}")
            if sk == keys.META:
                if values.get("conn") != conn:
                    bad("conn attribute differs from the key")
                if values.get("sweep") != keys.sweep_shard(conn):
                    bad(f"bad sweep shard {values.get('sweep')!r}")
                if not isinstance(values.get("deadline"), int):
                    bad("no liveness deadline")
                for token in values.get("pres", ()):
                    problem = _token_problem(token, phases)
                    if problem:
                        bad(problem)
            elif sk.startswith("g" + keys.SEP):
                group = sk[2:]
                if values.get("grp") not in _placements(group, conn) or values.get("gsk") != conn:
                    bad("grp/gsk differ from the key")
                prefix = next((p for p in DOCUMENT_GROUP_PREFIXES if group.startswith(p)), None)
                if prefix is not None:
                    problem = _encoded_slug_problem(group[len(prefix):])
                    if problem:
                        bad(problem)
                elif group not in FIXED_GROUPS:
                    bad(f"unknown group {group!r}")
            else:
                bad("unknown sort key in a connection partition")
        elif pk.startswith("gs" + keys.SEP):
            group = pk[3:]
            count = keys.shards_of_gsk(values.get("gsk", ""))
            if sk != "shards" or count is None or values.get("shards") != count \
                    or values.get("grp") != keys.group_index_key(group, 0) or count not in _SHARD_COUNTS:
                bad("not a group's shard count")
        else:
            bad("unknown partition")
    return problems


_SHARD_COUNTS = keys.shard_counts(keys.MAX_GROUP_SHARDS)
_ROOM_SHARD_COUNTS = keys.shard_counts(keys.MAX_ROOM_SHARDS)


def _placements(group: str, conn: str) -> set[str]:
    """The `by_group` keys a membership may have: its shard under any count the group had."""
    return {keys.group_shard(group, conn, count) for count in _SHARD_COUNTS}


class Model:
    """The table, read once and indexed."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.counter = 0
        self.users: dict[str, set[str]] = {}
        self.connections: dict[str, dict[str, Any]] = {}
        self.memberships: dict[str, set[str]] = defaultdict(set)  # group -> connection ids
        self.presence: list[dict[str, Any]] = []
        counter_shards = set(keys.counter_shards())
        for item in items:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            values = from_item(item)
            if pk in counter_shards:
                self.counter += int(values.get("n", 0))
            elif pk.startswith("u" + keys.SEP):
                self.users[values["uid"]] = set(values.get("conns", ()))
            elif pk.startswith("p" + keys.SEP):
                self.presence.append(values)
            elif pk.startswith("c" + keys.SEP) and sk == keys.META:
                self.connections[pk[2:]] = values
            elif pk.startswith("c" + keys.SEP) and sk.startswith("g" + keys.SEP):
                self.memberships[sk[2:]].add(pk[2:])

    @classmethod
    def read(cls, client: Any, table: str = CONNECTIONS) -> Model:
        return cls(scan(client, table))

    def live_rosters(self, now: float, phases: tuple[str, ...] = PHASES) -> dict[str, dict[str, list[str]]]:
        """slug -> phase -> sorted distinct user ids, from presence items not yet expired."""
        rosters: dict[str, dict[str, set[str]]] = defaultdict(lambda: {p: set() for p in phases})
        for item in self.presence:
            if int(item["expires"]) > now:
                rosters[item["room"]][item["state"]].add(item["uid"])
        return {slug: {p: sorted(users) for p, users in roster.items()} for slug, roster in rosters.items()}

    def without(self, *attributes: str) -> list[tuple]:
        """A comparable picture of the table, ignoring the named attributes (e.g. `seen`)."""
        picture = []
        for item in self.items:
            values = from_item(item)
            picture.append(tuple(sorted((k, repr(v)) for k, v in values.items() if k not in attributes)))
        return sorted(picture)


def consistency_problems(model: Model) -> list[str]:
    """The counter, user items, connection records and presence items agree."""
    problems: list[str] = []
    counted = sum(1 for conns in model.users.values() if conns)
    if model.counter != counted:
        problems.append(f"counter is {model.counter} but {counted} users have connections")
    for user, conns in model.users.items():
        for conn in conns:
            record = model.connections.get(conn)
            if record is None or record.get("uid") != user:
                problems.append(f"user {user!r} lists connection {conn!r} that is not theirs")
    for conn, record in model.connections.items():
        uid = record.get("uid")
        if uid is not None and conn not in model.users.get(uid, set()):
            problems.append(f"connection {conn!r} of {uid!r} is not counted")
    for item in model.presence:
        record = model.connections.get(item["conn"])
        token = keys.presence_token(item["room"], item["state"])
        if record is None:
            problems.append(f"presence of unknown connection {item['conn']!r}")
        elif token not in set(record.get("pres", ())):
            problems.append(f"presence {token!r} not listed on connection {item['conn']!r}")
        elif record.get("uid") != item["uid"] or not item["uid"]:
            problems.append(f"presence {token!r} carries user {item['uid']!r}, not the connection's")
    for conn, record in model.connections.items():
        if record.get("uid") is None and record.get("pres"):
            problems.append(f"anonymous connection {conn!r} holds presence")
    for group, members in model.memberships.items():
        for conn in members:
            if conn not in model.connections:
                problems.append(f"membership of unknown connection {conn!r} in {group!r}")
    return problems


def live_problems(model: Model, is_live: Callable[[str], bool]) -> list[str]:
    """Against the sockets really open: the counter counts exactly the users with one."""
    problems: list[str] = []
    live_users = {r["uid"] for c, r in model.connections.items() if r.get("uid") is not None and is_live(c)}
    if model.counter != len(live_users):
        problems.append(f"counter is {model.counter}, {len(live_users)} users have a live connection")
    ghosts = sorted(c for c in model.connections if not is_live(c))
    if ghosts:
        problems.append(f"records of closed connections: {ghosts}")
    return problems


def all_problems(client: Any, is_live: Callable[[str], bool] | None = None, table: str = CONNECTIONS) -> list[str]:
    model = Model.read(client, table)
    problems = key_problems(model.items) + consistency_problems(model)
    if is_live is not None:
        problems += live_problems(model, is_live)
    return problems
