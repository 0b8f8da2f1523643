"""The local API Gateway: handshake, limits, errors, the @connections API, the web server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import boto3
import jwt
import pytest
import websockets
from botocore.config import Config
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devtools.stack import Limits
from devtools.stack.gateway import select_route
from tests.stack.conftest import WAIT, Client, run


def management(stack):
    return boto3.client("apigatewaymanagementapi", endpoint_url=stack.management_endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=Config(retries={"max_attempts": 1}))


async def new_connection_id(stack, connect):
    """Connect and return (client, its connection id), read from the gateway's table of sockets."""
    before = set(stack.gateway.connections)
    client = await connect()
    for _ in range(int(WAIT / 0.01)):
        new = set(stack.gateway.connections) - before
        if new:
            return client, new.pop()
        await asyncio.sleep(0.01)
    raise AssertionError("the gateway never registered the connection")


async def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    return info.value.rcvd.code if info.value.rcvd else None


# ------------------------------------------------------------------ handshake


@pytest.mark.parametrize("token", ["not-a-jwt", "WRONG_KEY", "EXPIRED"])
def test_bad_token_refuses_the_handshake_with_401(stack, token):
    if token == "WRONG_KEY":
        token = jwt.encode({"sub": "mallory", "exp": 4102444800}, "x" * 40, algorithm="HS256")
    elif token == "EXPIRED":
        token = stack.token("alice", "Alice", lifetime=-3600)

    async def scenario():
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(stack.url(token), open_timeout=WAIT)
        return info.value.response.status_code

    assert run(scenario()) == 401
    assert not stack.gateway.connections


def test_stage_path_and_good_token_connect(stack):
    async def scenario():
        async with websockets.connect(stack.url(stack.token("erin", "Erin"), stage=True), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"action": "heartbeat", "id": 7}))
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    assert run(scenario()) == {"stream": "ack", "payload": {"id": 7}}


def test_connect_handler_exception_answers_500(stack):
    def broken(event, context):
        raise RuntimeError("boom")

    async def scenario():
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(stack.url(), open_timeout=WAIT)
        return info.value.response.status_code

    with stack.functions.override("ConnectFunction", broken):
        assert run(scenario()) == 500


# ------------------------------------------------------------------ errors and limits


def test_handler_exception_is_answered_like_api_gateway(stack):
    def broken(event, context):
        raise RuntimeError("boom")

    async def scenario():
        client, connection_id = await new_connection_id(stack, lambda: Client.connect(stack, "frank", "Frank"))
        with stack.functions.override("MessageFunction", broken):
            await client.send({"action": "heartbeat", "id": 1})
            answer = await client.until(lambda f: "message" in f)
        assert answer["message"] == "Internal server error"
        assert answer["connectionId"] == connection_id
        assert isinstance(answer["requestId"], str) and answer["requestId"]
        # Not a crash: the connection stays open and the next frame is handled.
        rid = await client.request(action="heartbeat")
        assert await client.next("ack") == {"id": rid}
        await client.close()

    run(scenario())


def test_single_frame_over_32k_closes_with_1009(stack):
    async def scenario():
        client = await Client.connect(stack, "gina", "Gina")
        await client.ws.send("x" * (32 * 1024 + 1))
        return await closed_with(client.ws)

    assert run(scenario()) == 1009


def test_message_over_128k_in_small_frames_closes_with_1009(stack):
    async def scenario():
        client = await Client.connect(stack, "hugo", "Hugo")
        fragments = ["y" * (16 * 1024)] * 9  # 144 KB in 16 KB frames: every frame is fine
        await client.ws.send(iter(fragments))
        return await closed_with(client.ws)

    assert run(scenario()) == 1009


def test_fragmented_message_within_limits_reaches_the_handler(stack):
    async def scenario():
        client = await Client.connect(stack, "ines", "Ines")
        body = json.dumps({"action": "heartbeat", "id": "big", "pad": "z" * (100 * 1024)})
        await client.ws.send(iter([body[i:i + 30000] for i in range(0, len(body), 30000)]))
        error = await client.next("error")
        await client.close()
        return error

    # 100 KB passes the gateway; the handler's own 8 KB rule answers too_large.
    assert run(scenario())["code"] == "too_large"


def test_idle_timeout_closes_with_1001_and_runs_disconnect(stack):
    connects, calls = [], []
    original_connect = stack.functions.functions["ConnectFunction"].handler
    original = stack.functions.functions["DisconnectFunction"].handler

    def recording_connect(event, context):
        connects.append(event["requestContext"]["connectionId"])
        return original_connect(event, context)

    def recording(event, context):
        # Only this test's connection: a previous test's socket may still be disconnecting.
        if event["requestContext"]["connectionId"] in connects:
            calls.append(event["requestContext"])
        return original(event, context)

    async def scenario():
        client = await Client.connect(stack, "jack", "Jack")
        return await closed_with(client.ws)

    saved = stack.gateway.limits
    stack.gateway.limits = Limits(idle_timeout=0.3)
    try:
        with stack.functions.override("ConnectFunction", recording_connect), \
                stack.functions.override("DisconnectFunction", recording):
            code = run(scenario())
            for _ in range(int(WAIT / 0.01)):
                if calls:
                    break
                time.sleep(0.01)
    finally:
        stack.gateway.limits = saved
    assert code == 1001
    assert len(connects) == 1
    assert calls and calls[0]["disconnectStatusCode"] == 1001 and calls[0]["eventType"] == "DISCONNECT"


