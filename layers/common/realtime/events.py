"""API Gateway WebSocket events, read through Powertools' data class.

Also `redacted`, which removes the token from an event before anything logs it: tokens
travel in the query string, so a logged event would leak them.
"""

from __future__ import annotations

import copy
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent

SECRET_PARAMETERS = ("token",)
REDACTED = "***"

__all__ = ["APIGatewayWebSocketEvent", "management_endpoint", "redacted"]


def management_endpoint(configured: str, event: APIGatewayWebSocketEvent) -> str:
    """`WEBSOCKET_ENDPOINT` when set (the template always sets it), else the event's domain and stage."""
    if configured:
        return configured
    context = event.request_context
    return f"https://{context.domain_name}/{context.stage}"


def redacted(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of `event` with secret query parameters (and any Authorization header) masked."""
    clean = copy.deepcopy(event)
    for key in ("queryStringParameters", "multiValueQueryStringParameters"):
        params = clean.get(key) or {}
        for name in list(params):
            if name.lower() in SECRET_PARAMETERS:
                params[name] = [REDACTED] if isinstance(params[name], list) else REDACTED
    for key in ("headers", "multiValueHeaders"):
        headers = clean.get(key) or {}
        for name in list(headers):
            if name.lower() in ("authorization", "cookie", "sec-websocket-protocol"):
                headers[name] = [REDACTED] if isinstance(headers[name], list) else REDACTED
    return clean
