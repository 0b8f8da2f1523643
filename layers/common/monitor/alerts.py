"""Alerts: what other AWS services tell the reference app's users ("your export is ready").

`alerts` carries only published events (EventBridge `realtime.publish`, README): to one
signed-in user (every connection of theirs subscribed here), to one connection, or to
the group `alerts` (every subscriber). Subscribers are signed in; the stream keeps
history, so a page that reconnects is sent what it missed. Its payload is the
publisher's, as published.
"""

from __future__ import annotations

from realtime.streams import Publish, Stream

ALERTS = "alerts"


class Alerts(Stream):
    """`{"action": "subscribe", "stream": "alerts"}` (signed in): no snapshot, events as published."""

    name = ALERTS
    anonymous = False
    history = True
    publish = Publish(groups=(ALERTS,), users=True, connections=True)
