"""Writes `events/`: one API Gateway-shaped event per WebSocket route (and a few `$default`
frames), Lambda-shaped events for the stream, queue and schedule triggers and the publish
rule (an EventBridge `realtime.publish` event), and `env.json`
for `sam local invoke --env-vars`. Built with the same functions the local gateway uses, so
the files have exactly the shape `make dev` produces; `tests/stack/test_events.py` invokes
every file against a running stack so they cannot rot.

    .venv/bin/python -m devtools.stack.sample_events        # rewrite events/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devtools.stack import events as ev
from devtools.template import ROOT

EVENTS_DIR = ROOT / "events"
CONNECTION_ID = "Lx8pQ2vNbHcCEfA="
CONNECTED_AT = 1764100800000  # 2025-11-25T20:00:00Z, in ms like API Gateway
API_ID = "local0api1"
DOMAIN = "host.docker.internal:3001"
STAGE = "prod"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/realtime-documents/stream/2025-11-25T20:00:00.000"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:realtime-fanout"
ANNOUNCE_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:realtime-announce"
#: The development secret `env.json` gives the functions (make dev generates one per run
#: unless JWT_SECRET is set: run `JWT_SECRET=$(jq -r .Parameters.JWT_SECRET events/env.json) make dev`
#: to share it). Never use it anywhere but on your machine.
DEV_SECRET = "local-development-secret-never-deploy-0123456789"

_FIXED = {"requestId": "Lx8pQ3GRIAMFabc=", "extendedRequestId": "Lx8pQ3GRIAMFabc=", "messageId": "Lx8pQ4KLoAMCxyz="}


def _fix(event: dict[str, Any], offset_ms: int) -> dict[str, Any]:
    """Deterministic ids and times (the files are checked in)."""
    ctx = event["requestContext"]
    for key, value in _FIXED.items():
        if key in ctx:
            ctx[key] = value
    ctx["requestTimeEpoch"] = CONNECTED_AT + offset_ms
    ctx["requestTime"] = ev.request_time(CONNECTED_AT + offset_ms)
    return event


def _common() -> dict[str, Any]:
    return {"connection_id": CONNECTION_ID, "connected_at": CONNECTED_AT, "domain_name": DOMAIN, "stage": STAGE,
            "api_id": API_ID, "source_ip": "172.17.0.1"}


def _message(body: dict[str, Any], offset_ms: int) -> dict[str, Any]:
    return _fix(ev.message_event(route_key="$default", body=json.dumps(body, separators=(",", ":")),
                                 is_base64=False, **_common()), offset_ms)


def _image(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        out[key] = {"L": [{"S": v} for v in value]} if isinstance(value, list) else {"S": value}
    return out


def _stream_record(name: str, seq: str, keys: dict, new: dict | None, old: dict | None) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": CONNECTED_AT // 1000, "Keys": keys,
                                "SequenceNumber": seq, "SizeBytes": 120, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    return {"eventID": f"{name.lower()}0000000000000000000000000{seq[-3:]}", "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb,
            "eventSourceARN": STREAM_ARN}


def build() -> dict[str, Any]:
    files: dict[str, Any] = {}
    files["connect.json"] = _fix(ev.connect_event(
        headers={"Host": DOMAIN, "Origin": "http://127.0.0.1:8000", "Sec-WebSocket-Extensions": "permessage-deflate",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
                 "User-Agent": "Mozilla/5.0 (sam local invoke)", "X-Forwarded-For": "172.17.0.1",
                 "X-Forwarded-Port": "3001", "X-Forwarded-Proto": "http"},
        query=None, **_common()), 0)
    files["message-subscribe-users.json"] = _message({"action": "subscribe", "stream": "users", "id": 1}, 100)
    files["message-subscribe-document.json"] = _message(
        {"action": "subscribe", "stream": "document", "document": "welcome", "id": 2}, 200)
    files["message-enter.json"] = _message({"action": "enter", "document": "welcome", "phase": "view", "id": 3}, 300)
    files["message-heartbeat.json"] = _message({"action": "heartbeat"}, 400)
    files["disconnect.json"] = _fix(ev.disconnect_event(
        status_code=1001, reason="Going away", **_common()), 500)

    welcome = {"slug": "welcome", "title": "Welcome", "abstract": "Start here.", "visibility": "public", "owner": "alice"}
    renamed = {**welcome, "title": "Welcome, again"}
    private = {"slug": "design-review", "title": "Design review", "visibility": "private", "owner": "alice",
               "readers": ["bob"]}
    files["stream-documents.json"] = {"Records": [
        _stream_record("INSERT", "100000000000000000001", {"slug": {"S": "welcome"}}, _image(welcome), None),
        _stream_record("MODIFY", "100000000000000000002", {"slug": {"S": "welcome"}}, _image(renamed), _image(welcome)),
        _stream_record("INSERT", "100000000000000000003", {"slug": {"S": "design-review"}}, _image(private), None),
        _stream_record("REMOVE", "100000000000000000004", {"slug": {"S": "welcome"}}, None, _image(renamed)),
    ]}
    page = {"v": 1, "group": "users", "shard": 0, "first": "!", "last": "~",  # every id of the group's shard 0
            "delivery": {"kind": "frame", "frame": '{"stream":"users","payload":{"users":1}}', "audience": None}}
    body = json.dumps(page, separators=(",", ":"))
    files["sqs-fanout.json"] = {"Records": [ev.sqs_record({
        "MessageId": "0d5f8f4e-6a2b-4c8e-9d1a-3b7c5e2f9a10", "ReceiptHandle": "AQEBlocal-receipt-handle==",
        "Body": body, "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(CONNECTED_AT),
                                     "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                                     "ApproximateFirstReceiveTimestamp": str(CONNECTED_AT + 5)},
        "MessageAttributes": {}}, QUEUE_ARN)]}
    mark = json.dumps({"v": 1, "topic": "users", "key": "", "due": CONNECTED_AT / 1000}, separators=(",", ":"))
    files["sqs-announce.json"] = {"Records": [ev.sqs_record({
        "MessageId": "5a1c7e2d-3b4f-4d6a-8e9f-0a1b2c3d4e5f", "ReceiptHandle": "AQEBlocal-announce-receipt==",
        "Body": mark, "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(CONNECTED_AT),
                                     "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                                     "ApproximateFirstReceiveTimestamp": str(CONNECTED_AT + 1000)},
        "MessageAttributes": {}}, ANNOUNCE_QUEUE_ARN)]}
    schedule = ev.schedule_event("arn:aws:events:us-east-1:123456789012:rule/realtime-DisconnectFunctionSweep")
    schedule.update({"id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c", "time": "2025-11-25T20:00:00Z"})
    files["schedule-sweep.json"] = schedule
    alert = ev.published_event("alerts", {"user": "alice"}, {"text": "Your export is ready"}, source="billing.exports")
    alert.update({"id": "7bf73129-1428-4cd3-a780-95db273d1602", "time": "2025-11-25T20:00:01Z"})
    files["publish-alert.json"] = alert

    docker = "host.docker.internal"
    files["env.json"] = {"Parameters": {
        "CONNECTIONS_TABLE": "realtime-connections",
        "DOCUMENTS_TABLE": "realtime-documents",
        "COMMENTS_TABLE": "realtime-comments",
        "HISTORY_TABLE": "realtime-history",
        "PUBLISH_DEAD_LETTER_QUEUE_URL": f"http://{docker}:5000/123456789012/realtime-publish-dead-letter",
        "WEBSOCKET_ENDPOINT": f"http://{docker}:3001",
        "FANOUT_QUEUE_URL": f"http://{docker}:5000/123456789012/realtime-fanout",
        "ANNOUNCE_QUEUE_URL": f"http://{docker}:5000/123456789012/realtime-announce",
        "JWT_SECRET_ARN": "",
        "JWT_SECRET": DEV_SECRET,
        "AWS_ENDPOINT_URL": f"http://{docker}:5000",
        "POWERTOOLS_DEV": "1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }}
    return files


def render(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    EVENTS_DIR.mkdir(exist_ok=True)
    for name, value in build().items():
        Path(EVENTS_DIR / name).write_text(render(value), encoding="utf-8")
        print(f"wrote events/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
