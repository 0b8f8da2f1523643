"""Data binding: every write to the documents table reaches the browsers that may see it.

The documents table's stream feeds `Notifier.handle_record`. Like Django Channels 1's
binding, each recipient's frame is decided from who could read the old image and who
can read the new one: gaining access is a `create`, losing it a `delete` (carrying only
the slug), keeping it an `update` (only when a whitelisted field changed). Only the
fields in `DOCUMENT_FIELDS` ever leave the server.

The same decision keeps the concurrency monitor in sync: the `documents` list and the
`document` stream hear of creations, renames, deletions and visibility changes, and
subscribers who lose access are told (`removed`) and dropped from the document's group.

Every decision is a serialisable `Delivery`, so pages of a large group delivered later
from the fan-out queue apply exactly the decision taken for the first page.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from realtime import keys, protocol
from realtime.broadcast import Access, BroadcastReport, QueuedPage, register_delivery
from realtime.consumer import Realtime, access_of
from realtime.documents import Document
from realtime.groups import Member
from realtime.presence import Roster

NOTIFICATIONS_STREAM = "notifications"
MODEL = "document"


class InvalidRecord(ValueError):
    """A stream record that cannot be interpreted (it goes to the on-failure destination)."""


def jsonable(value: Any) -> Any:
    """DynamoDB values as JSON: sets become sorted lists, binary becomes base64."""
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (bytes, bytearray)):  # boto3 Binary
        return base64.b64encode(bytes(value.value)).decode()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Change:
    """One stream record, reduced to what the decisions need."""

    slug: str
    seq: str
    old: Document | None
    new: Document | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Change:
        """From a Lambda DynamoDB-stream record (INSERT, MODIFY or REMOVE)."""
        name = record.get("eventName")
        data = record.get("dynamodb")
        if name not in ("INSERT", "MODIFY", "REMOVE") or not isinstance(data, Mapping):
            raise InvalidRecord(f"not a DynamoDB stream record: eventName={name!r}")
        slug = (data.get("Keys") or {}).get("slug", {}).get("S")
        seq = data.get("SequenceNumber")
        if not isinstance(slug, str) or not slug or not isinstance(seq, str):
            raise InvalidRecord("stream record without a slug key or a sequence number")
        old = data.get("OldImage")
        new = data.get("NewImage")
        if name != "REMOVE" and not new:
            raise InvalidRecord("stream record without a new image (is the stream NEW_AND_OLD_IMAGES?)")
        return cls(
            slug=slug,
            seq=seq,
            old=Document.from_item({"slug": {"S": slug}, **old}) if old and name != "INSERT" else None,
            new=Document.from_item({"slug": {"S": slug}, **new}) if new and name != "REMOVE" else None,
        )


def _access(document: Document | None) -> Access | None:
    return access_of(document) if document is not None else None


def _allows(access: Access | None, user_id: str | None) -> bool:
    return access is not None and access.allows(user_id)


def _access_dict(access: Access | None) -> dict[str, Any] | None:
    return access.to_dict() if access is not None else None


def _access_from(data: dict[str, Any] | None) -> Access | None:
    return Access.from_dict(data) if data else None


@dataclass(frozen=True)
class NotificationDelivery:
    """The `notifications` stream: create, update or delete per recipient."""

    slug: str
    seq: str
    old: Access | None
    new: Access | None
    data: dict[str, Any]
    fields_changed: bool
    kind: str = field(default="notification", init=False)
    #: An event: recipients whose posts failed get it later (clients dedupe on `seq`).
    redeliver: bool = field(default=True, init=False)

    def frame_for(self, member: Member) -> bytes | None:
        if member.user_id is None:
            return None  # anonymous connections never get notifications
        could, can = _allows(self.old, member.user_id), _allows(self.new, member.user_id)
        if can and not could:
            return self._frame("create", self.data)
        if could and not can:
            return self._frame("delete", {"slug": self.slug})
        if could and can and self.fields_changed:
            return self._frame("update", self.data)
        return None

    def _frame(self, action: str, data: dict[str, Any]) -> bytes:
        return protocol.encode_frame(NOTIFICATIONS_STREAM, {
            "action": action, "model": MODEL, "pk": self.slug, "data": data, "seq": self.seq,
        })

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "slug": self.slug, "seq": self.seq, "old": _access_dict(self.old),
                "new": _access_dict(self.new), "data": self.data, "fields_changed": self.fields_changed}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> NotificationDelivery:
        return cls(data["slug"], data["seq"], _access_from(data["old"]), _access_from(data["new"]),
                   data["data"], bool(data["fields_changed"]))


@dataclass(frozen=True)
class MonitorDelivery:
    """The concurrency monitor (`documents` list or `document` stream) after a document write.

    Readers who gain access, or who keep it across a rename, get the document's entry;
    readers who lose it get `removed` (and, on the `document` stream, leave its group).
    """

    slug: str
    stream: str  # "documents" or "document"
    old: Access | None
    new: Access | None
    title: str
    roster: Roster
    renamed: bool
    kind: str = field(default="monitor", init=False)

    def frame_for(self, member: Member) -> bytes | None:
        could, can = _allows(self.old, member.user_id), _allows(self.new, member.user_id)
        if could and not can:
            return self._frame({"document": self.slug, "removed": True})
        if can and (not could or self.renamed):
            return self._frame({"document": self.slug, "title": self.title, "phases": self.roster})
        return None

    def drop_after(self, member: Member) -> bool:
        """Subscribers of the document who may no longer read it leave its group."""
        return self.stream == protocol.DOCUMENT and not _allows(self.new, member.user_id)

    def _frame(self, entry: dict[str, Any]) -> bytes:
        if self.stream == protocol.DOCUMENTS:
            return protocol.encode_frame(protocol.DOCUMENTS, {"documents": [entry], "full": False})
        return protocol.encode_frame(protocol.DOCUMENT, entry)

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "slug": self.slug, "stream": self.stream, "old": _access_dict(self.old),
                "new": _access_dict(self.new), "title": self.title, "roster": self.roster, "renamed": self.renamed}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> MonitorDelivery:
        return cls(data["slug"], data["stream"], _access_from(data["old"]), _access_from(data["new"]),
                   data["title"], data["roster"], bool(data["renamed"]))


register_delivery("notification", NotificationDelivery.from_message)
register_delivery("monitor", MonitorDelivery.from_message)


class Notifier:
    """Turns document changes into deliveries and fans them out through the app's broadcaster."""

    def __init__(self, app: Realtime) -> None:
        self.app = app
        self.fields = app.settings.document_fields

    def handle_record(self, record: Mapping[str, Any]) -> BroadcastReport:
        """One DynamoDB stream record; raises only for what a retry can fix or nothing can interpret."""
        change = Change.from_record(record)
        report = BroadcastReport()
        old_data = change.old.whitelisted(self.fields) if change.old else {}
        new_data = change.new.whitelisted(self.fields) if change.new else {}
        old_access, new_access = _access(change.old), _access(change.new)
        notification = NotificationDelivery(change.slug, change.seq, old_access, new_access,
                                            jsonable(new_data), jsonable(old_data) != jsonable(new_data))
        report.add(self.app.broadcaster.send(keys.NOTIFICATIONS_GROUP, notification))

        renamed = bool(change.old and change.new and change.old.title != change.new.title)
        if renamed or old_access != new_access:
            report.add(self._monitor(change, old_access, new_access, renamed))
        self._cleanup(report)
        return report

    def handle_page(self, body: str) -> BroadcastReport:
        """One fan-out queue message: a range of a group's members, or recipients to try again."""
        try:
            queued = QueuedPage.parse(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRecord(f"not a fan-out page: {exc}") from None
        report = self.app.broadcaster.send_queued(queued)
        self._cleanup(report)
        return report

    def _monitor(self, change: Change, old: Access | None, new: Access | None, renamed: bool) -> BroadcastReport:
        report = BroadcastReport()
        title = change.new.title if change.new else ""
        roster = self.app.presence.roster(change.slug, self.app.clock()) if change.new else self.app.presence.empty_roster()
        for stream, group in ((protocol.DOCUMENTS, keys.DOCUMENTS_GROUP),
                              (protocol.DOCUMENT, keys.document_group(change.slug))):
            delivery = MonitorDelivery(change.slug, stream, old, new, title, roster, renamed)
            report.add(self.app.broadcaster.send(group, delivery))
        return report

    def _cleanup(self, report: BroadcastReport) -> None:
        """Connections found gone while notifying are removed, and what they held is published."""
        changes = self.app.remove_gone(report.gone)
        self.app.telemetry.count("NotificationsSent", report.sent)
        self.app.telemetry.count("Redelivering", report.redelivering)
        self.app.telemetry.count("DeliveriesAbandoned", report.abandoned)
        self.app.telemetry.count("SendFailed", report.failed)
        self.app.publish(changes)
