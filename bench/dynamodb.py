"""DynamoDB work per operation: ``python -m bench dynamodb [--quick]``.

The real handlers run against moto (``mock_aws``), tables from ``template.yaml``, driven
with API Gateway-shaped events by ``tests.apigw.ApiGateway`` (the test suite's stand-in)
and the ``@connections`` stand-in ``devtools.management_stub.ManagementStub``. botocore
events on every DynamoDB and SQS client the application creates while the benchmark runs
(its own and PynamoDB's, which reads the bound tables) count every request:

* ``provide-client-params.dynamodb.*`` injects ``ReturnConsumedCapacity=TOTAL`` and, for
  writes, snapshots the items the request will touch (with a separate, unhooked client);
* ``after-call.dynamodb.*`` records the request and what it consumed.

moto answers ``ReturnConsumedCapacity`` with a constant per operation (1.0 per write,
0.5 per read, whatever the size), so the capacity columns are computed by DynamoDB's
published rules from the actual items (read: 4 KB units, half for eventually consistent
reads, a Query's items summed before rounding; write: 1 KB units of the larger of the
item before and after, twice for transactions; each global secondary index entry written
or deleted is one more write unit per 1 KB, an index key change two). Index entry sizes
include DynamoDB's 100-byte overhead. A cancelled transaction is counted as consuming
its writes (conservative). On-demand pricing bills read and write *request* units with
the same rules.

State broadcasts are coalesced (``realtime.announcing``): a handler only *marks* what it
changed, and the announce function broadcasts it later. The benchmark has an announce
queue (moto SQS), so each handler's row is what the handler itself does, marks included,
and the announcements are rows of their own (the announce function run on the queued
message). The benchmark moves the application's clock instead of waiting: it sends the
announce queue's messages without their ``DelaySeconds`` (the same requests) and runs
each once the clock has passed its due time.

A notification to N recipients runs the notify function on a stream record (N members of
the ``notifications`` group seeded directly); beyond ``FANOUT_PAGE_SIZE`` (1,000) the
pages are queued to SQS (moto) and delivered by the notify function's queue consumer,
whose DynamoDB and SQS requests are counted too.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench import common
from bench.common import LAYER, ROOT, measured_line, table

if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONNECTIONS = "connections"
DOCUMENTS = "documents"
COMMENTS = "comments"
HISTORY = "history"
LAST: dict[str, Any] = {}  # the last full run's figures in this process (`python -m bench cost` reads them)

ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_SERVICE_NAME": "realtime-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "RealtimeBench", "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "CONNECTIONS_TABLE": CONNECTIONS, "DOCUMENTS_TABLE": DOCUMENTS, "COMMENTS_TABLE": COMMENTS,
    "HISTORY_TABLE": HISTORY,
    "PHASES": "view,edit,review", "PRESENCE_TTL_SECONDS": "60", "ALLOWED_ORIGINS": "",
    "FANOUT_PAGE_SIZE": "1000",
}
UNSET = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE")

# ---------------------------------------------------------------- DynamoDB's size rules


def value_size(v: dict[str, Any]) -> int:
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        digits = str(Decimal(x)).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(x) if isinstance(x, (bytes, bytearray)) else len(x.encode())
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in x)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in x)
    if kind == "BS":
        return sum(len(b) for b in x)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None, only: set[str] | None = None) -> int:
    if not item:
        return 0
    return sum(len(k.encode()) + value_size(v) for k, v in item.items() if only is None or k in only)


@dataclass
class Index:
    name: str
    keys: tuple[str, ...]
    projected: set[str] | None  # None: ALL


@dataclass
class Schema:
    keys: tuple[str, ...]
    indexes: list[Index]

    def index_entry(self, index: Index, item: dict[str, Any] | None) -> int:
        """Size of the item's entry in `index` (0 when the item is absent or not indexed)."""
        if not item or any(k not in item for k in index.keys):
            return 0
        names = None if index.projected is None else set(self.keys) | set(index.keys) | index.projected
        return item_size(item, names) + 100


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


@dataclass
class Request:
    op: str
    table: str
    index: str | None = None
    rru: float = 0.0
    wru: float = 0.0  # table
    gsi_wru: float = 0.0
    moto_capacity: float = 0.0
    error: str | None = None


@dataclass
class Usage:
    requests: list[Request] = field(default_factory=list)
    sqs: Counter = field(default_factory=Counter)
    posts: int = 0

    def ops(self) -> str:
        c = Counter(r.op + (f"({r.index})" if r.index else "") + (" ✗" if r.error else "") for r in self.requests)
        return ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in c.items())

    @property
    def count(self) -> int:
        return len(self.requests)

    @property
    def rru(self) -> float:
        return sum(r.rru for r in self.requests)

    @property
    def wru(self) -> float:
        return sum(r.wru + r.gsi_wru for r in self.requests)

    @property
    def gsi_wru(self) -> float:
        return sum(r.gsi_wru for r in self.requests)

    @property
    def moto(self) -> float:
        return sum(r.moto_capacity for r in self.requests)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.count, "rru": self.rru, "wru": self.wru, "gsi_wru": self.gsi_wru,
                "ops": self.ops(), "sqs": dict(self.sqs), "posts": self.posts}


