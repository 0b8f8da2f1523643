"""`$default`: every client frame (subscribe, unsubscribe, enter, leave, heartbeat).

Answers go back on the socket (snapshot, `ack` or `error` frames), so the integration
always returns 200: a bad frame never closes the connection.
"""

from __future__ import annotations

from typing import Any

from realtime import runtime

logger = runtime.logger


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ws, app = runtime.websocket(event)
    request = ws.request_context
    app.receive(request.connection_id, event.get("body"), is_base64=bool(event.get("isBase64Encoded")))
    return {"statusCode": 200}
