"""Deliveries: what each member of a group receives from one broadcast.

A delivery decides per member (by its user id) which frame, if any, it gets, and
serialises to a queue message so that pages of a large group delivered later from the
fan-out queue apply the very same decision. Two kinds cover every broadcast:

- `FrameDelivery`: one frame for every member, optionally only those in an audience
  (state frames: the counter, a roster, a list entry);
- `ChangeDelivery`: an item changed, so each member's frame follows from whether it
  could read the old version and can read the new one (Channels-style binding events:
  gained access -> create, kept it -> update, lost it -> delete).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from realtime import audience as audiences
from realtime.audience import Audience

if TYPE_CHECKING:
    from realtime.groups import Member


class Delivery(Protocol):
    """What each member of a group receives.

    A delivery may also define `drop_after(member) -> bool`: members for whom it is true
    leave the group once their frame is sent (a reader who lost access), and
    `redeliver = True` when recipients whose posts failed should get it later (events;
    never state, which a late copy would overwrite with something older).
    """

    kind: str

    def frame_for(self, member: Member) -> bytes | None: ...

    def to_message(self) -> dict[str, Any]: ...


def _text(frame: bytes | None) -> str | None:
    return frame.decode() if frame is not None else None


def _bytes(text: Any) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("a frame in a queued delivery must be a string")
    return text.encode()


@dataclass(frozen=True)
class FrameDelivery:
    """The same frame for every member, or only for those `audience` allows."""

    frame: bytes
    audience: Audience | None = None
    kind: str = field(default="frame", init=False)

    def frame_for(self, member: Member) -> bytes | None:
        if self.audience is not None and not self.audience.allows(member.user_id):
            return None
        return self.frame

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "frame": self.frame.decode(), "audience": audiences.to_dict(self.audience)}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> FrameDelivery:
        frame = _bytes(data["frame"])
        assert frame is not None
        return cls(frame, audiences.from_dict(data.get("audience")))


@dataclass(frozen=True)
class EventDelivery(FrameDelivery):
    """A `FrameDelivery` of an event (a published event): a recipient whose post failed gets
    it again later, as a notification would."""

    kind: str = field(default="event", init=False)
    redeliver: bool = field(default=True, init=False)


@dataclass(frozen=True)
class ChangeDelivery:
    """An item changed from a version `old` could read to one `new` can (None: absent)."""

    old: Audience | None
    new: Audience | None
    gained: bytes | None = None  # for members who could not read it and now can
    kept: bytes | None = None  # for members who could and still can (None: nothing to say)
    lost: bytes | None = None  # for members who could and no longer can
    #: Members who may not read the new version leave the group after their frame.
    leave_when_lost: bool = False
    #: Anonymous connections get nothing (binding notifications are for signed-in users).
    signed_in_only: bool = False
    redeliver: bool = False
    kind: str = field(default="change", init=False)

    def frame_for(self, member: Member) -> bytes | None:
        if self.signed_in_only and member.user_id is None:
            return None
        could, can = audiences.allows(self.old, member.user_id), audiences.allows(self.new, member.user_id)
        if can and not could:
            return self.gained
        if could and not can:
            return self.lost
        if could and can:
            return self.kept
        return None

    def drop_after(self, member: Member) -> bool:
        return self.leave_when_lost and not audiences.allows(self.new, member.user_id)

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "old": audiences.to_dict(self.old), "new": audiences.to_dict(self.new),
                "gained": _text(self.gained), "kept": _text(self.kept), "lost": _text(self.lost),
                "leave_when_lost": self.leave_when_lost, "signed_in_only": self.signed_in_only,
                "redeliver": self.redeliver}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> ChangeDelivery:
        return cls(audiences.from_dict(data.get("old")), audiences.from_dict(data.get("new")),
                   _bytes(data.get("gained")), _bytes(data.get("kept")), _bytes(data.get("lost")),
                   bool(data.get("leave_when_lost")), bool(data.get("signed_in_only")), bool(data.get("redeliver")))


_KINDS: dict[str, Callable[[dict[str, Any]], Delivery]] = {
    "frame": FrameDelivery.from_message,
    "event": EventDelivery.from_message,
    "change": ChangeDelivery.from_message,
}


def register_delivery(kind: str, factory: Callable[[dict[str, Any]], Delivery]) -> None:
    """Let a queue consumer rebuild deliveries of an application's own `kind`."""
    _KINDS[kind] = factory


def delivery_from_message(data: dict[str, Any]) -> Delivery:
    if not isinstance(data, dict):
        raise ValueError("a delivery must be an object")
    try:
        factory = _KINDS[data["kind"]]
    except KeyError:
        raise ValueError(f"unknown delivery kind {data.get('kind')!r}") from None
    return factory(data)
