"""The concurrency monitor's rooms and the `document` stream: who is viewing, editing or
reviewing one document.

Presence rooms are documents and their states the phases (`enter`/`leave` frames name a
`document` and a `phase`). The `document` stream answers a subscribe with the roster and
the document's visible fields, then follows the room's coalesced announcements (at most
one roster per interval, at most `ROSTER_LIMIT` users per phase plus the counts); a
reader who loses access is told `removed` at once and leaves the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from realtime import keys, protocol
from realtime.bindings import Change
from realtime.broadcast import BroadcastReport
from realtime.deliveries import ChangeDelivery, FrameDelivery
from realtime.presence import RoomState
from realtime.protocol import Request
from realtime.rooms import Rooms
from realtime.streams import Stream, Subscription

from monitor.documents import DocumentBinding, valid_slug
from monitor.frames import entry, fit
from monitor.models import Document

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.publishing import Changes

DOCUMENT = "document"


def document_group(slug: str) -> str:
    return keys.group(DOCUMENT, slug)


class DocumentRooms(Rooms):
    """`{"action": "enter", "document": "<slug>", "phase": "<phase>"}`: readers may enter."""

    room_field = "document"
    state_field = "phase"

    def __init__(self, phases: tuple[str, ...], documents: DocumentBinding) -> None:
        super().__init__(phases)
        self.documents = documents

    def room(self, value: object) -> str:
        return valid_slug(value)

    def can_enter(self, connection: Connection, room: str, request: Request, changes: Changes) -> None:
        self.documents.readable(connection, room, request)


class DocumentRoster(Stream):
    """`document` with a `document` slug: that document's roster, while it may be read."""

    name = DOCUMENT

    def __init__(self, documents: DocumentBinding) -> None:
        self.documents = documents

    def payload(self, document: Document, state: RoomState) -> dict[str, Any]:
        return fit(entry(document.slug, document.title, state.counts, state.roster, self.services.settings.roster_limit))

    def room_state(self, slug: str) -> RoomState:
        assert self.services.presence is not None
        return self.services.presence.room(slug, self.services.clock())

    # ---- subscribing -----------------------------------------------------------------------

    def subscription(self, request: Request) -> Subscription:
        try:
            slug = valid_slug(request.fields.get("document"))
        except keys.InvalidKey as exc:
            raise request.fail(protocol.BAD_REQUEST, str(exc)) from None
        return Subscription(document_group(slug), {"document": slug})

    def authorize(self, connection: Connection, subscription: Subscription, request: Request) -> Document:
        return self.documents.readable(connection, subscription.params["document"], request)

    def snapshot(self, connection: Connection, subscription: Subscription, authorized: Any = None,
                 ) -> Iterable[Mapping[str, Any]]:
        """The roster, and the document's visible fields (the page shows them from the start)."""
        document: Document = authorized
        return [{**self.payload(document, self.room_state(document.slug)), "data": self.documents.data(document)}]

    # ---- following changes -------------------------------------------------------------------

    def room_changed(self, state: RoomState, *, summary_changed: bool, roster_changed: bool) -> BroadcastReport:
        if not roster_changed:
            return BroadcastReport()
        document = self.documents.get(state.room)
        if document is None:
            return BroadcastReport()
        frame = self.frame(self.payload(document, state))
        return self.services.broadcaster.send(document_group(state.room),
                                              FrameDelivery(frame, self.documents.audience(document)))

    def document_changed(self, change: Change[Document]) -> BroadcastReport:
        """Readers who lose access are told at once and leave; a rename shows at once."""
        old, new = change.old, change.new
        old_audience = self.documents.audience(old) if old is not None else None
        new_audience = self.documents.audience(new) if new is not None else None
        renamed = old is not None and new is not None and (old.title or "") != (new.title or "")
        if not renamed and old_audience == new_audience:
            return BroadcastReport()
        slug = (new or old).slug  # type: ignore[union-attr]
        kept = self.frame(self.payload(new, self.room_state(slug))) if renamed and new is not None else None
        delivery = ChangeDelivery(old_audience, new_audience, kept=kept,
                                  lost=self.frame({"document": slug, "removed": True}), leave_when_lost=True)
        return self.services.broadcaster.send(document_group(slug), delivery)
