"""The connections table's key layout (see docs/data-model.md).

Client-supplied values are percent-encoded before they enter a key, so the `#`
separator can only ever come from this module: a slug such as ``a#b`` is stored as
``a%23b`` and cannot reach into another item's key range.
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

#: Longest encoded slug we put in a key; DynamoDB sort keys stop at 1,024 bytes.
MAX_ENCODED_SLUG = 600
MAX_SLUG_CHARS = 256

USERS_GROUP = "users"
DOCUMENTS_GROUP = "documents"
NOTIFICATIONS_GROUP = "notifications"
DOCUMENT_GROUP_PREFIX = "document/"


class InvalidKey(ValueError):
    """A client value that cannot be used as (part of) a key."""


def valid_slug(slug: object) -> str:
    """Return `slug` if it is a usable document slug, else raise `InvalidKey`."""
    if not isinstance(slug, str) or not slug:
        raise InvalidKey("document must be a non-empty string")
    if len(slug) > MAX_SLUG_CHARS:
        raise InvalidKey(f"document must be at most {MAX_SLUG_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Cn") for ch in slug):
        raise InvalidKey("document contains control or unassigned characters")
    if len(encode(slug)) > MAX_ENCODED_SLUG:
        raise InvalidKey("document is too long")
    return slug


def encode(value: str) -> str:
    """Percent-encode everything but unreserved ASCII: the result never holds `#`."""
    return quote(value, safe="")


def decode(value: str) -> str:
    return unquote(value)


def connection_pk(connection_id: str) -> str:
    return f"c{SEP}{connection_id}"


def group_sk(group: str) -> str:
    return f"g{SEP}{group}"


def presence_pointer_sk(slug: str, phase: str) -> str:
    return f"p{SEP}{encode(slug)}{SEP}{phase}"


def presence_sk(slug: str, phase: str, connection_id: str) -> str:
    return f"{encode(slug)}{SEP}{phase}{SEP}{connection_id}"


def presence_prefix(slug: str) -> str:
    return f"{encode(slug)}{SEP}"


def sweep_shard(connection_id: str) -> str:
    # A stable, cheap spread; Python's hash() is salted per process so it cannot be used.
    return f"s{SEP}{sum(connection_id.encode()) % SWEEP_SHARDS}"


def sweep_shards() -> list[str]:
    return [f"s{SEP}{n}" for n in range(SWEEP_SHARDS)]


def document_group(slug: str) -> str:
    return DOCUMENT_GROUP_PREFIX + encode(slug)


def slug_of_group(group: str) -> str | None:
    if group.startswith(DOCUMENT_GROUP_PREFIX):
        return decode(group[len(DOCUMENT_GROUP_PREFIX):])
    return None
