"""The connections table's key layout (see docs/data-model.md).

Client-supplied values (room names, subscription parameters) are percent-encoded before
they enter a key or a group name, so the `#` separator can only ever come from this
module: a room such as ``a#b`` is stored as ``a%23b`` and cannot reach into another
item's key range.

No key takes a write or a read from everyone: what every connection touches is spread
over shards, chosen by a stable hash of the connection (or user) id, and sized in
docs/scale.md so that no partition is above half its limit at 1,000,000 users under the
reference workload.
"""

from __future__ import annotations

import hashlib
import unicodedata
from urllib.parse import quote, unquote

SEP = "#"
META = "meta"

#: Groups and rooms start on one shard and grow (`shards_for`): `SHARD_GROWTH` times as
#: many each time they outnumber their items per shard. Counts are powers of it, so an
#: item placed under a smaller count is in one of the first shards under a larger one.
SHARD_GROWTH = 4
#: A group's `by_group` shards (`Groups.grow`): one while it is small, so a broadcast to a
#: document's watchers or to one user is one Query. A notification to every signed-in
#: user reads its group once per document write: 10,000 members a shard keep that under
#: a fifth of 3,000 RCU/s per key.
GROUP_SHARD_MEMBERS = 10_000
MAX_GROUP_SHARDS = 256
#: A room's presence shards (`Presence.room`): each present connection writes its shard
#: every heartbeat (25 s), about 0.06 WRU/s with its enters and leaves, so 2,000 a shard
#: keep a crowded room's partitions near a tenth of 1,000 WRU/s.
ROOM_SHARD_MEMBERS = 2_000
MAX_ROOM_SHARDS = 64
#: The `gsk` of a group's shard-count entry in its shard 0: sorted before every connection
#: id (API Gateway's are base64), so the first Query of a broadcast reads it first.
SHARDS_MARK = "!"
#: Items the user counter is spread over (one transaction per first or last connection).
COUNTER_SHARDS = 16
#: `by_deadline` index partitions: every connection's liveness deadline is rewritten there.
SWEEP_SHARDS = 128
#: Partitions holding the rooms' summaries and other coalesced state.
STATE_SHARDS = 16

#: Longest encoded value we put in a key; DynamoDB sort keys stop at 1,024 bytes.
MAX_ENCODED = 600
MAX_CHARS = 256


class InvalidKey(ValueError):
    """A client value that cannot be used as (part of) a key."""


def valid_key(value: object, field: str) -> str:
    """Return `value` if a client may use it as a key part (a room, a subscription
    parameter), else raise `InvalidKey` naming `field`."""
    if not isinstance(value, str) or not value:
        raise InvalidKey(f"{field} must be a non-empty string")
    if len(value) > MAX_CHARS:
        raise InvalidKey(f"{field} must be at most {MAX_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Cn") for ch in value):
        raise InvalidKey(f"{field} contains control or unassigned characters")
    if len(encode(value)) > MAX_ENCODED:
        raise InvalidKey(f"{field} is too long")
    return value


def encode(value: str) -> str:
    """Percent-encode everything but unreserved ASCII: the result never holds `#` or `/`."""
    return quote(value, safe="")


def decode(value: str) -> str:
    return unquote(value)


def shard(value: str, count: int) -> int:
    """A stable spread of `value` over `count` shards (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "big") % count


# ---- groups -------------------------------------------------------------------------------

def group(prefix: str, key: str) -> str:
    """A group named by a client value, e.g. ``document/<encoded slug>``."""
    return f"{prefix}/{encode(key)}"


def user_group(stream: str, user_id: str) -> str:
    """The group of one user's connections subscribed to `stream`: ``<stream>/user/<uid>``."""
    return group(f"{stream}/user", user_id)


def is_user_group(name: str) -> bool:
    """Whether `name` is a user's group: at most `MAX_CONNECTIONS_PER_USER` members, so one
    shard for good (client values are encoded, so no other group has this shape)."""
    parts = name.split("/")
    return len(parts) == 3 and parts[1] == "user"


def group_key(prefix: str, name: str) -> str | None:
    """The client value of a group made by `group(prefix, ...)`, else None."""
    head = prefix + "/"
    return decode(name[len(head):]) if name.startswith(head) else None


def group_shard(group_name: str, connection_id: str, shards: int = 1) -> str:
    """The `by_group` partition key of one membership: the group and the member's shard
    among the group's `shards`. Shard counts are powers of `SHARD_GROWTH`, so a
    member placed when the group had fewer shards is in one of the first of its shards
    now: readers of all of them find it."""
    return group_index_key(group_name, shard(connection_id, shards))


def group_index_key(group_name: str, n: int) -> str:
    return f"{group_name}{SEP}{n}"


def group_shards(group_name: str, shards: int) -> list[str]:
    return [group_index_key(group_name, n) for n in range(shards)]


def group_of_shard(key: str) -> str:
    return key.rpartition(SEP)[0]


def group_shards_pk(group_name: str) -> str:
    """Where a group's shard count is kept (absent: one shard)."""
    return f"gs{SEP}{group_name}"