def test_route_selection_uses_the_template_expression():
    routes = {"$connect": "C", "$default": "M", "sendmessage": "S"}
    assert select_route("$request.body.action", '{"action":"sendmessage"}', routes) == "sendmessage"
    assert select_route("$request.body.action", '{"action":"subscribe"}', routes) == "$default"
    assert select_route("$request.body.action", '{"action":"$connect"}', routes) == "$default"
    assert select_route("$request.body.action", "not json", routes) == "$default"
    assert select_route("$request.body.action", None, routes) == "$default"


def test_connect_event_is_shaped_like_api_gateway(stack):
    seen = []
    original = stack.functions.functions["ConnectFunction"].handler

    def recording(event, context):
        seen.append(event)
        return original(event, context)

    async def scenario():
        with stack.functions.override("ConnectFunction", recording):
            client = await Client.connect(stack, "kim", "Kim")
        await client.close()

    run(scenario())
    event = seen[0]
    ctx = event["requestContext"]
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["connectionId"].endswith("=") and len(ctx["connectionId"]) == 16
    assert ctx["connectedAt"] > 10 ** 12 and ctx["requestTimeEpoch"] >= ctx["connectedAt"]  # milliseconds
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    for key in ("domainName", "stage", "apiId", "requestId", "extendedRequestId", "requestTime"):
        assert ctx[key]
    assert "token" in event["queryStringParameters"]
    assert event["multiValueQueryStringParameters"]["token"] == [event["queryStringParameters"]["token"]]
    assert any(k.lower() == "sec-websocket-key" for k in event["headers"])
    assert all(isinstance(v, list) for v in event["multiValueHeaders"].values())


# ------------------------------------------------------------------ @connections


def test_post_to_connection_on_a_closed_connection_raises_gone(stack):
    api = management(stack)

    async def scenario():
        client, connection_id = await new_connection_id(stack, lambda: Client.connect(stack, "lena", "Lena"))
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b'{"hello":"there"}')
        assert await client.recv_raw() == {"hello": "there"}
        info = await asyncio.to_thread(api.get_connection, ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1" and info["ConnectedAt"]
        await client.close()
        for _ in range(int(WAIT / 0.01)):
            if connection_id not in stack.gateway.connections:
                break
            await asyncio.sleep(0.01)
        return connection_id

    connection_id = run(scenario())
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(api.exceptions.GoneException):
        api.get_connection(ConnectionId=connection_id)
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId="neverExisted0A=", Data=b"x")


def test_delete_connection_closes_the_socket(stack):
    api = management(stack)

    async def scenario():
        client, connection_id = await new_connection_id(stack, lambda: Client.connect(stack))
        await asyncio.to_thread(api.delete_connection, ConnectionId=connection_id)
        return await closed_with(client.ws)

    assert run(scenario()) == 1000


# ------------------------------------------------------------------ web server


def test_dev_token_and_page(stack):
    with urllib.request.urlopen(f"{stack.web_url}/dev/token?user=alice&name=Alice", timeout=WAIT) as response:
        token = json.load(response)["token"]
    claims = jwt.decode(token, stack.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["name"] == "Alice" and claims["exp"] - claims["iat"] <= 3600
    with urllib.request.urlopen(f"{stack.web_url}/", timeout=WAIT) as response:
        assert b"users-count" in response.read()
    with urllib.request.urlopen(f"{stack.web_url}/dev/config", timeout=WAIT) as response:
        assert json.load(response)["websocket"] == stack.ws_url
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{stack.web_url}/dev/token", timeout=WAIT)
    assert info.value.code == 400

    async def scenario():
        async with websockets.connect(stack.url(token), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"action": "subscribe", "stream": "notifications", "id": 1}))
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    answer = run(scenario())
    assert answer["stream"] == "ack" and answer["payload"]["id"] == 1
    assert set(answer["payload"]) == {"id", "cursor"}  # `notifications` keeps history


def test_tokens_never_reach_the_logs(stack, capsys, caplog):
    token = stack.token("olga", "Olga")

    async def scenario():
        async with websockets.connect(stack.url(token), open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"action": "heartbeat", "id": 1}))
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    caplog.set_level("DEBUG")
    assert run(scenario()) == {"stream": "ack", "payload": {"id": 1}}
    captured = capsys.readouterr()
    signature = token.rsplit(".", 1)[1]
    # Everything the stack and the handlers logged (the test's own client logs its request line).
    server_logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "[ConnectFunction $connect " in server_logs  # the handshake was logged, tagged
    assert signature not in captured.out + captured.err + server_logs
