"""The connections table's key layout (see docs/data-model.md).

Client-supplied values (room names, subscription parameters) are percent-encoded before
they enter a key or a group name, so the `#` separator can only ever come from this
module: a room such as ``a#b`` is stored as ``a%23b`` and cannot reach into another
item's key range.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote

SEP = "#"
META = "meta"
PRESENCE_PK = "presence"
USERS_PK = "users"
COUNTER_PK = "counter"
COUNTER_SK = "users"
SWEEP_SHARDS = 4

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


def group(prefix: str, key: str) -> str:
    """A group named by a client value, e.g. ``document/<encoded slug>``."""
    return f"{prefix}/{encode(key)}"


def group_key(prefix: str, name: str) -> str | None:
    """The client value of a group made by `group(prefix, ...)`, else None."""
    head = prefix + "/"
    return decode(name[len(head):]) if name.startswith(head) else None


def connection_pk(connection_id: str) -> str:
    return f"c{SEP}{connection_id}"


def group_sk(group_name: str) -> str:
    return f"g{SEP}{group_name}"


def presence_token(room: str, state: str) -> str:
    """What a connection record lists for each presence it holds."""
    return f"{encode(room)}{SEP}{state}"


def presence_sk(room: str, state: str, connection_id: str) -> str:
    return f"{encode(room)}{SEP}{state}{SEP}{connection_id}"


def presence_prefix(room: str) -> str:
    return f"{encode(room)}{SEP}"


def sweep_shard(connection_id: str) -> str:
    # A stable, cheap spread; Python's hash() is salted per process so it cannot be used.
    return f"s{SEP}{sum(connection_id.encode()) % SWEEP_SHARDS}"


def sweep_shards() -> list[str]:
    return [f"s{SEP}{n}" for n in range(SWEEP_SHARDS)]
