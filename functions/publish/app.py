"""Publish: events any AWS service put on the event bus (detail-type `realtime.publish`).

The template's rule invokes this function (asynchronously) with each matching event.
A valid event is delivered to the stream's subscribers; an invalid one is logged,
counted and sent to the dead-letter queue, and the invocation still succeeds so it is
never retried (`realtime.published`). Only faults a retry can fix raise.
"""

from __future__ import annotations

from typing import Any

from realtime import runtime
from realtime.config import ConfigurationError

logger = runtime.logger


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(route="publish", event_id=event.get("id") if isinstance(event, dict) else None)
    endpoint = runtime.settings().websocket_endpoint
    if not endpoint:
        raise ConfigurationError("the publish function needs WEBSOCKET_ENDPOINT (the template sets it)")
    report = runtime.app(endpoint).publications.handle(event)
    if report.rejected is None:
        logger.debug("published", extra={"sent": report.delivered.sent, "logged": report.logged})
    return {"delivered": report.delivered.sent, "rejected": report.rejected}
