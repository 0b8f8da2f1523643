"""The reference application's declaration: every stream, binding and presence room."""

from __future__ import annotations

from collections.abc import Mapping

from realtime.application import Application
from realtime.streams import CounterStream

from monitor.alerts import Alerts
from monitor.comments import CommentBinding
from monitor.documents import DocumentBinding
from monitor.listing import DocumentList
from monitor.presence import DocumentRooms, DocumentRoster
from monitor.settings import MonitorSettings


class Users(CounterStream):
    """`users`: `{"users": n}`, the number of distinct signed-in users online."""

    name = "users"


def application(environment: Mapping[str, str]) -> Application:
    settings = MonitorSettings.from_env(environment)
    documents = DocumentBinding(settings)
    listing, roster, comments = DocumentList(documents), DocumentRoster(documents), CommentBinding(documents)
    documents.monitors = (listing, roster, comments)  # what a document's change means for each

    app = Application(rooms=DocumentRooms(settings.phases, documents))
    app.register(Users())
    app.register(listing)
    app.register(roster)
    app.register(documents)
    app.register(comments)
    app.register(Alerts())
    return app
