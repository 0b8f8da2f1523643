"""The `documents` stream: every document this connection may read, with who is there.

The list is coalesced state. Its entries live in the connections table (`ListState`,
spread over `keys.STATE_SHARDS` partitions): a document's title and read rule are
written at once by the documents binding (so a subscribe's snapshot filters every
reader by who may read each document *now*), and its counts and first names come from
the rooms' summaries. At most once per interval the list's announcement compares the
entries with what it last broadcast and sends only what changed: the entry to readers
who may read it, `removed` to readers who could and can no longer. A subscribe reads the
entries (no Scan of the documents table) and gets them all, in frames of under 32 KB.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtime import audience as audiences
from realtime import keys
from realtime.audience import Audience
from realtime.bindings import Change
from realtime.broadcast import BroadcastReport
from realtime.deliveries import register_delivery
from realtime.dynamo import batch_delete, query_pages
from realtime.presence import RoomState, Summary
from realtime.streams import Stream, Subscription

from monitor.documents import DocumentBinding
from monitor.frames import MAX_STATE_FRAME_BYTES, entry, fit, size
from monitor.models import Document

if TYPE_CHECKING:
    from realtime.connections import Connection
    from realtime.groups import Member

DOCUMENTS = "documents"
BUILT_PK = f"st{keys.SEP}{DOCUMENTS}{keys.SEP}built"


@dataclass
class Listed:
    """One document's entry in the list state."""

    slug: str
    title: str = ""
    audience: Audience | None = None  # None: deleted
    announced: str | None = None  # the digest of the entry as last broadcast, None: never
    announced_audience: Audience | None = None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(payload: str | None) -> str | None:
    """What is kept of an entry as last broadcast: enough to tell a change."""
    return None if payload is None else hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


class ListState:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def record(self, slug: str, title: str, audience: Audience | None) -> None:
        """A document's title and read rule, as the table has them now (None: deleted)."""
        values: dict[str, Any] = {":s": {"S": slug}, ":t": {"S": title}}
        expression = "SET slug = :s, title = :t"
        if audience is None:
            expression += " REMOVE aud"
        else:
            expression += ", aud = :a"
            values[":a"] = {"S": _json(audience.to_dict())}
        self.client.update_item(TableName=self.table, Key=self._key(slug), UpdateExpression=expression,
                                ExpressionAttributeValues=values)

    def announced(self, listed: Listed, payload: str | None) -> None:
        """What the announcement broadcast for this document (a note beside its entry: a
        subscribe reads the entries alone); a deleted one is forgotten."""
        if listed.audience is None:
            batch_delete(self.client, self.table, [self._key(listed.slug), self._note_key(listed.slug)])
            return
        self.client.update_item(
            TableName=self.table, Key=self._note_key(listed.slug), UpdateExpression="SET announced = :e, announced_aud = :a",
            ExpressionAttributeValues={":e": {"S": _digest(payload) or ""}, ":a": {"S": _json(listed.audience.to_dict())}})

    def entries(self, *, with_announced: bool = False) -> Iterator[Listed]:
        """Every document's entry, strongly consistent; with what was last announced of it
        for the announcement (a subscribe, which reads every entry, reads only those)."""
        for pk in keys.state_pks(DOCUMENTS):
            condition, values = "pk = :pk AND sk > :entries", {":pk": {"S": pk}, ":entries": {"S": keys.STATE_ENTRIES_AFTER}}
            if with_announced:
                condition, values = "pk = :pk", {":pk": {"S": pk}}
            notes: dict[str, dict[str, Any]] = {}
            for page in query_pages(self.client, TableName=self.table, KeyConditionExpression=condition,
                                    ExpressionAttributeValues=values, ConsistentRead=True):
                for item in page:  # the notes sort first
                    if item["sk"]["S"].startswith(keys.SEP):
                        notes[item["sk"]["S"][len(keys.SEP):]] = item
                        continue
                    note = notes.get(item["sk"]["S"], {})
                    yield Listed(
                        item["slug"]["S"], item.get("title", {}).get("S", ""),
                        Audience.from_dict(json.loads(item["aud"]["S"])) if "aud" in item else None,
                        note["announced"]["S"] if "announced" in note else None,
                        Audience.from_dict(json.loads(note["announced_aud"]["S"])) if "announced_aud" in note else None)

    def built(self) -> bool:
        return "Item" in self.client.get_item(TableName=self.table, Key={"pk": {"S": BUILT_PK}, "sk": {"S": "built"}},
                                              ConsistentRead=True)

    def build(self, documents: Iterable[tuple[str, str, Audience, str]]) -> None:
        """The first time: every document the table already has (written before any stream
        record), as already announced (`payload`): subscribers get them in their snapshot."""
        for slug, title, audience, payload in documents:
            self.record(slug, title, audience)
            self.announced(Listed(slug, title, audience), payload)
        self.client.put_item(TableName=self.table, Item={"pk": {"S": BUILT_PK}, "sk": {"S": "built"}})

    @staticmethod
    def _key(slug: str) -> dict[str, Any]:
        return {"pk": {"S": keys.state_pk(DOCUMENTS, slug)}, "sk": {"S": keys.state_sk(slug)}}

    @staticmethod
    def _note_key(slug: str) -> dict[str, Any]:
        return {"pk": {"S": keys.state_pk(DOCUMENTS, slug)}, "sk": {"S": keys.state_note_sk(slug)}}


@dataclass(frozen=True)
class ListChange:
    slug: str
    payload: str | None  # the entry now (JSON); None when the document is gone
    old: Audience | None  # who could read what was last broadcast
    new: Audience | None  # who may read it now


