"""Events shaped like the ones AWS delivers to Lambda, for the local stack and `events/`.

API Gateway WebSocket (`$connect`, `$disconnect`, message routes), DynamoDB Streams and
SQS event source mappings, EventBridge schedules and bus events. Field names and types follow what
AWS sends (times in `requestContext` are epoch **milliseconds**; stream
`ApproximateCreationDateTime` is epoch seconds; binary attribute values are base64).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
_ID_ALPHABET_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789=")


def new_connection_id() -> str:
    """An id like API Gateway's (`L0SM9cOFvHcCIhw=`): base64 of 11 random bytes, URL-safe letters only."""
    while True:
        value = base64.b64encode(os.urandom(11)).decode()
        if set(value) <= _ID_ALPHABET_OK:
            return value


def new_request_id() -> str:
    """An id like API Gateway's `requestId`/`extendedRequestId` (`L0SM9GQ2IAMFXjw=`)."""
    return new_connection_id()


def now_ms() -> int:
    return int(time.time() * 1000)


def request_time(ms: int) -> str:
    """API Gateway's `requestTime` (`25/Nov/2026:19:58:02 +0000`)."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _context(*, route_key: str, event_type: str, connection_id: str, connected_at: int,
             domain_name: str, stage: str, api_id: str, source_ip: str,
             user_agent: str | None = None, request_ms: int | None = None) -> dict[str, Any]:
    request_ms = request_ms or now_ms()
    request_id = new_request_id()
    identity: dict[str, Any] = {"sourceIp": source_ip}
    if user_agent is not None:
        identity["userAgent"] = user_agent
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(request_ms),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at,
        "requestTimeEpoch": request_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": domain_name,
        "connectionId": connection_id,
        "apiId": api_id,
    }


def connect_event(*, connection_id: str, connected_at: int, domain_name: str, stage: str, api_id: str,
                  source_ip: str, headers: Mapping[str, list[str]] | Mapping[str, str],
                  query: Mapping[str, list[str]] | Mapping[str, str] | None) -> dict[str, Any]:
    """`$connect`: handshake headers and query string (single and multi-value forms)."""
    multi_headers = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in headers.items()}
    single_headers = {k: v[-1] for k, v in multi_headers.items()}
    multi_query = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in (query or {}).items()}
    event: dict[str, Any] = {
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "requestContext": _context(route_key="$connect", event_type="CONNECT", connection_id=connection_id,
                                   connected_at=connected_at, domain_name=domain_name, stage=stage,
                                   api_id=api_id, source_ip=source_ip,
                                   user_agent=single_headers.get("User-Agent") or single_headers.get("user-agent")),
        "isBase64Encoded": False,
    }
    if multi_query:
        event["queryStringParameters"] = {k: v[-1] for k, v in multi_query.items()}
        event["multiValueQueryStringParameters"] = multi_query
    return event


def message_event(*, route_key: str, connection_id: str, connected_at: int, domain_name: str, stage: str,
                  api_id: str, source_ip: str, body: str, is_base64: bool) -> dict[str, Any]:
    """A message route (`$default` or a custom route key)."""
    context = _context(route_key=route_key, event_type="MESSAGE", connection_id=connection_id,
                       connected_at=connected_at, domain_name=domain_name, stage=stage, api_id=api_id,
                       source_ip=source_ip)
    context["messageId"] = new_request_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": is_base64}


def disconnect_event(*, connection_id: str, connected_at: int, domain_name: str, stage: str, api_id: str,
                     source_ip: str, status_code: int, reason: str,
                     headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`$disconnect`: `disconnectStatusCode` and `disconnectReason` in `requestContext`."""
    context = _context(route_key="$disconnect", event_type="DISCONNECT", connection_id=connection_id,
                       connected_at=connected_at, domain_name=domain_name, stage=stage, api_id=api_id,
                       source_ip=source_ip)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    headers = dict(headers or {"Host": domain_name, "x-api-key": "", "X-Forwarded-For": "",
                               "x-restapi": ""})
    return {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context, "isBase64Encoded": False}


# --------------------------------------------------------------------------- triggers


def _lambda_attribute_values(value: Any) -> Any:
    """DynamoDB JSON as boto3's low-level client returns it, made JSON like Lambda's
    (binary values base64, no Python bytes/sets)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {k: _lambda_attribute_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_lambda_attribute_values(v) for v in value]
    return value


def stream_record(record: Mapping[str, Any], stream_arn: str, region: str = REGION) -> dict[str, Any]:
    """A DynamoDB Streams `GetRecords` record (boto3 shape) as Lambda delivers it."""
    dynamodb = dict(record.get("dynamodb") or {})
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    out = {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or region,
        "dynamodb": _lambda_attribute_values(dynamodb),
        "eventSourceARN": stream_arn,
    }
    if record.get("userIdentity"):
        out["userIdentity"] = record["userIdentity"]
    return out


def _message_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {}
    for name, attr in (attributes or {}).items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attr.get("DataType")}
        if "StringValue" in attr:
            entry["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            entry["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
        out[name] = entry
    return out


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str = REGION) -> dict[str, Any]:
    """An SQS `ReceiveMessage` message (boto3 shape) as Lambda's SQS event source delivers it."""
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _message_attributes(message.get("MessageAttributes")),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def schedule_event(rule_arn: str, region: str = REGION, account: str = ACCOUNT) -> dict[str, Any]:
    """An EventBridge `Scheduled Event`."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def bus_event(*, detail_type: str, detail: Any, source: str, event_id: str | None = None,
              resources: list[str] | None = None, region: str = REGION, account: str = ACCOUNT,
              time_ms: int | None = None) -> dict[str, Any]:
    """An event as EventBridge delivers a `PutEvents` entry to a rule's target (detail parsed)."""
    moment = datetime.fromtimestamp((time_ms or now_ms()) / 1000, timezone.utc)
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(resources or []),
        "detail": detail,
    }


def published_event(stream: str, to: Mapping[str, str], payload: Any, *, source: str = "tests") -> dict[str, Any]:
    """A `realtime.publish` event (what the template's rule hands the publish function)."""
    return bus_event(detail_type="realtime.publish", source=source,
                     detail={"stream": stream, "to": dict(to), "payload": payload})
