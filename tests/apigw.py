"""A test stand-in for API Gateway: builds API Gateway-shaped events, calls the real
handlers, and keeps the @connections stub's idea of which sockets are open in step."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

SECRET = "test-secret-that-is-at-least-32-bytes-long!"
API_ID = "abc123defg"
STAGE = "prod"


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def token(user: str, name: str | None = None, *, secret: str = SECRET, ttl: int = 300, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": user, "iat": now, "exp": now + ttl, **claims}
    if name is not None:
        body["name"] = name
    return jwt.encode(body, secret, algorithm="HS256")


def connection_id() -> str:
    """AWS-like: base64 of random bytes, ending in '='."""
    return base64.b64encode(uuid.uuid4().bytes[:11]).decode()


def request_context(route: str, event_type: str, cid: str, connected_at: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "routeKey": route, "eventType": event_type, "connectionId": cid,
        "domainName": f"{API_ID}.execute-api.us-east-1.amazonaws.com", "stage": STAGE, "apiId": API_ID,
        "requestId": uuid.uuid4().hex, "extendedRequestId": uuid.uuid4().hex,
        "connectedAt": connected_at, "requestTimeEpoch": now, "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "messageDirection": "IN", "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
    }


class ApiGateway:
    def __init__(self, dynamodb: Any, stub: Any) -> None:
        self.dynamodb = dynamodb
        self.stub = stub
        self.connected_at: dict[str, int] = {}
        from functions.connect import app as connect
        from functions.disconnect import app as disconnect
        from functions.message import app as message

        self.handlers = {"$connect": connect.handler, "$disconnect": disconnect.handler, "$default": message.handler}

    @staticmethod
    def reset_runtime() -> None:
        from realtime import runtime

        runtime.reset()

    def connect(self, *, query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                cid: str | None = None) -> tuple[int, str]:
        cid = cid or connection_id()
        connected_at = int(time.time() * 1000)
        event = {
            "requestContext": request_context("$connect", "CONNECT", cid, connected_at),
            "headers": {"Host": "example", "Sec-WebSocket-Version": "13", **(headers or {})},
            "multiValueHeaders": {k: [v] for k, v in {"Host": "example", **(headers or {})}.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
            "isBase64Encoded": False,
        }
        result = self.handlers["$connect"](event, LambdaContext())
        status = int(result.get("statusCode", 200))
        if 200 <= status < 300:  # API Gateway opens the socket only now
            self.stub.register(cid)
            self.connected_at[cid] = connected_at
        return status, cid

    def login(self, user: str, name: str | None = None) -> str:
        status, cid = self.connect(query={"token": token(user, name)})
        assert status == 200, status
        return cid

    def anonymous(self) -> str:
        status, cid = self.connect()
        assert status == 200, status
        return cid

    def send(self, cid: str, frame: Any, *, raw: bool = False, binary: bool = False) -> list[dict[str, Any]]:
        """Send a frame; return the frames this connection received while it was handled."""
        before = len(self.stub.received(cid))
        body = frame if raw else json.dumps(frame)
        if binary:
            body = base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode()
        event = {
            "requestContext": {**request_context("$default", "MESSAGE", cid, self.connected_at.get(cid, 0)),
                               "messageId": uuid.uuid4().hex},
            "body": body, "isBase64Encoded": binary,
        }
        result = self.handlers["$default"](event, LambdaContext())
        assert result["statusCode"] == 200
        return [json.loads(f) for f in self.stub.received(cid)[before:]]

    def disconnect(self, cid: str, *, call_handler: bool = True) -> None:
        """Close the socket; `call_handler=False` simulates a missed `$disconnect`."""
        self.stub.unregister(cid)
        if call_handler:
            event = {"requestContext": {**request_context("$disconnect", "DISCONNECT", cid, self.connected_at.get(cid, 0)),
                                        "disconnectStatusCode": 1001, "disconnectReason": "Going away"},
                     "headers": {"Host": "example"}, "isBase64Encoded": False}
            self.handlers["$disconnect"](event, LambdaContext())

    def sweep(self, context: Any = None) -> dict[str, Any]:
        """The scheduled sweep, as EventBridge invokes it (`context`: the Lambda context)."""
        return self.handlers["$disconnect"]({"version": "0", "source": "aws.events",
                                              "detail-type": "Scheduled Event", "detail": {}},
                                             context or LambdaContext())

    def frames(self, cid: str) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.stub.received(cid)]

    def last(self, cid: str, stream: str) -> dict[str, Any] | None:
        matching = [f["payload"] for f in self.frames(cid) if f["stream"] == stream]
        return matching[-1] if matching else None

    def put_document(self, slug: str, title: str = "", *, visibility: str | None = None,
                     owner: str | None = None, readers: list[str] | None = None, **fields: Any) -> None:
        item: dict[str, Any] = {"slug": {"S": slug}, "title": {"S": title or slug}}
        if visibility:
            item["visibility"] = {"S": visibility}
        if owner:
            item["owner"] = {"S": owner}
        if readers is not None:
            item["readers"] = {"L": [{"S": r} for r in readers]}
        for key, value in fields.items():
            item[key] = {"S": value}
        self.dynamodb.put_item(TableName=os.environ["DOCUMENTS_TABLE"], Item=item)
