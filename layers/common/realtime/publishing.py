"""Publishing: what a lifecycle step changed, broadcast to the streams that show it.

A step (a frame, a connect, a disconnect, the sweep) records what it changed in a
`Changes`: the user count, the rosters of some rooms. Every declared stream then
announces what that means for its subscribers (`Stream.announce`). Recipients a
broadcast finds gone (410) are removed, and what their removal changed is announced
once more; what that second round finds gone is left to those connections' own
`$disconnect` or to the sweep, so the work stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtime.broadcast import BroadcastReport

if TYPE_CHECKING:
    from realtime.removal import Remover
    from realtime.services import Services
    from realtime.streams import Stream

logger = logging.getLogger(__name__)


@dataclass
class Changes:
    """What a step changed that others must hear about."""

    counter: bool = False
    rooms: set[str] = field(default_factory=set)
    #: What the step already read, keyed by the application (so announcing need not read it again).
    memo: dict[Any, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.counter or bool(self.rooms)

    def merge(self, other: Changes) -> None:
        self.counter |= other.counter
        self.rooms |= other.rooms
        self.memo.update(other.memo)


class Publisher:
    def __init__(self, services: Services, streams: Iterable[Stream], remover: Remover) -> None:
        self.services = services
        self.streams = list(streams)
        self.remover = remover

    def publish(self, changes: Changes) -> None:
        """Announce `changes`, remove the gone recipients found, announce that once more."""
        report = self.announce(changes)
        followup = self.remover.remove_gone(report.gone)
        if followup:
            self.announce(followup)

    def announce(self, changes: Changes) -> BroadcastReport:
        report = BroadcastReport()
        if changes:
            for stream in self.streams:
                report.add(stream.announce(changes))
        self.services.telemetry.count("SendFailed", report.failed)
        return report

    def cleanup(self, report: BroadcastReport) -> None:
        """After a broadcast made elsewhere (the notifier): remove the gone, announce what that changed."""
        self.publish(self.remover.remove_gone(report.gone))
