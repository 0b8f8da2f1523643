"""The reference workload on the local stack, over real WebSocket clients (`python -m bench scale`).

Three processes, as in the latency benchmark:

* **the stack** (`python -m bench.scale_load --stack-child`): `devtools.stack` as `make dev`
  runs it, with a *tap* installed first. The tap labels every function invocation (the
  function, and for `$default` the frame's action; for the announce function the topic of
  each message) and counts, per label, the invocations, the DynamoDB requests (botocore's
  `_make_api_call`, so PynamoDB's too) with the partition key each touches, the SQS requests
  and the `@connections` posts (`realtime.sender.Sender`). It writes its counters to a file
  on SIGUSR1 and starts again from zero, so the driver reads exactly one window;
* **the clients** (`--clients-child`): N `websockets` connections in one asyncio loop, each
  a signed-in user running the reference workload, time-compressed (see `Workload`);
* **the driver** (this module's `run_size`): seeds the documents, writes one document per
  second with boto3 while the window lasts, and collects both sides.

Bounded: connecting stops at its budget, the window has a fixed length, every wait has a
timeout, and the children exit when their stdin closes or on SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, LineChild, lines, percentile, reply

PHASES = ("view", "edit", "review")


@dataclass(frozen=True)
class Workload:
    """The reference workload (issue 11) and how the local run compresses it.

    Per user: a session of `session_s` on average (connect, subscribe to `users`, `documents`
    and `notifications`, then close and reconnect), one `enter` or `leave` every `presence_s`
    on average (alternating: entering a room, then leaving it), heartbeats as
    `client/realtime.js` sends them (every 25 s while holding presence, every 5 minutes
    otherwise, the timer restarted when that changes). Rooms are `documents` documents, chosen
    with a Zipf(`zipf_s`) spread (the first document the most crowded), a phase at random.
    One document write per `write_every_s`, uniform over the documents, a field the
    notifications show (`abstract`): a quarter of the documents private to an owner and two
    readers. `compression` divides the per-user times (sessions, enter/leave), not the
    heartbeats (the protocol's timers) nor the document writes (one stream, not per user)."""

    session_s: float = 1800.0
    presence_s: float = 120.0
    documents: int = 1000
    zipf_s: float = 1.0
    write_every_s: float = 1.0
    private_share: float = 0.25
    heartbeat_presence_s: float = 25.0
    heartbeat_idle_s: float = 300.0
    compression: float = 1.0

    @property
    def session(self) -> float:
        return self.session_s / self.compression

    @property
    def presence(self) -> float:
        return self.presence_s / self.compression

    def zipf(self) -> list[float]:
        """Each document's share of the presence (sums to 1)."""
        weights = [1.0 / (rank ** self.zipf_s) for rank in range(1, self.documents + 1)]
        total = sum(weights)
        return [w / total for w in weights]


def document_slug(n: int) -> str:
    return f"doc-{n:04d}"


def documents(workload: Workload, users: int, seed: int = 11) -> list[dict[str, Any]]:
    """The documents as DynamoDB items: every `1 / private_share`-th private to an owner and two
    readers among the users."""
    rng = random.Random(seed)
    every = round(1 / workload.private_share) if workload.private_share else 0
    items = []
    for n in range(workload.documents):
        item: dict[str, Any] = {"slug": {"S": document_slug(n)}, "title": {"S": f"Document {n}"},
                                "abstract": {"S": "v0"}}
        if every and n % every == every - 1:
            owner, *readers = rng.sample(range(users), 3)
            item.update(visibility={"S": "private"}, owner={"S": f"u{owner}"},
                        readers={"L": [{"S": f"u{r}"} for r in readers]})
        items.append(item)
    return items


# ================================================================ the stack's tap (in the stack process)

STATE_STREAMS = ("users", "documents", "document")
_local = threading.local()


class Tap:
    """Counters of one window, per invocation label (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key_attrs: dict[tuple[str, str | None], str] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.started = time.time()
            self.invocations: Counter[str] = Counter()
            self.requests: Counter[tuple[str, str]] = Counter()  # (label, operation)
            self.keys: Counter[str] = Counter()  # "table[index] key" -> accesses
            self.key_reads: Counter[str] = Counter()
            self.key_writes: Counter[str] = Counter()
            self.sqs: Counter[tuple[str, str]] = Counter()
            self.posts: Counter[str] = Counter()
            self.announce_late: dict[str, list[float]] = defaultdict(list)
            self.durations: dict[str, list[float]] = defaultdict(list)
            #: moto's DynamoDB: seconds spent serving each operation (one request at a time).
            self.moto: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "seconds": time.time() - self.started,
                "invocations": dict(self.invocations),
                "requests": [[label, op, n] for (label, op), n in self.requests.items()],
                "keys": self.keys.most_common(25), "key_total": sum(self.keys.values()),
                "key_reads": self.key_reads.most_common(5), "key_writes": self.key_writes.most_common(5),
                "distinct_keys": len(self.keys),
                "sqs": [[label, op, n] for (label, op), n in self.sqs.items()],
                "posts": dict(self.posts),
                "announce_late": {k: sorted(v) for k, v in self.announce_late.items()},
                "durations_ms": {k: [percentile(v, 50), percentile(v, 99), len(v)] for k, v in self.durations.items()},
                "moto": {k: list(v) for k, v in self.moto.items()},
            }

    # ---- what one DynamoDB request touches

    def hash_attr(self, client: Any, table: str, index: str | None) -> str:
        cached = self.key_attrs.get((table, index))
        if cached is None:
            _local.untapped = True
            try:
                desc = client.describe_table(TableName=table)["Table"]
            finally:
                _local.untapped = False
            for schema_owner in [desc] + desc.get("GlobalSecondaryIndexes", []):
                name = schema_owner.get("IndexName")
                attr = next(k["AttributeName"] for k in schema_owner["KeySchema"] if k["KeyType"] == "HASH")
                self.key_attrs[(table, name)] = attr
            cached = self.key_attrs[(table, index)]
        return cached

    def touched(self, client: Any, op: str, params: dict[str, Any]) -> Iterator[tuple[str, bool]]:
        """(partition, is_write) for every item or partition the request reads or writes."""
        def value(v: dict[str, Any]) -> str:
            return str(next(iter(v.values())))

        def item_key(table: str, key: dict[str, Any]) -> str:
            attr = self.hash_attr(client, table, None)
            return f"{table} {value(key[attr])}" if attr in key else f"{table} ?"

        if op in ("GetItem", "DeleteItem", "UpdateItem"):
            yield item_key(params["TableName"], params["Key"]), op != "GetItem"
        elif op == "PutItem":
            yield item_key(params["TableName"], params["Item"]), True
        elif op == "Query":
            table, index = params["TableName"], params.get("IndexName")
            attr = self.hash_attr(client, table, index)
            names = {v: k for k, v in params.get("ExpressionAttributeNames", {}).items()}
            condition = params.get("KeyConditionExpression", "")
            found = "?"
            for name, placeholder in re.findall(r"([#\w]+)\s*=\s*(:\w+)", condition):
                if names.get(attr) == name or name == attr:
                    found = value(params["ExpressionAttributeValues"][placeholder])
                    break
            yield f"{table}{f'[{index}]' if index else ''} {found}", False
        elif op == "Scan":
            yield f"{params['TableName']} (scan)", False
        elif op == "BatchGetItem":
            for table, asked in params.get("RequestItems", {}).items():
                for key in asked.get("Keys", []):
                    yield item_key(table, key), False
        elif op == "BatchWriteItem":
            for table, requests in params.get("RequestItems", {}).items():
                for r in requests:
                    body = r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key") or {}
                    yield item_key(table, body), True
        elif op == "TransactWriteItems":
            for t in params.get("TransactItems", []):
                (_, body), = t.items()
                yield item_key(body["TableName"], body.get("Item") or body.get("Key") or {}), True

    def dynamodb(self, client: Any, op: str, params: dict[str, Any]) -> None:
        label = getattr(_local, "label", "stack")
        try:
            touched = list(self.touched(client, op, params))
        except Exception:  # noqa: BLE001 - a shape the tap does not know is counted, unkeyed
            touched = [("(unparsed)", False)]
        with self.lock:
            self.requests[(label, op)] += 1
            for key, write in touched:
                self.keys[key] += 1
                (self.key_writes if write else self.key_reads)[key] += 1


def _label(logical_id: str, event: dict[str, Any]) -> str:
    if logical_id == "MessageFunction":
        try:
            frame = json.loads(event.get("body") or "{}")
            action = frame.get("action", "?")
            return f"frame {action}" + (f" {frame.get('stream')}" if action in ("subscribe", "unsubscribe") else "")
        except ValueError:
            return "frame (unparsed)"
    if logical_id == "DisconnectFunction":
        return "disconnect" if "requestContext" in event else "sweep"
    if logical_id == "NotifyFunction":
        records = event.get("Records") or [{}]
        return "notify (fan-out page)" if records[0].get("eventSource") == "aws:sqs" else "notify (stream record)"
    return {"ConnectFunction": "connect", "AnnounceFunction": "announce", "PublishFunction": "publish"}.get(
        logical_id, logical_id)


def install_tap(out: Path) -> Tap:
    """Wrap the stack's invocations, botocore's calls and the sender (this process only)."""
    import botocore.client

    from devtools.stack.functions import LocalFunctions
    from realtime.announcing import Mark
    from realtime.engine import Engine
    from realtime.sender import Sender

    tap = Tap()
    invoke = LocalFunctions.invoke_sync

    def invoke_sync(self: Any, logical_id: str, event: dict[str, Any]) -> Any:
        label = _label(logical_id, event)
        _local.label = label
        began = time.perf_counter()
        try:
            return invoke(self, logical_id, event)
        finally:
            _local.label = "stack"
            with tap.lock:
                tap.invocations[label] += 1
                tap.durations[label].append((time.perf_counter() - began) * 1000)

    announce = Engine.announce

    def engine_announce(self: Any, body: str) -> bool:
        outer = getattr(_local, "label", "stack")
        try:
            mark = Mark.parse(body)
            _local.label = f"announce {mark.topic}"
            late: float | None = self.services.clock() - mark.due
        except ValueError:
            late = None
        try:
            return announce(self, body)
        finally:
            with tap.lock:
                tap.invocations[_local.label + " (message)"] += 1
                if late is not None:
                    tap.announce_late[_local.label].append(late)
            _local.label = outer

    make_call = botocore.client.BaseClient._make_api_call

    def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if not getattr(_local, "untapped", False):
            service = self.meta.service_model.service_name
            if service == "dynamodb":
                tap.dynamodb(self, operation_name, api_params)
            elif service == "sqs":
                with tap.lock:
                    tap.sqs[(getattr(_local, "label", "stack"), operation_name)] += 1
        return make_call(self, operation_name, api_params)

    send_many = Sender.send_many

    def sender_send_many(self: Any, messages: Any) -> Any:
        messages = list(messages)
        with tap.lock:
            tap.posts[getattr(_local, "label", "stack")] += len(messages)
        return send_many(self, messages)

    from devtools.stack.aws import _OneDynamoDBRequestAtATime

    class HeldLock:
        """moto's one-request-at-a-time lock, timing how long each operation holds it."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __enter__(self) -> None:
            self.lock.acquire()
            _local.held_since = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            spent = time.perf_counter() - _local.held_since
            self.lock.release()
            with tap.lock:
                entry = tap.moto[getattr(_local, "target", "?")]
                entry[0] += 1
                entry[1] += spent

    middleware_init = _OneDynamoDBRequestAtATime.__init__
    serve = _OneDynamoDBRequestAtATime.__call__

    def init(self: Any, app: Any) -> None:
        middleware_init(self, app)
        self.lock = HeldLock()

    def serve_named(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        _local.target = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        return serve(self, environ, start_response)

    _OneDynamoDBRequestAtATime.__init__ = init  # type: ignore[method-assign]
    _OneDynamoDBRequestAtATime.__call__ = serve_named  # type: ignore[method-assign]
    LocalFunctions.invoke_sync = invoke_sync  # type: ignore[method-assign]
    Engine.announce = engine_announce  # type: ignore[method-assign]
    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    Sender.send_many = sender_send_many  # type: ignore[method-assign]
    sequence = [0]

    def dump(signum: int, frame: Any) -> None:
        sequence[0] += 1
        data = {"sequence": sequence[0], **tap.snapshot()}
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(out)
        tap.reset()

    signal.signal(signal.SIGUSR1, dump)
    return tap


def stack_child(out: str) -> int:
    """The stack with the tap (what `TappedStack` starts)."""
    for path in (str(ROOT), str(ROOT / "layers" / "common")):
        if path not in sys.path:
            sys.path.insert(0, path)
    install_tap(Path(out))
    from devtools.stack.__main__ import main

    return main(["--ready-json", "--quiet"])


# ================================================================ the clients (their own process)

async def clients_main(url: str, secret: str, n: int, workload: Workload, connect_budget: float,
                       concurrency: int, seed: int) -> None:
    """N users running the workload until stdin closes; frames counted per stream while a window is open."""
    import websockets

    from devtools.stack.web import mint_token

    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    shares = workload.zipf()
    readers: dict[int, set[int]] = {}  # private document -> the users who may read it
    for number, item in enumerate(documents(workload, n)):
        if "owner" in item:
            readers[number] = {int(u["S"][1:]) for u in [item["owner"], *item["readers"]["L"]]}
    public = [d for d in range(workload.documents) if d not in readers]
    cumulative_public: list[float] = []
    acc = 0.0
    for d in public:
        acc += shares[d]
        cumulative_public.append(acc)
    window = {"open": False, "began": 0.0}
    counts: list[Counter[str]] = [Counter() for _ in range(n)]
    live = [False] * n
    stopping = asyncio.Event()
    errors: Counter[str] = Counter()
    sessions = [0]
    ready = asyncio.Event()
    subscribed: set[int] = set()
    started = time.perf_counter()

    def pick_room(i: int) -> str:
        """A room user `i` may enter: a private document it reads, with that document's share, or
        else a public one by the Zipf spread."""
        x = rng.random() * (acc + sum(shares[d] for d, who in readers.items() if i in who))
        for d, who in readers.items():
            if i in who:
                if x < shares[d]:
                    return document_slug(d)
                x -= shares[d]
        lo, hi = 0, len(cumulative_public) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cumulative_public[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return document_slug(public[lo])

    sem = asyncio.Semaphore(concurrency)

    async def session(i: int, ws: Any, first: bool) -> None:
        """One session's frames, until it ends (or the socket closes)."""
        acks: asyncio.Queue[str] = asyncio.Queue()

        async def reader() -> None:
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    stream = frame.get("stream", "?")
                    if stream == "ack":
                        acks.put_nowait(str(frame["payload"].get("id")))
                    elif stream == "error":
                        errors[frame["payload"].get("code", "?")] += 1
                    if window["open"]:
                        counts[i][stream] += 1
            except websockets.ConnectionClosed:
                pass

        task = loop.create_task(reader())
        try:
            for name in ("users", "documents", "notifications"):
                await ws.send(json.dumps({"action": "subscribe", "stream": name, "id": name}))
            deadline = loop.time() + 120
            pending = {"users", "documents", "notifications"}
            while pending and loop.time() < deadline:
                try:
                    pending.discard(await asyncio.wait_for(acks.get(), deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
            if pending:
                errors["subscribe timed out"] += 1
            subscribed.add(i)
            if len(subscribed) == n:
                ready.set()
            # A first session is somewhere into its length already (the population is in its steady state).
            length = rng.expovariate(1 / workload.session)
            end = loop.time() + length
            held: tuple[str, str] | None = None
            next_action = loop.time() + rng.uniform(0, workload.presence) if first else loop.time() + rng.expovariate(
                1 / workload.presence)
            beat_every = workload.heartbeat_idle_s
            next_beat = loop.time() + beat_every
            frame_id = 0
            while not stopping.is_set():
                now = loop.time()
                wake = min(end, next_action, next_beat)
                if wake > now:
                    try:
                        await asyncio.wait_for(stopping.wait(), wake - now)
                        return
                    except asyncio.TimeoutError:
                        pass
                now = loop.time()
                frame_id += 1
                if now >= end:
                    return
                if now >= next_action:
                    if held is None:
                        held = (pick_room(i), rng.choice(PHASES))
                        await ws.send(json.dumps({"action": "enter", "document": held[0], "phase": held[1],
                                                  "id": frame_id}))
                    else:
                        await ws.send(json.dumps({"action": "leave", "document": held[0], "phase": held[1],
                                                  "id": frame_id}))
                        held = None
                    next_action = now + rng.expovariate(1 / workload.presence)
                    wanted = workload.heartbeat_presence_s if held else workload.heartbeat_idle_s
                    if wanted != beat_every:  # the client retunes its timer when presence changes
                        beat_every = wanted
                        next_beat = now + beat_every
                elif now >= next_beat:
                    await ws.send(json.dumps({"action": "heartbeat", "id": frame_id}))
                    next_beat = now + beat_every
        except websockets.ConnectionClosed:
            errors["closed by the server"] += 1
        finally:
            try:
                await asyncio.wait_for(ws.close(), 5)
            except Exception:  # noqa: BLE001
                pass
            await asyncio.wait([task], timeout=5)

    async def user(i: int) -> None:
        first = True
        while not stopping.is_set():
            async with sem:
                if first and loop.time() > connect_deadline:
                    errors["connect budget"] += 1
                    return
                try:
                    token = mint_token(secret, f"u{i}", f"User {i}", 7200)
                    ws = await websockets.connect(f"{url}?token={token}", max_queue=None, ping_interval=None,
                                                  open_timeout=60, close_timeout=5, max_size=2 ** 22)
                except Exception as exc:  # noqa: BLE001 - counted; the user tries again
                    errors[f"connect: {type(exc).__name__}"] += 1
                    await asyncio.sleep(1)
                    continue
            live[i] = True
            sessions[0] += 1
            try:
                await session(i, ws, first)
            finally:
                live[i] = False
            first = False

    connect_deadline = loop.time() + connect_budget
    tasks = [loop.create_task(user(i)) for i in range(n)]
    try:
        await asyncio.wait_for(ready.wait(), connect_budget + 130)
    except asyncio.TimeoutError:
        pass
    reply({"ready": len(subscribed), "seconds": time.perf_counter() - started, "errors": dict(errors)})

    commands = lines(loop)
    live_samples: list[int] = []

    async def sample_live() -> None:
        while True:
            await asyncio.sleep(1)
            if window["open"]:
                live_samples.append(sum(live))

    sampler = loop.create_task(sample_live())
    while True:
        line = await commands.get()
        if line is None:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "open":
            for c in counts:
                c.clear()
            errors.clear()
            sessions[0] = 0
            live_samples.clear()
            window.update(open=True, began=time.time())
            reply({"opened": window["began"]})
        elif cmd["cmd"] == "close":
            window["open"] = False
            seconds = time.time() - window["began"]
            per_client = [sum(c[s] for s in STATE_STREAMS) / seconds for c in counts]
            total: Counter[str] = Counter()
            for c in counts:
                total.update(c)
            reply({"seconds": seconds, "frames": dict(total), "clients": n, "sessions": sessions[0],
                 "live_mean": sum(live_samples) / len(live_samples) if live_samples else 0.0,
                 "state_per_client": [percentile(per_client, 50), percentile(per_client, 99), max(per_client)],
                 "errors": dict(errors)})
            break
    stopping.set()
    sampler.cancel()
    await asyncio.wait(tasks, timeout=30)


class Clients(LineChild):
    """The clients' process, driven line by line over stdin/stdout."""

    def __init__(self, url: str, secret: str, n: int, workload: Workload, connect_budget: float,
                 concurrency: int = 16, seed: int = 5) -> None:
        super().__init__("bench.scale_load", ["--clients-child", url, str(n), json.dumps(asdict(workload)),
                                              str(connect_budget), str(concurrency), str(seed)],
                         {"BENCH_JWT_SECRET": secret})


# ================================================================ the driver


class TappedStack:
    """`devtools.stack.StackProcess`, started through `stack_child` (the tap first)."""

    def __init__(self, tap_file: Path, env: dict[str, str]) -> None:
        from devtools.stack import StackProcess

        self.tap_file = tap_file
        self.process = StackProcess(env=env, startup_timeout=120)
        self.last_sequence = 0

    def __enter__(self) -> TappedStack:
        original = subprocess.Popen

        def popen(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
            # StackProcess runs `python -m devtools.stack ...`: the same, with the tap installed first.
            assert cmd[1:3] == ["-m", "devtools.stack"], cmd
            return original([cmd[0], "-m", "bench.scale_load", "--stack-child", str(self.tap_file)], *args, **kwargs)

        subprocess.Popen = popen  # type: ignore[misc,assignment]
        try:
            self.process.start()
        finally:
            subprocess.Popen = original  # type: ignore[misc]
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def cpu_seconds(self) -> float:
        """The stack process's CPU time so far (user + system, every thread)."""
        assert self.process.proc is not None
        fields = Path(f"/proc/{self.process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def window(self) -> dict[str, Any]:
        """The tap's counters since the last call (which starts a new window)."""
        assert self.process.proc is not None
        self.process.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = json.loads(self.tap_file.read_text())
                if data["sequence"] > self.last_sequence:
                    self.last_sequence = data["sequence"]
                    return data
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError("the stack's tap did not answer")


def run_size(n: int, workload: Workload, *, window_s: float, warmup_s: float, connect_budget: float,
             tap_file: Path) -> dict[str, Any]:
    """One size: connect N clients, let the workload settle, measure one window."""
    import boto3

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 4 * n + 1024):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * n + 1024), hard))
    env = {"DEV_SEED": "0", "POWERTOOLS_LOG_LEVEL": "ERROR", "DEV_IDLE_TIMEOUT": "3600"}
    result: dict[str, Any] = {"clients": n}
    rng = random.Random(n)
    with TappedStack(tap_file, env) as stack:
        proc = stack.process
        dynamodb = boto3.client("dynamodb", endpoint_url=proc.aws_endpoint, region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")
        table = proc.tables["DocumentsTable"]
        items = documents(workload, n)
        for item in items:
            dynamodb.put_item(TableName=table, Item=item)
        print(f"  {n} clients: {len(items)} documents written; connecting", flush=True)
        clients = Clients(proc.ws_url, proc.info["jwt_secret"], n, workload, connect_budget)
        try:
            ready = clients.read()
            result.update(connected=ready["ready"], connect_s=ready["seconds"], connect_errors=ready["errors"])
            print(f"  {ready['ready']} of {n} subscribed in {ready['seconds']:.0f} s; warming up {warmup_s:.0f} s",
                  flush=True)
            writes = [0]

            def write_for(seconds: float) -> None:
                end = time.monotonic() + seconds
                next_write = time.monotonic()
                while time.monotonic() < end:
                    if time.monotonic() >= next_write:
                        slug = document_slug(rng.randrange(workload.documents))
                        dynamodb.update_item(TableName=table, Key={"slug": {"S": slug}},
                                             UpdateExpression="SET abstract = :a",
                                             ExpressionAttributeValues={":a": {"S": f"v{writes[0]}"}})
                        writes[0] += 1
                        next_write += workload.write_every_s
                    time.sleep(max(0.0, min(0.05, next_write - time.monotonic())))

            write_for(warmup_s)
            stack.window()  # the warm-up's counters, dropped
            clients.send({"cmd": "open"})
            clients.read()
            cpu, began, before = stack.cpu_seconds(), time.monotonic(), writes[0]
            print(f"  measuring {window_s:.0f} s", flush=True)
            write_for(window_s)
            tap = stack.window()
            clients.send({"cmd": "close"})
            counted = clients.read()
            result.update(tap=tap, window=counted, writes=writes[0] - before, window_s=time.monotonic() - began,
                          stack_cpu=(stack.cpu_seconds() - cpu) / (time.monotonic() - began))
        finally:
            clients.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_load")
    parser.add_argument("--stack-child", metavar="TAP_FILE")
    parser.add_argument("--clients-child", nargs=6)
    ns = parser.parse_args(argv)
    if ns.stack_child:
        sys.exit(stack_child(ns.stack_child))
    if ns.clients_child:
        url, n, workload, budget, concurrency, seed = ns.clients_child
        asyncio.run(clients_main(url, os.environ["BENCH_JWT_SECRET"], int(n), Workload(**json.loads(workload)),
                                 float(budget), int(concurrency), int(seed)))
        return
    parser.error("run `python -m bench scale`")


if __name__ == "__main__":
    main(sys.argv[1:])
