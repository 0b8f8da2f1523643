"""Every error code, each provoked by a real malformed frame through the message handler.

A bad frame gets exactly one `error` frame, never closes the connection and changes
nothing: the connection keeps working afterwards.
"""

from __future__ import annotations

import json

import pytest

from tests.apigw import ApiGateway


@pytest.fixture
def signed_in(gateway: ApiGateway) -> str:
    gateway.put_document("roadmap", "Roadmap")
    gateway.put_document("secret", "Secret", visibility="private", owner="zoe")
    return gateway.login("alice", "Alice")


def only_error(frames: list[dict]) -> dict:
    assert len(frames) == 1, frames
    assert frames[0]["stream"] == "error"
    return frames[0]["payload"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_request"),
        ("", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('"subscribe"', "bad_request"),
        ("{}", "bad_request"),
        ('{"action": 7}', "bad_request"),
        ('{"action": "dance"}', "unknown_action"),
        ('{"action": "subscribe"}', "bad_request"),
        ('{"action": "subscribe", "stream": "weather"}', "bad_request"),
        ('{"action": "subscribe", "stream": ["users"]}', "bad_request"),
        ('{"action": "subscribe", "stream": "document"}', "bad_request"),
        ('{"action": "subscribe", "stream": "document", "document": 5}', "bad_request"),
        ('{"action": "subscribe", "stream": "document", "document": ""}', "bad_request"),
        ('{"action": "subscribe", "stream": "document", "document": "a\\u0000b"}', "bad_request"),
        ('{"action": "enter", "document": "roadmap", "phase": "dance"}', "bad_request"),
        ('{"action": "enter", "document": "roadmap"}', "bad_request"),
        ('{"action": "heartbeat", "id": [1]}', "bad_request"),
        ('{"action": "heartbeat", "id": true}', "bad_request"),
        ("[" * 5000 + "]" * 5000, "too_large"),
        ('{"action": "heartbeat", "pad": "' + "x" * 8200 + '"}', "too_large"),
        ("[" * 3000 + "]" * 3000, "bad_request"),
    ],
)
def test_malformed_frames_answer_one_error(gateway: ApiGateway, signed_in: str, raw: str, code: str) -> None:
    error = only_error(gateway.send(signed_in, raw, raw=True))
    assert error["code"] == code
    assert error["message"]
    # The connection still works.
    assert gateway.send(signed_in, {"action": "heartbeat", "id": "ok"}) == [{"stream": "ack", "payload": {"id": "ok"}}]


def test_frame_of_exactly_8192_bytes_is_accepted(gateway: ApiGateway, signed_in: str) -> None:
    prefix = '{"action":"heartbeat","id":1,"pad":"'
    raw = prefix + "x" * (8192 - len(prefix) - 2) + '"}'
    assert len(raw.encode()) == 8192
    assert gateway.send(signed_in, raw, raw=True) == [{"stream": "ack", "payload": {"id": 1}}]
    too_big = prefix + "é" * ((8192 - len(prefix)) // 2) + '"}'  # multi-byte: counted in bytes
    assert only_error(gateway.send(signed_in, too_big, raw=True))["code"] == "too_large"


def test_invalid_utf8_binary_frame(gateway: ApiGateway, signed_in: str) -> None:
    assert only_error(gateway.send(signed_in, b"\xff\xfe{", raw=True, binary=True))["code"] == "bad_request"
    ok = gateway.send(signed_in, json.dumps({"action": "heartbeat", "id": 3}).encode(), raw=True, binary=True)
    assert ok == [{"stream": "ack", "payload": {"id": 3}}]


def test_error_echoes_string_or_integer_ids_only(gateway: ApiGateway, signed_in: str) -> None:
    assert only_error(gateway.send(signed_in, {"action": "dance", "id": "x1"}))["id"] == "x1"
    assert only_error(gateway.send(signed_in, {"action": "dance", "id": 42}))["id"] == 42
    assert "id" not in only_error(gateway.send(signed_in, {"action": "dance", "id": {"a": 1}}))
    assert "id" not in only_error(gateway.send(signed_in, {"action": "dance"}))


def test_unknown_and_forbidden_documents(gateway: ApiGateway, signed_in: str) -> None:
    for action in ({"action": "subscribe", "stream": "document"}, {"action": "enter", "phase": "view"}):
        missing = only_error(gateway.send(signed_in, {**action, "document": "nope", "id": 1}))
        assert (missing["code"], missing["id"]) == ("not_found", 1)
        forbidden = only_error(gateway.send(signed_in, {**action, "document": "secret", "id": 2}))
        assert (forbidden["code"], forbidden["id"]) == ("forbidden", 2)
    # Nothing was entered or subscribed.
    assert gateway.dynamodb.query(
        TableName="connections", KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "presence"}})["Count"] == 0


