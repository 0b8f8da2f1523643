"""The live user counter: distinct signed-in users with at least one live connection.

Each user has an item holding the set of their live connection ids. The counter moves
only in the same transaction that creates a user's item (first connection) or deletes
it (last connection), so two tabs count once and racing connects and disconnects of
one user can neither double-count nor drive the counter below zero. `reconcile`
(run by the sweep) recounts and repairs any drift left by a crash between steps.
"""

from __future__ import annotations

from typing import Any

from realtime import keys
from realtime.dynamo import query_pages
from realtime.retry import backoff

_ATTEMPTS = 8


class CounterConflict(RuntimeError):
    """The counter could not be updated after repeated transaction conflicts."""


class UserCounter:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def value(self) -> int:
        item = self.client.get_item(TableName=self.table, Key=self._counter_key(), ConsistentRead=True).get("Item")
        return max(0, int(item["n"]["N"])) if item and "n" in item else 0

    def join(self, user_id: str, connection_id: str) -> bool:
        """Record a live connection of `user_id`; True if the count went up."""
        for attempt in range(_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Put": {
                        "TableName": self.table,
                        "Item": {**self._user_key(user_id), "conns": {"SS": [connection_id]}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }},
                    {"Update": {
                        "TableName": self.table, "Key": self._counter_key(),
                        "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }},
                ])
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                if not _condition_failed(exc, 0):
                    _backoff(attempt)
                    continue
            # The user is already counted: add this connection to their set.
            try:
                self.client.update_item(
                    TableName=self.table, Key=self._user_key(user_id), UpdateExpression="ADD conns :c",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":c": {"SS": [connection_id]}},
                )
                return False
            except self.client.exceptions.ConditionalCheckFailedException:
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
        for attempt in range(_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Delete": {
                        "TableName": self.table, "Key": self._user_key(user_id),
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(conns)",
                    }},
                    {"Update": {
                        "TableName": self.table, "Key": self._counter_key(),
                        "UpdateExpression": "ADD n :minus", "ConditionExpression": "n > :zero",
                        "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                    }},
                ])
                return True
            except self.client.exceptions.TransactionCanceledException as exc:
                if _condition_failed(exc, 0):
                    return False  # a new connection arrived, or someone else removed the user
                if _condition_failed(exc, 1):
                    # The counter is already 0 (drift): drop the user item without going negative.
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
        """Recount users with live connections and repair the counter; return the new value if it changed.

        The counter is read before the count and written only if unchanged since, so a join
        or leave that races the recount makes the repair a no-op instead of a wrong value.
        """
        item = self.client.get_item(TableName=self.table, Key=self._counter_key(), ConsistentRead=True).get("Item")
        before = item["n"]["N"] if item and "n" in item else None
        actual = 0
        for page in query_pages(
            self.client, TableName=self.table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.USERS_PK}}, ConsistentRead=True,
            ProjectionExpression="sk, conns",
        ):
            actual += sum(1 for user in page if user.get("conns"))
        if int(before or 0) == actual:
            return None
        condition = "n = :before" if before is not None else "attribute_not_exists(n)"
        values = {":actual": {"N": str(actual)}}
        if before is not None:
            values[":before"] = {"N": before}
        try:
            self.client.update_item(
                TableName=self.table, Key=self._counter_key(), UpdateExpression="SET n = :actual",
                ConditionExpression=condition, ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return actual

    @staticmethod
    def _user_key(user_id: str) -> dict[str, Any]:
        return {"pk": {"S": keys.USERS_PK}, "sk": {"S": user_id}}

    @staticmethod
    def _counter_key() -> dict[str, Any]:
        return {"pk": {"S": keys.COUNTER_PK}, "sk": {"S": keys.COUNTER_SK}}


def _condition_failed(exc: Exception, index: int) -> bool:
    reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
    return len(reasons) > index and reasons[index].get("Code") == "ConditionalCheckFailed"


def _backoff(attempt: int) -> None:
    backoff(attempt, base=0.02, cap=0.5)  # contention on one item clears fast: shorter than throttling

