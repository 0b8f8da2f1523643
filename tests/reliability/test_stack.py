"""Over real sockets through the local stack (`devtools.stack.Stack`, in-process, loopback):
raw-frame fuzzing of the gateway and the handler behind it, and load.

Fuzz invariants: every bad frame is answered by exactly one `error` frame (checked by
order: a heartbeat with a fresh id follows every fuzz frame, and the frames before its
ack are the fuzz frame's answer), frames over the gateway's limits close the socket with
1009, the table's keys and consistency hold after every example, the counter never moves.

Load: N clients (REALTIME_LOAD_CLIENTS; 1,000 under `make fuzz`, a smaller bounded run in
`make test`) do the reference scenario while 100 documents are written: every client gets
a `create` for exactly the documents it may read, nothing else, and the counter is exact.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import resource
import time
from typing import Any

import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st

from devtools.stack import Limits, Stack, StackProcess
from realtime import keys
from tests.reliability import invariants
from tests.reliability.conftest import LONG, fuzz_settings
from tests.reliability.strategies import near_valid_frames, structured_frames

WAIT = 20.0
LONG_WAIT = 120.0
log = logging.getLogger("tests.reliability")


@pytest.fixture(scope="module")
def stack():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with Stack(host="127.0.0.1", ws_port=0, web_port=0, aws_port=0, retry_delay=0.02, schedules=False,
               limits=Limits(), workers=32,
               # The probe sends two frames per example, far past one connection's frame rate
               # (its own tests are in test_limits): the fuzz is of frames, not of the limit.
               env={"POWERTOOLS_DEV": "0", "POWERTOOLS_LOG_LEVEL": "ERROR",
                    "POWERTOOLS_METRICS_DISABLED": "true", "FRAME_RATE": "100000",
                    "FRAME_BURST": "100000"}) as running:
        yield running


def tables(stack: Stack | StackProcess) -> tuple[Any, str, str]:
    names = stack.tables
    return stack.client("dynamodb"), names["ConnectionsTable"], names["DocumentsTable"]


#: Streams whose frames are coalesced state broadcasts: they answer no frame in particular.
STATE_STREAMS = ("users", "documents", "document")


class Probe:
    """One persistent socket on a private event loop, driven synchronously by hypothesis."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.loop = asyncio.new_event_loop()
        self.ws: Any = None
        self.n = 0
        self.reconnects = 0

    def run(self, coro: Any, timeout: float = WAIT * 2) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    async def _connect(self) -> None:
        # No keepalive: the loop runs only inside `run`, so a ping sent before a long pause
        # (hypothesis shrinking, a slow table check) times out on resume and the client
        # itself drops the socket (1011 sent, 1006 seen) although the gateway did nothing.
        self.ws = await websockets.connect(self.stack.url(self.stack.token("fuzzer", "Fuzzer")),
                                           open_timeout=WAIT, max_size=2 ** 22, ping_interval=None)

    def ensure(self) -> None:
        if self.ws is None or self.ws.close_code is not None:
            if self.ws is not None:
                self.reconnects += 1
            self.run(self._connect())

    def exchange(self, payload: str | bytes, *, fragments: int = 1,
                 wait: float = WAIT) -> tuple[list[dict], int | None]:
        """Send one message (optionally fragmented) then a heartbeat; the frames answering the
        first, or the close code when the gateway closed the socket."""
        self.ensure()
        self.n += 1
        marker = f"probe-{self.n}"

        async def go() -> tuple[list[dict], int | None]:
            try:
                if fragments > 1:
                    size = -(-len(payload) // fragments)
                    await self.ws.send([payload[i:i + size] for i in range(0, len(payload), size)])
                else:
                    await self.ws.send(payload)
                await self.ws.send(json.dumps({"action": "heartbeat", "id": marker}))
                got = []
                while True:
                    frame = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
                    if frame.get("stream") == "ack" and frame["payload"].get("id") == marker:
                        return got, None
                    got.append(frame)
            except websockets.ConnectionClosed as exc:
                return [], exc.rcvd.code if exc.rcvd else 1006
            except TimeoutError:  # an OSError too: a silent gateway is not a reset socket
                raise AssertionError(f"no answer to {payload[:80]!r} within {wait} s") from None
            except OSError:  # reset while still writing: the close frame never arrived
                return [], 1006

        return self.run(go(), wait * 2)

    def warm(self) -> None:
        """One heartbeat with a long wait: the first message runs the stack's cold start (the
        app built, the first DynamoDB connections), which on a loaded machine outlasts WAIT."""
        assert self.exchange(json.dumps({"action": "heartbeat", "id": "warm"}), wait=LONG_WAIT)[1] is None

    def close(self) -> None:
        if self.ws is not None:
            self.run(self.ws.close())
        self.loop.close()


@pytest.fixture(scope="module")
def probe(stack: Stack):
    p = Probe(stack)
    p.warm()
    yield p
    p.close()


def check_table(stack: Stack, counter: int | None = None, settle: float = 10.0) -> None:
    """The invariants once in-flight handlers have finished (a `$disconnect` of a socket the
    gateway just closed may still be running): polled for up to `settle` seconds."""
    client, connections, _ = tables(stack)
    deadline = time.monotonic() + settle
    while True:
        model = invariants.Model.read(client, connections)
        problems = invariants.key_problems(model.items) + invariants.consistency_problems(model)
        if counter is not None and model.counter != counter:
            problems.append(f"counter {model.counter} != {counter}")
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert problems == []


def one_error(frames: list[dict], close: int | None) -> dict:
    assert close is None, close
    assert len(frames) == 1 and frames[0]["stream"] == "error", frames
    return frames[0]["payload"]


@fuzz_settings(40)
@given(data=st.binary(max_size=600))
def test_gateway_binary_frames(stack: Stack, probe: Probe, data: bytes) -> None:
    frames, close = probe.exchange(data)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        assert one_error(frames, close)["code"] == "bad_request"
    assert close is None and len([f for f in frames if f["stream"] == "error"]) <= 1
    check_table(stack, counter=1)


@fuzz_settings(40)
@given(frame=st.one_of(structured_frames(), near_valid_frames()), as_text=st.booleans())
def test_gateway_structured_frames(stack: Stack, probe: Probe, frame: dict, as_text: bool) -> None:
    raw = json.dumps(frame)  # ASCII-escaped: always valid UTF-8 on the wire
    frames, close = probe.exchange(raw if as_text else raw.encode())
    assert close is None
    errors = [f for f in frames if f["stream"] == "error"]
    assert len(errors) <= 1
    if errors:  # an error frame is the only answer (state broadcasts, coalesced, may arrive any time)
        assert [f for f in frames if f["stream"] not in STATE_STREAMS] == errors
    check_table(stack)


@fuzz_settings(12)
@given(size=st.integers(8_000, 140_000), fragments=st.sampled_from([1, 1, 5]))
def test_gateway_size_limits(stack: Stack, probe: Probe, size: int, fragments: int) -> None:
    """Over 8,192 bytes: `too_large`; a frame over 32 KB or a message over 128 KB: close 1009."""
    prefix = '{"action":"heartbeat","id":"x","pad":"'
    text = prefix + "x" * max(0, size - len(prefix) - 2) + '"}'
    frames, close = probe.exchange(text, fragments=fragments)
    frame_size = -(-len(text) // fragments)
    if len(text) > 128 * 1024 or frame_size > 32 * 1024:
        # 1009; or, when the gateway closes while the client is still writing a large frame,
        # the TCP reset can beat the close frame (1006, no close frame received).
        assert close in (1009, 1006), (len(text), fragments, frames)
    elif len(text) > 8192:
        assert one_error(frames, close)["code"] == "too_large"
    else:  # small enough: a heartbeat, answered with its ack
        assert close is None and frames == [{"stream": "ack", "payload": {"id": "x"}}]
    check_table(stack)


@pytest.mark.parametrize("depth", [
    10, 1000, 1400, 3000, 4000,  # 3000 and up: too deep for json.loads (RecursionError) in the gateway too
    50_000,  # 100 KB: over the 32 KB frame limit, closed with 1009
])
def test_gateway_deep_json(stack: Stack, probe: Probe, depth: int) -> None:
    text = "[" * depth + "]" * depth
    frames, close = probe.exchange(text)
    if len(text) > 32 * 1024:
        assert close == 1009
    else:
        assert one_error(frames, close)["code"] == "bad_request"
    check_table(stack)


# ---- load --------------------------------------------------------------------------------


def load_clients() -> int:
    default = 1000 if LONG else 20
    return int(os.environ.get("REALTIME_LOAD_CLIENTS", default))


def run_load(stack: Stack | StackProcess, clients: int, documents: int = 100, deadline: float = 600.0) -> dict[str, Any]:
    client, connections, documents_table = tables(stack)
    rng = random.Random(7)
    users = [f"user{n:04d}" for n in range(clients)]
    docs = []
    for n in range(documents):
        slug = f"load-{n:03d}"
        if n % 4 == 0:  # a quarter private: owner plus two readers
            owner, readers = rng.choice(users), rng.sample(users, 2)
            docs.append((slug, {"visibility": "private", "owner": owner, "readers": readers}))
        else:
            docs.append((slug, {}))
    readable = {u: {s for s, d in docs if not d or u == d["owner"] or u in d["readers"]} for u in users}
    stats: dict[str, Any] = {"clients": clients, "documents": documents}

    async def scenario() -> None:
        socks: dict[str, Any] = {}
        received: dict[str, list[dict]] = {u: [] for u in users}
        done = asyncio.Event()
        remaining = {u: set(readable[u]) for u in users}
        pending_users = {u for u in users if remaining[u]}

        async def reader(user: str) -> None:
            ws = socks[user]
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    received[user].append(frame)
                    if frame.get("stream") == "notifications":
                        remaining[user].discard(frame["payload"]["pk"])
                        if not remaining[user] and user in pending_users:
                            pending_users.discard(user)
                            if not pending_users:
                                done.set()
            except websockets.ConnectionClosed:
                pass

        async def open_one(user: str) -> None:
            ws = await websockets.connect(stack.url(stack.token(user, user.title())), open_timeout=600,
                                          max_size=2 ** 22, ping_interval=None)
            socks[user] = ws
            # Read from the start: a client that does not read lets the gateway's sends to it
            # back up, which stalls the handlers broadcasting the counter to everyone.
            readers.append(asyncio.create_task(reader(user)))
            for frame in ({"action": "subscribe", "stream": "users"}, {"action": "subscribe", "stream": "documents"},
                          {"action": "subscribe", "stream": "notifications", "id": "ready"}):
                await ws.send(json.dumps(frame))

        began = time.perf_counter()
        # Handshakes in flight: the local stack serialises DynamoDB (moto), so more only queue
        # longer inside the stack (each connect also broadcasts the counter to every client).
        semaphore = asyncio.Semaphore(20)
        readers: list[asyncio.Task[None]] = []

        async def bounded(user: str) -> None:
            async with semaphore:
                await open_one(user)

        await asyncio.gather(*(bounded(u) for u in users))
        # Everyone subscribed (their `ready` ack arrived) before the writes start.
        while any(not any(f.get("stream") == "ack" and f["payload"].get("id") == "ready" for f in received[u])
                  for u in users):
            await asyncio.sleep(0.2)
            if time.perf_counter() - began > deadline:
                raise AssertionError("clients could not subscribe in time")
        stats["connect_and_subscribe_s"] = round(time.perf_counter() - began, 1)

        async def activity(user: str) -> None:  # the reference scenario's presence, while writes land
            ws = socks[user]
            doc = rng.choice(["welcome", "roadmap", "release-notes"])
            for frame in ({"action": "enter", "document": doc, "phase": "view"}, {"action": "heartbeat"},
                          {"action": "leave", "document": doc, "phase": "view"}):
                await ws.send(json.dumps(frame))
                await asyncio.sleep(rng.random())

        def write_all() -> None:
            for slug, extra in docs:
                item = {"slug": {"S": slug}, "title": {"S": slug.title()}}
                if extra:
                    item.update({"visibility": {"S": "private"}, "owner": {"S": extra["owner"]},
                                 "readers": {"L": [{"S": r} for r in extra["readers"]]}})
                client.put_item(TableName=documents_table, Item=item)

        writes_began = time.perf_counter()
        await asyncio.gather(asyncio.to_thread(write_all), *(activity(u) for u in rng.sample(users, min(50, clients))))
        try:
            await asyncio.wait_for(done.wait(), deadline)
        except asyncio.TimeoutError:
            missing = {u: sorted(remaining[u])[:5] for u in users if remaining[u]}
            raise AssertionError(f"{len(missing)} clients still miss notifications: {dict(list(missing.items())[:5])}")
        stats["all_notified_s"] = round(time.perf_counter() - writes_began, 1)

        # Nothing misdelivered: notifications only for readable documents, each seq once after dedupe.
        for user in users:
            notes = [f["payload"] for f in received[user] if f.get("stream") == "notifications"]
            assert {n["pk"] for n in notes} == readable[user], user
            assert all(n["action"] == "create" for n in notes)
            listed = {e["document"] for f in received[user] if f.get("stream") == "documents"
                      for e in f["payload"]["documents"]}
            private_seen = {s for s in listed if s.startswith("load-")} - readable[user]
            assert not private_seen, (user, private_seen)
        stats["notifications"] = sum(len(readable[u]) for u in users)
        stats["frames_received"] = sum(len(v) for v in received.values())

        # The counter while everyone is here, then after everyone leaves.
        model = invariants.Model.read(client, connections)
        assert model.counter == clients
        closing = time.perf_counter()
        await asyncio.gather(*(ws.close() for ws in socks.values()))
        await asyncio.gather(*readers)
        while True:  # the counter item first: a full read of the table only once it reads 0
            if _counter(client, connections) == 0:
                model = invariants.Model.read(client, connections)
                if model.counter == 0 and not model.connections:
                    break
            if time.perf_counter() - closing > deadline:
                model = invariants.Model.read(client, connections)
                raise AssertionError(f"counter {model.counter}, {len(model.connections)} records after every close")
            await asyncio.sleep(2.0)
        stats["all_closed_s"] = round(time.perf_counter() - closing, 1)
        stats["total_s"] = round(time.perf_counter() - began, 1)

    asyncio.run(scenario())
    assert invariants.all_problems(client, None, connections) == []
    return stats


def clean(stack: Stack) -> None:
    client, connections, documents_table = tables(stack)
    for item in invariants.scan(client, documents_table):
        if item["slug"]["S"].startswith("load-"):
            client.delete_item(TableName=documents_table, Key={"slug": item["slug"]})


def test_load_bounded(stack: Stack, probe: Probe) -> None:
    """The default suite's bounded load (REALTIME_LOAD_CLIENTS clients, 150 unless set)."""
    probe.close()  # the fuzz socket leaves: the counter must read exactly the load's users
    probe.ws = None
    probe.loop = asyncio.new_event_loop()
    _wait_for_counter(stack, 0, time.time() + 60)
    stats = run_load(stack, load_clients() if not LONG else 200)
    log.warning("load: %s", stats)
    print("LOAD", json.dumps(stats))
    clean(stack)


@pytest.mark.load
def test_load_1000_clients() -> None:
    """The full-size load (`make fuzz`). The stack runs in its own process, as `make dev`
    runs it, so its handlers and the 1,000 clients do not share one interpreter."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 8192):  # a socket per client on each side, plus the functions' pools
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    env = {"POWERTOOLS_LOG_LEVEL": "ERROR", "DEV_SWEEP_SECONDS": "3600"}
    with StackProcess(env=env, startup_timeout=120) as stack:
        stats = run_load(stack, 1000, deadline=900.0)
    print("LOAD", json.dumps(stats))


def _counter(client: Any, connections: str) -> int:
    """The user count: the sum of its shards."""
    return sum(int((client.get_item(TableName=connections, Key={"pk": {"S": shard}, "sk": {"S": "users"}},
                                    ConsistentRead=True).get("Item") or {}).get("n", {}).get("N", "0"))
               for shard in keys.counter_shards())


def _wait_for_counter(stack: Stack, value: int, deadline: float) -> None:
    client, connections, _ = tables(stack)
    while invariants.Model.read(client, connections).counter != value:
        assert time.time() < deadline, "the counter never settled"
        time.sleep(0.2)
