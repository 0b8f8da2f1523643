"""Publishing: what a lifecycle step changed, announced to the streams that show it.

A step (a frame, a connect, a disconnect, the sweep, a binding change) records what it
changed in a `Changes`: the user count, the rosters of some rooms. `publish` only marks
them (`realtime.announcing`): the broadcasts happen later, at most once per interval per
topic and key, in the announce function (`announce`), where every declared stream says
what the change means for its subscribers. Recipients a broadcast finds gone (410) are
removed, and what their removal changed is marked in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtime.announcing import Announced
from realtime.broadcast import BroadcastReport
from realtime.streams import CounterStream

if TYPE_CHECKING:
    from realtime.announcing import Coalescer
    from realtime.removal import Remover
    from realtime.services import Services
    from realtime.streams import Stream

logger = logging.getLogger(__name__)

#: The engine's own announcement topic: a presence room's roster and summary.
PRESENCE = "$presence"


@dataclass
class Changes:
    """What a step changed that others must hear about."""

    counter: bool = False
    rooms: set[str] = field(default_factory=set)
    #: What the step already read, keyed by the application (so it need not read it again).
    memo: dict[Any, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.counter or bool(self.rooms)

    def merge(self, other: Changes) -> None:
        self.counter |= other.counter
        self.rooms |= other.rooms
        self.memo.update(other.memo)


class Publisher:
    def __init__(self, services: Services, streams: Iterable[Stream], remover: Remover,
                 coalescer: Coalescer) -> None:
        self.services = services
        self.streams = list(streams)
        self.remover = remover
        self.coalescer = coalescer
        coalescer.announce = self.announce

    def publish(self, changes: Changes) -> None:
        """Mark what `changes` touched; the announcements follow within an interval."""
        if changes.counter:
            for stream in self.streams:
                if isinstance(stream, CounterStream):
                    self.coalescer.mark(stream.name)
        for room in sorted(changes.rooms):
            self.coalescer.mark(PRESENCE, room)
        for stream in self.streams:
            for key in stream.dirty(changes):
                self.coalescer.mark(stream.name, key)

    def announce(self, topic: str, key: str, follow_up: bool = False) -> Announced:
        """One coalesced announcement (the announce function's work, or inline without a queue).

        The gone recipients it finds are removed (at most `MAX_INLINE_REMOVALS`) and what that
        changed is marked; a follow-up round leaves them to their own `$disconnect` or the
        sweep, so a mass disconnect costs every handler a bounded share of the work."""
        if topic == PRESENCE:
            announced, report = self._announce_room(key)
        else:
            stream = next((s for s in self.streams if s.name == topic), None)
            if stream is None:
                logger.warning("announcement for no stream", extra={"topic": topic})
                return Announced()
            report = stream.announce(key)
            announced = Announced(members=report.audience)
        self.services.telemetry.count("Announcements")
        self.services.telemetry.count("SendFailed", report.failed)
        if not follow_up:
            self.cleanup(report)
        return announced

    def _announce_room(self, room: str) -> tuple[Announced, BroadcastReport]:
        presence = self.services.presence
        assert presence is not None
        now = self.services.clock()
        state = presence.room(room, now)
        summary_changed, roster_changed = presence.summarize(state, now)
        report = BroadcastReport()
        for stream in self.streams:
            report.add(stream.room_changed(state, summary_changed=summary_changed, roster_changed=roster_changed))
        again = state.next_expiry + 0.5 if state.next_expiry is not None else None
        return Announced(members=report.audience, again_at=again), report

    def cleanup(self, report: BroadcastReport) -> None:
        """After any broadcast: remove the gone it found, and mark what that changed."""
        changes = self.remover.remove_gone(report.gone)
        if changes:
            self.publish(changes)