def shards_gsk(count: int) -> str:
    return f"{SHARDS_MARK}{count}"


def shards_of_gsk(gsk: str) -> int | None:
    """The shard count a shard-count entry's `gsk` holds; None for a membership's."""
    if not gsk.startswith(SHARDS_MARK):
        return None
    digits = gsk[len(SHARDS_MARK):]
    return int(digits) if digits.isdigit() and 1 <= int(digits) <= MAX_GROUP_SHARDS else None


def shards_for(items: int, current: int, per_shard: int, maximum: int) -> int:
    """The shard count `items` need at `per_shard` each, never fewer than `current`."""
    count = max(1, current)
    while items > count * per_shard and count < maximum:
        count = min(maximum, count * SHARD_GROWTH)
    return count


def shard_counts(maximum: int) -> list[int]:
    """Every count a sharded key can have had: 1, 4, 16, ... up to `maximum`."""
    counts = [1]
    while counts[-1] < maximum:
        counts.append(min(maximum, counts[-1] * SHARD_GROWTH))
    return counts


def group_shards_for(members: int, current: int = 1) -> int:
    """The shard count a group of `members` needs, never fewer than it has (`current`)."""
    return shards_for(members, current, GROUP_SHARD_MEMBERS, MAX_GROUP_SHARDS)


def room_shards_for(present: int, current: int = 1) -> int:
    """The presence shards a room with `present` connections needs, never fewer than it has."""
    return shards_for(present, current, ROOM_SHARD_MEMBERS, MAX_ROOM_SHARDS)


# ---- connections --------------------------------------------------------------------------

def connection_pk(connection_id: str) -> str:
    return f"c{SEP}{connection_id}"


def group_sk(group_name: str) -> str:
    return f"g{SEP}{group_name}"


def sweep_shard(connection_id: str) -> str:
    return f"s{SEP}{shard(connection_id, SWEEP_SHARDS)}"


def sweep_shards() -> list[str]:
    return [f"s{SEP}{n}" for n in range(SWEEP_SHARDS)]


# ---- presence -----------------------------------------------------------------------------

def presence_token(room: str, state: str) -> str:
    """What a connection record lists for each presence it holds."""
    return f"{encode(room)}{SEP}{state}"


def presence_pk(room: str, connection_id: str, shards: int = 1) -> str:
    """The partition of one presence: the room and the connection's shard among `shards`."""
    return presence_shard_pk(room, shard(connection_id, shards))


def presence_shard_pk(room: str, n: int) -> str:
    return f"p{SEP}{encode(room)}{SEP}{n}"


def presence_pks(room: str, shards: int = 1) -> list[str]:
    return [presence_shard_pk(room, n) for n in range(shards)]


#: The sort key of a room's shard count, in its shard 0 (states are names: it sorts first).
ROOM_SHARDS_SK = "!shards"


def presence_sk(state: str, connection_id: str) -> str:
    return f"{state}{SEP}{connection_id}"


def summary_pk(room: str) -> str:
    """Where a room's summary (counts, first names) lives: one of `STATE_SHARDS` partitions."""
    return f"rs{SEP}{shard(room, STATE_SHARDS)}"


def summary_pks() -> list[str]:
    return [f"rs{SEP}{n}" for n in range(STATE_SHARDS)]


# ---- the user counter ---------------------------------------------------------------------

def user_pk(user_id: str) -> str:
    return f"u{SEP}{encode(user_id)}"


def counter_shard(user_id: str) -> str:
    return f"n{SEP}{shard(user_id, COUNTER_SHARDS)}"


def counter_shards() -> list[str]:
    return [f"n{SEP}{n}" for n in range(COUNTER_SHARDS)]


# ---- coalesced announcements --------------------------------------------------------------

def announcement_pk(topic: str, key: str) -> str:
    return f"a{SEP}{encode(topic)}{SEP}{encode(key)}"


def stuck_shard(topic: str, key: str) -> str:
    """The `by_deadline` partition an announcement's pending mark is indexed under (so the
    sweep finds marks whose message was lost)."""
    return f"a{SEP}{shard(topic + SEP + key, STATE_SHARDS)}"


def stuck_shards() -> list[str]:
    return [f"a{SEP}{n}" for n in range(STATE_SHARDS)]


# ---- application state (the reference app's coalesced documents list) ----------------------

def state_pk(namespace: str, key: str) -> str:
    return f"st{SEP}{encode(namespace)}{SEP}{shard(key, STATE_SHARDS)}"


def state_pks(namespace: str) -> list[str]:
    return [f"st{SEP}{encode(namespace)}{SEP}{n}" for n in range(STATE_SHARDS)]


#: Within a state partition an entry's sort key is its encoded key, and a note kept beside
#: it (what was last announced of it) is `#<encoded key>`: an encoded key never starts
#: below `%`, so every note sorts before every entry and the entries alone are the sort
#: keys after `STATE_ENTRIES_AFTER`.
STATE_ENTRIES_AFTER = "$"


def state_sk(key: str) -> str:
    return encode(key)


def state_note_sk(key: str) -> str:
    return f"{SEP}{encode(key)}"
