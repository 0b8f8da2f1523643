"""Comments: the second bound model, written through the socket as well as by any service.

A comment is readable by whoever can read its document. Any signed-in reader of the
document may create one; only its author may update or delete it (while they can still
read the document). The notifications for a document's comments go to the subscribers
of that document's `comments` stream, which answers a subscribe with the latest 50.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from realtime import keys, protocol
from realtime.audience import Audience
from realtime.bindings import CREATE, Binding, Change
from realtime.broadcast import BroadcastReport
from realtime.deliveries import ChangeDelivery
from realtime.protocol import Request
from realtime.streams import Subscription

from monitor.documents import DocumentBinding, valid_slug
from monitor.models import Comment, Document

if TYPE_CHECKING:
    from realtime.auth import Identity
    from realtime.connections import Connection

COMMENTS = "comments"
MAX_BODY_CHARS = 2000
SNAPSHOT_SIZE = 50


def comments_group(slug: str) -> str:
    return keys.group(COMMENTS, slug)


def new_comment_id(now: float) -> str:
    """Sortable by creation (milliseconds first), unique by its random tail."""
    return f"{int(now * 1000):013d}-{secrets.token_hex(5)}"


class CommentBinding(Binding[Comment]):
    model = Comment
    table_variable = "COMMENTS_TABLE"
    name = COMMENTS
    fields = ("id", "document", "author", "body", "created_at", "version")
    writable = ("document", "body")
    #: Whoever may read the document may read its comments, anonymous readers of public ones too.
    anonymous = True
    #: Each document's comment events are logged (per `comments/<slug>` group) for catch-up.
    history = True

    def __init__(self, documents: DocumentBinding) -> None:
        self.documents = documents

    # ---- the declaration -------------------------------------------------------------------

    def group_names(self, instance: Comment) -> Iterable[str]:
        return [comments_group(instance.document)]

    def audience(self, instance: Comment) -> Audience:
        """Whoever can read the comment's document (as it is now)."""
        document = self.documents.get(instance.document)
        return self.documents.audience(document) if document is not None else Audience.nobody()

    def has_permission(self, identity: Identity, action: str, instance: Comment) -> bool:
        if not self.readable_by(instance, identity):
            return False
        return action == CREATE or instance.author == identity.user_id

    def prepare(self, identity: Identity, instance: Comment) -> None:
        now = time.time()
        instance.id = new_comment_id(now)
        instance.author = identity.user_id or ""
        instance.created_at = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds")

    def validate(self, action: str, data: Mapping[str, Any]) -> None:
        body = data.get("body")
        if action == CREATE and body is None:
            raise ValueError("body is required")
        if body is not None and not body.strip():
            raise ValueError("body must not be empty")
        if body is not None and len(body) > MAX_BODY_CHARS:
            raise ValueError(f"body must be at most {MAX_BODY_CHARS} characters")
        if "document" in data:
            valid_slug(data["document"])

    # ---- subscribing: {"action": "subscribe", "stream": "comments", "document": "<slug>"} ----

    def subscription(self, request: Request) -> Subscription:
        try:
            slug = valid_slug(request.fields.get("document"))
        except keys.InvalidKey as exc:
            raise request.fail(protocol.BAD_REQUEST, str(exc)) from None
        return Subscription(comments_group(slug), {"document": slug})

    def authorize(self, connection: Connection, subscription: Subscription, request: Request) -> Document:
        return self.documents.readable(connection, subscription.params["document"], request)

    def snapshot(self, connection: Connection, subscription: Subscription, authorized: Any = None,
                 ) -> Iterable[Mapping[str, Any]]:
        """The latest comments, oldest first."""
        slug = subscription.params["document"]
        latest = list(Comment.query(slug, scan_index_forward=False, limit=SNAPSHOT_SIZE, consistent_read=True))
        return [{"document": slug, "comments": [self.data(c) for c in reversed(latest)], "full": True}]

    def document_changed(self, change: Change[Document]) -> BroadcastReport:
        """Subscribers who may no longer read the document are told and leave its comments."""
        old, new = change.old, change.new
        old_audience = self.documents.audience(old) if old is not None else None
        new_audience = self.documents.audience(new) if new is not None else None
        if old_audience == new_audience:
            return BroadcastReport()
        slug = (new or old).slug  # type: ignore[union-attr]
        delivery = ChangeDelivery(old_audience, new_audience,
                                  lost=self.frame({"document": slug, "removed": True}), leave_when_lost=True)
        return self.services.broadcaster.send(comments_group(slug), delivery)
