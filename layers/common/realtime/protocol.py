"""Protocol v1 on the wire: parsing client frames and building server frames (docs/protocol.md).

Parsing is total: every input either becomes a `Request` or raises `ProtocolError`
carrying the error code the client will see. What a frame *means* (which actions and
streams exist, which fields they take) is the router's business (`realtime.routing`);
this module knows only the envelope. Nothing here touches the network or the tables.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACK, ERROR = "ack", "error"

# Error codes.
BAD_REQUEST = "bad_request"
UNKNOWN_ACTION = "unknown_action"
UNAUTHENTICATED = "unauthenticated"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
RATE_LIMITED = "rate_limited"
LIMIT_EXCEEDED = "limit_exceeded"
TOO_LARGE = "too_large"
INTERNAL = "internal"

RequestId = str | int | None


class ProtocolError(Exception):
    """A client frame that is answered with an `error` frame."""

    def __init__(self, code: str, message: str, request_id: RequestId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Request:
    """One client frame that is a JSON object with a string `action` and a usable `id`.

    `fields` is the whole frame (flattened from Channels' demultiplexer envelope
    `{"stream": ..., "payload": {...}}` when it came in one)."""

    action: str
    id: RequestId = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stream(self) -> Any:
        return self.fields.get("stream")

    def fail(self, code: str, message: str) -> ProtocolError:
        return ProtocolError(code, message, self.id)


def _body_text(body: str | bytes | None, is_base64: bool) -> str:
    if body is None:
        raise ProtocolError(BAD_REQUEST, "empty frame")
    if is_base64:
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(BAD_REQUEST, "frame is not valid base64") from None
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(BAD_REQUEST, "frame is not valid UTF-8") from None
    return body


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _flatten(message: dict[str, Any]) -> dict[str, Any]:
    """Channels' demultiplexer envelope means the same as the flat frame it carries."""
    if "action" not in message and isinstance(message.get("payload"), dict) and "stream" in message:
        return {**message["payload"], "stream": message["stream"]}
    return message


def request_id(message: Mapping[str, Any]) -> RequestId:
    """The frame's `id` when it is a string or an integer (the only ids echoed), else None."""
    value = message.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return value


def parse(body: str | bytes | None, *, is_base64: bool = False, max_bytes: int = 8192) -> Request:
    """Turn a raw frame into a `Request`, or raise `ProtocolError`."""
    text = _body_text(body, is_base64)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates cannot be sent back as JSON text either
        raise ProtocolError(BAD_REQUEST, "frame is not valid UTF-8") from None
    if size > max_bytes:
        # Still answer the request it was, when it is readable: a client waits on that id.
        whole = _json_object(text)
        rid = request_id(_flatten(whole)) if whole is not None else None
        raise ProtocolError(TOO_LARGE, f"frames are limited to {max_bytes} bytes", rid)
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_REQUEST, "frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_REQUEST, "frame must be a JSON object")
    message = _flatten(message)
    rid = request_id(message)
    if "id" in message and rid is None:
        raise ProtocolError(BAD_REQUEST, "id must be a string or an integer")
    action = message.get("action")
    if not isinstance(action, str):
        raise ProtocolError(BAD_REQUEST, "action must be a string", rid)
    return Request(action, rid, message)


def encode_frame(stream: str, payload: Mapping[str, Any], cursor: str | None = None,
                 event: str | None = None) -> bytes:
    """The wire form of every server frame: `{"stream": ..., "payload": ...}`, and beside the
    payload the message's `cursor` on a stream that keeps history (`realtime.history`) and
    the `event` id of a published event (what clients de-duplicate it on)."""
    frame: dict[str, Any] = {"stream": stream, "payload": payload}
    if cursor is not None:
        frame["cursor"] = cursor
    if event is not None:
        frame["event"] = event
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


def ack(request_id: RequestId, **result: Any) -> bytes:
    """`{"id": ...}`, plus what the request produced (a write's `pk` and `version`)."""
    return encode_frame(ACK, {"id": request_id, **result})


def error(code: str, message: str, request_id: RequestId = None) -> bytes:
    payload: dict[str, Any] = {"code": code, "message": message}
    if request_id is not None:
        payload = {"id": request_id, **payload}
    return encode_frame(ERROR, payload)
