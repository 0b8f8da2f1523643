"""Stopping the stack (in process, or Ctrl-C on `python -m devtools.stack`) leaves no
thread, no listening port and no changed environment behind."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request

import pytest
import websockets

from devtools.stack import Stack, StackError, StackProcess
from tests.stack.conftest import WAIT, Client, run


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stop_leaves_no_thread_port_or_environment_behind():
    threads_before = set(threading.enumerate())
    env_before = dict(os.environ)
    stack = Stack(ws_port=0, web_port=0, aws_port=0, env={"POWERTOOLS_DEV": "0"}).start()
    ports = (stack.ws_port, stack.web_port, stack.aws_port)
    try:
        assert all(listening(port) for port in ports)
        with pytest.raises(StackError):  # the environment is process-global: one at a time
            Stack(ws_port=0, web_port=0, aws_port=0).start()

        async def use_everything():
            alice = await Client.connect(stack, "alice", "Alice")
            await alice.subscribe("notifications")
            await alice.subscribe("documents")
            stack.client("dynamodb").put_item(TableName=stack.tables["DocumentsTable"],
                                              Item={"slug": {"S": "bye"}, "title": {"S": "Bye"}})
            await alice.next("notifications", lambda p: p["pk"] == "bye")
            # left open on purpose: stop() must close it (1001) and run its $disconnect
            return alice

        alice = run(use_everything())
        with urllib.request.urlopen(f"{stack.web_url}/dev/token?user=x", timeout=WAIT):
            pass
    finally:
        stack.stop()
    assert alice is not None
    assert not any(listening(port) for port in ports)
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == [], leftover
    assert dict(os.environ) == env_before
    stack.stop()  # idempotent


def test_ctrl_c_stops_the_process_cleanly():
    process = StackProcess(env={"POWERTOOLS_DEV": "0"}).start()
    try:
        ports = [int(process.ws_url.rsplit(":", 1)[1]), int(process.web_url.rsplit(":", 1)[1]),
                 int(process.aws_endpoint.rsplit(":", 1)[1])]
        assert all(listening(port) for port in ports)

        async def connect():
            async with websockets.connect(f"{process.ws_url}?token={process.token('zoe', 'Zoe')}",
                                          open_timeout=WAIT) as ws:
                await ws.send(json.dumps({"action": "subscribe", "stream": "users", "id": 1}))
                return json.loads(await ws.recv())

        assert run(connect()) == {"stream": "users", "payload": {"users": 1}}
    finally:
        code = process.stop()  # SIGINT, like Ctrl-C
    assert code == 0, "".join(process.output)
    deadline = time.monotonic() + WAIT
    while any(listening(port) for port in ports) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(listening(port) for port in ports)
