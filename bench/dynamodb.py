"""DynamoDB work per operation: ``python -m bench dynamodb [--quick]``.

The real handlers run against moto (``mock_aws``), tables from ``template.yaml``, driven
with API Gateway-shaped events by ``tests.apigw.ApiGateway`` (the test suite's stand-in)
and the ``@connections`` stand-in ``devtools.management_stub.ManagementStub``. botocore
events on the application's own clients count every request:

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
from contextlib import ExitStack
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


@dataclass
class Row:
    name: str
    usage: Usage
    minimum: int
    why: str
    extra: str = ""


def run(quick: bool = False, write_doc: bool | None = None) -> dict:
    saved = {k: os.environ.get(k) for k in list(ENV) + list(UNSET) + ["WEBSOCKET_ENDPOINT", "JWT_SECRET",
                                                                       "FANOUT_QUEUE_URL",
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
    notif: list[Row] = []
    print(f"DynamoDB-work benchmark: moto in-process, notification sizes {sizes}")
    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        stub = stack.enter_context(ManagementStub(accept_all=True, record_bodies=False))
        raw = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(raw, names={"ConnectionsTable": CONNECTIONS, "DocumentsTable": DOCUMENTS,
                                  "CommentsTable": COMMENTS, "HistoryTable": HISTORY})
        sqs_raw = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs_raw.create_queue(QueueName="fanout")["QueueUrl"]
        os.environ["PUBLISH_DEAD_LETTER_QUEUE_URL"] = sqs_raw.create_queue(QueueName="publish-dlq")["QueueUrl"]
        queue_arn = sqs_raw.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        os.environ.update({"WEBSOCKET_ENDPOINT": stub.endpoint, "JWT_SECRET": SECRET, "FANOUT_QUEUE_URL": queue_url})
        gw = ApiGateway(raw, stub)
        gw.reset_runtime()
        stack.callback(gw.reset_runtime)
        from devtools.stack.events import published_event
        from functions.notify import app as notify
        from functions.publish import app as publish
        from realtime import runtime

        app = runtime.app(stub.endpoint)
        stack.callback(app.sender.close)
        meter = Meter(raw)
        meter.attach(runtime._clients()["dynamodb"])
        meter.attach_sqs(app.broadcaster.queue.client)

        # Frames 25 s apart (the client's heartbeat interval), not within one second: the application's
        # clock moves forward before each operation, so `seen` and presence expiry change as they would.
        offset = [0.0]
        app.clock = lambda: time.time() + offset[0]

        def measure(name: str, fn: Any, minimum: int, why: str, extra: str = "", into: list[Row] = rows) -> Row:
            offset[0] += 25
            meter.take()
            posts = stub.stats()["requests"]
            fn()
            usage = meter.take()
            usage.posts = stub.stats()["requests"] - posts
            row = Row(name, usage, minimum, why, extra)
            into.append(row)
            print(f"  {name}: {usage.count} requests ({usage.ops()}), {usage.rru:g} RRU, {usage.wru:g} WRU, "
                  f"{usage.posts} posts, SQS {dict(usage.sqs)}", flush=True)
            return row

        gw.put_document("roadmap", "Roadmap", abstract="The plan")
        gw.put_document("salaries", "Salaries", visibility="private", owner="alice", readers=["bob"])
        # An audience for the broadcasts: one subscriber on every stream.
        watcher = gw.login("watcher", "Watcher")
        for frame in ({"action": "subscribe", "stream": "users"}, {"action": "subscribe", "stream": "documents"},
                      {"action": "subscribe", "stream": "document", "document": "roadmap"},
                      {"action": "subscribe", "stream": "notifications"}):
            gw.send(watcher, frame)

        measure("`$connect`, anonymous", lambda: gw.anonymous(), 1, "the connection record (PutItem)")
        alice: list[str] = []
        measure("`$connect`, signed in, the user's first connection", lambda: alice.append(gw.login("alice", "Alice")), 4,
                "record (PutItem); user item + counter (one transaction); broadcast the counter: read it (GetItem), "
                "the `users` group (Query, 1 per 1,000 subscribers)")
        measure("`$connect`, signed in, a second tab", lambda: alice.append(gw.login("alice", "Alice")), 2,
                "record (PutItem); add the connection to the user item (UpdateItem)",
                "the counter transaction is tried first and cancelled (the user exists): 1 request (and its "
                "write units) on every further tab. Trying the UpdateItem first would move the extra request to "
                "first connections instead")
        a = alice[0]
        for stream, minimum, why in (
                ("users", 3, "touch (UpdateItem); membership (PutItem); the counter (GetItem)"),
                ("documents", 4, "touch; membership; every roster (Query of the presence partition); the documents (Scan)"),
                ("notifications", 2, "touch; membership (the ack's cursor is the clock: no read)")):
            measure(f"subscribe `{stream}`", lambda s=stream: gw.send(a, {"action": "subscribe", "stream": s, "id": 1}),
                    minimum, why)
        measure("subscribe `document`", lambda: gw.send(a, {"action": "subscribe", "stream": "document",
                                                             "document": "roadmap", "id": 1}),
                4, "touch; the document (GetItem, may they read it); membership; its roster (Query)")
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
            back = gw.login("returning", "Returning")
            measure(f"subscribe `notifications` with `since`: {k} missed notifications replayed",
                    lambda c=back, s=since: gw.send(c, {"action": "subscribe", "stream": "notifications",
                                                        "since": s, "id": 1}),
                    3, "touch; membership; the log after the cursor (one strongly consistent Query per 1 MB, "
                       "`REPLAY_LIMIT` + 1 items at most)")
            gw.disconnect(back)
        measure("subscribe `alerts` (signed in)", lambda: gw.send(a, {"action": "subscribe", "stream": "alerts", "id": 1}),
                3, "touch; membership of `alerts` and of the user's group `alerts/user/<uid>` (what `to: {user}` reaches)")
        measure("published event to a user (1 subscribed connection)",
                lambda: publish.handler(published_event("alerts", {"user": "alice"}, {"text": "Your export is ready"}),
                                        LambdaContext()),
                2, "the log entry (PutItem: one per event, not per recipient); the user's group (Query)")
        measure("published event to the group `alerts` (1 subscriber)",
                lambda: publish.handler(published_event("alerts", {"group": "alerts"}, {"text": "Maintenance"}),
                                        LambdaContext()),
                2, "the log entry (PutItem); the group (Query)")
        measure("published event refused (undeclared stream)",
                lambda: publish.handler(published_event("nope", {"group": "alerts"}, {"text": "x"}), LambdaContext()),
                0, "none: refused before any read; one SQS SendMessage to the dead-letter queue")
        measure("heartbeat, no presence held", lambda: gw.send(a, {"action": "heartbeat", "id": 1}), 1,
                "touch (UpdateItem returning the record)")
        measure("enter (roster changes; 1 subscriber on each of the document's streams)",
                lambda: gw.send(a, {"action": "enter", "document": "roadmap", "phase": "edit", "id": 1}), 6,
                "touch (could carry `ADD pres`); the document (GetItem); presence item (UpdateItem); broadcast: "
                "the roster (Query), the `document/roadmap` and `documents` groups (Query each)",
                "`add_presence` is a second UpdateItem of the record the touch just wrote (fold it into the touch: "
                "the action is parsed before it), and `_publish_roster` reads the document again (GetItem) though "
                "`_readable` read it a moment before")
        measure("heartbeat, 1 presence held", lambda: gw.send(a, {"action": "heartbeat", "id": 1}), 2,
                "touch; push the presence forward (UpdateItem per presence held)")
        measure("leave (roster changes)",
                lambda: gw.send(a, {"action": "leave", "document": "roadmap", "phase": "edit", "id": 1}), 6,
                "touch (could carry `DELETE pres`); delete the presence (DeleteItem); broadcast: the document "
                "(GetItem: title and who may read), the roster (Query), two groups (Query each)",
                "the frame's presence refresh first pushes forward the very presence it then deletes (UpdateItem), "
                "and `remove_presence` is a second UpdateItem of the record")
        gw.send(a, {"action": "enter", "document": "roadmap", "phase": "view"})
        measure("`$disconnect`, a second tab with nothing held", lambda: gw.disconnect(alice[1]), 3,
                "holdings (Query of `c#<conn>`); user item (UpdateItem `DELETE conns`); the record (DeleteItem); "
                "nothing to broadcast")
        measure("`$disconnect`, last tab: 4 memberships, 1 presence", lambda: gw.disconnect(a), 11,
                "holdings (Query); one BatchWriteItem for presence + memberships; user item (UpdateItem); user + "
                "counter (transaction); the record (DeleteItem, last: a crash leaves it to the sweep); broadcast the "
                "counter (GetItem + `users` Query) and the roster (GetItem document, roster Query, 2 group Queries)",
                "presence and memberships are deleted in two BatchWriteItem requests where one would do (same table, "
                "≤ 25 items)")

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
                    "pk": {"S": f"c#{cid}"}, "sk": {"S": "g#notifications"}, "grp": {"S": "notifications"},
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
        for n in sizes:
            seed(n)
            pages = math.ceil(n / 1000)
            queued = pages - 1
            minimum = pages + 1  # + the log entry: one per notification, whatever N
            extra = ""
            full = (n - 1000) // 1000 if n > 1000 else 0
            if queued:
                extra = (f"{queued} Query(s) cut the rest into key ranges (keys only, but capacity counts whole index "
                         f"entries: the {n - 1000:,} recipients beyond the first page are read twice); the "
                         f"pages travel by SQS ({math.ceil(queued / 10)} SendMessageBatch)")
            if full:
                extra += (f"; {full} empty Query: a queued page holding exactly 1,000 members hits `Limit` and gets a "
                          "`LastEvaluatedKey`, which the consumer follows (it could stop at the range's last key)")
            measure(f"notification, N = {n:,}: public document, a field changed (MODIFY)",
                    lambda: notify_record("MODIFY", "roadmap", doc_old, doc_new), minimum,
                    "the log entry (PutItem, one per notification whatever N: `notifications` keeps history); the "
                    "`notifications` group (Query, 1 per 1,000 members, eventually consistent on `by_group`)",
                    extra, into=notif)
            measure(f"notification, N = {n:,}: private document (owner + 2 readers), a field changed",
                    lambda: notify_record("MODIFY", "pay", private, private2), minimum,
                    "the log entry and the same group read: who may read is decided per member from the stream "
                    "image (and again, per subscriber, from the logged decision when it is replayed)", extra, into=notif)
            measure(f"notification, N = {n:,}: new public document (INSERT)",
                    lambda: notify_record("INSERT", f"new{n}", None, doc_new), minimum + 2,
                    "the group as above; the concurrency monitor: the `documents` group (Query) and the new "
                    "document's group (Query)",
                    "the monitor reads the new document's roster (Query) though presence needs the document to "
                    "exist (always empty on INSERT); its group Query is also always empty on INSERT unless left over"
                    + ("; " + extra if extra else ""), into=notif)
    result = {"rows": [dict(name=r.name, minimum=r.minimum, **r.usage.to_dict()) for r in rows],
              "notifications": [dict(name=r.name, minimum=r.minimum, **r.usage.to_dict()) for r in notif],
              "date": time.strftime("%Y-%m-%d"), "quick": quick}
    if not quick:
        LAST.clear()
        LAST.update(result)
    common.report("dynamodb", markdown(rows, notif, quick), quick=quick, write_doc=write_doc, after="coldstart")
    return result


def fmt_units(x: float) -> str:
    return f"{x:g}" if x < 100 else f"{x:,.0f}"


def markdown(rows: list[Row], notif: list[Row], quick: bool) -> str:
    def render(rs: list[Row]) -> str:
        out = []
        for r in rs:
            u = r.usage
            extra = u.count - r.minimum
            note = r.extra if extra > 0 and r.extra else ("" if extra <= 0 else "see below")
            sqs = ", ".join(f"{k} ×{v}" for k, v in u.sqs.items())
            out.append((r.name, u.count, u.ops() + (f"; SQS: {sqs}" if sqs else ""), fmt_units(u.rru),
                        fmt_units(u.wru) + (f" ({fmt_units(u.gsi_wru)} index)" if u.gsi_wru else ""), u.posts,
                        r.minimum, f"{u.count / r.minimum:.2f}x" if r.minimum else ("1.00x" if not u.count else "-"),
                        r.why, note or "none"))
        return table(["operation", "requests", "which (✗ = condition failed / cancelled)", "read units",
                      "write units", "@connections posts", "minimum requests", "ratio", "the minimum, from the data model",
                      "extra requests, explained"], out, "lrlrrrrrll")

    lines = [
        "## DynamoDB work per operation (`python -m bench dynamodb`)",
        "",
        measured_line(quick, "The real handlers against moto (`mock_aws`, tables from `template.yaml`), driven by "
                             "`tests.apigw.ApiGateway`; requests counted with botocore's `provide-client-params` / "
                             "`after-call` events on the application's own DynamoDB and SQS clients, with "
                             "`ReturnConsumedCapacity=TOTAL` injected. moto answers it with a constant per operation, "
                             "so read and write units are computed from the actual items by DynamoDB's rules (4 KB "
                             "read units, half for eventually consistent reads and `by_group` queries; 1 KB write units "
                             "of the larger of before/after, ×2 in transactions; every index entry written or deleted "
                             "is a write unit too, an index key change two, with DynamoDB's 100-byte index overhead). "
                             "These are also on-demand *request* units. The baseline is the minimum the data model "
                             "(`docs/data-model.md`) allows for the same outcome; a connection subscribed to every "
                             "stream is the audience of each broadcast."),
        "",
        render(rows),
        "",
        "### A notification to N recipients (notify function; pages beyond 1,000 through SQS and the queue consumer)",
        "",
        render(notif),
        "",
        "Notes:",
        "",
        "* Every frame's touch (`SET seen`) rewrites the connection's `by_seen` index entry (its range key changes): "
        "1 table + 2 index write units per frame, heartbeats included. At one heartbeat per 25 s that is 7.2 WRU per "
        "connection-minute before presence; it is the largest DynamoDB cost of an idle connection (see the cost model).",
        "* A membership item (`by_group`, INCLUDE `uid`, `ttl`) costs 1 table + 1 index write unit to add and to delete.",
        "* The stream itself: DynamoDB Streams reads made by a Lambda trigger are free.",
        "* At N = 1,000 exactly, moto returns no `LastEvaluatedKey` for the first page; DynamoDB returns one when "
        "`Limit` is reached, so there one more (empty) keys-only Query follows.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    common.main("dynamodb", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
