"""Catch-up: a subscribe with `since` gets what its groups logged after that cursor.

The router joins the subscription's groups first and only then reads the log, so a message
sent meanwhile is not missed, only possibly seen twice (live, and in the replay): clients
drop the second copy (binding events by the highest `seq` per model and pk, published
events by their `event` id; never by `cursor`: a message retried after a fault is logged
again under another; docs/protocol.md, `client/realtime.js`). Each logged message is
decided for this subscriber exactly as live delivery decided it when it was sent (the
logged `Delivery` and the connection's user), and frames go out one at a time, in cursor
order. Past `REPLAY_LIMIT` messages, or with a cursor older than the retention, the
subscriber gets `{"reset": true}` instead and reloads its state from a subscribe without
`since`.

Without `since`, a subscribe of a history stream gets its snapshot as any other; either
way the `ack` carries `cursor`, the position to replay from should the next frame with a
cursor never come (a subscription that hears nothing before a drop still catches up).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from realtime import history as logs
from realtime import protocol
from realtime.groups import Member
from realtime.protocol import Request
from realtime.sender import ConnectionGone, SendError

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.services import Services
    from realtime.streams import Stream, Subscription

logger = logging.getLogger(__name__)
Reply = Callable[[str, bytes], None]


def since_of(stream: Stream, request: Request) -> str | None:
    """The frame's `since`, validated (`bad_request` for one that is not a cursor, or on a
    stream that keeps no history); None when absent."""
    if "since" not in request.fields:
        return None
    if not stream.history:
        raise request.fail(protocol.BAD_REQUEST, f"stream {stream.name!r} keeps no history: subscribe without since")
    try:
        return logs.valid_cursor(request.fields["since"])
    except logs.InvalidCursor as exc:
        raise request.fail(protocol.BAD_REQUEST, str(exc)) from None


def reset_frame(stream: Stream, subscription: Subscription) -> bytes:
    """`{"reset": true}` with the subscription's parameters, so a client can tell which of its
    subscriptions of the stream it concerns."""
    return stream.frame({"reset": True, **subscription.params})


class Catchup:
    def __init__(self, services: Services, reply: Reply) -> None:
        self.services = services
        self.reply = reply

    def subscribe(self, stream: Stream, subscription: Subscription, connection: Connection, groups: list[str],
                  since: str | None, snapshot: Callable[[], Iterable[Mapping[str, Any]]]) -> Mapping[str, Any] | None:
        """After the join: the snapshot, or the replay (or a reset); returns what the ack carries."""
        history = self.services.history
        now = self.services.clock()
        if since is None:
            for payload in snapshot():
                self.reply(connection.connection_id, stream.frame(payload))
            # From the subscribe on: a message sent from now on reaches this connection live
            # (it joined already) and is logged first, so a replay from here misses nothing.
            return {"cursor": logs.position(now)} if history is not None else None
        replay = history.after(groups, since, now) if history is not None else logs.Replay(reset=True)
        if replay.reset:
            self.services.telemetry.count("ReplayReset")
            self.reply(connection.connection_id, reset_frame(stream, subscription))
            return None
        if not self._send(stream, subscription, connection, replay):
            return None
        # Everything after `since` was read: the ack may move past it, up to entries that
        # can no longer be written behind the read (`SKEW_SECONDS`).
        last = replay.entries[-1].cursor if replay.entries else since
        return {"cursor": max(last, since, logs.position(now, logs.SKEW_SECONDS))}

    def _send(self, stream: Stream, subscription: Subscription, connection: Connection, replay: logs.Replay) -> bool:
        """The replay's frames, one at a time (in order). A frame that cannot be delivered
        would leave a gap behind the frames after it: the replay stops there and the
        subscriber is told to reset instead (a gone connection is left to `reply`)."""
        member = Member(connection.connection_id, connection.user_id)
        sent = 0
        try:
            for entry in replay.entries:
                frame = entry.delivery.frame_for(member)
                if frame is not None:
                    self.services.sender.send(connection.connection_id, frame)
                    sent += 1
        except ConnectionGone:
            self.reply(connection.connection_id, reset_frame(stream, subscription))  # finds it gone: removes it
            return False
        except SendError:
            logger.warning("replay stopped: a frame could not be delivered", extra={"recipient": connection.connection_id})
            self.services.telemetry.count("ReplayReset")
            self.reply(connection.connection_id, reset_frame(stream, subscription))
            return False
        finally:
            self.services.telemetry.count("Replayed", sent)
        return True
