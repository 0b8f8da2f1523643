"""Fan-out benchmark (issues 3 and 6): ``python -m bench fanout [--quick]``.

The management endpoint is ``devtools.management_stub`` in a separate *process* (the
machine has 2 cores: server and measured client must not share a GIL), adding 10 ms of
latency to every request. Columns, each the median of several runs in this process:

* ``realtime.sender``: ``Sender.send_many`` with SigV4 (credentials with a session token),
  1 % of recipients gone (410, reported in ``gone``), 1 % throttled once (429, retried);
* boto3 ``post_to_connection`` sequential (one client);
* boto3 ``post_to_connection`` in a thread pool (one client shared by the threads);
* unsigned aiohttp (``ClientSession``, same concurrency): the raw ceiling;
* aiohttp + ``realtime.sigv4`` (the design check behind ``realtime.http``).

Then the notify path end to end (`bench.notify_path`: one stream record to 1,000 and 1,500
subscribers, moto's time subtracted, against the same boto3 pool), the signer on its own
against botocore's, import costs, and the peak RSS of a child
process fanning out to 100,000 recipients from a generator. The full run writes its table
into ``docs/performance.md`` between markers; ``--quick`` only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "common"))


from devtools.management_stub import StubProcess  # noqa: E402
from bench import common  # noqa: E402
from bench import notify_path  # noqa: E402
from bench.common import TOKEN, credentials  # noqa: E402

REGION = "us-east-1"
LATENCY = 0.010
BODY = json.dumps({"stream": "users", "payload": {"count": 12345, "changed": "connect"},
                   "seq": "49650000000000000000000000000000000000000000000000000001"}).encode()
def recipients(n: int, tag: str, special: bool = False) -> Iterator[tuple[str, bytes]]:
    """Lazily yields (connection id, body); with ``special``, 1 % gone and 1 % throttled."""
    for i in range(n):
        if special and i % 100 == 1:
            yield f"gone-{tag}-{i}=", BODY
        elif special and i % 100 == 2:
            yield f"flaky-{tag}-{i}=", BODY
        else:
            yield f"{tag}{i}+AbC/dEf=", BODY


# -- clients -----------------------------------------------------------------------------
def run_sender(endpoint: str, n: int, concurrency: int, tag: str, sender=None) -> tuple[float, dict]:
    from realtime.sender import Sender

    own = sender is None
    sender = sender or Sender(endpoint, region=REGION, credentials=credentials(), concurrency=concurrency)
    t0 = time.perf_counter()
    report = sender.send_many(recipients(n, tag, special=True))
    dt = time.perf_counter() - t0
    if own:
        sender.close()
    expected_gone = sum(1 for i in range(n) if i % 100 == 1)
    assert len(report.gone) == expected_gone, (len(report.gone), expected_gone)
    assert not report.failed, report.failed[:5]
    assert report.sent == n - expected_gone
    return n / dt, {"sent": report.sent, "gone": len(report.gone), "failed": len(report.failed)}


def boto3_client(endpoint: str, pool: int = 10):
    import boto3
    from botocore.config import Config

    c = credentials()
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key, aws_session_token=c.token,
        config=Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 4}),
    )


def run_boto3_sequential(endpoint: str, n: int, tag: str, client=None) -> tuple[float, dict]:
    client = client or boto3_client(endpoint)
    t0 = time.perf_counter()
    for cid, body in recipients(n, tag):
        client.post_to_connection(ConnectionId=cid, Data=body)
    return n / (time.perf_counter() - t0), {}


def run_boto3_pool(endpoint: str, n: int, threads: int, tag: str, client=None) -> tuple[float, dict]:
    client = client or boto3_client(endpoint, threads)

    def post(item):
        client.post_to_connection(ConnectionId=item[0], Data=item[1])

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(post, recipients(n, tag), chunksize=16):
            pass
    return n / (time.perf_counter() - t0), {}


class AiohttpClient:
    """aiohttp ``ClientSession`` on a loop kept across runs (warm keep-alive pool, like ours)."""

    def __init__(self, endpoint: str, concurrency: int) -> None:
        import aiohttp
        from urllib.parse import urlsplit

        from realtime.sigv4 import Signer, host_header

        self.endpoint = endpoint
        self.concurrency = concurrency
        parts = urlsplit(endpoint)
        self.host = host_header(parts.scheme, parts.hostname, parts.port)
        self.signer = Signer(REGION)
        self.loop = asyncio.new_event_loop()

        async def make():
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency))

        self.session = self.loop.run_until_complete(make())

    async def _run(self, n: int, tag: str, signed: bool) -> None:
        from realtime.sigv4 import encode_connection_id

        c = credentials()
        it = recipients(n, tag)
        session, signer, host, endpoint = self.session, self.signer, self.host, self.endpoint

        async def worker():
            for cid, body in it:
                path = "/@connections/" + encode_connection_id(cid)
                headers = (signer.sign("POST", host, path, body, c.access_key, c.secret_key, c.token)
                           if signed else None)
                async with session.post(endpoint + path, data=body, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def run(self, n: int, tag: str, signed: bool) -> None:
        self.loop.run_until_complete(self._run(n, tag, signed))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


# -- micro measurements --------------------------------------------------------------------
def signing_rates(n: int) -> dict[str, float]:
    from unittest import mock

    import botocore.auth
    from botocore.awsrequest import AWSRequest

    from realtime.sigv4 import Signer, encode_connection_id

    c = credentials()
    url = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod/@connections/"
    ids = [encode_connection_id(f"conn{i}+x/y=") for i in range(n)]
    auth = botocore.auth.SigV4Auth(c, "execute-api", REGION)
    t0 = time.perf_counter()
    for enc in ids:
        auth.add_auth(AWSRequest(method="POST", url=url + enc, data=BODY))
    botocore_rate = n / (time.perf_counter() - t0)
    signer = Signer(REGION)
    host = "abcdef1234.execute-api.us-east-1.amazonaws.com"
    t0 = time.perf_counter()
    for enc in ids:
        signer.sign("POST", host, "/prod/@connections/" + enc, BODY, c.access_key, c.secret_key, c.token)
    ours_rate = n / (time.perf_counter() - t0)
    del mock
    return {"botocore": botocore_rate, "ours": ours_rate}


def import_seconds(module: str, runs: int = 3) -> float:
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT / 'layers' / 'common')!r}); "
            f"t = time.perf_counter(); import {module}; print(time.perf_counter() - t)")
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def rss_child(endpoint: str, n: int, concurrency: int) -> None:
    """Run in a fresh process: fan out to ``n`` recipients, print JSON with peak RSS."""
    import resource

    import boto3  # noqa: F401 - a Lambda handler has it loaded anyway

    from realtime.sender import Sender

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sender = Sender(endpoint, region=REGION, credentials=credentials(), concurrency=concurrency)
    t0 = time.perf_counter()
    report = sender.send_many(recipients(n, "rss", special=True))
    dt = time.perf_counter() - t0
    sender.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"base_mb": base, "peak_mb": peak, "rate": n / dt, "sent": report.sent,
                      "gone": len(report.gone), "failed": len(report.failed)}))


def measure_rss(endpoint: str, n: int, concurrency: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--rss-child", endpoint, str(n), str(concurrency)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- driver ----------------------------------------------------------------------------------
def timed(fn: Callable[[], tuple[float, dict]], n: int) -> tuple[float, float]:
    """(msgs/s, client CPU µs per message) of one run; CPU counts every thread of this process."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    return n / wall, (time.process_time() - c0) / n * 1e6


