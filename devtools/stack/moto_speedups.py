"""Three of moto's DynamoDB costs, removed for the local stack.

moto models DynamoDB for correctness, not for a table that hundreds of live connections
write to. Profiling the 1,000-client load (py-spy, GIL holder only) found moto holding
the GIL most of the time, on a server that runs DynamoDB requests one at a time:

- 57% of moto's time was its generic response serializer, which walks every attribute
  of every item against the botocore output shape. A data-plane answer (Query, Scan,
  GetItem, ...) is already wire-format JSON once moto's `dynamo_to_dict` has run, so it is
  written with `json.dumps`; anything `json` cannot write as is (binary values) still
  goes through moto's serializer;

- every Query (base table or index) starts from `Table.all_items()`, which lists *and
  sorts* every item of the table by its keys, before keeping the matching partition.
  Here a base-table Query looks up its partition directly, and an index Query filters
  the items unsorted; both sort only the matches, as moto already does afterwards;
- every `TransactWriteItems` deep-copies each table it touches before it starts (to put
  the copy back if the transaction is cancelled). Here it copies only the items the
  transaction names, and a cancelled transaction puts those back and drops the stream
  records it had emitted, which is what the whole-table copy achieved.

Results are unchanged: `tests/stack/test_moto_speedups.py` runs the same requests against
patched and unpatched moto and compares them. The patches are written against moto
`VERIFIED_VERSION` (pinned in pyproject.toml); with another version they are not applied,
and the stack is only slower. Process-wide like moto's state (a `SharedPatch`), so nested
stacks restore moto only when the last one stops.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import threading
from typing import Any

from devtools.stack.shared_patch import SharedPatch

log = logging.getLogger("devtools.stack")

VERIFIED_VERSION = "5.2.5"

_scope = threading.local()


def _patch() -> dict[str, Any] | None:
    import moto
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    if moto.__version__ != VERIFIED_VERSION:
        log.info("moto %s (not %s): DynamoDB speed-ups not applied", moto.__version__, VERIFIED_VERSION)
        return None
    saved = {
        "query": Table.__dict__["query"],
        "all_items": Table.__dict__["all_items"],
        "transact": DynamoDBBackend.__dict__["transact_write_items"],
        "execute_result": DynamoResult.__dict__.get("execute_result"),  # None: inherited
    }
    Table.query = _query_with(saved["query"])  # type: ignore[method-assign]
    Table.all_items = _all_items_with(saved["all_items"])  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    DynamoResult.execute_result = _execute_result_with(DynamoResult.execute_result)  # type: ignore[method-assign]
    return saved


def _unpatch(saved: dict[str, Any] | None) -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    if saved:
        Table.query = saved["query"]  # type: ignore[method-assign]
        Table.all_items = saved["all_items"]  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items = saved["transact"]  # type: ignore[method-assign]
        if saved["execute_result"] is None:
            del DynamoResult.execute_result
        else:
            DynamoResult.execute_result = saved["execute_result"]  # type: ignore[method-assign]


_PATCHES = SharedPatch(_patch, _unpatch)


def apply() -> bool:
    """Patch moto (or count one more user); False when this moto is not the verified version."""
    return _PATCHES.acquire() is not None


def restore() -> None:
    _PATCHES.release()


# ---- response serialization ------------------------------------------------------------------

#: Operations whose answers hold only JSON types once moto has turned DynamoTypes into dicts.
DATA_PLANE = frozenset({"Query", "Scan", "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem",
                        "BatchWriteItem", "TransactWriteItems", "TransactGetItems"})


def _execute_result_with(original: Any) -> Any:
    def execute_result(self: Any, context: Any) -> Any:
        operation = context.operation_model
        if operation.name in DATA_PLANE and isinstance(self.result, dict):
            try:
                body = json.dumps(self.result, separators=(",", ":"))
            except TypeError:  # bytes (a binary attribute): moto's serializer base64-encodes it
                return original(self, context)
            content_type = f"application/x-amz-json-{operation.service_model.metadata.get('jsonVersion', '1.0')}"
            return 200, {"Content-Type": content_type}, body
        return original(self, context)

    return execute_result


# ---- Query -------------------------------------------------------------------------------


def _query_with(original: Any) -> Any:
    signature = inspect.signature(original)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        index_name = bound.arguments.get("index_name")
        hash_key = bound.arguments.get("hash_key")
        if not index_name and hash_key is None:
            return original(self, *args, **kwargs)
        previous = getattr(_scope, "query", None)
        _scope.query = (self, None if index_name else hash_key)
        try:
            return original(self, *args, **kwargs)
        finally:
            _scope.query = previous

    return query


def _all_items_with(original: Any) -> Any:
    def all_items(self: Any) -> list[Any]:
        scope = getattr(_scope, "query", None)
        if scope is None or scope[0] is not self:
            return original(self)
        hash_key = scope[1]
        if hash_key is not None:  # a base-table Query: its partition only
            partition = self.items.get(hash_key)  # .get: `items` is a defaultdict
            if partition is None:
                return []
            return list(partition.values()) if self.range_key_attr else [partition]
        if self.range_key_attr:  # an index Query: everything, unsorted (matches are sorted later)
            return [item for partition in self.items.values() for item in partition.values()]
        return list(self.items.values())

    return all_items


# ---- TransactWriteItems ----------------------------------------------------------------------


def _key_of(table: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, Any] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    source = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(source, dict) or table.hash_key_attr not in source:
        return None
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in source:
            return None
        range_value = DynamoType(source[table.range_key_attr])
    return DynamoType(source[table.hash_key_attr]), range_value


class _Backup:
    """The items a transaction names, as they were, and each stream's length."""

    def __init__(self, backend: Any, transact_items: list[dict[str, Any]]) -> None:
        self.items: list[tuple[Any, Any, Any, Any]] = []
        self.streams: dict[int, tuple[Any, int]] = {}
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = _key_of(table, op_type, op)
            if key is None:
                continue
            current = table.items.get(key[0])
            if current is not None and table.range_key_attr is not None:
                current = current.get(key[1])
            # update_item changes an item in place: keep a copy, not a reference
            self.items.append((table, key[0], key[1], copy.deepcopy(current)))
            if table.stream_shard is not None and id(table) not in self.streams:
                self.streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))

    def restore(self) -> None:
        for table, hash_value, range_value, saved in reversed(self.items):
            if table.range_key_attr is not None:
                partition = table.items[hash_value]
                if saved is None:
                    partition.pop(range_value, None)
                else:
                    partition[range_value] = saved
            elif saved is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = saved
        for shard, length in self.streams.values():
            del shard.items[length:]


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's `DynamoDBBackend.transact_write_items`, backing up items, not tables."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    backup = _Backup(self, transact_items)
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(condition_expression, names, values)
                if not condition_op.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type == "Put":
                self.put_item(table_name, op["Item"], condition_expression=condition_expression,
                              expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, condition_expression=condition_expression,
                                 expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 condition_expression=condition_expression,
                                 expression_attribute_names=names, expression_attribute_values=values)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            backup.restore()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: BLE001 - moto reports other failures per item too
            errors.append((type(e).__name__, str(e), original_item))

    if any(code is not None for code, _, _ in errors):
        backup.restore()
        raise TransactionCanceledException(errors)