def test_anonymous_cannot_enter_or_get_notifications(gateway: ApiGateway, signed_in: str) -> None:
    carol = gateway.anonymous()
    for frame in ({"action": "enter", "document": "roadmap", "phase": "view"},
                  {"action": "leave", "document": "roadmap", "phase": "view"},
                  {"action": "subscribe", "stream": "notifications"}):
        assert only_error(gateway.send(carol, frame))["code"] == "unauthenticated"
    assert only_error(gateway.send(carol, {"action": "subscribe", "stream": "document", "document": "secret"}))["code"] == "forbidden"
    replies = gateway.send(carol, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    assert replies[0]["payload"]["document"] == "roadmap"


def test_unregistered_connection_is_told_to_reconnect(gateway: ApiGateway) -> None:
    ghost = "Zm9vYmFyYmF6cXV4="
    gateway.stub.register(ghost)  # the socket is open but the backend does not know it
    assert only_error(gateway.send(ghost, "garbage", raw=True))["code"] == "bad_request"  # validated first
    error = only_error(gateway.send(ghost, {"action": "heartbeat", "id": 5}))
    assert error == {"id": 5, "code": "unauthenticated", "message": "connection not registered; reconnect"}


def test_internal_errors_are_answered_not_raised(gateway: ApiGateway, signed_in: str, monkeypatch) -> None:
    from realtime.routing import Router

    def boom(self, *args):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(Router, "_subscribe", boom)
    error = only_error(gateway.send(signed_in, {"action": "subscribe", "stream": "users", "id": 8}))
    assert error == {"id": 8, "code": "internal", "message": "internal error"}


def test_an_oversize_frame_is_answered_with_its_id(gateway: ApiGateway, signed_in: str) -> None:
    """The client waits on that id: `too_large` echoes it whenever the frame is still JSON."""
    prefix = '{"action":"subscribe","stream":"users","id":"s8193","pad":"'
    raw = prefix + "x" * (8193 - len(prefix) - 2) + '"}'
    assert len(raw.encode()) == 8193
    error = only_error(gateway.send(signed_in, raw, raw=True))
    assert (error["code"], error["id"]) == ("too_large", "s8193")
    enveloped = json.dumps({"stream": "users", "payload": {"action": "subscribe", "id": 12, "pad": "y" * 8200}})
    assert only_error(gateway.send(signed_in, enveloped, raw=True))["id"] == 12
    truncated = raw[:-2]  # no longer JSON: nothing to echo
    assert "id" not in only_error(gateway.send(signed_in, truncated + "x", raw=True))


def test_a_null_id_is_a_bad_request_not_a_silent_subscribe(gateway: ApiGateway, signed_in: str) -> None:
    error = only_error(gateway.send(signed_in, '{"action":"subscribe","stream":"users","id":null}', raw=True))
    assert error["code"] == "bad_request" and "id" not in error
    assert gateway.dynamodb.query(  # nothing was subscribed
        TableName="connections", KeyConditionExpression="pk = :p AND sk = :g",
        ExpressionAttributeValues={":p": {"S": f"c#{signed_in}"}, ":g": {"S": "g#users"}})["Count"] == 0
