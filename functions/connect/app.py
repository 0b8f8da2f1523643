"""`$connect`: check the origin and token, register the connection, count the user.

A non-2xx answer refuses the handshake with that status (401 bad token, 403 origin).
"""

from __future__ import annotations

from typing import Any

from realtime import runtime
from realtime.auth import AuthError

logger = runtime.logger


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ws, app = runtime.websocket(event)
    request = ws.request_context
    try:
        identity = app.connect(request.connection_id, query=event.get("queryStringParameters"),
                               headers=event.get("headers"), connected_at_ms=request.connected_at)
    except AuthError as exc:
        logger.info("handshake refused", extra={"status": exc.status, "reason": exc.reason})
        return {"statusCode": exc.status, "body": exc.reason}
    logger.info("connected", extra={"user": identity.user_id, "anonymous": identity.anonymous})
    return {"statusCode": 200}