def run(quick: bool = False, write_doc: bool | None = None, concurrency: int = 128) -> dict:
    if quick:
        n, n_pool, n_seq, repeats, n_rss, n_sign = 1000, 300, 40, 1, 5000, 2000
    else:
        n, n_pool, n_seq, repeats, n_rss, n_sign = 10_000, 2500, 250, 5, 100_000, 20_000
    threads = 32
    r: dict = {"n": n, "n_pool": n_pool, "n_seq": n_seq, "concurrency": concurrency,
               "threads": threads, "repeats": repeats}
    print(f"fan-out benchmark: stub in a child process, {LATENCY * 1000:.0f} ms latency; "
          f"{n} recipients per run ({n_pool} thread pool, {n_seq} sequential); "
          f"{repeats} interleaved rounds; concurrency {concurrency}")
    from realtime.sender import Sender

    columns = ["sender", "raw", "aiohttp_signed", "boto3_pool", "boto3_seq"]
    runs: dict[str, list[tuple[float, float]]] = {c: [] for c in columns}
    with StubProcess(latency=LATENCY, accept_all=True, gone_prefix="gone-", flaky_prefix="flaky-",
                     no_record_bodies=True) as stub:
        ep = stub.endpoint
        sender = Sender(ep, region=REGION, credentials=credentials(), concurrency=concurrency)
        client = boto3_client(ep, threads)
        raw = AiohttpClient(ep, concurrency)
        # warm-up: open the pools (a warm Lambda container has them open)
        run_sender(ep, min(n, 2000), concurrency, "warm-", sender)
        run_boto3_pool(ep, min(200, n_pool), threads, "bw-", client)
        raw.run(min(n, 2000), "rw-", signed=False)
        max_in_flight = connections = 0
        # Interleaved rounds: this machine is shared, so every column sees the same noise.
        for i in range(repeats):
            stub.reset()
            runs["sender"].append(timed(lambda: run_sender(ep, n, concurrency, f"s{i}-", sender), n))
            st = stub.stats()  # the sender's run alone
            max_in_flight = max(max_in_flight, st["max_in_flight"])
            connections = max(connections, st["connections"])
            runs["raw"].append(timed(lambda: raw.run(n, f"r{i}-", signed=False), n))
            runs["aiohttp_signed"].append(
                timed(lambda: raw.run(n, f"a{i}-", signed=True), n))
            runs["boto3_pool"].append(timed(lambda: run_boto3_pool(ep, n_pool, threads, f"p{i}-", client), n_pool))
            runs["boto3_seq"].append(timed(lambda: run_boto3_sequential(ep, n_seq, f"q{i}-", client), n_seq))
            print(f"  round {i + 1}: " + ", ".join(f"{c} {runs[c][-1][0]:.0f}/s" for c in columns), flush=True)
        sender.close()
        raw.close()
        r["stub_max_in_flight"] = max_in_flight
        r["stub_connections"] = connections
        print("  the notify path end to end (moto's server in its own process, its time subtracted):")
        r["notify_path"] = notify_path.run(ep, [300] if quick else [1000, 1500], 1 if quick else repeats,
                                           lambda k, tag: run_boto3_pool(ep, k, threads, tag, client),
                                           credentials())
        rss = measure_rss(ep, n_rss, concurrency)
    for c in columns:
        r[c] = statistics.median(x[0] for x in runs[c])
        r[c + "_runs"] = [x[0] for x in runs[c]]
        r[c + "_cpu_us"] = statistics.median(x[1] for x in runs[c])
    r["rss"] = rss
    r["n_rss"] = n_rss
    print(f"  {n_rss} recipients in a fresh process: peak RSS {rss['peak_mb']:.1f} MB "
          f"(after imports {rss['base_mb']:.1f} MB), {rss['rate']:.0f} msg/s, "
          f"gone {rss['gone']}, failed {rss['failed']}")
    r["signing"] = signing_rates(n_sign)
    r["import_aiohttp"] = import_seconds("aiohttp")
    r["import_sender"] = import_seconds("realtime.sender")
    r["x_pool"] = r["sender"] / r["boto3_pool"]
    r["x_seq"] = r["sender"] / r["boto3_seq"]
    r["of_raw"] = r["sender"] / r["raw"]
    # per-round ratios (same noise within a round)
    r["x_pool_rounds"] = [a[0] / b[0] for a, b in zip(runs["sender"], runs["boto3_pool"])]
    r["of_raw_rounds"] = [a[0] / b[0] for a, b in zip(runs["sender"], runs["raw"])]
    common.report("fanout", markdown(r, quick), quick=quick, write_doc=write_doc)
    if not quick:
        failed = [t for t, ok in targets(r) if not ok]
        if failed:
            print("\nTARGETS MISSED: " + "; ".join(failed))
    return r


