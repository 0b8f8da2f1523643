"""The router: each client frame to the stream or capability that answers it.

Like Django Channels' demultiplexer, a frame names its stream (`"stream": "comments"`,
or Channels' envelope `{"stream": ..., "payload": {...}}`, flattened by the protocol)
and the stream's declaration answers it. The engine answers `subscribe`,
`unsubscribe` and `heartbeat` for every stream, and `enter`/`leave` through the
application's presence rooms; any other action is one a stream declares (a binding's
`create`, `update`, `delete`).

`resolve` validates everything a frame says before anything is read or written, so a
malformed frame is answered `bad_request` even from a connection that is not registered;
the returned `Route` then does the work. A subscribe joins every group of the subscription
(`Stream.groups`), then sends the snapshot, or on a stream that keeps history the replay
after its `since` (`realtime.replay`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from realtime import protocol
from realtime.connections import Presenced
from realtime.protocol import ProtocolError, Request
from realtime.replay import Catchup, since_of

if TYPE_CHECKING:
    from realtime.application import Application
    from realtime.connections import Connection
    from realtime.presence import Held
    from realtime.publishing import Changes
    from realtime.services import Services
    from realtime.streams import Stream, Subscription

NOT_REGISTERED = "connection not registered; reconnect"
SUBSCRIBE, UNSUBSCRIBE, HEARTBEAT, ENTER, LEAVE = "subscribe", "unsubscribe", "heartbeat", "enter", "leave"

Reply = Callable[[str, bytes], None]
#: Does a frame's work; returns what its `ack` carries beyond the `id` (or None).
Run = Callable[["Connection", "Changes"], Mapping[str, Any] | None]


class Action(Protocol):
    """An action a stream declares: `parse` checks the frame's shape, `run` does it."""

    def parse(self, request: Request) -> Any: ...

    def run(self, connection: Connection, parsed: Any, request: Request,
            changes: Changes) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class Route:
    action: str
    run: Run
    #: The presence an `enter` or `leave` is about: its own write moves the deadline, and
    #: the frame's refresh of what the connection holds leaves it to the route.
    held: Held | None = None


class Router:
    def __init__(self, application: Application, services: Services, reply: Reply) -> None:
        self.application = application
        self.services = services
        self.reply = reply
        self.catchup = Catchup(services, reply)
        self.stream_actions = {action for stream in application.streams.values() for action in stream.actions()}

    def resolve(self, request: Request) -> Route:
        """The route for a frame, or `ProtocolError` (bad_request, unknown_action)."""
        action = request.action
        if action == HEARTBEAT:
            return Route(action, lambda connection, changes: None)
        if action in (SUBSCRIBE, UNSUBSCRIBE):
            stream = self.stream(request)
            subscription = stream.subscription(request)
            if action == SUBSCRIBE:
                since = since_of(stream, request)
                return Route(action, lambda c, ch: self._subscribe(stream, subscription, request, c, since))
            return Route(action, lambda c, ch: self._unsubscribe(stream, subscription, c))
        rooms = self.application.rooms
        if action in (ENTER, LEAVE) and rooms is not None:
            held = rooms.held(request)
            run = self._enter if action == ENTER else self._leave
            return Route(action, lambda c, ch: run(held, request, c, ch), held)
        if action in self.stream_actions:
            stream = self.stream(request)
            declared = stream.actions().get(action)
            if declared is None:
                raise request.fail(protocol.UNKNOWN_ACTION, f"stream {stream.name!r} has no action {action!r}")
            parsed = declared.parse(request)
            return Route(action, lambda c, ch: declared.run(c, parsed, request, ch))
        raise request.fail(protocol.UNKNOWN_ACTION, f"unknown action {action[:64]!r}")

    def stream(self, request: Request) -> Stream:
        name = request.stream
        if not isinstance(name, str):
            raise request.fail(protocol.BAD_REQUEST, "stream must be a string")
        stream = self.application.streams.get(name)
        if stream is None:
            raise request.fail(protocol.BAD_REQUEST, f"unknown stream {name[:64]!r}")
        return stream

    # ---- the engine's actions -------------------------------------------------------------

    def _subscribe(self, stream: Stream, subscription: Subscription, request: Request,
                   connection: Connection, since: str | None = None) -> Mapping[str, Any] | None:
        if connection.anonymous and not stream.anonymous:
            raise stream.refuse_anonymous(request)
        authorized = stream.authorize(connection, subscription, request)
        groups = stream.groups(connection, subscription)
        limit = self.services.settings.max_subscriptions
        members = self.services.groups
        if members.count(connection.connection_id) >= limit and not members.is_member(connection.connection_id,
                                                                                       groups[0]):
            raise request.fail(protocol.LIMIT_EXCEEDED, f"at most {limit} subscriptions per connection")
        # Join first, then read (the snapshot, the log): a change between the two is not
        # missed, only seen twice.
        for group in groups:
            members.add(connection, group)
        if not stream.history:
            for payload in stream.snapshot(connection, subscription, authorized):
                self.reply(connection.connection_id, stream.frame(payload))
            return None
        return self.catchup.subscribe(stream, subscription, connection, groups, since,
                                      lambda: stream.snapshot(connection, subscription, authorized))

    def _unsubscribe(self, stream: Stream, subscription: Subscription, connection: Connection) -> None:
        for group in stream.groups(connection, subscription):
            self.services.groups.discard(connection.connection_id, group)

    def _enter(self, held: Held, request: Request, connection: Connection, changes: Changes) -> None:
        if connection.anonymous:
            raise request.fail(protocol.UNAUTHENTICATED, "sign in to enter presence")
        assert self.application.rooms is not None and self.services.presence is not None
        self.application.rooms.can_enter(connection, held.room, request, changes)
        now = self.services.clock()
        limit = self.services.settings.max_presence
        added = self.services.connections.add_presence(connection.connection_id, held.token, now=now, limit=limit)
        if added is Presenced.UNKNOWN:
            raise request.fail(protocol.UNAUTHENTICATED, NOT_REGISTERED)
        if added is Presenced.LIMIT:
            raise request.fail(protocol.LIMIT_EXCEEDED, f"at most {limit} presences per connection")
        if self.services.presence.put(connection, held, now):
            changes.rooms.add(held.room)

    def _leave(self, held: Held, request: Request, connection: Connection, changes: Changes) -> None:
        if connection.anonymous:
            raise request.fail(protocol.UNAUTHENTICATED, "sign in to enter presence")
        assert self.services.presence is not None
        now = self.services.clock()
        self.services.connections.remove_presence(connection, held.token, now=now)
        if self.services.presence.delete(connection.connection_id, held, now):
            changes.rooms.add(held.room)


__all__ = ["Action", "NOT_REGISTERED", "ProtocolError", "Route", "Router"]
