"""Logs carry the connection and route on every line, and never a token."""

from __future__ import annotations

import io
import json
import logging

import pytest

from realtime import runtime
from realtime.events import redacted
from tests.apigw import ApiGateway, token


@pytest.fixture
def debug_logs():
    """Everything the handlers' Powertools logger writes, as formatted JSON lines."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(runtime.logger.registered_formatter)
    level = runtime.logger.log_level
    runtime.logger.addHandler(handler)
    runtime.logger.setLevel("DEBUG")
    yield buffer
    runtime.logger.removeHandler(handler)
    runtime.logger.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_token_never_reaches_the_logs(gateway: ApiGateway, debug_logs) -> None:
    secret_token = token("alice", "Alice")
    status, cid = gateway.connect(query={"token": secret_token})
    assert status == 200
    refused, _ = gateway.connect(query={"token": secret_token[:-5]})
    assert refused == 401
    gateway.send(cid, {"action": "subscribe", "stream": "users"})
    records = lines(debug_logs)
    text = json.dumps(records)
    assert records, "expected debug lines"
    assert secret_token not in text and secret_token[:-5] not in text
    events = [r["event"] for r in records if r.get("message") == "event"]
    assert events and events[0]["queryStringParameters"] == {"token": "***"}
    for record in records:
        assert record.get("connection_id") and record.get("route"), record


def test_redacted_masks_query_and_credential_headers() -> None:
    event = {"queryStringParameters": {"token": "t", "x": "1"},
             "multiValueQueryStringParameters": {"token": ["t"]},
             "headers": {"Authorization": "Bearer t", "Origin": "o"}}
    clean = redacted(event)
    assert clean["queryStringParameters"] == {"token": "***", "x": "1"}
    assert clean["multiValueQueryStringParameters"] == {"token": ["***"]}
    assert clean["headers"] == {"Authorization": "***", "Origin": "o"}
    assert event["queryStringParameters"]["token"] == "t"  # the event itself is untouched
