"""The concurrency monitor: who is viewing, editing or reviewing which document.

Presence rooms are documents and their states the phases (`enter`/`leave` frames name
a `document` and a `phase`). Two state streams show it: `documents`, the list of every
document this connection may read with its roster, and `document`, one document's
roster. Both follow presence changes and, through the documents binding, creations,
renames, deletions and visibility changes: a reader who loses access gets `removed`
(and leaves the `document` group).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from realtime import keys, protocol
from realtime.bindings import Change
from realtime.broadcast import BroadcastReport
from realtime.deliveries import ChangeDelivery, FrameDelivery
from realtime.presence import Roster
from realtime.protocol import Request
from realtime.rooms import Rooms
from realtime.streams import Stream, Subscription

from monitor.documents import DocumentBinding, valid_slug
from monitor.models import Document

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.publishing import Changes

DOCUMENTS, DOCUMENT = "documents", "document"
#: Documents-list snapshots are split into frames below API Gateway's 128 KB message limit.
SNAPSHOT_FRAME_BYTES = 96 * 1024


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
        changes.memo[(DOCUMENT, room)] = self.documents.readable(connection, room, request)


class _Monitor(Stream):
    """What the two monitor streams share: a document's roster, read once per step."""

    def __init__(self, documents: DocumentBinding) -> None:
        self.documents = documents

    def rostered(self, room: str, changes: Changes) -> tuple[Document | None, Roster]:
        memo = changes.memo
        if (DOCUMENT, room) not in memo:
            memo[(DOCUMENT, room)] = self.documents.get(room)
        document = memo[(DOCUMENT, room)]
        if document is None:
            return None, {}
        if ("roster", room) not in memo:
            memo[("roster", room)] = self.presence.roster(room, self.services.clock())
        return document, memo[("roster", room)]

    @property
    def presence(self) -> Any:
        assert self.services.presence is not None
        return self.services.presence

    def entry(self, document: Document, roster: Roster) -> dict[str, Any]:
        return {"document": document.slug, "title": document.title or "", "phases": roster}

    def announce(self, changes: Changes) -> BroadcastReport:
        report = BroadcastReport()
        for room in sorted(changes.rooms):
            document, roster = self.rostered(room, changes)
            if document is not None:
                frame = self.frame(self.state(self.entry(document, roster)))
                report.add(self.services.broadcaster.send(self.group(room),
                                                          FrameDelivery(frame, self.documents.audience(document))))
        return report

    def document_changed(self, change: Change[Document]) -> BroadcastReport:
        """After a write of the documents table: readers who gain access (or keep it across a
        rename) get the entry, readers who lose it get `removed`."""
        old, new = change.old, change.new
        old_audience = self.documents.audience(old) if old is not None else None
        new_audience = self.documents.audience(new) if new is not None else None
        renamed = old is not None and new is not None and (old.title or "") != (new.title or "")
        if not renamed and old_audience == new_audience:
            return BroadcastReport()
        slug = (new or old).slug  # type: ignore[union-attr]
        roster = self.presence.roster(slug, self.services.clock()) if new is not None else self.presence.empty_roster()
        entry = self.frame(self.state(self.entry(new, roster))) if new is not None else None
        delivery = ChangeDelivery(old_audience, new_audience, gained=entry, kept=entry if renamed else None,
                                  lost=self.frame(self.state({"document": slug, "removed": True})),
                                  leave_when_lost=self.leaves_when_lost)
        return self.services.broadcaster.send(self.group(slug), delivery)

    # What the two streams differ in.
    leaves_when_lost = False

    def group(self, slug: str) -> str:
        raise NotImplementedError

    def state(self, entry: Mapping[str, Any]) -> Mapping[str, Any]:
        raise NotImplementedError


class DocumentList(_Monitor):
    """`documents`: every readable document with its roster; partial updates after changes."""

    name = DOCUMENTS

    def group(self, slug: str) -> str:
        return DOCUMENTS

    def state(self, entry: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"documents": [entry], "full": False}

    def snapshot(self, connection: Connection, subscription: Subscription, authorized: Any = None,
                 ) -> Iterable[Mapping[str, Any]]:
        """The full list for one reader, split into frames if it is large (the first is `full`)."""
        rosters = self.presence.rosters(self.services.clock())
        entries = [self.entry(d, rosters.get(d.slug) or self.presence.empty_roster())
                   for d in sorted(self.documents.all(), key=lambda d: d.slug)
                   if self.documents.audience(d).allows(connection.user_id)]
        payloads: list[dict[str, Any]] = []
        chunk: list[dict[str, Any]] = []
        size = 0
        for entry in entries:
            entry_size = len(protocol.encode_frame(DOCUMENTS, {"documents": [entry]}))
            if chunk and size + entry_size > SNAPSHOT_FRAME_BYTES:
                payloads.append({"documents": chunk, "full": not payloads})
                chunk, size = [], 0
            chunk.append(entry)
            size += entry_size
        payloads.append({"documents": chunk, "full": not payloads})
        return payloads


class DocumentRoster(_Monitor):
    """`document` with a `document` slug: that document's roster, while it may be read."""

    name = DOCUMENT
    leaves_when_lost = True

    def group(self, slug: str) -> str:
        return document_group(slug)

    def state(self, entry: Mapping[str, Any]) -> Mapping[str, Any]:
        return entry

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
        roster = self.presence.roster(document.slug, self.services.clock())
        return [{**self.entry(document, roster), "data": self.documents.data(document)}]
