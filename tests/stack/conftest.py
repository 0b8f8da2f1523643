"""Fixtures for the local stack's tests: a Stack on free ports, and small client helpers.

One Stack per module (the handlers' environment is process-global, so never two at once).
Waits are bounded safety nets (`WAIT`), never assertions about speed: a test fails on what
arrives (or what arrives instead), not on how fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import websockets

from devtools.stack import Limits, Stack

WAIT = 15.0  # seconds: a bound for "eventually", generous for a loaded CI machine


@pytest.fixture(scope="module")
def stack():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with Stack(host="127.0.0.1", ws_port=0, web_port=0, aws_port=0, retry_delay=0.02,
               schedules=True, sweep_interval=3600, limits=Limits(),
               env={"POWERTOOLS_DEV": "0"}) as running:
        yield running


class Client:
    """A real `websockets` client speaking protocol v1, keeping frames it has not consumed yet."""

    def __init__(self, ws: Any, label: str) -> None:
        self.ws = ws
        self.label = label
        self._next_id = 0
        self.buffer: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, stack: Stack, user: str | None = None, name: str | None = None,
                      label: str | None = None) -> Client:
        token = stack.token(user, name or user.title()) if user else None
        ws = await websockets.connect(stack.url(token), open_timeout=WAIT, max_size=2 ** 20)
        return cls(ws, label or user or "anonymous")

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def request(self, **frame: Any) -> int:
        self._next_id += 1
        frame["id"] = self._next_id
        await self.send(frame)
        return self._next_id

    async def recv_raw(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), WAIT)
        return json.loads(raw)

    async def until(self, predicate: Callable[[dict[str, Any]], bool], *,
                    forbid: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The first frame (buffered or new) matching `predicate`; frames that do not match stay
        buffered for later calls. A frame matching `forbid` before it fails the test: absence
        is asserted by order (it would have arrived first), never by waiting."""
        index = 0
        while True:
            if index < len(self.buffer):
                frame = self.buffer[index]
            else:
                frame = await self.recv_raw()
                self.buffer.append(frame)
            if forbid is not None and forbid(frame):
                raise AssertionError(f"{self.label}: forbidden frame before the awaited one: {frame}")
            if predicate(frame):
                del self.buffer[index]
                return frame
            index += 1

    async def next(self, stream: str, predicate: Callable[[dict[str, Any]], bool] | None = None, *,
                   forbid: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The next `stream` frame's payload (matching `predicate` when given)."""
        frame = await self.until(lambda f: f.get("stream") == stream and (predicate is None or predicate(f["payload"])),
                                 forbid=forbid)
        return frame["payload"]

    async def subscribe(self, stream: str, **extra: Any) -> dict[str, Any]:
        """Subscribe; returns the snapshot frame (the ack for `notifications`) or the error frame."""
        rid = await self.request(action="subscribe", stream=stream, **extra)
        if stream == "notifications":  # no snapshot: the ack (or an error) is the answer
            return await self.until(lambda f: f.get("stream") in ("ack", "error") and f["payload"].get("id") == rid)
        answer = await self.until(
            lambda f: (f.get("stream") == "error" and f["payload"].get("id") == rid)
            or (f.get("stream") == stream and _is_snapshot(stream, f["payload"], extra)))
        if answer["stream"] != "error":
            await self.until(lambda f: f.get("stream") == "ack" and f["payload"]["id"] == rid)
        return answer

    async def close(self) -> None:
        await self.ws.close()


def _is_snapshot(stream: str, payload: dict[str, Any], extra: dict[str, Any]) -> bool:
    if stream == "documents":
        return payload.get("full") is True
    if stream == "document":
        return payload.get("document") == extra.get("document")
    return True


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def runner():
    return run
