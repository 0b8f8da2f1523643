"""The engine's services for one container: tables, fan-out, sending, the clock.

Built once by `realtime.runtime` (or by a test) and handed to every part that needs
them, including the application's declared streams and bindings (`bind`), so nothing
below the handlers reaches for a global.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from realtime.telemetry import CountingTelemetry, Telemetry

if TYPE_CHECKING:
    from realtime.announcing import Coalescer
    from realtime.broadcast import Broadcaster
    from realtime.config import Settings
    from realtime.connections import Connections
    from realtime.counter import UserCounter
    from realtime.groups import Groups
    from realtime.history import History
    from realtime.presence import Presence
    from realtime.sender import Sender


@dataclass
class Services:
    settings: Settings
    connections: Connections
    groups: Groups
    broadcaster: Broadcaster
    sender: Sender
    counter: UserCounter
    coalescer: Coalescer
    #: Present when the application declares presence rooms.
    presence: Presence | None = None
    telemetry: Telemetry = field(default_factory=CountingTelemetry)
    clock: Callable[[], float] = time.time
    #: Present when some stream keeps history and `HISTORY_TABLE` is set.
    history: History | None = None

    @property
    def environment(self) -> Mapping[str, str]:
        """The environment snapshot the settings were read from (for the application's settings)."""
        return self.settings.environment
