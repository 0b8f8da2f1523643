"""`$disconnect` and the scheduled sweep: both remove connections and broadcast the changes.

API Gateway's `$disconnect` is best effort, so an EventBridge schedule invokes this
function every minute too; a scheduled event (no `requestContext`) runs the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from realtime import runtime
from realtime.config import ConfigurationError

logger = runtime.logger


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "requestContext" not in event:
        return sweep(getattr(context, "get_remaining_time_in_millis", None))
    ws, app = runtime.websocket(event)
    request = ws.request_context
    app.disconnect(request.connection_id)
    logger.info("disconnected", extra={"status": request.disconnect_status_code,
                                       "reason": request.disconnect_reason})
    return {"statusCode": 200}


def sweep(remaining_ms: Callable[[], int] | None) -> dict[str, Any]:
    """The sweep's work is bounded by `remaining_ms` (the Lambda context's clock) too."""
    logger.append_keys(route="sweep")
    endpoint = runtime.settings().websocket_endpoint
    if not endpoint:
        raise ConfigurationError("the sweep needs WEBSOCKET_ENDPOINT (the template sets it)")
    report = runtime.app(endpoint).sweep(remaining_ms)
    logger.info("swept", extra=asdict(report))
    return asdict(report)
