"""`realtime.publish(...)`: put an event for a stream's subscribers on the event bus, from any Lambda.

    from realtime import publish
    publish("alerts", {"text": "Your export is ready"}, user="alice")

It checks the event's shape as the publish function will (`realtime.published.parse`:
one target, a JSON object of at most 32 KB, no reserved keys), so a malformed event fails
here with `ValueError` instead of in the dead-letter queue, then calls `PutEvents` once.
The caller needs `events:PutEvents` on the bus (README, "Publish from any AWS service").
Whether the stream exists and accepts that target is known only to the deployment: such an
event is refused by the publish function (logged, counted, dead-lettered).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from realtime import config
from realtime.published import DETAIL_TYPE, parse

DEFAULT_SOURCE = "realtime.publish"


class PublishError(RuntimeError):
    """EventBridge did not take the event (`code`: its `ErrorCode`, e.g. `ThrottlingException`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@lru_cache(maxsize=1)
def _events_client() -> Any:
    import boto3

    return boto3.client("events")


def publish(stream: str, payload: Mapping[str, Any], *, group: str | None = None, user: str | None = None,
            connection: str | None = None, bus: str | None = None, source: str = DEFAULT_SOURCE,
            client: Any = None) -> str:
    """Publish `payload` on `stream` to one `group`, `user` or `connection`; returns the event's id.

    `bus`: the bus name or ARN (default: `REALTIME_EVENT_BUS`, else `default`); `client`: an
    EventBridge client (default: one made with boto3's standard configuration)."""
    targets = {kind: value for kind, value in (("group", group), ("user", user), ("connection", connection))
               if value is not None}
    if len(targets) != 1:
        raise ValueError("give exactly one of group, user or connection")
    publication = parse({"stream": stream, "to": targets, "payload": payload})  # Rejected is a ValueError
    entry = {"Source": source, "DetailType": DETAIL_TYPE, "EventBusName": bus or config.event_bus(),
             "Detail": json.dumps(publication.detail(), separators=(",", ":"), ensure_ascii=False)}
    response = (client or _events_client()).put_events(Entries=[entry])
    (result,) = response.get("Entries") or [{}]
    if response.get("FailedEntryCount") or "EventId" not in result:
        raise PublishError(result.get("ErrorCode") or "Failed", result.get("ErrorMessage") or "the event was not put")
    return str(result["EventId"])