def targets(r: dict) -> list[tuple[str, bool]]:
    return [
        ("≥ 5,000 msgs/s", r["sender"] >= 5000),
        ("≥ 6x boto3 thread pool", r["x_pool"] >= 6),
        ("notify path ≥ 6x boto3 thread pool", all(row["x_pool"] >= 6 for row in r["notify_path"]["rows"])),
        ("≥ half the raw ceiling", r["of_raw"] >= 0.5),
        ("peak RSS ≤ 256 MB", r["rss"]["peak_mb"] <= 256),
        ("in flight ≤ concurrency", r["stub_max_in_flight"] <= r["concurrency"]),
    ]


def fmt(rates: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rates)


def markdown(r: dict, quick: bool) -> str:
    ok = lambda b: "yes" if b else "**NO**"  # noqa: E731
    met = dict(targets(r))
    rows = [
        ("sender", f"`realtime.sender` (SigV4 + session token, concurrency {r['concurrency']}, "
                   "1 % answer 410, 1 % answer 429 once and are retried)"),
        ("boto3_seq", "boto3 `post_to_connection`, sequential"),
        ("boto3_pool", f"boto3 `post_to_connection`, {r['threads']} threads, one client"),
        ("raw", f"aiohttp unsigned, concurrency {r['concurrency']} (raw ceiling)"),
        ("aiohttp_signed", "aiohttp + `realtime.sigv4` (design check for `realtime.http`)"),
    ]
    lines = [
        "## Fan-out (`python -m bench fanout`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} shared cores, Python "
        f"{platform.python_version()}" + (" (**--quick run: not representative**)" if quick else "") + ". "
        f"`devtools.management_stub` runs in a separate process and adds {LATENCY * 1000:.0f} ms to every "
        f"request. Signed columns use credentials with a {len(TOKEN)}-byte session token. "
        f"{r['repeats']} interleaved rounds (every column once per round, so machine noise hits all "
        f"columns alike); medians. Per run: {r['n']:,} recipients, {r['n_pool']:,} for the thread "
        f"pool, {r['n_seq']:,} for sequential boto3. \"client CPU\" is this process's CPU time per "
        "message (all threads): the cost that caps a core, less sensitive to the machine's noise "
        "than the rate.",
        "",
        "| client | msgs/s (median) | runs | client CPU µs/msg | vs boto3 pool |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for key, label in rows:
        lines.append(f"| {label} | {r[key]:,.0f} | {fmt(r[key + '_runs'])} | {r[key + '_cpu_us']:,.0f} "
                     f"| {r[key] / r['boto3_pool']:.1f}x |")
    lines += [
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
        f"| ≥ 5,000 msgs/s | {r['sender']:,.0f} | {ok(met['≥ 5,000 msgs/s'])} |",
        f"| ≥ 6x boto3 thread pool | {r['x_pool']:.1f}x (per round: {', '.join(f'{x:.1f}' for x in r['x_pool_rounds'])}) "
        f"| {ok(met['≥ 6x boto3 thread pool'])} |",
        f"| ≥ half the raw ceiling | {r['of_raw'] * 100:.0f} % (per round: "
        f"{', '.join(f'{x * 100:.0f}' for x in r['of_raw_rounds'])}) | {ok(met['≥ half the raw ceiling'])} |",
        f"| peak RSS ≤ 256 MB, {r['n_rss']:,} recipients from a generator, fresh process | "
        f"{r['rss']['peak_mb']:.0f} MB (after imports incl. boto3: {r['rss']['base_mb']:.0f} MB; "
        f"{r['rss']['rate']:,.0f} msgs/s) | {ok(met['peak RSS ≤ 256 MB'])} |",
        f"| requests in flight ≤ concurrency | during the sender's runs the stub saw at most "
        f"{r['stub_max_in_flight']} at once, over {r['stub_connections']} keep-alive connections per run | {ok(met['in flight ≤ concurrency'])} |",
        "",
        *notify_path_markdown(r["notify_path"], met["notify path ≥ 6x boto3 thread pool"]),
        "",
        f"Signing alone (one core): botocore `SigV4Auth` {r['signing']['botocore']:,.0f} signatures/s, "
        f"`realtime.sigv4` {r['signing']['ours']:,.0f} signatures/s. "
        f"Import in a fresh process: `aiohttp` {r['import_aiohttp'] * 1000:.0f} ms, "
        f"`realtime.sender` (with `realtime.http` and `realtime.sigv4`) {r['import_sender'] * 1000:.0f} ms.",
    ]
    return "\n".join(lines)


def notify_path_markdown(np: dict, met: bool) -> list[str]:
    """The end-to-end table (issue 11, item 6): see `bench.notify_path` for what is counted."""
    lines = [
        "### The notify path end to end",
        "",
        "One document INSERT, as the notify handler receives it from the stream, delivered to every "
        "member of `notifications`: the binding's decision, the history append, the group's read (one "
        "shard at these sizes), a frame per member and the posts, through the same stub. DynamoDB is moto's server in "
        "another process; the time spent waiting for its answers (request sent to response parsed, "
        "overlapping waits counted once) is subtracted, since on AWS those reads take milliseconds and "
        "on moto as long as Python needs. The client's own parsing of DynamoDB's answers stays counted. "
        "Compared, round by round, with boto3's 32-thread pool posting as many frames (no reads, no "
        "decisions).",
        "",
        "| subscribers | posts/s, moto's time subtracted | runs | with moto's time | moto's share | DynamoDB requests | boto3 pool | vs boto3 pool (per round) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in np["rows"]:
        lines.append(f"| {row['n']:,} | {row['ours']:,.0f} | {fmt(row['ours_runs'])} | {row['with_moto']:,.0f} "
                     f"| {row['moto_share'] * 100:.0f} % | {row['requests']} | {row['pool']:,.0f} "
                     f"| {row['x_pool']:.1f}x ({', '.join(f'{x:.1f}' for x in row['x_pool_rounds'])}) |")
    gr = np["group_read"]
    lines += ["", f"Target ≥ 6x the boto3 pool at every size: {'yes' if met else '**NO**'}.", "",
              f"Why the group read stays on the low-level client (`realtime.groups`): reading the same "
              f"{gr['n']:,} members (one shard, the same projection) costs this process "
              f"{gr['low_level_us']:.1f} µs of CPU per member through botocore's client and "
              f"{gr['pynamodb_us']:.1f} µs through a PynamoDB model of the index "
              f"({gr['pynamodb_us'] / gr['low_level_us']:.1f}x), moto's own CPU apart (another process). "
              "The bound tables' reads and writes are PynamoDB's."]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = common.parser("fanout")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--rss-child", nargs=3, metavar=("ENDPOINT", "N", "CONCURRENCY"), help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.rss_child:
        rss_child(ns.rss_child[0], int(ns.rss_child[1]), int(ns.rss_child[2]))
        return
    run(quick=ns.quick, write_doc=True if ns.write_doc else None, concurrency=ns.concurrency)


if __name__ == "__main__":
    main()
