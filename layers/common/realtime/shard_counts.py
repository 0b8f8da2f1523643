"""Shard counts as a container last knew them: how the groups and rooms that grow are found.

A group's or a room's shard count only grows (`keys.shards_for`), and an item placed under
a smaller count is still read under a larger one, so a count known late is safe: it only
delays the spreading. A container keeps each count it read or learnt for `TTL_SECONDS`
(writers read it again after that), at most `SIZE` of them, the least recently used
dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

TTL_SECONDS = 300.0
SIZE = 10_000


class ShardCounts:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, when learnt)

    def fresh(self, key: str) -> int | None:
        """The count if learnt within `TTL_SECONDS`, else None (read it again)."""
        known = self._counts.get(key)
        return known[0] if known is not None and self.clock() - known[1] < TTL_SECONDS else None

    def read_through(self, key: str, read: Callable[[], int]) -> int:
        """The fresh count, or else `read()` (the stored count), remembered."""
        fresh = self.fresh(key)
        return fresh if fresh is not None else self.remember(key, read())

    def known(self, key: str) -> int:
        """The last count learnt, however long ago (1: none)."""
        known = self._counts.get(key)
        return known[0] if known is not None else 1

    def remember(self, key: str, count: int) -> int:
        """Learn `count` (never fewer than already known: counts only grow); return what is known now."""
        count = max(count, self.known(key))
        self._counts[key] = (count, self.clock())
        self._counts.move_to_end(key)
        while len(self._counts) > SIZE:
            self._counts.popitem(last=False)
        return count
