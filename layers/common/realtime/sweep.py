"""The scheduled sweep: heal what missed `$disconnect` calls left behind, every run, in bounded time.

API Gateway's `$disconnect` is best effort. Every run (once a minute) the sweep:

1. makes the announcements that are due and were never made (`Coalescer.run_due`): a
   mark whose message was lost, or, without a queue, a room whose presence expires (a
   room's announcement schedules the next one for when its first presence expires, so no
   roster shows a ghost for longer than `PRESENCE_TTL_SECONDS` + an interval). This comes
   first and runs whatever the rest costs;
2. checks the connections past their liveness deadline (`realtime.connections`), longest
   overdue first, a page at a time, while its budget lasts: one BatchGetItem for the
   page's records, then `GET @connections` for all of them concurrently
   (`Sender.check_connections`). Past API Gateway's 2-hour limit, or answered 410:
   removed, the changes published after each page. Answered live: its deadline moves
   forward, so the next runs reach the connections behind it. Any other answer: kept, and
   asked again next run;
3. reports how many silent connections the budget left for the next run (`left_over`,
   metric `SweepLeftOver`). They are still the oldest, so the next run starts with them;
4. repairs the user counter (a recount) and publishes it. Time for this is kept back
   from the budget, so it runs every run too.

The stale checks' budget is the smaller of `SWEEP_BUDGET_SECONDS` and the Lambda
context's remaining time less a reserve (one page's worst case, every GET timing out
through its retries, and the counter repair), so the run ends before the function's
timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from realtime.publishing import Changes

if TYPE_CHECKING:
    from realtime.publishing import Publisher
    from realtime.removal import Remover
    from realtime.services import Services

logger = logging.getLogger(__name__)

#: Seconds kept back from the Lambda context's remaining time for the counter repair and
#: the last publish, after the stale checks.
FINISH_SECONDS = 5.0


@dataclass
class SweepReport:
    #: Stale connections looked at this run, and those of them asked about (GET @connections).
    checked: int = 0
    asked: int = 0
    removed: int = 0
    #: Answered live (kept, its deadline moved forward) / answered anything else (kept, asked next run).
    live: int = 0
    unknown: int = 0
    #: Announcements the sweep made (presence expiring without a queue, marks whose message was lost).
    expired_presence: int = 0
    counter_repaired: bool = False
    #: Silent connections the budget left for the next run (not checked, or not yet removed or
    #: moved forward), those answered `unknown` aside. 0 when the run got through them all.
    left_over: int = 0


class Budget:
    """How many seconds this run may still start work in."""

    def __init__(self, seconds: float, *, remaining_ms: Callable[[], int] | None = None, reserve: float = 0.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._timer = timer
        self._deadline = timer() + seconds
        self._remaining_ms = remaining_ms
        self._reserve = reserve

    def left(self) -> float:
        left = self._deadline - self._timer()
        if self._remaining_ms is not None:
            left = min(left, self._remaining_ms() / 1000 - self._reserve)
        return left

    @property
    def spent(self) -> bool:
        return self.left() <= 0


class Sweep:
    """One run of the sweep (see the module docstring)."""

    def __init__(self, services: Services, remover: Remover, publisher: Publisher, *,
                 remaining_ms: Callable[[], int] | None = None,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.services = services
        self.remover = remover
        self.publisher = publisher
        settings = services.settings
        sender = services.sender
        # One page of GETs that all time out through every retry, then the finish.
        worst_page = sender.max_attempts * (sender.timeout + sender.backoff_cap)
        self.budget = Budget(settings.sweep_budget_seconds, remaining_ms=remaining_ms,
                             reserve=worst_page + FINISH_SECONDS, timer=timer)
        self.page_size = settings.sweep_page_size
        self.report = SweepReport()

    def run(self) -> SweepReport:
        services = self.services
        now = services.clock()
        self.report.expired_presence = services.coalescer.run_due()
        stale = services.connections.stale_oldest_first(now, page_size=self.page_size)
        while not self.budget.spent:
            page = list(islice(stale, self.page_size))
            if not page:
                break
            self.publisher.publish(self.check(page, now))
        report = self.report
        if self.budget.spent:  # what is still silent, less those just asked without an answer
            report.left_over = max(0, services.connections.count_stale(now) - report.unknown)
            if report.left_over:
                logger.warning("sweep budget spent; connections left for the next run",
                               extra={"left_over": report.left_over, "checked": report.checked})
        self.publisher.publish(self.repair_counter())
        telemetry = services.telemetry
        telemetry.count("SweepChecked", report.checked)
        telemetry.count("SweepRemoved", report.removed)
        telemetry.count("SweepUnknown", report.unknown)
        telemetry.count("SweepLeftOver", report.left_over)
        return report

    def repair_counter(self) -> Changes:
        """Recount the users with live connections. After the removals, not before: a removal
        finishing a `$disconnect` that died half way (the user's set emptied, the counter not
        yet decremented) decrements it, which a recount made first would have done already."""
        if self.services.counter.reconcile() is None:
            return Changes()
        self.report.counter_repaired = True
        return Changes(counter=True)

    def check(self, page: list[str], now: float) -> Changes:
        """One page of stale connections: read, asked about, removed or kept."""
        services = self.services
        report = self.report
        changes = Changes()
        records = services.connections.records(page)
        report.checked += len(page)
        expired = [cid for cid in page if cid in records and records[cid].expired(now)]
        ask = [cid for cid in page if cid in records and not records[cid].expired(now)]
        answers = services.sender.check_connections(ask)
        report.asked += len(ask)
        report.live += len(answers.live)
        report.unknown += len(answers.unknown)
        for connection_id in _in_order(page, set(expired) | set(answers.gone)):
            if self.budget.spent:  # the rest are still stale: the next run starts with them
                break
            changes.merge(self.remover.remove(connection_id))
            # A `$disconnect` that died after uncounting the user never announced it:
            # re-announce the counter whenever a signed-in connection is swept.
            changes.counter |= records[connection_id].user_id is not None
            report.removed += 1
        for connection_id in answers.live:
            if self.budget.spent:
                break
            services.connections.heard_from(connection_id, now)
        return changes


def _in_order(page: list[str], chosen: set[str]) -> Iterator[str]:
    """`chosen`, in the page's order (oldest first)."""
    return (cid for cid in page if cid in chosen)
