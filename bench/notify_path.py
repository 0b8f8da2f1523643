"""The notify path end to end (issue 11, item 6), a part of ``python -m bench fanout``.

One document write, as the notify handler receives it (a DynamoDB stream record), delivered
to every member of the `notifications` group: the binding's decision, the history append,
the group's index reads (one shard at these sizes: `keys.group_shards_for`), one frame per member, and the posts. DynamoDB is
moto's server in a *separate process*; the management endpoint is the stub (another
process, 10 ms per request). Everything the notifier does in this process is counted; the
time moto spends serving DynamoDB requests is not (each request is timed from botocore's
`before-send` to its `before-parse`, so the client's own parsing stays counted): on AWS
those reads take single-digit milliseconds, on moto they take as long as Python needs.

Compared, in interleaved rounds, with boto3's `post_to_connection` in a 32-thread pool
posting the same number of frames (no reads, no decisions: a lower bar than ours).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from typing import Any

from bench.common import ROOT

REGION = "us-east-1"
TABLES = {"ConnectionsTable": "np-connections", "DocumentsTable": "np-documents",
          "CommentsTable": "np-comments", "HistoryTable": "np-history"}
GROUP = "notifications"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoProcess:
    """moto's server in a child process (its request handling must not share our GIL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ServerTime:
    """Seconds spent waiting for DynamoDB's answers (request sent -> response about to be
    parsed), as the union of those intervals: the group's shards are read concurrently."""

    def __init__(self, client: Any) -> None:
        self.intervals: list[tuple[float, float]] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        client.meta.events.register("before-send.dynamodb", self._send)
        client.meta.events.register("before-parse.dynamodb", self._parse)

    def _send(self, **_: Any) -> None:
        self._local.started = time.perf_counter()

    def _parse(self, **_: Any) -> None:
        started = getattr(self._local, "started", None)
        if started is not None:
            with self._lock:
                self.intervals.append((started, time.perf_counter()))
            self._local.started = None

    def take(self) -> tuple[float, int]:
        """(seconds waited, requests) since the last call."""
        with self._lock:
            intervals, self.intervals = sorted(self.intervals), []
        total, end = 0.0, float("-inf")
        for start, stop in intervals:
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total, len(intervals)


def environment(moto: str, stub: str) -> dict[str, str]:
    return {
        "CONNECTIONS_TABLE": TABLES["ConnectionsTable"], "DOCUMENTS_TABLE": TABLES["DocumentsTable"],
        "COMMENTS_TABLE": TABLES["CommentsTable"], "HISTORY_TABLE": TABLES["HistoryTable"],
        "WEBSOCKET_ENDPOINT": stub, "JWT_SECRET": "bench-secret-" + "x" * 32,
        "AWS_REGION": REGION, "FANOUT_PAGE_SIZE": "2000",  # every member inline: the path, not the queue
    }


class NotifyPath:
    """The engine (the reference application) wired to moto's server and the stub."""

    def __init__(self, moto: str, stub: str, credentials: Any) -> None:
        import boto3

        from devtools.template import create_tables
        from realtime.config import Settings
        from realtime.runtime import build
        from realtime.sender import Sender

        self.dynamodb = boto3.client("dynamodb", endpoint_url=moto, region_name=REGION,
                                     aws_access_key_id="testing", aws_secret_access_key="testing")
        create_tables(self.dynamodb, names=TABLES)
        self.server = ServerTime(self.dynamodb)
        settings = Settings.from_env(environment(moto, stub))
        self.sender = Sender(stub, region=REGION, credentials=credentials, concurrency=settings.send_concurrency)
        self.app = build(settings, dynamodb=self.dynamodb, verifier=lambda: None, sender=self.sender)
        self.members = 0
        self.writes = 0

    def grow(self, n: int) -> None:
        """Make the group `n` members strong (signed-in connections, as the client subscribes them)."""
        from realtime.connections import Connection

        now = int(time.time())
        groups = self.app.services.groups
        while self.members < n:
            i = self.members
            groups.add(Connection(f"np{i:06d}AbCdEf=", user_id=f"user{i}", ttl=now + 7200), GROUP)
            self.members += 1

    def record(self) -> dict[str, Any]:
        from tests import streams

        self.writes += 1
        slug = f"doc-{self.writes}"
        record = streams.record("INSERT", slug, new=streams.image(
            title=f"Document {self.writes}", abstract="Written by another service", visibility="public",
            owner="writer", version=1))
        record["eventSourceARN"] = streams.STREAM_ARN.replace("table/documents/", f"table/{TABLES['DocumentsTable']}/")
        return record

    def deliver(self) -> tuple[float, float, int, int]:
        """One write to everyone: (wall seconds, DynamoDB server seconds, DynamoDB requests, posts)."""
        record = self.record()
        self.server.take()
        t0 = time.perf_counter()
        report = self.app.notifier.handle_record(record)
        wall = time.perf_counter() - t0
        server, requests = self.server.take()
        assert report.sent == self.members and not report.failed and not report.gone, report
        return wall, server, requests, report.sent

    def close(self) -> None:
        self.sender.close()
        self.dynamodb.close()


