"""The application's tables kept across restarts of the local stack (`tables.json`).

A developer's test documents should survive Ctrl-C. moto keeps its tables in memory, so
the stack saves them: every table of the template except `ConnectionsTable`, whose
connections (and the user counter and presence built on them) died with the old process,
and `HistoryTable` (the catch-up log: moto never expires its items).

- The file holds each table's items in DynamoDB's JSON wire format (what `aws dynamodb
  scan` prints: `{"slug": {"S": "welcome"}}`, binary values base64), and the number the
  next stream record of each table gets, so numbering continues past it.
- `Persister` saves at most every `interval` seconds, and only after DynamoDB writes:
  the embedded moto counts them (`MotoServer.writes`). A save is one atomic replace, so
  Ctrl-C or a crash loses at most the last interval's writes, never the file. The stack
  saves once more when it stops.
- `restore` puts the items back through the DynamoDB API before any trigger runs, with the
  stream not recording (`moto_streams.unrecorded`): a restore is not a write by a user,
  and the notify function must not announce it.

A file that cannot be read or does not fit the template stops the start with a message
(`DEV_FRESH=1` starts clean instead): the stack never overwrites what it could not load.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devtools.stack import moto_streams
from devtools.stack.errors import StackError
from devtools.stack.state import atomic_write

log = logging.getLogger("devtools.stack")

FORMAT = 1

#: Never saved, empty on every start: the items of live connections, and the history log
#: (what reconnecting pages replay; moto never deletes expired items, so a saved log would
#: only grow).
EPHEMERAL_TABLES = frozenset({"ConnectionsTable", "HistoryTable"})

_BATCH = 25  # BatchWriteItem's limit


# ---- DynamoDB JSON <-> what boto3's low-level client speaks (bytes for B and BS) ------------


def to_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """One attribute value from boto3 (bytes for binary) to DynamoDB's JSON (base64)."""
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") for b in inner]}
    if kind == "L":
        return {"L": [to_json(v) for v in inner]}
    if kind == "M":
        return {"M": {k: to_json(v) for k, v in inner.items()}}
    return {kind: inner}


def from_json(value: Any) -> dict[str, Any]:
    """One attribute value from DynamoDB's JSON back to boto3's; ValueError when malformed."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"not an attribute value: {value!r:.80}")
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner, validate=True)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b, validate=True) for b in _list(inner)]}
    if kind == "L":
        return {"L": [from_json(v) for v in _list(inner)]}
    if kind == "M":
        if not isinstance(inner, dict):
            raise ValueError("M must hold an object")
        return {"M": {str(k): from_json(v) for k, v in inner.items()}}
    if kind in ("S", "N") and isinstance(inner, str):
        return {kind: inner}
    if kind in ("SS", "NS") and all(isinstance(v, str) for v in _list(inner)):
        return {kind: list(inner)}
    if kind in ("BOOL", "NULL") and isinstance(inner, bool):
        return {kind: inner}
    raise ValueError(f"not an attribute value: {value!r:.80}")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def item_to_json(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: to_json(value) for name, value in item.items()}


def item_from_json(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError("an item must be an object")
    return {str(name): from_json(value) for name, value in item.items()}


# ---- the file -----------------------------------------------------------------------------


def saved_tables(template_tables: Iterable[str]) -> list[str]:
    """The logical ids of the tables worth keeping."""
    return [lid for lid in template_tables if lid not in EPHEMERAL_TABLES]


def read(path: Path) -> dict[str, Any] | None:
    """The saved state (tables: logical id -> items, boto3-shaped; streams: logical id ->
    next sequence number), None when there is no file. StackError when unusable."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format {FORMAT} state file")
        tables = {str(lid): [item_from_json(i) for i in _list(items)]
                  for lid, items in (data.get("tables") or {}).items()}
        streams = {str(lid): int(n) for lid, n in (data.get("streams") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise StackError(f"cannot load the saved tables from {path} ({exc}); fix or delete it, "
                         "or start clean with DEV_FRESH=1 (make dev-reset)") from exc
    return {"tables": tables, "streams": streams}


def content(tables: Mapping[str, list[dict[str, Any]]], streams: Mapping[str, int]) -> dict[str, Any]:
    """What the file says, but when it was saved."""
    return {"format": FORMAT,
            "streams": {lid: str(n) for lid, n in sorted(streams.items())},
            "tables": {lid: [item_to_json(i) for i in items] for lid, items in sorted(tables.items())}}


def encode(body: Mapping[str, Any]) -> bytes:
    stamped = {"format": body["format"], "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               **body}
    return json.dumps(stamped, indent=1, ensure_ascii=False).encode() + b"\n"


# ---- saving and restoring through the DynamoDB API -----------------------------------------


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    return [item for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
            for item in page["Items"]]


def restore(client: Any, tables: Mapping[str, str], table_arns: Mapping[str, str],
            saved: Mapping[str, list[dict[str, Any]]]) -> int:
    """Put the saved items back (logical id -> items) without stream records; the count."""
    restored = 0
    for lid, items in saved.items():
        if lid not in tables or lid in EPHEMERAL_TABLES:
            log.warning("saved table %s is not in the template (or not kept): its %d item(s) are dropped",
                        lid, len(items))
            continue
        with moto_streams.unrecorded(table_arns[lid]):
            for start in range(0, len(items), _BATCH):
                requests = [{"PutRequest": {"Item": item}} for item in items[start:start + _BATCH]]
                try:
                    pending: dict[str, Any] = {tables[lid]: requests}
                    while pending:
                        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                except (ClientError, BotoCoreError) as exc:
                    raise StackError(f"the saved items of {lid} do not fit the template's table ({exc}); "
                                     "start clean with DEV_FRESH=1 (make dev-reset)") from exc
        restored += len(items)
    return restored


class Persister:
    """Saves the kept tables to `path` after writes, at most every `interval` seconds."""

    def __init__(self, path: Path, *, client: Any, tables: Mapping[str, str], table_arns: Mapping[str, str],
                 writes: Callable[[], int], interval: float = 1.0) -> None:
        self.path = path
        self.client = client
        self.tables = {lid: tables[lid] for lid in saved_tables(tables)}
        self.table_arns = dict(table_arns)
        self.writes = writes
        self.interval = interval
        self.saves = 0
        self._seen_writes: int | None = None
        self._last: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stack-persist", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and save what changed since its last round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.save()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - a full disk must not stop the stack; say so, retry
                log.exception("saving the tables to %s failed; retrying", self.path)

    def save(self, force: bool = False) -> bool:
        """Save when DynamoDB saw writes since the last save (or `force`); True when written."""
        with self._lock:
            writes = self.writes()
            if not force and writes == self._seen_writes:
                return False
            tables = {lid: scan(self.client, name) for lid, name in self.tables.items()}
            streams = {lid: n for lid in self.tables
                       if (n := moto_streams.next_number(self.table_arns[lid])) is not None}
            body = content(tables, streams)
            self._seen_writes = writes
            if not force and body == self._last:
                return False  # the writes went to tables not kept (connections, presence)
            atomic_write(self.path, encode(body))
            self._last = body
            self.saves += 1
            return True
