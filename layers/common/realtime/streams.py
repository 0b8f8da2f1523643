"""Streams: the logical channels one socket carries, declared by the application.

A `Stream` is to this engine what a consumer is to Django Channels: a small class that
says what subscribing means (which group the connection joins, who may, what snapshot
it gets first) and, for state streams, what to broadcast when something it shows has
changed. The router (`realtime.routing`) sends each frame to the stream it names, like
Channels' demultiplexer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from realtime import keys, protocol
from realtime.broadcast import BroadcastReport
from realtime.deliveries import FrameDelivery
from realtime.protocol import ProtocolError, Request

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.presence import RoomState
    from realtime.publishing import Changes
    from realtime.services import Services


@dataclass(frozen=True)
class Subscription:
    """What one subscribe frame asks for: the group it joins, and its parameters."""

    group: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Publish:
    """Which published events (EventBridge `realtime.publish`, `realtime.published`) a
    stream accepts: to a group matching one of `groups` (shell-style patterns over group
    names, e.g. ``"alerts"``, ``"team/*"``), to a user's connections (`users`), to one
    connection (`connections`: one subscribed to the stream's own group).

    A user has one group per stream, joined by each of their subscriptions of it: meant for
    streams whose subscriptions take no parameters (unsubscribing one leaves the group)."""

    groups: tuple[str, ...] = ()
    users: bool = False
    connections: bool = False


def user_group(stream: str, user_id: str) -> str:
    """The group of one user's connections subscribed to `stream` (joined on subscribe when
    the stream accepts events published to a user)."""
    return keys.user_group(stream, user_id)


class Stream:
    """One logical stream. Subclasses set `name` and override what they need."""

    #: The name clients use in `stream` (and the group joined, unless `subscription` says otherwise).
    name: ClassVar[str] = ""
    #: Whether anonymous connections may subscribe.
    anonymous: ClassVar[bool] = True
    #: Whether its messages (binding events, published events) are logged for catch-up
    #: (`since` on subscribe, `realtime.history`): each frame then carries its `cursor`.
    history: ClassVar[bool] = False
    #: The published events it accepts (None: none).
    publish: ClassVar[Publish | None] = None

    services: Services

    def bind(self, services: Services) -> None:
        """Called once when the application is built for a container."""
        self.services = services

    # ---- subscribing -------------------------------------------------------------------

    def subscription(self, request: Request) -> Subscription:
        """Validate the frame's parameters (raise `bad_request`); the default takes none."""
        return Subscription(self.name)

    def groups(self, connection: Connection, subscription: Subscription) -> list[str]:
        """Every group a subscription joins: its own, and the subscriber's user group when the
        stream takes events published to a user (so finding them is one Query of that group)."""
        joined = [subscription.group]
        if self.publish is not None and self.publish.users and connection.user_id is not None:
            joined.append(user_group(self.name, connection.user_id))
        return joined

    def authorize(self, connection: Connection, subscription: Subscription, request: Request) -> Any:
        """Raise `ProtocolError` (forbidden, not_found) if this connection may not subscribe;
        what it returns (what it read to decide) is handed to `snapshot`."""
        return None

    def snapshot(self, connection: Connection, subscription: Subscription, authorized: Any = None,
                 ) -> Iterable[Mapping[str, Any]]:
        """Payloads sent on this stream right after subscribing (before the ack)."""
        return ()

    # ---- other actions -----------------------------------------------------------------

    def actions(self) -> Mapping[str, Any]:
        """Actions beyond subscribe/unsubscribe that frames on this stream may carry, each
        an `Action` (`realtime.routing`)."""
        return {}

    # ---- state broadcasts (coalesced: see realtime.announcing) ------------------------

    def dirty(self, changes: Changes) -> Iterable[str]:
        """The keys of this stream whose state `changes` changed: each is announced (`announce`)
        at most once per interval."""
        return ()

    def announce(self, key: str) -> BroadcastReport:
        """Broadcast the current state of `key` to its subscribers."""
        return BroadcastReport()

    def room_changed(self, state: RoomState, *, summary_changed: bool, roster_changed: bool) -> BroadcastReport:
        """A presence room's coalesced announcement (`state` is the whole room, read once for
        every stream): broadcast what it means for this stream, or mark a key of its own."""
        return BroadcastReport()

    # ---- helpers -----------------------------------------------------------------------

    def frame(self, payload: Mapping[str, Any], cursor: str | None = None) -> bytes:
        return protocol.encode_frame(self.name, payload, cursor)

    def refuse_anonymous(self, request: Request) -> ProtocolError:
        return request.fail(protocol.UNAUTHENTICATED, f"sign in to receive {self.name}")


class CounterStream(Stream):
    """The live count of distinct signed-in users: `{<key>: n}` on subscribe and on change."""

    key: ClassVar[str] = "users"

    def payload(self) -> dict[str, int]:
        assert self.services.counter is not None
        return {self.key: self.services.counter.value()}

    def snapshot(self, connection: Connection, subscription: Subscription, authorized: Any = None,
                 ) -> Iterable[Mapping[str, Any]]:
        return [self.payload()]

    def announce(self, key: str) -> BroadcastReport:
        return self.services.broadcaster.send(self.name, FrameDelivery(self.frame(self.payload())))
