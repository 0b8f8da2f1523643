"""`$disconnect` and the scheduled sweep: both remove connections and broadcast the changes.

API Gateway's `$disconnect` is best effort, so an EventBridge schedule invokes this
function every minute too; a scheduled event (no `requestContext`) runs the sweep.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from realtime import runtime
from realtime.config import ConfigurationError

logger = runtime.logger


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "requestContext" not in event:
        return sweep()
    ws, app = runtime.websocket(event)
    request = ws.request_context
    app.disconnect(request.connection_id)
    logger.info("disconnected", extra={"status": request.disconnect_status_code,
                                       "reason": request.disconnect_reason})
    return {"statusCode": 200}


def sweep() -> dict[str, Any]:
    logger.append_keys(route="sweep")
    endpoint = runtime.settings().websocket_endpoint
    if not endpoint:
        raise ConfigurationError("the sweep needs WEBSOCKET_ENDPOINT (the template sets it)")
    report = runtime.app(endpoint).sweep()
    logger.info("swept", extra=asdict(report))
    return asdict(report)
