"""The connection lifecycle: connect, receive, disconnect and the sweep.

Like a Django Channels consumer, each lifecycle step is one small method; the Lambda
handlers only translate API Gateway events into calls here. Every step that changes
what others see (the user counter, a roster) broadcasts the change before it returns.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime import keys, protocol
from realtime.auth import AuthError, Identity, TokenVerifier, authenticate
from realtime.broadcast import Access, Broadcaster, BroadcastReport, FrameDelivery
from realtime.config import Settings
from realtime.connections import Connection, Connections
from realtime.counter import UserCounter
from realtime.documents import Document, Documents
from realtime.groups import Groups
from realtime.presence import Held, Presence, Roster
from realtime.protocol import ProtocolError, Request
from realtime.sender import ConnectionGone, Sender, SendError
from realtime.telemetry import CountingTelemetry, Telemetry

logger = logging.getLogger(__name__)

NOT_REGISTERED = "connection not registered; reconnect"
#: Documents-list snapshots are split into frames below API Gateway's 128 KB message limit.
SNAPSHOT_FRAME_BYTES = 96 * 1024
#: Gone recipients one broadcast removes at most. When many sockets close at once, every
#: `$disconnect` finds the same gone connections: each removes a random share (their own
#: `$disconnect`, or the sweep, removes the rest), so no handler's work grows with the group
#: and the handlers do not all remove the same ones.
MAX_INLINE_REMOVALS = 25


def access_of(document: Document) -> Access:
    return Access(document.public, document.owner, document.readers)


@dataclass
class Changes:
    """What a step changed that others must hear about."""

    counter: bool = False
    documents: set[str] = field(default_factory=set)
    #: Documents this step already read, so publishing does not read them again.
    known: dict[str, Document] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.counter or bool(self.documents)

    def merge(self, other: Changes) -> None:
        self.counter |= other.counter
        self.documents |= other.documents
        self.known.update(other.known)


@dataclass
class SweepReport:
    checked: int = 0
    removed: int = 0
    expired_presence: int = 0
    counter_repaired: bool = False


class Realtime:
    """The application: one instance per Lambda container, built by `realtime.runtime`."""

    def __init__(
        self,
        *,
        settings: Settings,
        connections: Connections,
        groups: Groups,
        presence: Presence,
        counter: UserCounter,
        documents: Documents,
        broadcaster: Broadcaster,
        sender: Sender,
        verifier: TokenVerifier | Callable[[], TokenVerifier],
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.connections = connections
        self.groups = groups
        self.presence = presence
        self.counter = counter
        self.documents = documents
        self.broadcaster = broadcaster
        self.sender = sender
        self._verifier = verifier
        self.telemetry: Telemetry = telemetry or CountingTelemetry()
        self.clock = clock

    @property
    def verifier(self) -> TokenVerifier:
        """Built on first use: only `$connect` verifies tokens (and may read the secret)."""
        if not isinstance(self._verifier, TokenVerifier):
            self._verifier = self._verifier()
        return self._verifier

    # ---- lifecycle -------------------------------------------------------------------

    def connect(self, connection_id: str, *, query: Mapping[str, str] | None,
                headers: Mapping[str, str] | None, connected_at_ms: int) -> Identity:
        """Authenticate and register; raises `AuthError` to refuse the handshake."""
        try:
            identity = authenticate(query, headers, self.verifier, self.settings.allowed_origins)
        except AuthError as exc:
            self.telemetry.count(f"ConnectRefused{exc.status}")
            raise
        self.connections.register(connection_id, user_id=identity.user_id, name=identity.name,
                                  connected_at_ms=connected_at_ms, now=self.clock())
        self.telemetry.count("Connects")
        if identity.user_id is not None and self.counter.join(identity.user_id, connection_id):
            self.publish(Changes(counter=True))
        return identity

    def receive(self, connection_id: str, body: str | bytes | None, *, is_base64: bool = False) -> None:
        """Handle one client frame; every outcome is an answer on the socket, never an exception."""
        request_id: protocol.RequestId = None
        changes = Changes()
        try:
            request = protocol.parse(body, self.settings.phases, is_base64=is_base64,
                                     max_bytes=self.settings.max_frame_bytes)
            request_id = request.id
            self.telemetry.count(f"Messages.{request.action}")
            now = self.clock()
            connection = self.connections.touch(connection_id, now)
            if connection is None:
                raise ProtocolError(protocol.UNAUTHENTICATED, NOT_REGISTERED, request_id)
            if connection.presence:
                changes.documents |= self.presence.refresh(connection, now)
            getattr(self, f"_on_{request.action}")(connection, request, changes)
            self.publish(changes)  # others hear of the change before the sender's ack
            changes = Changes()
            if request_id is not None:
                self._reply(connection_id, protocol.ack(request_id))
        except ProtocolError as exc:
            self.telemetry.count(f"Errors.{exc.code}")
            echo = exc.request_id if exc.request_id is not None else request_id
            self._reply(connection_id, protocol.error(exc.code, exc.message, echo))
        except Exception:
            logger.exception("frame failed")
            self.telemetry.count(f"Errors.{protocol.INTERNAL}")
            self._reply(connection_id, protocol.error(protocol.INTERNAL, "internal error", request_id))
        try:  # a second chance for changes a failed publish left over; the frame is answered already
            self.publish(changes)
        except Exception:
            logger.exception("changes could not be published")
            self.telemetry.count("PublishFailed")

    def disconnect(self, connection_id: str) -> None:
        """Remove the connection and everything it holds, and tell the others."""
        self.telemetry.count("Disconnects")
        self.publish(self.remove(connection_id))

    def sweep(self) -> SweepReport:
        """Heal what missed `$disconnect` calls left behind (run every minute).

        Connections silent for `PRESENCE_TTL_SECONDS` are asked about with GET @connections:
        410 (or past the 2-hour limit) removes them; a live answer keeps them. Expired
        presence items are deleted and the counter is recounted.
        """
        now = self.clock()
        report = SweepReport()
        changes = Changes()
        for connection_id in self.connections.stale(now - self.settings.presence_ttl_seconds):
            report.checked += 1
            record = self.connections.get(connection_id)
            if record is None:
                continue
            if record.expired(now) or self._is_gone(connection_id):
                changes.merge(self.remove(connection_id))
                # A `$disconnect` that died after uncounting the user never announced it:
                # re-announce the counter whenever a signed-in connection is swept.
                changes.counter |= record.user_id is not None
                report.removed += 1
        for connection_id, held in self.presence.expired(now):
            self.presence.remove(connection_id, [held])
            changes.documents.add(held.slug)
            report.expired_presence += 1
        if self.counter.reconcile() is not None:
            report.counter_repaired = True
            changes.counter = True
        self.telemetry.count("SweepRemoved", report.removed)
        self.publish(changes)
        return report

    # ---- frames ----------------------------------------------------------------------

    def _on_heartbeat(self, connection: Connection, request: Request, changes: Changes) -> None:
        """Nothing beyond what every frame does: last seen and presence pushed forward."""

    def _on_subscribe(self, connection: Connection, request: Request, changes: Changes) -> None:
        cid = connection.connection_id
        if request.stream == protocol.USERS:
            self.groups.add(connection, keys.USERS_GROUP)
            self._reply(cid, protocol.encode_frame(protocol.USERS, {"users": self.counter.value()}))
        elif request.stream == protocol.DOCUMENTS:
            self.groups.add(connection, keys.DOCUMENTS_GROUP)
            for frame in self._documents_snapshot(connection.user_id):
                self._reply(cid, frame)
        elif request.stream == protocol.DOCUMENT:
            assert request.document is not None
            document = self._readable(connection, request.document)
            self.groups.add(connection, keys.document_group(document.slug))
            roster = self.presence.roster(document.slug, self.clock())
            self._reply(cid, self._document_frame(document, roster))
        else:
            if connection.anonymous:
                raise ProtocolError(protocol.UNAUTHENTICATED, "sign in to receive notifications", request.id)
            self.groups.add(connection, keys.NOTIFICATIONS_GROUP)

    def _on_unsubscribe(self, connection: Connection, request: Request, changes: Changes) -> None:
        group = {
            protocol.USERS: keys.USERS_GROUP,
            protocol.DOCUMENTS: keys.DOCUMENTS_GROUP,
            protocol.NOTIFICATIONS: keys.NOTIFICATIONS_GROUP,
        }.get(request.stream or "") or keys.document_group(request.document or "")
        self.groups.discard(connection.connection_id, group)

    def _on_enter(self, connection: Connection, request: Request, changes: Changes) -> None:
        held = self._presence_request(connection, request)
        document = self._readable(connection, held.slug)
        if not self.connections.add_presence(connection.connection_id, held.token):
            raise ProtocolError(protocol.UNAUTHENTICATED, NOT_REGISTERED, request.id)
        if self.presence.put(connection, held, self.clock()):
            changes.documents.add(held.slug)
            changes.known[held.slug] = document

    def _on_leave(self, connection: Connection, request: Request, changes: Changes) -> None:
        held = self._presence_request(connection, request)
        self.connections.remove_presence(connection.connection_id, held.token)
        if self.presence.delete(connection.connection_id, held, self.clock()):
            changes.documents.add(held.slug)

    # ---- helpers ---------------------------------------------------------------------

    def _presence_request(self, connection: Connection, request: Request) -> Held:
        if connection.anonymous:
            raise ProtocolError(protocol.UNAUTHENTICATED, "sign in to enter presence", request.id)
        assert request.document is not None and request.phase is not None
        return Held(request.document, request.phase)

    def _readable(self, connection: Connection, slug: str) -> Document:
        document = self.documents.get(slug)
        if document is None:
            raise ProtocolError(protocol.NOT_FOUND, "no such document", None)
        if not document.readable_by(connection.user_id):
            raise ProtocolError(protocol.FORBIDDEN, "you may not read this document", None)
        return document

    def _documents_snapshot(self, user_id: str | None) -> list[bytes]:
        """The full documents list for one reader, split into frames if it is large."""
        now = self.clock()
        rosters = self.presence.rosters(now)
        entries = [
            {"document": d.slug, "title": d.title, "phases": rosters.get(d.slug) or self.presence.empty_roster()}
            for d in sorted(self.documents.all(), key=lambda d: d.slug)
            if d.readable_by(user_id)
        ]
        frames: list[bytes] = []
        chunk: list[dict[str, Any]] = []
        size = 0
        for entry in entries:
            entry_size = len(protocol.encode_frame(protocol.DOCUMENTS, {"documents": [entry]}))
            if chunk and size + entry_size > SNAPSHOT_FRAME_BYTES:
                frames.append(self._documents_frame(chunk, full=not frames))
                chunk, size = [], 0
            chunk.append(entry)
            size += entry_size
        frames.append(self._documents_frame(chunk, full=not frames))
        return frames

    @staticmethod
    def _documents_frame(entries: list[dict[str, Any]], *, full: bool) -> bytes:
        return protocol.encode_frame(protocol.DOCUMENTS, {"documents": entries, "full": full})

    @staticmethod
    def _document_frame(document: Document, roster: Roster) -> bytes:
        return protocol.encode_frame(protocol.DOCUMENT,
                                     {"document": document.slug, "title": document.title, "phases": roster})

    def _reply(self, connection_id: str, frame: bytes) -> None:
        try:
            self.sender.send(connection_id, frame)
        except ConnectionGone:
            self.telemetry.count("GoneRemoved")
            self.publish(self.remove(connection_id))
        except SendError:
            logger.warning("reply could not be delivered", extra={"recipient": connection_id})
            self.telemetry.count("SendFailed")

    def _is_gone(self, connection_id: str) -> bool:
        try:
            return self.sender.get_connection(connection_id) is None
        except Exception:  # unsure (throttled, timed out): keep it until a later sweep knows
            logger.warning("could not check connection", extra={"recipient": connection_id})
            return False

    # ---- removal and broadcasting ----------------------------------------------------

    def remove(self, connection_id: str) -> Changes:
        """Delete a connection and all it holds; the record goes last so a crash leaves it for the sweep."""
        holdings = self.connections.holdings(connection_id)
        record = holdings.connection
        held = [Held.from_token(token) for token in record.presence] if record else []
        # Presence and memberships share the table: one batch for both.
        self.connections.delete_keys(self.presence.keys(connection_id, held)
                                     + self.connections.membership_keys(connection_id, holdings.groups))
        counter_changed = bool(record and record.user_id and self.counter.leave(record.user_id, connection_id))
        if record is not None:
            self.connections.delete(connection_id)
        return Changes(counter=counter_changed, documents={h.slug for h in held})

    def publish(self, changes: Changes) -> None:
        """Broadcast the counter and roster changes. Recipients found gone are removed
        (`remove_gone`) and that removal is broadcast once more; what this second broadcast
        finds gone is left to those connections' own `$disconnect` or to the sweep."""
        report = self._broadcast(changes)
        followup = self.remove_gone(report.gone)
        if followup:
            self._broadcast(followup)

    def remove_gone(self, gone: list[str]) -> Changes:
        """Remove up to `MAX_INLINE_REMOVALS` of the connections a broadcast found gone (410),
        chosen at random; return what their removal changed."""
        unique = sorted(set(gone))
        chosen = random.sample(unique, MAX_INLINE_REMOVALS) if len(unique) > MAX_INLINE_REMOVALS else unique
        self.telemetry.count("GoneRemoved", len(chosen))
        changes = Changes()
        for connection_id in chosen:
            changes.merge(self.remove(connection_id))
        return changes

    def _broadcast(self, changes: Changes) -> BroadcastReport:
        report = BroadcastReport()
        if changes.counter:
            frame = protocol.encode_frame(protocol.USERS, {"users": self.counter.value()})
            report.add(self.broadcaster.send(keys.USERS_GROUP, FrameDelivery(frame)))
        for slug in sorted(changes.documents):
            report.add(self._publish_roster(slug, changes.known.get(slug)))
        self.telemetry.count("SendFailed", report.failed)
        return report

    def _publish_roster(self, slug: str, document: Document | None = None) -> BroadcastReport:
        report = BroadcastReport()
        document = document or self.documents.get(slug)
        if document is None:
            return report
        access = access_of(document)
        roster = self.presence.roster(slug, self.clock())
        report.add(self.broadcaster.send(keys.document_group(slug),
                                         FrameDelivery(self._document_frame(document, roster), access)))
        entry = {"document": slug, "title": document.title, "phases": roster}
        report.add(self.broadcaster.send(keys.DOCUMENTS_GROUP,
                                         FrameDelivery(self._documents_frame([entry], full=False), access)))
        return report