@dataclass(frozen=True)
class ListDelivery:
    """Changed list entries: each member gets those it may read, and `removed` for those it
    could read and no longer can."""

    changes: tuple[ListChange, ...]
    kind: str = field(default="documents-list", init=False)

    def frame_for(self, member: Member) -> bytes | None:
        entries: list[str] = []
        for change in self.changes:
            could, can = audiences.allows(change.old, member.user_id), audiences.allows(change.new, member.user_id)
            if can and change.payload is not None:
                entries.append(change.payload)
            elif could:
                entries.append(_json({"document": change.slug, "removed": True}))
        if not entries:
            return None
        return (f'{{"stream":"{DOCUMENTS}","payload":{{"documents":[' + ",".join(entries) + '],"full":false}}').encode()

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "changes": [
            {"slug": c.slug, "payload": c.payload, "old": audiences.to_dict(c.old), "new": audiences.to_dict(c.new)}
            for c in self.changes]}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> ListDelivery:
        return cls(tuple(ListChange(c["slug"], c["payload"], audiences.from_dict(c["old"]), audiences.from_dict(c["new"]))
                         for c in data["changes"]))


register_delivery("documents-list", ListDelivery.from_message)


class DocumentList(Stream):
    """`documents`: every readable document with its roster summary; partial updates after changes."""

    name = DOCUMENTS

    def __init__(self, documents: DocumentBinding) -> None:
        self.documents = documents

    def bind(self, services: Any) -> None:
        super().bind(services)
        self.state = ListState(services.connections.client, services.settings.connections_table)

    # ---- what marks the list -----------------------------------------------------------

    def room_changed(self, state: RoomState, *, summary_changed: bool, roster_changed: bool) -> BroadcastReport:
        if summary_changed:
            self.services.coalescer.mark(self.name)
        return BroadcastReport()

    def document_changed(self, change: Change[Document]) -> BroadcastReport:
        current = change.new if change.new is not None else change.old
        assert current is not None
        audience = self.documents.audience(change.new) if change.new is not None else None
        self.state.record(current.slug, (current.title or ""), audience)
        self.services.coalescer.mark(self.name)
        return BroadcastReport()

    # ---- the announcement --------------------------------------------------------------

    def announce(self, key: str) -> BroadcastReport:
        if not self._is_built():  # nobody has subscribed yet: the first snapshot builds the list
            return BroadcastReport()
        summaries = self._summaries()
        report = BroadcastReport()
        chunk: list[tuple[ListChange, Listed]] = []
        used = 0
        for listed in sorted(self.state.entries(with_announced=True), key=lambda entry_: entry_.slug):
            payload = self._payload(listed, summaries) if listed.audience is not None else None
            if _digest(payload) == listed.announced and listed.audience == listed.announced_audience:
                continue
            if payload is None and listed.announced is None:  # created and deleted in one interval
                self.state.announced(listed, None)
                continue
            change = ListChange(listed.slug, payload, listed.announced_audience, listed.audience)
            cost = len(payload or "") + 64
            if chunk and used + cost > MAX_STATE_FRAME_BYTES:
                report.add(self._send(chunk))
                chunk, used = [], 0
            chunk.append((change, listed))
            used += cost
        if chunk:
            report.add(self._send(chunk))
        return report

    def _send(self, chunk: list[tuple[ListChange, Listed]]) -> BroadcastReport:
        report = self.services.broadcaster.send(self.name, ListDelivery(tuple(c for c, _ in chunk)))
        for change, listed in chunk:
            self.state.announced(listed, change.payload)
        return report

    # ---- subscribing -------------------------------------------------------------------

    def snapshot(self, connection: Connection, subscription: Subscription, authorized: Any = None,
                 ) -> Iterable[Mapping[str, Any]]:
        """Every document this reader may read now, in frames of under 32 KB (the first `full`)."""
        self._ensure_built()
        summaries = self._summaries()
        readable = sorted((listed for listed in self.state.entries()
                           if listed.audience is not None and listed.audience.allows(connection.user_id)),
                          key=lambda listed: listed.slug)
        payloads: list[dict[str, Any]] = []
        chunk: list[dict[str, Any]] = []
        used = 0
        for listed in readable:
            item = json.loads(self._payload(listed, summaries))
            cost = size(item) + 1
            if chunk and used + cost > MAX_STATE_FRAME_BYTES - 64:
                payloads.append({"documents": chunk, "full": not payloads})
                chunk, used = [], 0
            chunk.append(item)
            used += cost
        payloads.append({"documents": chunk, "full": not payloads})
        return payloads

    # ---- helpers -----------------------------------------------------------------------

    def _summaries(self) -> dict[str, Summary]:
        assert self.services.presence is not None
        return self.services.presence.summaries()

    def _payload(self, listed: Listed, summaries: Mapping[str, Summary]) -> str:
        presence = self.services.presence
        assert presence is not None
        summary = summaries.get(listed.slug)
        counts = summary.counts if summary else presence.empty_counts()
        roster = summary.roster if summary else presence.empty_roster()
        return _json(fit(entry(listed.slug, listed.title, counts, roster, self.services.settings.list_names)))

    def _is_built(self) -> bool:
        if not getattr(self, "_built", False):
            self._built = self.state.built()
        return self._built

    def _ensure_built(self) -> None:
        """Once per table (and remembered per container): the documents written before any
        stream record reached the list."""
        if self._is_built():
            return
        if not self.state.built():
            summaries = self._summaries()
            self.state.build((d.slug, d.title or "", self.documents.audience(d),
                              self._payload(Listed(d.slug, d.title or ""), summaries)) for d in self.documents.all())
        self._built = True