def pynamodb_members(moto: str) -> Any:
    """The same group read through PynamoDB (issue 12: the model API wherever it is not slower):
    a model of the membership items and its `by_group` index, queried shard by shard."""
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute
    from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
    from pynamodb.models import Model

    from realtime import keys
    from realtime.groups import Member

    class ByGroup(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_group"
            projection = IncludeProjection(["uid", "ttl"])

        grp = UnicodeAttribute(hash_key=True)
        gsk = UnicodeAttribute(range_key=True)

    class Membership(Model):
        class Meta:
            table_name = TABLES["ConnectionsTable"]
            host = moto
            region = REGION
            aws_access_key_id = "testing"
            aws_secret_access_key = "testing"

        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        grp = UnicodeAttribute(null=True)
        gsk = UnicodeAttribute(null=True)
        uid = UnicodeAttribute(null=True)
        ttl = NumberAttribute(null=True)
        by_group = ByGroup()

    def read(group: str, limit: int, shards: int) -> list[Any]:
        now = time.time()
        members = []
        for shard in range(shards):
            for item in Membership.by_group.query(keys.group_index_key(group, shard), limit=limit,
                                                  attributes_to_get=["gsk", "uid", "ttl"]):
                if (item.ttl or 0) > now:
                    members.append(Member(item.gsk, item.uid))
        return members

    return read


def group_read_cpu(path: NotifyPath, moto: str, n: int, repeats: int) -> dict[str, Any]:
    """This process's CPU per member read (moto's is another process's): the engine's
    low-level read (`Groups.first_pages`) against PynamoDB's, `n` members, interleaved."""
    via_pynamodb = pynamodb_members(moto)
    groups = path.app.services.groups
    ours, theirs = [], []
    for i in range(repeats + 1):
        c0 = time.process_time()
        got = sum(len(page.members) for page in groups.first_pages(GROUP, 2000))
        c1 = time.process_time()
        other = len(via_pynamodb(GROUP, 2000, groups.shard_count(GROUP)))
        c2 = time.process_time()
        assert got == other == n, (got, other, n)
        if i:  # the first round warms both (models, connections)
            ours.append((c1 - c0) / n * 1e6)
            theirs.append((c2 - c1) / n * 1e6)
    row = {"n": n, "low_level_us": statistics.median(ours), "pynamodb_us": statistics.median(theirs)}
    print(f"  group read, {n} members, this process's CPU per member: low-level client {row['low_level_us']:.1f} µs, "
          f"PynamoDB {row['pynamodb_us']:.1f} µs ({row['pynamodb_us'] / row['low_level_us']:.1f}x)", flush=True)
    return row


def run(stub_endpoint: str, sizes: list[int], repeats: int, boto3_pool: Any, credentials: Any) -> dict[str, Any]:
    """Per size: the notify path's posts/s with moto's time subtracted, and boto3's pool alike."""
    # realtime.runtime makes its Metrics at import, once per process: with a namespace, as
    # the other benchmarks of `python -m bench` that run after this one expect.
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "RealtimeBench")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    results: dict[str, Any] = {"sizes": sizes, "rows": []}
    with ExitStack() as stack:
        moto = MotoProcess()
        stack.callback(moto.stop)
        path = NotifyPath(moto.endpoint, stub_endpoint, credentials)
        stack.callback(path.close)
        for n in sizes:
            path.grow(n)
            path.deliver()  # warm: pools open, models loaded
            ours, raw_rates, pool, server_share, requests = [], [], [], [], 0
            for i in range(repeats):
                wall, server, requests, sent = path.deliver()
                ours.append(sent / (wall - server))
                raw_rates.append(sent / wall)
                server_share.append(server / wall)
                pool.append(boto3_pool(n, f"np{n}-{i}-")[0])
            row = {"n": n, "ours": statistics.median(ours), "ours_runs": ours,
                   "with_moto": statistics.median(raw_rates), "moto_share": statistics.median(server_share),
                   "requests": requests, "pool": statistics.median(pool),
                   "x_pool_rounds": [a / b for a, b in zip(ours, pool)]}
            row["x_pool"] = statistics.median(row["x_pool_rounds"])
            results["rows"].append(row)
            print(f"  notify path, {n} subscribers: {row['ours']:,.0f} posts/s without moto's time "
                  f"({row['with_moto']:,.0f} with it, moto {row['moto_share'] * 100:.0f} % of the wall time, "
                  f"{requests} DynamoDB requests); boto3 pool {row['pool']:,.0f}/s; {row['x_pool']:.1f}x", flush=True)
        results["group_read"] = group_read_cpu(path, moto.endpoint, sizes[-1], repeats)
    return results


def profile(stub_endpoint: str, n: int, credentials: Any, top: int = 25) -> None:
    """`python -m bench.notify_path --profile N`: where the path's time goes (cProfile)."""
    import cProfile
    import pstats

    from devtools.management_stub import StubProcess

    del stub_endpoint
    with StubProcess(latency=0.010, accept_all=True, no_record_bodies=True) as stub:
        moto = MotoProcess()
        try:
            path = NotifyPath(moto.endpoint, stub.endpoint, credentials)
            path.grow(n)
            path.deliver()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(3):
                wall, server, requests, sent = path.deliver()
                print(f"{sent} posts in {wall * 1000:.0f} ms, moto {server * 1000:.0f} ms over {requests} requests: "
                      f"{sent / (wall - server):,.0f} posts/s without moto")
            profiler.disable()
            path.close()
        finally:
            moto.stop()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    from bench.common import credentials as _credentials

    profile("", int(sys.argv[2]) if len(sys.argv) > 2 else 1500, _credentials())
