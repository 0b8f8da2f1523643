"""The live user counter: distinct signed-in users with at least one live connection.

Each user has an item (`u#<user>`, its own partition) holding the set of their live
connection ids. The count is spread over `COUNTER_SHARDS` items (`n#<shard>`, the user's
shard by a stable hash): a user's shard moves only in the same transaction that creates
the user's item (first connection) or deletes it (last connection), so two tabs count
once and racing connects and disconnects of one user can neither double-count nor drive
a shard below zero. No item takes every first connection's write. `value` sums the
shards (one BatchGetItem); `reconcile` (run by the sweep) recounts each shard from the
`by_counter` index of user items and repairs any drift left by a crash between steps.

A user may hold at most `max_connections` live connections (`MAX_CONNECTIONS_PER_USER`):
the limit is part of the same conditional writes, so racing connects cannot pass it.
"""

from __future__ import annotations

from typing import Any

from realtime import keys
from realtime.dynamo import batch_get, query_pages
from realtime.retry import backoff

_ATTEMPTS = 8
USER_SK = "user"


class CounterConflict(RuntimeError):
    """The counter could not be updated after repeated transaction conflicts."""


class TooManyConnections(RuntimeError):
    """The user already holds `max_connections` live connections."""


class UserCounter:
    def __init__(self, client: Any, table: str, *, max_connections: int = 20) -> None:
        self.client = client
        self.table = table
        self.max_connections = max_connections

    def value(self) -> int:
        items = batch_get(self.client, self.table, [self._shard_key(s) for s in keys.counter_shards()])
        return max(0, sum(int(item["n"]["N"]) for item in items if "n" in item))

    def connections_of(self, user_id: str) -> set[str]:
        item = self.client.get_item(TableName=self.table, Key=self._user_key(user_id), ConsistentRead=True).get("Item")
        return set(item.get("conns", {}).get("SS", [])) if item else set()

    def join(self, user_id: str, connection_id: str) -> bool:
        """Record a live connection of `user_id`; True if the count went up.

        Raises `TooManyConnections` (changing nothing) at the per-user limit."""
        shard = keys.counter_shard(user_id)
        for attempt in range(_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Put": {
                        "TableName": self.table,
                        "Item": {**self._user_key(user_id), "conns": {"SS": [connection_id]},
                                 "cshard": {"S": shard}, "uid": {"S": user_id}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }},
                    {"Update": {
                        "TableName": self.table, "Key": self._shard_key(shard),
                        "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }},
                ])
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                if not _condition_failed(exc, 0):
                    _backoff(attempt)
                    continue
            # The user is already counted: add this connection to their set, within the limit.
            try:
                self.client.update_item(
                    TableName=self.table, Key=self._user_key(user_id), UpdateExpression="ADD conns :c",
                    ConditionExpression=("attribute_exists(pk) AND (attribute_not_exists(conns) OR contains(conns, :id) "
                                         "OR size(conns) < :max)"),
                    ExpressionAttributeValues={":c": {"SS": [connection_id]}, ":id": {"S": connection_id},
                                               ":max": {"N": str(self.max_connections)}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return False
            except self.client.exceptions.ConditionalCheckFailedException as exc:
                if exc.response.get("Item"):  # it exists: the condition failed on the limit
                    raise TooManyConnections(user_id) from None
                continue  # their last connection left in between: try the first-connection path again
        raise CounterConflict(f"could not count connection {connection_id}")

    def leave(self, user_id: str, connection_id: str) -> bool:
        """Forget a connection of `user_id`; True if the count went down."""
        try:
            response = self.client.update_item(
                TableName=self.table, Key=self._user_key(user_id), UpdateExpression="DELETE conns :c",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":c": {"SS": [connection_id]}}, ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False  # not counted (already left, or never joined)
        if response.get("Attributes", {}).get("conns"):
            return False  # another tab is still open
        return self._remove_user(user_id)

    def _remove_user(self, user_id: str) -> bool:
        shard = keys.counter_shard(user_id)
        for attempt in range(_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Delete": {
                        "TableName": self.table, "Key": self._user_key(user_id),
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(conns)",
                    }},
                    {"Update": {
                        "TableName": self.table, "Key": self._shard_key(shard),
                        "UpdateExpression": "ADD n :minus", "ConditionExpression": "n > :zero",
                        "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                    }},
                ])
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                if _condition_failed(exc, 0):
                    return False  # a new connection arrived, or someone else removed the user
                if _condition_failed(exc, 1):
                    # The shard is already 0 (drift): drop the user item without going negative.
                    self._delete_user_if_empty(user_id)
                    return False
                _backoff(attempt)
        raise CounterConflict(f"could not uncount user {user_id}")

    def _delete_user_if_empty(self, user_id: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table, Key=self._user_key(user_id),
                ConditionExpression="attribute_not_exists(conns)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

    def reconcile(self) -> int | None:
        """Recount every shard from its users with live connections and repair the ones
        that drifted; return the new total if any shard changed.

        A shard is read before its count and written only if unchanged since, so a join or
        leave that races the recount makes that repair a no-op instead of a wrong value."""
        repaired = False
        for shard in keys.counter_shards():
            if self._reconcile_shard(shard):
                repaired = True
        return self.value() if repaired else None

    def _reconcile_shard(self, shard: str) -> bool:
        item = self.client.get_item(TableName=self.table, Key=self._shard_key(shard), ConsistentRead=True).get("Item")
        before = item["n"]["N"] if item and "n" in item else None
        actual = 0
        for page in query_pages(
            self.client, TableName=self.table, IndexName="by_counter",
            KeyConditionExpression="cshard = :s", ExpressionAttributeValues={":s": {"S": shard}},
            ProjectionExpression="conns",
        ):
            actual += sum(1 for user in page if user.get("conns"))
        if int(before or 0) == actual:
            return False
        condition = "n = :before" if before is not None else "attribute_not_exists(n)"
        values = {":actual": {"N": str(actual)}}
        if before is not None:
            values[":before"] = {"N": before}
        try:
            self.client.update_item(
                TableName=self.table, Key=self._shard_key(shard), UpdateExpression="SET n = :actual",
                ConditionExpression=condition, ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    @staticmethod
    def _user_key(user_id: str) -> dict[str, Any]:
        return {"pk": {"S": keys.user_pk(user_id)}, "sk": {"S": USER_SK}}

    @staticmethod
    def _shard_key(shard: str) -> dict[str, Any]:
        return {"pk": {"S": shard}, "sk": {"S": "users"}}


def _condition_failed(exc: Exception, index: int) -> bool:
    reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
    return len(reasons) > index and reasons[index].get("Code") == "ConditionalCheckFailed"


def _backoff(attempt: int) -> None:
    backoff(attempt, base=0.02, cap=0.5)  # contention on one item clears fast: shorter than throttling