class Meter:
    """Counts the requests of a DynamoDB client (and an SQS client) through botocore's events."""

    WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")

    def __init__(self, raw: Any) -> None:
        self.raw = raw  # unhooked client: snapshots and re-reads cost nothing in the figures
        self.usage = Usage()
        self.schemas: dict[str, Schema] = {}

    def schema(self, table: str) -> Schema:
        if table not in self.schemas:
            t = self.raw.describe_table(TableName=table)["Table"]
            indexes = []
            for gsi in t.get("GlobalSecondaryIndexes", []):
                proj = gsi["Projection"]
                projected = None if proj["ProjectionType"] == "ALL" else set(proj.get("NonKeyAttributes", []))
                indexes.append(Index(gsi["IndexName"], tuple(k["AttributeName"] for k in gsi["KeySchema"]), projected))
            self.schemas[table] = Schema(tuple(k["AttributeName"] for k in t["KeySchema"]), indexes)
        return self.schemas[table]

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def attach_sqs(self, client: Any) -> None:
        def count(model: Any, **kw: Any) -> None:
            self.usage.sqs[model.name] += 1
        client.meta.events.register("after-call.sqs.*", count)

    def take(self) -> Usage:
        usage, self.usage = self.usage, Usage()
        return usage

    # -- hooks -------------------------------------------------------------------------
    def _targets(self, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(table, key) of every item a write touches."""
        if op == "PutItem":
            schema = self.schema(params["TableName"])
            return [(params["TableName"], {k: params["Item"][k] for k in schema.keys})]
        if op in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], params["Key"])]
        if op == "BatchWriteItem":
            out = []
            for table_name, reqs in params["RequestItems"].items():
                schema = self.schema(table_name)
                for r in reqs:
                    if "PutRequest" in r:
                        out.append((table_name, {k: r["PutRequest"]["Item"][k] for k in schema.keys}))
                    else:
                        out.append((table_name, r["DeleteRequest"]["Key"]))
            return out
        if op == "TransactWriteItems":
            out = []
            for t in params["TransactItems"]:
                (kind, body), = t.items()
                if kind == "Put":
                    schema = self.schema(body["TableName"])
                    out.append((body["TableName"], {k: body["Item"][k] for k in schema.keys}))
                else:
                    out.append((body["TableName"], body["Key"]))
            return out
        return []

    def _key_of(self, table_name: str, item: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(item.get(k)) for k in self.schema(table_name).keys)

    def _get(self, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.raw.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item")

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **kw: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
        if model.name in self.WRITES:
            context["bench_before"] = [(t, k, self._get(t, k)) for t, k in self._targets(model.name, params)]
        context["bench_params"] = dict(params)

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **kw: Any) -> None:
        op = model.name
        params = context.get("bench_params", {})
        error = (parsed.get("Error") or {}).get("Code")
        table_name = params.get("TableName") or next(iter(params.get("RequestItems", {}) or {"?": 0}))
        if op == "TransactWriteItems":
            table_name = params["TransactItems"][0][next(iter(params["TransactItems"][0]))]["TableName"]
        req = Request(op, table_name, params.get("IndexName"), error=error)
        cc = parsed.get("ConsumedCapacity")
        for c in (cc if isinstance(cc, list) else [cc] if cc else []):
            req.moto_capacity += float(c.get("CapacityUnits", 0))
        if op in self.WRITES:
            factor = 2 if op == "TransactWriteItems" else 1
            for t, key, old in context.get("bench_before", []):
                new = self._get(t, key)
                req.wru += factor * write_units(max(item_size(old), item_size(new)))
                schema = self.schema(t)
                for index in schema.indexes:
                    before, after = schema.index_entry(index, old), schema.index_entry(index, new)
                    if not before and not after:
                        continue
                    key_changed = bool(before and after) and any(old.get(k) != new.get(k) for k in index.keys)
                    names = None if index.projected is None else set(schema.keys) | set(index.keys) | index.projected
                    changed = item_size(old, names) != item_size(new, names) or any(
                        (old or {}).get(k) != (new or {}).get(k) for k in (names or set(old or {}) | set(new or {})))
                    if key_changed:
                        req.gsi_wru += write_units(before) + write_units(after)
                    elif before and after:
                        req.gsi_wru += write_units(max(before, after)) if changed else 0
                    else:
                        req.gsi_wru += write_units(before or after)
        elif op == "GetItem":
            req.rru = read_units(item_size(parsed.get("Item")), bool(params.get("ConsistentRead")))
        elif op == "BatchGetItem":
            # Each key is read (and rounded) on its own; a key that is not found still costs a read.
            for table_name, asked in params.get("RequestItems", {}).items():
                found = {self._key_of(table_name, it): it for it in parsed.get("Responses", {}).get(table_name, [])}
                for key in asked.get("Keys", []):
                    item = found.get(self._key_of(table_name, key))
                    req.rru += read_units(item_size(item), bool(asked.get("ConsistentRead")))
        elif op in ("Query", "Scan"):
            req.rru = self._read_capacity(op, params)
        self.usage.requests.append(req)

    def _read_capacity(self, op: str, params: dict[str, Any]) -> float:
        """Re-run the read unhooked, without projection or filter: capacity counts every item read, whole."""
        again = {k: v for k, v in params.items()
                 if k not in ("ProjectionExpression", "FilterExpression", "Select", "ReturnConsumedCapacity")}
        values = dict(again.get("ExpressionAttributeValues", {}))
        names = dict(again.get("ExpressionAttributeNames", {}))
        condition = again.get("KeyConditionExpression", "")
        used_values = {k: v for k, v in values.items() if k in condition}
        used_names = {k: v for k, v in names.items() if k in condition}
        again.pop("ExpressionAttributeValues", None)
        again.pop("ExpressionAttributeNames", None)
        if used_values:
            again["ExpressionAttributeValues"] = used_values
        if used_names:
            again["ExpressionAttributeNames"] = used_names
        items = getattr(self.raw, op.lower())(**again).get("Items", [])
        schema = self.schema(params["TableName"])
        index = next((i for i in schema.indexes if i.name == params.get("IndexName")), None)
        if index is not None:
            # the index entries (the re-run returns every projected attribute; index_entry keeps only those)
            size = sum(schema.index_entry(index, it) for it in items)
        else:
            size = sum(item_size(it) for it in items)
        return read_units(size, bool(params.get("ConsistentRead")) and index is None)


# ---------------------------------------------------------------- the scenario

#: The tables of the document, in order: (section, heading).
SECTIONS = (
    ("lifecycle", "Frames and the connection lifecycle (each handler's own work: its marks included, the "
                  "announcements they lead to below)"),
    ("announce", "Coalesced state broadcasts: marks, and the announce function"),
    ("comments", "Comments through the socket, and their notifications"),
    ("notifications", "A notification to N recipients (notify function; pages beyond 1,000 through SQS and the "
                      "queue consumer)"),
)


@dataclass
class Row:
    name: str
    usage: Usage
    minimum: int
    why: str
    extra: str = ""
    #: A stable name other benchmarks (cost, scale) find the row by.
    key: str = ""
    section: str = "lifecycle"


@contextmanager
def hooking_new_clients(meter: Meter) -> Iterator[None]:
    """Attach `meter` to every DynamoDB and SQS client botocore creates meanwhile: the
    application's, and PynamoDB's (the bound tables), whenever they are (re)built."""
    import botocore.session

    original = botocore.session.Session.create_client

    def create_client(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(session, service_name, *args, **kwargs)
        if service_name == "dynamodb":
            meter.attach(client)
        elif service_name == "sqs":
            meter.attach_sqs(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.session.Session.create_client = original  # type: ignore[method-assign]


def run(quick: bool = False, write_doc: bool | None = None) -> dict:
    saved = {k: os.environ.get(k) for k in list(ENV) + list(UNSET) + ["WEBSOCKET_ENDPOINT", "JWT_SECRET",
                                                                       "FANOUT_QUEUE_URL", "ANNOUNCE_QUEUE_URL",
                                                                       "PUBLISH_DEAD_LETTER_QUEUE_URL"]}
    os.environ.update(ENV)
    for k in UNSET:
        os.environ.pop(k, None)
    try:
        return _run(quick, write_doc)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(quick: bool, write_doc: bool | None) -> dict:
    import boto3
    from moto import mock_aws

    from devtools.management_stub import ManagementStub
    from devtools.template import create_tables
    from tests import streams
    from tests.apigw import SECRET, ApiGateway, LambdaContext

    sizes = [10, 100] if quick else [10, 100, 1000, 2500]
    rows: list[Row] = []
    print(f"DynamoDB-work benchmark: moto in-process, notification sizes {sizes}")
    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        stub = stack.enter_context(ManagementStub(accept_all=True, record_bodies=False))
        raw = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(raw, names={"ConnectionsTable": CONNECTIONS, "DocumentsTable": DOCUMENTS,
                                  "CommentsTable": COMMENTS, "HistoryTable": HISTORY})
        sqs_raw = boto3.client("sqs", region_name="us-east-1")

        def queue(name: str) -> tuple[str, str]:
            url = sqs_raw.create_queue(QueueName=name)["QueueUrl"]
            return url, sqs_raw.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

        queue_url, queue_arn = queue("fanout")
        announce_url, announce_arn = queue("announce")
        os.environ.update({"WEBSOCKET_ENDPOINT": stub.endpoint, "JWT_SECRET": SECRET, "FANOUT_QUEUE_URL": queue_url,
                           "ANNOUNCE_QUEUE_URL": announce_url,
                           "PUBLISH_DEAD_LETTER_QUEUE_URL": queue("publish-dlq")[0]})
        meter = Meter(raw)
        stack.enter_context(hooking_new_clients(meter))
        gw = ApiGateway(raw, stub)
        gw.reset_runtime()
        stack.callback(gw.reset_runtime)
        from devtools.stack.events import published_event
        from functions.announce import app as announce_function
        from functions.notify import app as notify
        from functions.publish import app as publish
        from realtime import keys, runtime
        from realtime.announcing import Mark

        app = runtime.app(stub.endpoint)
        stack.callback(app.sender.close)
        coalescer = app.services.coalescer
        announce_queue = coalescer.queue
        assert announce_queue is not None, "the announce queue is not configured"
        send_mark = announce_queue.send
        # Same requests, no waiting: the clock below moves instead (see the module docstring).
        announce_queue.send = lambda topic, key, due, delay: send_mark(topic, key, due, 0)  # type: ignore[method-assign]

        # Frames some seconds apart (`advance`), not within one second: the application's clock
        # moves forward before each operation, so deadlines and presence expiry change as they would.
        offset = [0.0]
        app.clock = lambda: time.time() + offset[0]

        def measure(name: str, fn: Any, minimum: int, why: str, extra: str = "", *, key: str = "",
                    section: str = "lifecycle", advance: float = 25.0) -> Row:
            offset[0] += advance
            meter.take()
            posts = stub.stats()["requests"]
            fn()
            usage = meter.take()
            usage.posts = stub.stats()["requests"] - posts
            row = Row(name, usage, minimum, why, extra, key or name, section)
            rows.append(row)
            print(f"  {name}: {usage.count} requests ({usage.ops()}), {usage.rru:g} RRU, {usage.wru:g} WRU, "
                  f"{usage.posts} posts, SQS {dict(usage.sqs)}", flush=True)
            return row

        # ---- the announce queue, run by hand
        inflight: list[dict[str, Any]] = []

        def collect() -> None:
            while True:
                msgs = sqs_raw.receive_message(QueueUrl=announce_url, MaxNumberOfMessages=10).get("Messages", [])
                if not msgs:
                    return
                inflight.extend(msgs)
                sqs_raw.delete_message_batch(QueueUrl=announce_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

        def announce_due(topic: str | None = None) -> int:
            """Run the announce function on the queued marks that are due; with `topic`, on that
            topic's only and once (what one announcement does), else until none is left due."""
            handled = 0
            for _ in range(1 if topic else 6):
                collect()
                now = app.clock()
                due = [m for m in inflight if Mark.parse(m["Body"]).due <= now + 1
                       and (topic is None or Mark.parse(m["Body"]).topic == topic)]
                if not due:
                    break
                for message in due:
                    inflight.remove(message)
                    result = announce_function.handler(streams.sqs_event([message], announce_arn), LambdaContext())
                    assert not result.get("batchItemFailures"), result
                    handled += 1
            return handled

        def settle(advance: float = 2.0) -> None:
            """Make every announcement that is due, unmeasured (the state the next row starts from)."""
            offset[0] += advance
            announce_due()

        gw.put_document("roadmap", "Roadmap", abstract="The plan")
        gw.put_document("salaries", "Salaries", visibility="private", owner="alice", readers=["bob"])
        # An audience for the broadcasts: one subscriber on every stream.
        watcher = gw.login("watcher", "Watcher")
        for frame in ({"action": "subscribe", "stream": "users"}, {"action": "subscribe", "stream": "documents"},
                      {"action": "subscribe", "stream": "document", "document": "roadmap"},
                      {"action": "subscribe", "stream": "notifications"}):
            gw.send(watcher, frame)
        settle()

        # ---- connecting and subscribing (frames a second apart, as a page sends them)
        measure("`$connect`, anonymous", lambda: gw.anonymous(), 1, "the connection record (PutItem)",
                key="connect_anonymous")
        alice: list[str] = []
        measure("`$connect`, signed in, the user's first connection", lambda: alice.append(gw.login("alice", "Alice")),
                4, "record (PutItem); user item + counter shard (one transaction); mark `users` (GetItem, conditional "
                   "UpdateItem, SQS SendMessage: the first mark of its interval)", key="connect_first")
        measure("announcement of the counter (`users`, 1 subscriber)", lambda: announce_due("users"),
                4,
                "claim the mark (conditional UpdateItem); the counter (BatchGetItem of its 16 shards); the `users` "
                "group (a Query per shard, one while it is small, 1 more per 1,000 members); the mark's audience "
                "size (UpdateItem)",
                key="announce_users", section="announce", advance=2)
        settle()
        measure("`$connect`, signed in, a second tab", lambda: alice.append(gw.login("alice", "Alice")), 2,
                "record (PutItem); add the connection to the user item (UpdateItem)",
                "the counter transaction is tried first and cancelled (the user exists): 1 request (and its "
                "write units) on every further tab. Trying the UpdateItem first would move the extra request to "
                "first connections instead", key="connect_tab")
        a = alice[0]
        count_extra = ("the subscription limit's count (a keys-only Query of the connection's partition: "
                       "`MAX_SUBSCRIPTIONS`)")
        measure("subscribe `users` (the first frame after `$connect`)",
                lambda: gw.send(a, {"action": "subscribe", "stream": "users", "id": 1}), 4,
                "touch (UpdateItem); the deadline moves from the handshake's presence grace to the idle grace "
                "(UpdateItem); membership (PutItem); the counter (BatchGetItem of 16 shards)", count_extra,
                key="subscribe_users", advance=1)
        measure("subscribe `documents`", lambda: gw.send(a, {"action": "subscribe", "stream": "documents", "id": 1}),
                2 + keys.STATE_SHARDS * 2,
                f"touch; membership; the list's entries ({keys.STATE_SHARDS} partitions, Query each) and the rooms' "
                f"summaries ({keys.STATE_SHARDS} partitions, Query each)", count_extra, key="subscribe_documents",
                advance=1)
        measure("subscribe `notifications`",
                lambda: gw.send(a, {"action": "subscribe", "stream": "notifications", "id": 1}), 2,
                "touch; membership (the ack's cursor is the clock: no read)", count_extra,
                key="subscribe_notifications", advance=1)
        measure("subscribe `document`", lambda: gw.send(a, {"action": "subscribe", "stream": "document",
                                                             "document": "roadmap", "id": 1}),
                4, "touch; the document (GetItem: may they read it); membership; its roster (a Query per presence "
                   "shard: one while the room is small)", count_extra,
                key="subscribe_document", advance=1)
        measure("a group's shard count, as a container's first join of it in 5 minutes reads it "
                "(`alerts`, `comments/roadmap`)",
                lambda: [app.services.groups.shard_count(g) for g in ("alerts", "comments/roadmap")], 2,
                "the group's shard count item (GetItem each: absent while the group has one shard)",
                "cached per container for 5 minutes (`shard_counts.TTL_SECONDS`), so no subscribe row here pays it; a "
                "user's own group (`alerts/user/<uid>`) is never read: it has one shard for good",
                key="group_shard_count", advance=1)
        measure("subscribe `alerts` (signed in)", lambda: gw.send(a, {"action": "subscribe", "stream": "alerts", "id": 1}),
                3, "touch; membership of `alerts` and of the user's group `alerts/user/<uid>` (what `to: {user}` "
                   "reaches)", count_extra, key="subscribe_alerts", advance=1)
        settle()
        # ---- catch-up and published events (streams that keep history)
        replay_seq = [10**19]

        def missed_notifications(k: int) -> str:
            """The cursor of a page gone while `k` documents changed (what its subscribe's ack said:
            the stub keeps no bodies here)."""
            from realtime.history import position

            cursor = position(app.clock())
            for i in range(k):
                replay_seq[0] += 1
                notify.handler(streams.event(streams.record(
                    "MODIFY", "roadmap", old=streams.image(title="Roadmap", abstract=f"v{i}"),
                    new=streams.image(title="Roadmap", abstract=f"v{i + 1}"), seq=str(replay_seq[0]))), LambdaContext())
            return cursor

        for k in (10, 100):
            since = missed_notifications(k)
            settle()
            back = gw.login("returning", "Returning")
            settle()
            measure(f"subscribe `notifications` with `since`: {k} missed notifications replayed",
                    lambda c=back, s=since: gw.send(c, {"action": "subscribe", "stream": "notifications",
                                                        "since": s, "id": 1}),
                    4, "touch; the deadline (first frame); membership; the log after the cursor (one strongly "
                       "consistent Query per 1 MB, `REPLAY_LIMIT` + 1 items at most)", count_extra,
                    key=f"replay_{k}", advance=1)
            gw.disconnect(back)
            settle()
        measure("published event to a user (1 subscribed connection)",
                lambda: publish.handler(published_event("alerts", {"user": "alice"}, {"text": "Your export is ready"}),
                                        LambdaContext()),
                2, "the log entry (PutItem: one per event, not per recipient); the user's group (Query)",
                key="published_user")
        measure("published event to the group `alerts` (1 subscriber)",
                lambda: publish.handler(published_event("alerts", {"group": "alerts"}, {"text": "Maintenance"}),
                                        LambdaContext()),
                2, "the log entry (PutItem); the group (one shard while it is small: a Query)",
                key="published_group")
        measure("published event refused (undeclared stream)",
                lambda: publish.handler(published_event("nope", {"group": "alerts"}, {"text": "x"}), LambdaContext()),
                0, "none: refused before any read; one SQS SendMessage to the dead-letter queue", key="published_refused")
        settle()

        # ---- liveness
        measure("heartbeat, no presence held (5 minutes after the last frame, as the client beats)",
                lambda: gw.send(a, {"action": "heartbeat", "id": 1}), 2,
                "touch (UpdateItem returning the record); the liveness deadline moves 5 minutes, past the 20 s "
                "slack: rewritten (UpdateItem; its `by_deadline` index entry moves: 2 index write units)",
                key="heartbeat_idle", advance=300)
        measure("a frame within 20 s of the last deadline write (a heartbeat 5 s later)",
                lambda: gw.send(a, {"action": "heartbeat", "id": 1}), 1,
                "touch only: the deadline would move less than the slack", key="frame_in_slack", advance=5)

        # ---- presence (the announcements they lead to are measured right after)
        measure("enter (a room nobody is in; marks the room)",
                lambda: gw.send(a, {"action": "enter", "document": "roadmap", "phase": "edit", "id": 1}), 6,
                "touch (the rate allowance only: the enter's own write moves the deadline); the document (GetItem: "
                "may they read it); the record's presence set and deadline (UpdateItem, one `by_deadline` entry "
                "move); the presence item (UpdateItem); mark `$presence`/room (GetItem, conditional UpdateItem, "
                "SQS SendMessage)", key="enter")
        room_marks = 2 + 3  # the list's mark and the expiry follow-up, each GetItem + UpdateItem (+ a SendMessage)
        measure("announcement of a room (`$presence`): its roster changed; 1 subscriber of its roster",
                lambda: announce_due("$presence"), 5 + room_marks,
                "claim (UpdateItem); the room (a Query per presence shard: one while it is small); its summary "
                "(UpdateItem); `document`: the document (GetItem) and its group (Query); mark the list (GetItem, "
                "UpdateItem, SendMessage); the mark's audience (UpdateItem); mark the room again for when its first "
                "presence expires (GetItem, UpdateItem, SendMessage)", key="announce_room",
                section="announce", advance=2)
        measure("announcement of the list (`documents`): 1 entry changed; 1 subscriber",
                lambda: announce_due("documents"), 4 + 2 * keys.STATE_SHARDS,
                f"claim (UpdateItem); the rooms' summaries and the list's entries ({keys.STATE_SHARDS} partitions "
                "each, Query each); the `documents` group (a Query: one shard while it is small); what was broadcast (UpdateItem "
                "per changed entry); the mark's audience (UpdateItem)", key="announce_list", section="announce",
                advance=2)
        settle()
        sizes_with_presence = item_sizes(raw)
        measure("heartbeat, 1 presence held (25 s after the last frame, as the client beats)",
                lambda: gw.send(a, {"action": "heartbeat", "id": 1}), 3,
                "touch; the deadline (UpdateItem: a presence heartbeat moves it 25 s, past the 20 s slack); push the "
                "presence forward (UpdateItem per presence held)", key="heartbeat_presence", advance=25)
        measure("leave (marks the room)",
                lambda: gw.send(a, {"action": "leave", "document": "roadmap", "phase": "edit", "id": 1}), 5,
                "touch (the rate allowance only); the record's presence set and, holding nothing now, the deadline "
                "moved to the idle grace in the same write (UpdateItem `DELETE pres ... SET deadline`); delete the "
                "presence (DeleteItem; the presence being left is not refreshed first); mark the room (GetItem, "
                "UpdateItem, SendMessage)", key="leave")
        settle()

        # ---- marks on their own (the coalescer as every handler calls it)
        measure("a mark, the first of its interval (a quiet room)", lambda: coalescer.mark("$presence", "quiet"), 2,
                "read the mark (GetItem); schedule it (conditional UpdateItem, indexed in `by_deadline` for the "
                "sweep); one SQS SendMessage delayed by the interval", key="mark_first", section="announce", advance=0.1)
        measure("a mark, already pending, seen by this container", lambda: coalescer.mark("$presence", "quiet"), 0,
                "none: the container remembers the pending mark until just before it is due",
                key="mark_memo", section="announce", advance=0.1)

        def other_container() -> None:
            coalescer._seen.clear()  # another container's memo is empty
            coalescer.mark("$presence", "quiet")

        measure("a mark, already pending, first seen by another container", other_container, 1,
                "read the mark (GetItem): pending, nothing to do", key="mark_other", section="announce", advance=0.1)
        settle()
        silent = 3  # the watcher, the anonymous connection and Alice's second tab sent nothing for 5 minutes
        measure(f"the sweep (one run, every minute): {silent} silent connections, all live",
                lambda: gw.sweep(), keys.STATE_SHARDS + keys.SWEEP_SHARDS + 2 * keys.COUNTER_SHARDS + 1 + silent,
                f"lost marks ({keys.STATE_SHARDS} `by_deadline` shards, Query each); connections past their deadline "
                f"({keys.SWEEP_SHARDS} shards, Query each), their records (BatchGetItem per 100), `GET @connections` "
                f"each and, answered live, a new deadline (UpdateItem each); the counter's recount "
                f"({keys.COUNTER_SHARDS} shards: GetItem and a `by_counter` Query each)", key="sweep", advance=1)

        # ---- comments through the socket, and the notifications their stream records make
        bob = gw.login("bob", "Bob")
        settle()
        measure("subscribe `comments` (a document's latest 50; the first frame after `$connect`)",
                lambda: gw.send(bob, {"action": "subscribe", "stream": "comments", "document": "roadmap", "id": 1}),
                5, "touch; the deadline (first frame); the document (GetItem: may they read it); membership; the "
                   "latest comments (Query)", count_extra, key="subscribe_comments", section="comments", advance=1)
        def write(action: str, **fields: Any) -> None:
            gw.send(bob, {"action": action, "stream": "comments", "id": "w", **fields})

        def stored() -> tuple[dict[str, str], int]:
            """The comment as the table has it (the stub keeps no frames here): its key and version."""
            item = raw.query(TableName=COMMENTS, KeyConditionExpression="document = :d",
                             ExpressionAttributeValues={":d": {"S": "roadmap"}}, ConsistentRead=True)["Items"][0]
            return {"document": "roadmap", "id": item["id"]["S"]}, int(item["version"]["N"])

        measure("comment create (through the socket)",
                lambda: write("create", data={"document": "roadmap", "body": "Looks good"}), 3,
                "touch; the document (GetItem: may they read it); the comment (conditional PutItem)",
                key="comment_create", section="comments", advance=1)
        pk, version = stored()
        measure("comment update (its author)",
                lambda: write("update", pk=pk, version=version, data={"body": "Looks great"}), 4,
                "touch; the comment (GetItem: its author and version); the document (GetItem); the comment "
                "(conditional write on the version)", key="comment_update", section="comments", advance=1)
        pk, version = stored()
        measure("comment delete (its author)", lambda: write("delete", pk=pk, version=version), 4,
                "touch; the comment (GetItem); the document (GetItem); the comment (conditional DeleteItem)",
                key="comment_delete", section="comments", advance=1)
        for record in streams.read_stream(raw, COMMENTS):
            action = {"INSERT": "create", "MODIFY": "update", "REMOVE": "delete"}[record["eventName"]]
            measure(f"comment notification ({action}; 1 subscriber of the document's comments)",
                    lambda r=record: notify.handler(streams.event(r), LambdaContext()), 3,
                    "the comment's audience: its document (GetItem); the log entry (PutItem, the comments keep "
                    "history); the `comments/<slug>` group (Query)",
                    "the old and the new image's audience each read the (same) document: GetItem twice"
                    if action == "update" else "",
                    key=f"comment_notification_{action}", section="comments", advance=1)
        settle()

        # ---- leaving
        gw.send(a, {"action": "enter", "document": "roadmap", "phase": "view"})
        settle()
        measure("`$disconnect`, a second tab with nothing held", lambda: gw.disconnect(alice[1]), 3,
                "holdings (Query of `c#<conn>`); user item (UpdateItem `DELETE conns`); the record (DeleteItem); "
                "nothing to mark", key="disconnect_tab")
        measure("`$disconnect`, last tab: 6 memberships, 1 presence", lambda: gw.disconnect(a), 9,
                "holdings (Query); one BatchWriteItem for presence + memberships; user item (UpdateItem); user + "
                "counter shard (transaction); the record (DeleteItem, last: a crash leaves it to the sweep); mark "
                "`users` and the room (GetItem + UpdateItem each, 2 SendMessage)", key="disconnect_last")
        settle()

        # ---- notifications to N recipients
        members = 1  # the watcher
        seq = 0
        now = int(time.time())

        def seed(n: int) -> None:
            nonlocal members
            items = []
            for i in range(members, n):
                cid = f"bench{i:06d}="
                items.append({"PutRequest": {"Item": {
                    "pk": {"S": f"c#{cid}"}, "sk": {"S": "g#notifications"},
                    "grp": {"S": keys.group_shard("notifications", cid)},
                    "gsk": {"S": cid}, "uid": {"S": f"user{i}"}, "ttl": {"N": str(now + 7200)}}}})
            for start in range(0, len(items), 25):
                raw.batch_write_item(RequestItems={CONNECTIONS: items[start:start + 25]})
            members = n

        def notify_record(name: str, slug: str, old: dict | None, new: dict | None) -> None:
            nonlocal seq
            seq += 1
            record = streams.record(name, slug, old=old, new=new, seq=str(10**20 + seq))
            result = notify.handler(streams.event(record), LambdaContext())
            assert not result.get("batchItemFailures"), result
            # pages queued for large groups: delivered by the queue consumer, counted as part of it
            while True:
                msgs = sqs_raw.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=5).get("Messages", [])
                if not msgs:
                    break
                result = notify.handler(streams.sqs_event(msgs, queue_arn), LambdaContext())
                assert not result.get("batchItemFailures"), result
                sqs_raw.delete_message_batch(QueueUrl=queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

        doc_old = streams.image(title="Roadmap", abstract="The plan")
        doc_new = streams.image(title="Roadmap", abstract="The new plan")
        private = streams.image(title="Pay", visibility="private", owner="user1", readers=["user2", "user3"])
        private2 = streams.image(title="Pay", visibility="private", owner="user1", readers=["user2", "user3"],
                                 abstract="v2")
        list_work = ("the list: the document's entry (UpdateItem: title and read rule) and a mark of `documents` "
                     "(GetItem, UpdateItem, SendMessage), on every change of a document, whatever changed")
        for n in sizes:
            seed(n)
            pages = math.ceil(n / 1000)
            queued = pages - 1
            minimum = 1 + 1 + 3  # the group (one shard at these sizes); the log entry; the list's entry and mark
            extra = ""
            if queued:
                extra = ("the first 1,000 members are read inline; the rest of the shard is cut into key ranges of "
                         "at most 1,000 (keys only, but capacity counts whole index entries: those "
                         f"{n - 1000:,} members are read twice) and each range is queued")
            measure(f"notification, N = {n:,}: public document, a field changed (MODIFY)",
                    lambda: notify_record("MODIFY", "roadmap", doc_old, doc_new), minimum,
                    "the log entry (PutItem, one per notification whatever N: `notifications` keeps history); the "
                    "`notifications` group (one shard at these sizes: a Query, 1 more per 1,000 members, eventually "
                    "consistent on `by_group`); " + list_work, extra, key=f"notification_public_{n}", section="notifications", advance=1)
            settle()
            measure(f"notification, N = {n:,}: private document (owner + 2 readers), a field changed",
                    lambda: notify_record("MODIFY", "pay", private, private2), minimum,
                    "the log entry and the same group read: who may read is decided per member from the stream "
                    "image (and again, per subscriber, from the logged decision when it is replayed); " + list_work,
                    extra, key=f"notification_private_{n}", section="notifications", advance=1)
            settle()
            measure(f"notification, N = {n:,}: new public document (INSERT)",
                    lambda: notify_record("INSERT", f"new{n}", None, doc_new), minimum + 2,
                    "the group as above; " + list_work + "; the new document's `document` and `comments` groups "
                    "(told of the audience change, a Query each)",
                    "; ".join(x for x in (extra, "two Queries for groups nobody can have joined yet: the document "
                                          "did not exist") if x), key=f"notification_insert_{n}",
                    section="notifications", advance=1)
            settle()
        sizes_found = {**sizes_with_presence, **item_sizes(raw)}
    result = {"rows": [dict(name=r.name, key=r.key, section=r.section, minimum=r.minimum, **r.usage.to_dict())
                       for r in rows if r.section != "notifications"],
              "notifications": [dict(name=r.name, key=r.key, section=r.section, minimum=r.minimum,
                                     **r.usage.to_dict()) for r in rows if r.section == "notifications"],
              "sizes": sizes_found, "date": time.strftime("%Y-%m-%d"), "quick": quick}
    if not quick:
        LAST.clear()
        LAST.update(result)
    common.report("dynamodb", markdown(rows, sizes_found, quick), quick=quick, write_doc=write_doc, after="coldstart")
    return result


#: Item families of the connections table, by the start of their partition key (see realtime.keys).
FAMILIES = {"c#": "connection records and memberships", "p#": "presence items", "rs#": "room summaries",
            "st#": "the documents list's entries", "a#": "announcement marks", "n#": "counter shards",
            "u#": "user items", "st# notes": "the documents list's notes (what was last announced of each entry)"}


def item_sizes(raw: Any) -> dict[str, float]:
    """Mean item size (bytes, DynamoDB's rules) of each family of the connections table, and of
    a membership's `by_group` index entry: what the scale model sizes reads with."""
    from realtime import keys

    schema_index = Index("by_group", ("grp", "gsk"), {"uid", "ttl"})
    sums: dict[str, list[int]] = {}
    kwargs: dict[str, Any] = {"TableName": CONNECTIONS}
    while True:
        page = raw.scan(**kwargs)
        for item in page.get("Items", []):
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            family = next((f for f in FAMILIES if pk.startswith(f)), None)
            if family == "st#" and sk.startswith(keys.SEP):
                family = "st# notes"
            if family == "c#":
                family = "membership" if sk.startswith("g#") else "record"
                if family == "membership":
                    entry = item_size(item, set(schema_index.keys) | {"pk", "sk"} | (schema_index.projected or set()))
                    sums.setdefault("by_group entry", []).append(entry + 100)
            if family is not None:
                sums.setdefault(family, []).append(item_size(item))
        if not page.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {family: sum(v) / len(v) for family, v in sums.items() if v}


def fmt_units(x: float) -> str:
    return f"{x:g}" if x < 100 else f"{x:,.0f}"


def markdown(rows: list[Row], sizes: dict[str, float], quick: bool) -> str:
    def render(rs: list[Row]) -> str:
        out = []
        for r in rs:
            u = r.usage
            extra = u.count - r.minimum
            note = r.extra if extra > 0 and r.extra else ("" if extra <= 0 else "see below")
            sqs = ", ".join(f"{k} ×{v}" for k, v in u.sqs.items())
            out.append((r.name, u.count, (u.ops() or "none") + (f"; SQS: {sqs}" if sqs else ""), fmt_units(u.rru),
                        fmt_units(u.wru) + (f" ({fmt_units(u.gsi_wru)} index)" if u.gsi_wru else ""), u.posts,
                        r.minimum, f"{u.count / r.minimum:.2f}x" if r.minimum else ("1.00x" if not u.count else "-"),
                        r.why, note or "none"))
        return table(["operation", "requests", "which (✗ = condition failed / cancelled)", "read units",
                      "write units", "@connections requests", "minimum requests", "ratio",
                      "the minimum, by the design",
                      "extra requests, explained"], out, "lrlrrrrrll")

    lines = [
        "## DynamoDB work per operation (`python -m bench dynamodb`)",
        "",
        measured_line(quick, "The real handlers against moto (`mock_aws`, tables from `template.yaml`), driven by "
                             "`tests.apigw.ApiGateway`, with an announce queue (moto SQS) so that handlers mark and the "
                             "announce function broadcasts; requests counted with botocore's `provide-client-params` / "
                             "`after-call` events on every DynamoDB and SQS client the application creates (PynamoDB's "
                             "included), with `ReturnConsumedCapacity=TOTAL` injected. moto answers it with a constant "
                             "per operation, so read and write units are computed from the actual items by DynamoDB's "
                             "rules (4 KB read units, half for eventually consistent reads and index queries, each "
                             "BatchGetItem key on its own; 1 KB write units of the larger of before/after, ×2 in "
                             "transactions; every index entry written or deleted is a write unit too, an index key "
                             "change two, with DynamoDB's 100-byte index overhead). These are also on-demand "
                             "*request* units. The minimum is what the design needs for the same outcome (a group of "
                             "fewer than 10,000 members read in one Query); a "
                             "connection subscribed to every stream is the audience of each broadcast. The application's clock "
                             "moves between rows (frames of one page load 1 s apart, heartbeats as the client sends "
                             "them: 25 s apart with presence, 5 minutes without)."),
    ]
    for section, heading in SECTIONS:
        chosen = [r for r in rows if r.section == section]
        if chosen:
            lines += ["", f"### {heading}", "", render(chosen)]
    if sizes:
        lines += ["", "Mean item sizes in the connections table at the end of the run (bytes, DynamoDB's rules; the "
                      "scale model sizes its reads with them): " + ", ".join(
                          f"{FAMILIES.get(k, k)} {v:,.0f}" for k, v in sorted(sizes.items())) + "."]
    lines += [
        "",
        "Notes:",
        "",
        "* Liveness costs a write only when the deadline moves by at least 20 s (`DEADLINE_SLACK_SECONDS`): the touch "
        "(`SET tat`, the frame allowance) is 1 write unit and no index write; the deadline's rewrite is 1 more and 2 "
        "`by_deadline` index write units. Idle clients beat every 5 minutes, so an idle connection pays both once per 5 "
        "minutes (see the cost model); a presence heartbeat (every 25 s) pays both every time.",
        "* A membership item (`by_group`, INCLUDE `uid`, `ttl`) costs 1 table + 1 index write unit to add and to delete.",
        "* A group broadcast reads one `by_group` shard while the group is small: a group's shards grow only once a "
        "broadcast has counted more than `keys.GROUP_SHARD_MEMBERS` (10,000) members per shard (`Groups.grow`), so "
        "a broadcast's reads spread over more partitions exactly when a single one would be hot. A writer learns the "
        "count with a GetItem, cached per container for 5 minutes (none of the rows here pays it).",
        "* The stream itself: DynamoDB Streams reads made by a Lambda trigger are free.",
        "* At a shard holding exactly a page of members, moto returns no `LastEvaluatedKey`; DynamoDB returns one when "
        "`Limit` is reached, so there one more (empty) keys-only Query follows.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    common.main("dynamodb", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
