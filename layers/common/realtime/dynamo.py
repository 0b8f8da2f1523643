"""Small helpers over the low-level DynamoDB client.

The library uses the low-level client (not a boto3 resource) so that transactions and
conditional writes see exactly the typed values written, and so the caller can pass
any client, pointed at AWS or at a local endpoint via `AWS_ENDPOINT_URL_DYNAMODB`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from realtime.retry import backoff

Item = dict[str, Any]
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100


def to_item(values: Mapping[str, Any]) -> Item:
    """Python values -> DynamoDB's typed form, dropping None and empty sets."""
    return {
        key: _serializer.serialize(value)
        for key, value in values.items()
        if value is not None and not (isinstance(value, (set, frozenset)) and not value)
    }


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed form -> Python values (numbers become int when integral)."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        plain = _deserializer.deserialize(value)
        out[key] = _plain_number(plain)
    return out


def _plain_number(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_number(v) for k, v in value.items()}
    return value


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def query_pages(client: Any, **kwargs: Any) -> Iterator[list[Item]]:
    """Yield each page of a Query (typed items), following LastEvaluatedKey."""
    while True:
        response = client.query(**kwargs)
        yield response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def _unique(keys: Sequence[Item]) -> list[Item]:
    """`keys` without repeats (a batch naming one key twice is refused), first seen kept."""
    return list({tuple(sorted((k, v["S"]) for k, v in key.items())): key for key in keys}.values())


def batch_delete(client: Any, table: str, keys: Sequence[Item], *, attempts: int = 8) -> None:
    """Delete `keys` in batches of 25, retrying unprocessed items with jittered backoff."""
    unique = _unique(keys)
    for start in range(0, len(unique), BATCH_WRITE_LIMIT):
        pending: list[Item] = [{"DeleteRequest": {"Key": key}} for key in unique[start : start + BATCH_WRITE_LIMIT]]
        for attempt in range(attempts):
            response = client.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            backoff(attempt)
        else:
            raise RuntimeError(f"{len(pending)} deletes still unprocessed after {attempts} attempts")


def batch_get(client: Any, table: str, keys: Sequence[Item], *, attempts: int = 8) -> list[Item]:
    """Read `keys` (consistently) in batches of 100, retrying unprocessed keys with jittered backoff."""
    unique = _unique(keys)
    found: list[Item] = []
    for start in range(0, len(unique), BATCH_GET_LIMIT):
        pending: dict[str, Any] = {"Keys": unique[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}
        for attempt in range(attempts):
            response = client.batch_get_item(RequestItems={table: pending})
            found.extend(response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys", {}).get(table) or {}
            if not pending.get("Keys"):
                break
            backoff(attempt)
        else:
            raise RuntimeError(f"{len(pending['Keys'])} reads still unprocessed after {attempts} attempts")
    return found
