"""Documents: the bound table other AWS services write, and who may read a document.

The read rule, in one place (`DocumentBinding.audience`): a document is public when its
`visibility` is missing or exactly `"public"`; anything else (`"private"`, a typo, another
type) makes it private to its `owner` and `readers`, and an `owner` or `readers` of the
wrong shape names no one. A typo in a writer elsewhere can hide a document; it can
never publish one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from pynamodb.exceptions import DoesNotExist

from realtime import keys, protocol
from realtime.audience import Audience
from realtime.bindings import Binding, Change
from realtime.broadcast import BroadcastReport
from realtime.protocol import Request

from monitor.models import MALFORMED, Document
from monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from realtime.connections import Connection


class DocumentMonitor(Protocol):
    def document_changed(self, change: Change[Document]) -> BroadcastReport: ...

PUBLIC = "public"
NOTIFICATIONS = "notifications"


def valid_slug(slug: object) -> str:
    """A document slug from a client: any non-empty string of at most 256 characters
    without control characters (raise `keys.InvalidKey`)."""
    return keys.valid_key(slug, "document")


class DocumentBinding(Binding[Document]):
    """`notifications`: create/update/delete of the documents this user may read."""

    model = Document
    table_variable = "DOCUMENTS_TABLE"
    name = NOTIFICATIONS
    model_name = "document"
    history = True  # a page that reconnects is sent the notifications it missed

    def __init__(self, settings: MonitorSettings) -> None:
        self.fields = settings.document_fields
        #: Set by the application: the streams that show something of documents (the list,
        #: one document, its comments), told of every change after the notifications.
        self.monitors: tuple[DocumentMonitor, ...] = ()

    def group_names(self, instance: Document) -> Iterable[str]:
        return [NOTIFICATIONS]

    def audience(self, instance: Document) -> Audience:
        if instance.visibility is None or instance.visibility == PUBLIC:
            return Audience.public()
        owner = instance.owner if instance.owner and instance.owner != MALFORMED else None
        return Audience.only([*([owner] if owner else []), *(instance.readers or [])])

    # Documents are written by other AWS services, never through the socket.
    def has_permission(self, identity: Any, action: str, instance: Document) -> bool:
        return False

    def changed(self, change: Change[Document]) -> BroadcastReport:
        report = BroadcastReport()
        for monitor in self.monitors:
            report.add(monitor.document_changed(change))
        return report

    # ---- reads for the application's streams ----------------------------------------------

    def get(self, slug: str) -> Document | None:
        try:
            return Document.get(slug, consistent_read=True)
        except DoesNotExist:
            return None

    def all(self) -> Iterator[Document]:
        """Every document, with a paginated Scan (the one place a Scan is the right tool)."""
        return Document.scan()

    def readable(self, connection: Connection, slug: str, request: Request) -> Document:
        """The document, or `not_found` / `forbidden` for this connection."""
        document = self.get(slug)
        if document is None:
            raise request.fail(protocol.NOT_FOUND, "no such document")
        if not self.audience(document).allows(connection.user_id):
            raise request.fail(protocol.FORBIDDEN, "you may not read this document")
        return document
