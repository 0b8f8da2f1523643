"""Two things moto's DynamoDB Streams cannot be asked for through its API, done in process.

- Sequence numbers that keep growing across restarts. moto numbers every stream from
  the same constant (1100000000017454423009), so each new stack handed out the numbers of
  the last one again; a client that keeps the highest `seq` per document (as the demo's
  does, across reconnects) then dropped every update after a restart as already seen.
  DynamoDB's numbers only grow: here each stream starts at the wall clock in nanoseconds
  times 1000 (about 1.8e21, above moto's constant, so above anything a stack handed out
  before this change), or past the last number a saved state recorded when the clock is
  behind that. Records between two starts would need to outnumber the picoseconds between
  them to overlap.
- Writes that are not stream records: restoring saved items is not a change a user made,
  so the notify function must not hear of it.

moto keeps one `StreamShard` per table (`moto/dynamodb/models/table.py`, moto 5.2.5): its
records are `items`, numbered `starting_sequence_number + index`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


def _table(table_arn: str) -> Any:
    """moto's Table behind `table_arn` (the stack's moto runs in this process)."""
    from moto.dynamodb.models import dynamodb_backends

    _, _, _, region, account, resource = table_arn.split(":", 5)
    return dynamodb_backends[account][region].get_table(resource.split("/", 1)[1])


def clock_floor() -> int:
    """The smallest first sequence number a stream started now may take."""
    return time.time_ns() * 1000


def start_numbering(table_arn: str, floor: int) -> int | None:
    """Number the table's stream from `max(clock_floor(), floor)`; None when it has no stream.

    Only on a stream with no records yet: renumbering existing records would move them
    under their readers' iterators."""
    shard = _table(table_arn).stream_shard
    if shard is None:
        return None
    if shard.items:
        raise RuntimeError(f"{table_arn}: its stream has records already; number it before any write")
    shard.starting_sequence_number = max(clock_floor(), floor)
    return shard.starting_sequence_number


def next_number(table_arn: str) -> int | None:
    """The sequence number the table's next stream record gets (None: no stream)."""
    shard = _table(table_arn).stream_shard
    if shard is None:
        return None
    return shard.starting_sequence_number + len(shard.items)


@contextlib.contextmanager
def unrecorded(table_arn: str) -> Iterator[None]:
    """Writes to the table inside this block leave no stream record (moto records a change
    only while the table has a shard). Only while nothing else uses the table: startup."""
    table = _table(table_arn)
    shard, table.stream_shard = table.stream_shard, None
    try:
        yield
    finally:
        table.stream_shard = shard
