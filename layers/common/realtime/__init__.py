"""realtime: the shared library of serverless-realtime (deployed as a SAM layer).

A WebSocket backend on API Gateway + Lambda + DynamoDB in the spirit of Django Channels:
an engine (`engine`, `lifecycle`, `routing`, `streams`, `bindings`, `notifier`,
`broadcast`, `history`, `replay`, `published`...) serving the streams an application
declares (`application`; the reference application is `monitor`).

`realtime.publish(stream, payload, user=... | group=... | connection=...)` puts an event for
a stream's subscribers on the event bus, from any Lambda (`realtime.eventbus`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """`realtime.publish`, imported on first use: the handlers never pay for it."""
    if name == "publish":
        from realtime.eventbus import publish

        return publish
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
