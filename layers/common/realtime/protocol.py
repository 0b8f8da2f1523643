"""Protocol v1: parsing client frames and building server frames (docs/protocol.md).

Parsing is total: every input either becomes a `Request` or raises `ProtocolError`
carrying the error code the client will see. Nothing here touches the network or
the tables.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from realtime.keys import InvalidKey, valid_slug

USERS, DOCUMENTS, DOCUMENT, NOTIFICATIONS = "users", "documents", "document", "notifications"
STREAMS = (USERS, DOCUMENTS, DOCUMENT, NOTIFICATIONS)
ACK, ERROR = "ack", "error"

SUBSCRIBE, UNSUBSCRIBE, ENTER, LEAVE, HEARTBEAT = "subscribe", "unsubscribe", "enter", "leave", "heartbeat"
ACTIONS = (SUBSCRIBE, UNSUBSCRIBE, ENTER, LEAVE, HEARTBEAT)

# Error codes.
BAD_REQUEST = "bad_request"
UNKNOWN_ACTION = "unknown_action"
UNAUTHENTICATED = "unauthenticated"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
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
    """One well-formed client frame."""

    action: str
    id: RequestId = None
    stream: str | None = None
    document: str | None = None
    phase: str | None = None


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


def _request_id(message: dict[str, Any]) -> RequestId:
    value = message.get("id")
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return value


def parse(
    body: str | bytes | None,
    phases: tuple[str, ...],
    *,
    is_base64: bool = False,
    max_bytes: int = 8192,
) -> Request:
    """Turn a raw frame into a `Request`, or raise `ProtocolError`."""
    text = _body_text(body, is_base64)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates cannot be sent back as JSON text either
        raise ProtocolError(BAD_REQUEST, "frame is not valid UTF-8") from None
    if size > max_bytes:
        raise ProtocolError(TOO_LARGE, f"frames are limited to {max_bytes} bytes")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_REQUEST, "frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_REQUEST, "frame must be a JSON object")

    request_id = _request_id(message)
    if "id" in message and message["id"] is not None and request_id is None:
        raise ProtocolError(BAD_REQUEST, "id must be a string or an integer")

    def fail(code: str, text: str) -> ProtocolError:
        return ProtocolError(code, text, request_id)

    action = message.get("action")
    if not isinstance(action, str):
        raise fail(BAD_REQUEST, "action must be a string")
    if action not in ACTIONS:
        raise fail(UNKNOWN_ACTION, f"unknown action {action[:64]!r}")
    if action == HEARTBEAT:
        return Request(action, request_id)

    document: str | None = None
    needs_document = action in (ENTER, LEAVE) or message.get("stream") == DOCUMENT
    if needs_document:
        try:
            document = valid_slug(message.get("document"))
        except InvalidKey as exc:
            raise fail(BAD_REQUEST, str(exc)) from None

    if action in (SUBSCRIBE, UNSUBSCRIBE):
        stream = message.get("stream")
        if not isinstance(stream, str):
            raise fail(BAD_REQUEST, "stream must be a string")
        if stream not in STREAMS:
            raise fail(BAD_REQUEST, f"unknown stream {stream[:64]!r}")
        return Request(action, request_id, stream=stream, document=document)

    phase = message.get("phase")
    if not isinstance(phase, str):
        raise fail(BAD_REQUEST, "phase must be a string")
    if phase not in phases:
        raise fail(BAD_REQUEST, f"unknown phase {phase[:64]!r}; expected one of {', '.join(phases)}")
    return Request(action, request_id, document=document, phase=phase)


def encode_frame(stream: str, payload: dict[str, Any]) -> bytes:
    """The wire form of every server frame: `{"stream": ..., "payload": ...}`."""
    return json.dumps({"stream": stream, "payload": payload}, separators=(",", ":"), ensure_ascii=False).encode()


def ack(request_id: RequestId) -> bytes:
    return encode_frame(ACK, {"id": request_id})


def error(code: str, message: str, request_id: RequestId = None) -> bytes:
    payload: dict[str, Any] = {"code": code, "message": message}
    if request_id is not None:
        payload = {"id": request_id, **payload}
    return encode_frame(ERROR, payload)
