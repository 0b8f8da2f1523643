"""Removing a connection and everything it holds: memberships, presence, its count.

Used by `$disconnect`, by the sweep, and whenever a post answers 410 (gone).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from realtime.presence import Held
from realtime.publishing import Changes

if TYPE_CHECKING:
    from realtime.services import Services

#: Gone recipients one broadcast removes at most. When many sockets close at once, every
#: `$disconnect` finds the same gone connections: each removes a random share (their own
#: `$disconnect`, or the sweep, removes the rest), so no handler's work grows with the group
#: and the handlers do not all remove the same ones.
MAX_INLINE_REMOVALS = 25


class Remover:
    def __init__(self, services: Services) -> None:
        self.services = services

    def remove(self, connection_id: str) -> Changes:
        """Delete a connection and all it holds; the record goes last so a crash leaves it for the sweep."""
        services = self.services
        holdings = services.connections.holdings(connection_id)
        record = holdings.connection
        held = [Held.from_token(token) for token in record.presence] if record else []
        presence_keys = services.presence.keys(connection_id, held) if services.presence else []
        # Presence and memberships share the table: one batch for both.
        services.connections.delete_keys(presence_keys + services.connections.membership_keys(connection_id,
                                                                                             holdings.groups))
        counted = bool(record and record.user_id and services.counter.leave(record.user_id, connection_id))
        if record is not None:
            services.connections.delete(connection_id)
        return Changes(counter=counted, rooms={h.room for h in held})

    def remove_gone(self, gone: list[str]) -> Changes:
        """Remove up to `MAX_INLINE_REMOVALS` of the connections a broadcast found gone (410),
        chosen at random; return what their removal changed."""
        unique = sorted(set(gone))
        chosen = random.sample(unique, MAX_INLINE_REMOVALS) if len(unique) > MAX_INLINE_REMOVALS else unique
        self.services.telemetry.count("GoneRemoved", len(chosen))
        changes = Changes()
        for connection_id in chosen:
            changes.merge(self.remove(connection_id))
        return changes
