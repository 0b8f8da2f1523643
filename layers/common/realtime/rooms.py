"""Presence, declared: what `enter` and `leave` frames name, and who may enter.

The engine stores presence generically (`realtime.presence`: rooms, states,
connections, expiry). An application declares one `Rooms`: the frame fields that name
the room and the state, the states there are, and the check run before entering. The
reference application's rooms are documents (`{"action": "enter", "document": "roadmap",
"phase": "edit"}`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from realtime import keys, protocol
from realtime.presence import Held
from realtime.protocol import Request

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.publishing import Changes
    from realtime.services import Services


class Rooms:
    #: The frame field naming the room, and the one naming the state.
    room_field: ClassVar[str] = "room"
    state_field: ClassVar[str] = "state"

    services: Services

    def __init__(self, states: tuple[str, ...]) -> None:
        if not states:
            raise ValueError("presence needs at least one state")
        self.states = states

    def bind(self, services: Services) -> None:
        self.services = services

    def held(self, request: Request) -> Held:
        """The room and state a frame names, validated (raise `bad_request`)."""
        try:
            room = self.room(request.fields.get(self.room_field))
        except keys.InvalidKey as exc:
            raise request.fail(protocol.BAD_REQUEST, str(exc)) from None
        state = request.fields.get(self.state_field)
        if not isinstance(state, str):
            raise request.fail(protocol.BAD_REQUEST, f"{self.state_field} must be a string")
        if state not in self.states:
            raise request.fail(protocol.BAD_REQUEST, f"unknown {self.state_field} {state[:64]!r}; "
                                                     f"expected one of {', '.join(self.states)}")
        return Held(room, state)

    def room(self, value: object) -> str:
        """A room name from a frame; raise `keys.InvalidKey` if it cannot be one."""
        return keys.valid_key(value, self.room_field)

    def can_enter(self, connection: Connection, room: str, request: Request, changes: Changes) -> None:
        """Raise `ProtocolError` (not_found, forbidden) if the connection may not enter `room`."""
