"""Scale: ``python -m bench scale [--quick] [--sizes 250,1000] [--seconds 60] [--reuse-stack]``.

Two parts (issue 11, "How it is measured"):

1. **On the local stack, real WebSocket clients, two sizes** (`bench.scale_load`): the
   reference workload, time-compressed, for `--seconds`; frames received per client per
   second by stream, DynamoDB requests per operation (each function invocation labelled),
   the largest share of requests on one partition key, and how late the coalesced
   announcements were (whether the local stack kept up).
2. **The scale model** (`bench.scale_model`) at 1k, 10k, 100k and 1M users, from the DynamoDB
   benchmark's measured requests and units per operation (run in this process when it ran
   just before, as under ``python -m bench``; else here).

It writes ``docs/scale.md`` (the whole file) and its section of ``docs/performance.md``,
unless ``--quick`` (tiny sizes, seconds; prints only). The stack's measurement is saved in
``.dev/bench-scale-stack.json``; ``--reuse-stack`` regenerates the documents from it
without running the stack again (the model is recomputed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import common
from bench.common import ROOT, machine, measured_line, table, today
from bench.scale_load import Workload, run_size
from bench.scale_model import (
    QUOTAS,
    REQUEST_S,
    INVOCATION_S,
    SIZES,
    Size,
    design,
    dollars_per_user_hour,
    limits,
    model,
)

SCALE_DOC = ROOT / "docs" / "scale.md"
SAVED = ROOT / ".dev" / "bench-scale-stack.json"
#: The local stack's compressed workload (see `measure_stack`).
LOCAL_COMPRESSION = 10.0
LOCAL_DOCUMENTS = 20
STATE = ("users", "documents", "document")


# ---------------------------------------------------------------- the local stack


def measure_stack(sizes: list[int], workload: Workload, *, seconds: float, warmup: float,
                  connect_budget: float) -> dict[str, Any]:
    """Each size in turn, one stack each (one heavy thing at a time)."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            print(f"scale: the local stack with {n} clients ({workload.compression:g}x compressed, "
                  f"{workload.documents} documents, {seconds:.0f} s measured)", flush=True)
            began = time.monotonic()
            result = run_size(n, workload, window_s=seconds, warmup_s=warmup, connect_budget=connect_budget,
                              tap_file=Path(tmp) / f"tap-{n}.json")
            result["wall_s"] = time.monotonic() - began
            results.append(result)
    return {"date": today(), "machine": machine(), "workload": workload.__dict__, "sizes": results}


def label_kind(label: str) -> str:
    """An invocation label as an operation of the workload."""
    return label.replace("frame ", "").replace(" (message)", "")


def stack_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What one size's window measured, per client and per operation."""
    window, tap = result["window"], result["tap"]
    seconds = window["seconds"]
    clients = window["live_mean"] or result["clients"]
    frames = Counter(window["frames"])
    state = sum(frames[s] for s in STATE)
    requests: dict[str, int] = defaultdict(int)
    for label, _op, n in tap["requests"]:
        requests[label] += n
    sqs: dict[str, int] = defaultdict(int)
    for label, _op, n in tap["sqs"]:
        sqs[label] += n
    invocations = tap["invocations"]
    per_op = []
    for label, n in sorted(invocations.items(), key=lambda kv: -requests.get(kv[0].replace(" (message)", ""), 0)):
        if label == "announce":  # the invocation: its messages are counted by topic
            continue
        key = label.replace(" (message)", "")
        if not n or (key not in requests and key not in tap["posts"]):
            continue
        per_op.append((label_kind(label), n, requests.get(key, 0) / n, sqs.get(key, 0) / n, tap["posts"].get(key, 0) / n))
    total_requests = sum(requests.values())
    top_key, top_count = (tap["keys"][0] if tap["keys"] else ("-", 0))
    late = {k.replace("announce ", ""): v for k, v in tap["announce_late"].items()}
    ops = sum(n for label, n in invocations.items() if label.startswith(("frame", "connect", "disconnect")))
    return {
        "clients": result["clients"], "live": clients, "seconds": seconds,
        "state_per_client": state / clients / seconds, "by_stream": {s: frames[s] / clients / seconds for s in frames},
        "state_spread": window["state_per_client"], "per_op": per_op,
        "requests_per_s": total_requests / tap["seconds"], "requests_per_client_op": total_requests / max(1, ops),
        "client_ops": ops, "writes": result["writes"],
        "top_key": top_key, "top_share": top_count / max(1, tap["key_total"]), "top_keys": tap["keys"][:5],
        "key_total": tap["key_total"], "distinct_keys": tap["distinct_keys"],
        "late": {k: (percentile_of(v, 50), percentile_of(v, 99), len(v)) for k, v in late.items()},
        "stack_cpu": result["stack_cpu"], "connect_s": result["connect_s"], "connected": result["connected"],
        "errors": window["errors"], "moto_busy": sum(v[1] for v in tap["moto"].values()) / tap["seconds"],
        "durations": tap["durations_ms"],
    }


def percentile_of(values: list[float], p: float) -> float:
    from bench.common import percentile

    return percentile(values, p)


# ---------------------------------------------------------------- the documents


def fmt(x: float, digits: int = 0) -> str:
    if x == 0:
        return "0"
    if abs(x) < 0.01:
        return f"{x:.4f}"
    if abs(x) < 10 and digits == 0:
        return f"{x:,.2f}"
    return f"{x:,.{digits}f}"


def crossing(d: dict[str, Any], w: Workload, key: str, level: float = 1.0) -> float | None:
    """The number of users at which a limit's use first reaches `level` (None beyond 10M)."""
    def use(n: float) -> float:
        size = model(d, int(n), w)
        return next(u for q, u, _ in limits(size) if q is QUOTAS[key])

    lo, hi = 100.0, 10_000_000.0
    if use(hi) < level:
        return None
    if use(lo) >= level:
        return lo
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if use(mid) >= level:
            hi = mid
        else:
            lo = mid
    return hi


def people(n: float | None) -> str:
    if n is None:
        return "beyond 10M"
    return f"{n:,.0f}" if n < 10_000 else f"{n / 1000:,.0f}k" if n < 1_000_000 else f"{n / 1e6:,.2f}M"


def model_tables(d: dict[str, Any], w: Workload) -> tuple[list[str], dict[str, Any]]:
    sizes = {n: model(d, n, w) for n in SIZES}
    p = design()
    key_of = {id(q): k for k, q in QUOTAS.items()}
    crossings = {k: crossing(d, w, k) for k in QUOTAS}
    half_partition = crossing(d, w, "partition", 0.5)
    lines: list[str] = []

    def row(label: str, values: list[str]) -> tuple[str, ...]:
        return (label, *values)

    rows = []
    summary: dict[str, Any] = {}
    for n, size in sizes.items():
        posts = size.total("posts")
        notifications = size.by("posts", ("notify",))
        state = size.by("posts", ("announce",))
        acks = posts - notifications - state
        found = limits(size)
        reached = sorted((crossings[key_of[id(q)]] or 1e99, q, use) for q, use, _ in found if use >= 1)
        closest = max(found, key=lambda f: f[1])
        hottest = max(size.partitions, key=lambda part: part.load)
        cost = dollars_per_user_hour(size)
        summary[n] = {"posts": posts, "state_ack_per_user": (posts - notifications) / n, "reached": reached,
                      "hottest": hottest, "cost": cost, "closest": closest}
    header = ["", *[f"{n:,} users" for n in SIZES]]

    def each(fn: Any) -> list[str]:
        return [fn(sizes[n], summary[n]) for n in SIZES]

    rows = [
        row("inbound frames/s (subscribes, enter/leave, heartbeats)", each(lambda s, _: fmt(s.total("frames_in")))),
        row("**PostToConnection/s**", each(lambda s, x: f"**{fmt(x['posts'])}**")),
        row("… notifications (one per permitted subscriber per write)", each(lambda s, _: fmt(s.by("posts", ("notify",))))),
        row("… state broadcasts (counter, list)", each(lambda s, _: fmt(s.by("posts", ("announce",))))),
        row("… acks and subscribe snapshots", each(
            lambda s, x: fmt(x["posts"] - s.by("posts", ("notify",)) - s.by("posts", ("announce",))))),
        row("posts per user per second (all)", each(lambda s, x: f"{x['posts'] / s.users:.3f}")),
        row("**state and heartbeat posts per user per second** (all but notifications)",
            each(lambda s, x: f"**{x['state_ack_per_user']:.3f}**")),
        row("API Gateway requests/s against the 10,000/s account throttle (frames in, `$connect`s, posts)",
            each(lambda s, x: f"{(s.total('frames_in') + s.notes['sessions'] + x['posts']) / 10_000:.0%}")),
        row("Lambda concurrency (all functions; `message` / `announce` / fan-out)", each(
            lambda s, _: f"{s.concurrency():,.0f} ({s.concurrency('message'):,.0f} / {s.concurrency('announce'):,.0f}"
                         f" / {s.concurrency('fanout'):,.0f})")),
        row("DynamoDB RRU/s, WRU/s (indexes included)", each(lambda s, _: f"{fmt(s.total('rru'))}, {fmt(s.total('wru'))}")),
        row("**hottest partition**, share of its limit", each(
            lambda s, x: f"**{x['hottest'].load:.0%}**: {x['hottest'].name.split(',')[0].split(' (')[0]}")),
        row("the counter's interval / the list's interval (s; frames per list update)", each(
            lambda s, _: f"{s.notes['counter_interval']:,.0f} / {s.notes['list_interval']:,.0f} "
                         f"({s.notes['list_frames']})")),
        row("$ per user-hour: DynamoDB", each(lambda s, x: f"${x['cost']['DynamoDB']:.6f}")),
        row("$ per user-hour: Lambda", each(lambda s, x: f"${x['cost']['Lambda']:.6f}")),
        row("$ per user-hour: API Gateway (messages and connection-minutes)",
            each(lambda s, x: f"${x['cost']['API Gateway']:.6f}")),
        row("$ per user-hour: SQS", each(lambda s, x: f"${x['cost']['SQS']:.6f}")),
        row("**limits reached**, the first first (at how many users; can it be raised?)", each(
            lambda s, x: "; ".join(f"{'**' if i == 0 else ''}{q.name.split(' (')[0]}{'**' if i == 0 else ''} "
                                   f"({people(at)}; {q.raisable.split(' (')[0].split(':')[0]})"
                                   for i, (at, q, _) in enumerate(x["reached"])) if x["reached"]
            else f"none (closest: {x['closest'][0].name.split(' (')[0]}, {x['closest'][1]:.0%})")),
    ]
    lines += [table(header, rows, "l" + "r" * len(SIZES)), ""]

    # every limit at every size
    lim_rows = []
    for key, quota in QUOTAS.items():
        uses = []
        for n in SIZES:
            q, use, what = next(f for f in limits(sizes[n]) if f[0] is quota)
            uses.append(f"{'**' if use >= 1 else ''}{use:.0%}{'**' if use >= 1 else ''} ({what})")
        lim_rows.append((quota.name, f"{quota.limit:,g}" if key not in ("partition", "timeout") else "-",
                         quota.raisable, people(crossings[key]), *uses))
    lim_table = table(["limit", "default", "can it be raised?", "reached at", *[f"{n:,}" for n in SIZES]],
                      lim_rows, "lrllrrrr")

    # partitions at 1M, and where each crosses half and all of its capacity
    big = sizes[SIZES[-1]]
    part_rows = []
    for part in sorted(big.partitions, key=lambda x: -x.load):
        per_user = part.load / SIZES[-1]  # loads grow about linearly with users
        half = 0.5 / per_user if per_user else None
        full = 1.0 / per_user if per_user else None
        part_rows.append((part.name, fmt(part.rru), fmt(part.wru), f"{part.load:.0%}",
                          people(half), people(full)))
    part_table = table(["partition (the busiest of its kind)", "RRU/s at 1M", "WRU/s at 1M",
                        "share of its limit at 1M", "half its limit at (about)", "its limit at (about)"],
                       part_rows, "lrrrrr")

    flow_rows = [(f.name, f.function or "-", fmt(f.rate, 2), fmt(f.work.requests, 1), fmt(f.work.rru, 1),
                  fmt(f.work.wru, 1), fmt(f.work.sqs, 1), fmt(f.work.posts), f"{f.seconds * 1000:,.0f}")
                 for f in big.flows]
    flow_table = table(["flow", "function", "per second", "DynamoDB requests", "RRU", "WRU", "SQS", "posts",
                        "Lambda ms"], flow_rows, "llrrrrrrr")
    return [*lines], {"sizes": sizes, "summary": summary, "limits": lim_table, "partitions": part_table,
                      "flows": flow_table, "crossings": crossings, "half_partition": half_partition, "design": p}


def asked(d: dict[str, Any], stack: dict[str, Any], clients: float) -> Size:
    """What the local run's workload asks of the stack at `clients` online, were every
    announcement on time: the scale model at the run's compression (its per-user times
    divided, heartbeats and document writes not)."""
    wl = Workload(**stack["workload"])
    return model(d, round(clients), replace(wl, session_s=wl.session, presence_s=wl.presence, compression=1.0))


def stack_tables(stack: dict[str, Any], d: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    summaries = [stack_summary(r) for r in stack["sizes"]]
    if not summaries:
        return "", {}
    for s in summaries:
        demand = asked(d, stack, s["clients"])
        s["asked_requests"], s["asked_posts"] = demand.total("requests"), demand.total("posts")
    head = ["", *[f"{s['clients']:,} clients" for s in summaries]]
    streams = sorted({k for s in summaries for k in s["by_stream"]}, key=lambda k: (k not in STATE, k))
    rows = [("connected and subscribed (of the clients), in", *[f"{s['connected']:,} in {s['connect_s']:.0f} s"
                                                                  for s in summaries]),
            ("clients online during the window (mean; sessions end and reconnect)",
             *[f"{s['live']:,.0f}" for s in summaries]),
            ("**state frames per client per second** (`users` + `documents`)",
             *[f"**{s['state_per_client']:.3f}**" for s in summaries])]
    for stream in streams:
        rows.append((f"… `{stream}` frames per client per second", *[f"{s['by_stream'].get(stream, 0):.3f}"
                                                                      for s in summaries]))
    rows += [
        ("state frames per client per second: median / p99 / max client",
         *[" / ".join(f"{v:.3f}" for v in s["state_spread"]) for s in summaries]),
        ("client operations in the window (frames, connects, disconnects); document writes",
         *[f"{s['client_ops']:,}; {s['writes']}" for s in summaries]),
        ("DynamoDB requests per second (all functions)", *[f"{s['requests_per_s']:,.0f}" for s in summaries]),
        ("… what the workload asks for with every announcement on time: DynamoDB requests; posts per second "
         "(the scale model at this compression, every client online)",
         *[f"{s['asked_requests']:,.0f}; {s['asked_posts']:,.0f}" for s in summaries]),
        ("… DynamoDB requests served per second of the stack's CPU",
         *[f"{s['requests_per_s'] / s['stack_cpu']:,.0f}" if s["stack_cpu"] else "-" for s in summaries]),
        ("DynamoDB requests per client operation, everything included (announcements, notifications, sweep)",
         *[f"{s['requests_per_client_op']:.1f}" for s in summaries]),
        ("**largest share of requests on one partition key**",
         *[f"**{s['top_share']:.1%}**: `{s['top_key']}`" for s in summaries]),
        ("announcements made after their due time: p50 / p99 (s), by topic", *[
            "; ".join(f"{topic} {p50:.1f} / {p99:.1f} ({n})" for topic, (p50, p99, n) in sorted(s["late"].items()))
            for s in summaries]),
        ("the stack process's CPU (cores), moto busy share", *[f"{s['stack_cpu']:.2f}, {s['moto_busy']:.0%}"
                                                               for s in summaries]),
        ("error frames received", *[", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "none"
                                    for s in summaries]),
    ]
    ratio = summaries[-1]["state_per_client"] / summaries[0]["state_per_client"] if summaries[0]["state_per_client"] else float("nan")
    ops: dict[str, dict[int, tuple[int, float, float, float]]] = defaultdict(dict)
    for s in summaries:
        for kind, n, req, sqs, posts in s["per_op"]:
            ops[kind][s["clients"]] = (n, req, sqs, posts)
    op_rows = []
    for kind in ops:
        cells = []
        for s in summaries:
            got = ops[kind].get(s["clients"])
            cells.append(f"{got[1]:.1f} ({got[0]:,}; {got[3]:,.1f} posts)" if got else "-")
        op_rows.append((kind, *cells))
    op_table = table(["operation (invocations in the window)", *[f"{s['clients']:,} clients: DynamoDB requests "
                                                                   "each (count; posts each)" for s in summaries]],
                     op_rows, "l" + "r" * len(summaries))
    return table(head, rows, "l" + "r" * len(summaries)), {"ratio": ratio, "summaries": summaries,
                                                           "ops": op_table}


def documents(d: dict[str, Any], stack: dict[str, Any] | None, quick: bool) -> tuple[str, str]:
    """(docs/scale.md, the docs/performance.md section)."""
    w = Workload()
    main_table, m = model_tables(d, w)
    sizes, summary, p = m["sizes"], m["summary"], m["design"]
    big, hundred = sizes[SIZES[-1]], sizes[100_000]
    first_hard = m["crossings"]["partition"]
    state_100k = summary[100_000]["state_ack_per_user"]
    posts_per_user = [summary[n]["posts"] / n for n in SIZES]
    hottest = summary[SIZES[-1]]["hottest"]
    hottest_name = hottest.name.split(",")[0].split(" (")[0]
    above_half = sorted((part for part in sizes[SIZES[-1]].partitions if part.load > 0.5),
                        key=lambda part: -part.load)
    stack_md, st = stack_tables(stack, d) if stack else ("", {})
    ratio = st.get("ratio")
    kept_up = bool(st) and all(x["requests_per_s"] >= 0.9 * x["asked_requests"]
                               and all(p50 <= 1.0 for p50, _p99, _n in x["late"].values()) for x in st["summaries"])
    lines = [
        "# Scale: the reference workload from 1,000 to 1,000,000 users",
        "",
        "Generated by `python -m bench scale` (`bench/scale.py`, `bench/scale_model.py`, `bench/scale_load.py`); "
        "do not edit by hand. " + measured_line(quick, f"The model uses the DynamoDB benchmark of the same run "
                                                        f"({'quick' if d.get('quick') else 'full'}, {d.get('date')})."),
        "",
        "## Targets (issue 11)",
        "",
        table(["target", "result", "met"], [
            ("per-client state-frame rate at the larger local size within 1.2x of the smaller",
             (f"{ratio:.2f}x ({st['summaries'][0]['state_per_client']:.3f} → "
              f"{st['summaries'][-1]['state_per_client']:.3f} frames/client/s, "
              f"{st['summaries'][0]['clients']:,} → {st['summaries'][-1]['clients']:,} clients)") if ratio else
             "not measured in this run", ("yes" if ratio <= 1.2 and kept_up else "**no**" + (
                 "" if kept_up else ": the stack did not keep up at both sizes (announcements over a second late "
                                    "at p50, or fewer requests served than the workload asks for), so the rate "
                                    "measures the stack, not the design")) if ratio else "-"),
            ("posts/s linear in N (at most)", "posts per user per second: " + ", ".join(
                f"{x:.2f}" for x in posts_per_user) + f" at {', '.join(f'{n:,}' for n in SIZES)} users: what grows "
             "is the notifications (linear); the state broadcasts are capped per group",
             "yes" if all(b <= a * 1.001 for a, b in zip(posts_per_user, posts_per_user[1:])) else "**no**"),
            ("no limit that cannot be raised reached below 1,000,000 users",
             f"the per-partition limit is reached at about {people(first_hard)} users "
             f"({hottest_name}; half of it at about {people(m['half_partition'])})",
             "yes" if first_hard is None or first_hard >= 1_000_000 else "**no**"),
            ("no partition above half its limit at 1,000,000 users",
             f"the busiest, {hottest_name}, at {hottest.load:.0%}; above half: " + (", ".join(
                 f"{part.name.split(',')[0].split(' (')[0]} ({part.load:.0%})" for part in above_half) or "none"),
             "yes" if not above_half else "**no**"),
            ("state and heartbeat traffic below 0.3 posts per user per second at 100k users",
             f"{state_100k:.3f}", "yes" if state_100k < 0.3 else "**no**"),
        ], "llr"),
        "",
        "## The workload and what the model assumes",
        "",
        f"* **Users**: one connection each, all online. **Sessions** of {w.session_s / 60:.0f} minutes: a session "
        "connects, subscribes to `users`, `documents` and `notifications`, and disconnects (holding a presence half "
        "of the time).",
        f"* **Presence**: one `enter` or `leave` per user every {w.presence_s:.0f} s, alternating, so half the users "
        f"hold one presence at any time; while they do, the client heartbeats every {w.heartbeat_presence_s:.0f} s "
        f"({math.floor(w.presence_s / w.heartbeat_presence_s)} beats per presence period); without presence every "
        f"{w.heartbeat_idle_s / 60:.0f} minutes (`client/realtime.js`; its timer restarts when that changes, so a "
        f"{w.presence_s:.0f} s idle period holds none).",
        f"* **Rooms**: a fixed {w.documents:,} documents; users spread over them by a Zipf({w.zipf_s:g}) law, so the "
        f"most crowded room holds {big.notes['top_share']:.1%} of everyone present ({big.notes['top_present']:,.0f} "
        "people at 1M users). **A crowded room** costs no more posts (nobody in the workload subscribes to its "
        "`document` roster, and a roster frame is bounded to `ROSTER_LIMIT` names per phase plus the counts); its "
        f"presence is spread over shards that grow with it ({big.notes['top_room_shards']} at 1M users), which take its writes (each enter, leave and heartbeat "
        "there), and its announcement reads all of them once per interval: the model counts both, and the busiest "
        "room's shards are a row of the partition table.",
        f"* **Documents**: one write per second ({w.write_every_s:g} s apart), uniform over the documents, changing "
        f"a field the notifications show; {w.private_share:.0%} of the documents are private to an owner and two "
        "readers, so a write notifies 3/4 of everyone on average.",
        f"* **Lambda time** (moto cannot show it): {REQUEST_S * 1000:.0f} ms per DynamoDB request (in-Region, one "
        f"after another), {INVOCATION_S * 1000:.0f} ms per invocation besides, and posts at the fan-out benchmark's "
        "measured rate (docs/performance.md); 1,024 MB functions. Concurrency is Little's law: rate × time.",
        "* **Per operation**: the DynamoDB benchmark's measured requests, read and write units, SQS requests "
        "(docs/performance.md, `python -m bench dynamodb`), with what grows scaled by DynamoDB's rules from the "
        "measured item sizes: a group read grows with its members (the slope of the measured notifications at "
        "1,000 and 2,500: the queued members are read twice), a room read with the people in it, the list's reads "
        "with the documents. A mark that finds one pending costs its GetItem (the containers' memo, which saves "
        "even that, is not counted); the schedule (UpdateItem + SendMessage) is counted once per announcement.",
        "",
        "What the design does, as modelled (each checked in the code):",
        "",
        f"* state broadcasts at most once per interval per group: `realtime/announcing.py` (`Coalescer.mark`, the "
        f"claim in `_claim_and_announce`); the interval is `max(BroadcastIntervalMs, members / GroupPostBudget)` "
        f"(`interval_for`, defaults {p['interval']:g} s and {p['budget']:,} posts/s), with `members` what the last "
        "announcement reached (the list's counts every frame it sent: `BroadcastReport.audience`), so no group's "
        "state broadcasts exceed the budget;",
        "* a mark costs a GetItem, and the first of its interval an UpdateItem and an SQS SendMessage "
        "(`Coalescer.mark`); a container remembers a pending mark (`_seen`) and then costs nothing;",
        f"* group index keys over shards that grow with the group (`keys.group_shards_for`: one up to "
        f"{p['group_shard_members']:,} members, then {p['group_shard_growth']}x at a time up to "
        f"{p['max_group_shards']}; `Groups.grow`), presence over shards that grow with the room the same way (one up to "
        f"{p['room_shard_members']:,} present, up to {p['max_room_shards']}; `keys.room_shards_for`), the counter over {p['counter_shards']} (`keys.counter_shard`), "
        f"`by_deadline` over {p['sweep_shards']} (`keys.sweep_shard`), the list and the summaries over "
        f"{p['state_shards']} each (`keys.state_pk`, `keys.summary_pk`);",
        "* the history log: one PutItem per message per group (`History.append`, from `Notifier.handle_record`);",
        "* notifications: one post per permitted subscriber per document write (`ChangeDelivery.frame_for` decides "
        "per member; the group is read whole, pages beyond `FanoutPageSize` through the fan-out queue).",
        "",
        "## The model at 1k, 10k, 100k and 1M users",
        "",
        *main_table,
        "",
        "### Every limit at every size",
        "",
        "Use as a share of the limit, and what uses it. \"Reached at\" is the number of users at which the model "
        "first reaches it (the model evaluated at every size, not extrapolated).",
        "",
        m["limits"],
        "",
        "### The busiest partitions at 1,000,000 users",
        "",
        "A partition serves 3,000 RRU/s or 1,000 WRU/s, or a linear combination (the share below adds the two); "
        "it cannot be raised. Each row is the busiest key of its kind; where it would reach half and all of its "
        "limit, assuming its load grows linearly with users (it grows no faster).",
        "",
        m["partitions"],
        "",
        "### The flows at 1,000,000 users",
        "",
        "Each flow's rate and the work of one occurrence (DynamoDB requests, read and write units, SQS requests, "
        "posts), and the Lambda time of one invocation as assumed above.",
        "",
        m["flows"],
        "",
        *findings(m, d),
        "",
        "## Measured on the local stack",
        "",
    ]
    perf_lines = ["## Scale (`python -m bench scale`)", ""]
    if stack:
        wl = stack["workload"]
        compressed = (f"The reference workload time-compressed {wl['compression']:g}x for each user (sessions of "
                      f"{wl['session_s'] / wl['compression']:.0f} s, an enter or leave every "
                      f"{wl['presence_s'] / wl['compression']:.0f} s; heartbeats on the client's own timers, one "
                      f"document write per second), {wl['documents']} documents, "
                      f"{st['summaries'][0]['seconds']:.0f} s measured after a warm-up, per size. Measured "
                      f"{stack['date']} on {stack['machine']}: `devtools.stack.StackProcess` with a tap "
                      "(`bench/scale_load.py`) counting each function invocation's DynamoDB requests (with the "
                      "partition key each touches), SQS requests and posts; the clients in another process "
                      "(`websockets`, one asyncio loop), each a signed-in user.")
        verdict = [
            "",
            f"The state-frame rate per client went from {st['summaries'][0]['state_per_client']:.3f} to "
            f"{st['summaries'][-1]['state_per_client']:.3f} per second: **{ratio:.2f}x** for "
            f"{st['summaries'][-1]['clients'] / st['summaries'][0]['clients']:.0f}x the clients (target: within "
            f"1.2x). Uncoalesced, every enter or leave would reach every `documents` subscriber: "
            f"{st['summaries'][0]['clients'] * wl['compression'] / wl['presence_s']:.0f} and "
            f"{st['summaries'][-1]['clients'] * wl['compression'] / wl['presence_s']:.0f} frames per client per "
            "second. Read the lateness row first: where announcements are late, the local stack (moto under one "
            "lock, the gateway and every function on 2 shared cores) did not keep up, and the rates it shows are "
            "what it managed, not what the design allows.",
            "",
            "What each size asks of the stack, against what it served: "
            + "; ".join(f"{x['clients']:,} clients ask for {x['asked_requests']:,.0f} "
                        f"DynamoDB requests and {x['asked_posts']:,.0f} posts per second with every announcement "
                        f"on time, and the stack served {x['requests_per_s']:,.0f} requests per second on "
                        f"{x['stack_cpu']:.2f} cores, with {x['live']:,.0f} of them online on average"
                        for x in st["summaries"])
            + ". moto, the gateway and every function share one Python process, so one core at most: where the "
            "asked exceeds the served, the stack is the bottleneck and the state-frame rate measures it.",
        ]
        lines += [compressed, "", stack_md, "", "DynamoDB requests per operation (each invocation's own; an "
                  "announcement's are its topic's):", "", st["ops"], *verdict]
        perf_lines += [compressed, "", stack_md, *verdict, "",
                       "The scale model built on these and on the DynamoDB benchmark: [docs/scale.md](scale.md)."]
    else:
        lines += ["Not run (`--quick` without the stack, or no saved measurement)."]
        perf_lines += ["The local stack was not run.", "", "The scale model: [docs/scale.md](scale.md)."]
    lines += ["", "## Quotas and sources", ""]
    lines += [f"* {q.name}{'' if k in ('partition', 'timeout') else f': {q.limit:,g}'}; can it be raised: "
              f"{q.raisable}. {q.source}" for k, q in QUOTAS.items()]
    lines += ["* Prices: as in the cost model (docs/performance.md, `python -m bench cost`)."]
    return "\n".join(lines) + "\n", "\n".join(perf_lines)


def findings(m: dict[str, Any], d: dict[str, Any]) -> list[str]:
    """What the tables say, in words (every figure from them)."""
    sizes, summary, p = m["sizes"], m["summary"], m["design"]
    big = sizes[SIZES[-1]]
    parts = {part.name.split(",")[0].split(" (")[0]: part for part in big.partitions}
    notifications = next(part for name, part in parts.items() if name.startswith("`notifications`"))
    entries = next(part for name, part in parts.items() if name.startswith("the list's entries"))
    room = next(part for name, part in parts.items() if name.startswith("the most crowded room"))
    list_flow = next(f for f in big.flows if f.name.startswith("announce: the list"))
    limit_s = __import__("bench.scale_model", fromlist=["timeouts"]).timeouts()["announce"]
    firsts = []
    seen: set[str] = set()
    for n in SIZES:
        reached = summary[n]["reached"]
        fresh = [(at, q) for at, q, _ in reached if q.name not in seen]
        seen.update(q.name for _, q, _ in reached)
        if fresh:
            firsts.append(f"by {n:,} users, " + ", ".join(
                f"{q.name.split(' (')[0]} (at about {people(at)}; can be raised: {q.raisable})" for at, q in fresh))
        elif not reached:
            quota, use, _ = summary[n]["closest"]
            firsts.append(f"at {n:,} users none (the closest, {quota.name.split(' (')[0]}, at {use:.0%})")
    return [
        "## What the model shows",
        "",
        "* **The limits reached**, in the order the model reaches them: " + "; ".join(firsts) + ".",
        f"* **The `notifications` group**: every document write reads all of it (every signed-in "
        f"user is a member), over {big.notes['group_shards']} `by_group` shards at 1M users (the shards grow with the "
        f"group), and the members beyond the first page twice "
        f"(cut into ranges, keys only, then read by their page: capacity counts whole index entries, "
        f"{d['sizes'].get('by_group entry', 0):,.0f} bytes each). At one write per second and 1M users that is "
        f"{notifications.rru:,.0f} RRU/s on each shard: **{notifications.load:.0%} of a partition**. "
        "Twice the writes double it; a group's shards grow once it has more than "
        f"{p['group_shard_members']:,} members per shard, so the load per shard stays about where it is at 1M "
        f"up to {p['max_group_shards'] * p['group_shard_members']:,} members.",
        f"* **The list's entries**: every `documents` subscribe reads all {p['state_shards']} `st#documents` "
        f"partitions, strongly consistent, and with {Workload().documents:,} documents each holds "
        f"{Workload().documents / p['state_shards']:,.0f} entries: {entries.load:.0%} of a partition at 1M users "
        f"(555 subscribes/s). It grows with documents × sessions.",
        f"* **The most crowded room** ({big.notes['top_present']:,.0f} people at 1M users): its "
        f"{big.notes['top_room_shards']} presence shards take {room.wru:,.0f} WRU/s each (enters, leaves, heartbeats) and its announcement reads "
        f"them whole: {room.load:.0%} of a partition.",
        f"* **State goes stale as the audience grows, by design**: the interval is members / GroupPostBudget, so the "
        f"counter is announced every {sizes[100_000].notes['counter_interval']:,.0f} s at 100k users and "
        f"{big.notes['counter_interval']:,.0f} s at 1M; the list, which sends its changes in frames of under 31 KB "
        f"(each a broadcast, all counted), every {sizes[10_000].notes['list_interval']:,.0f} s at 10k users and "
        f"{big.notes['list_interval'] / 3600:,.1f} h at 1M ({big.notes['list_frames']} frames per update, once "
        f"nearly every room changes within an interval). Raising `GroupPostBudget` (with the account's post "
        f"throttle) buys freshness with posts.",
        f"* **The list's announcement at 1M users** takes about {list_flow.seconds:,.0f} s of Lambda time as "
        f"assumed ({list_flow.work.requests:,.0f} DynamoDB requests: {big.notes['list_frames']} group reads cut into "
        f"ranges, and an UpdateItem per changed entry), against the announce function's {limit_s:.0f} s timeout.",
        "* **A small group is one Query**: a broadcast to a document's roster or comments, or to one user, reads "
        "its one `by_group` shard; a group grows shards only once a broadcast has counted more than "
        f"{p['group_shard_members']:,} members per shard.",
        f"* **Cost**: at 1M users DynamoDB ${summary[SIZES[-1]]['cost']['DynamoDB']:.5f}, Lambda "
        f"${summary[SIZES[-1]]['cost']['Lambda']:.5f} and API Gateway ${summary[SIZES[-1]]['cost']['API Gateway']:.5f}"
        " per user-hour; API Gateway's is nearly all the notifications (one post per permitted subscriber per "
        "write) and the connection-minutes.",
    ]


def run(quick: bool = False, write_doc: bool | None = None, sizes: list[int] | None = None,
        seconds: float | None = None, reuse: bool = False) -> dict[str, Any]:
    from bench.cost import dynamodb_figures

    d = dynamodb_figures(quick)
    stack: dict[str, Any] | None = None
    if reuse and SAVED.exists():
        stack = json.loads(SAVED.read_text())
    else:
        workload = Workload(documents=LOCAL_DOCUMENTS if not quick else 5,
                            compression=LOCAL_COMPRESSION)
        stack = measure_stack(sizes or ([6, 12] if quick else [250, 1000]), workload,
                              seconds=seconds or (8 if quick else 60), warmup=2 if quick else 20,
                              connect_budget=60 if quick else 1200)
        if not quick:
            SAVED.parent.mkdir(exist_ok=True)
            SAVED.write_text(json.dumps(stack))
    scale_md, section = documents(d, stack, quick)
    print(scale_md)
    if write_doc if write_doc is not None else not quick:
        SCALE_DOC.write_text(scale_md)
        print(f"wrote {SCALE_DOC.relative_to(ROOT)}")
    common.report("scale", section, quick=quick, write_doc=write_doc, after="cost")
    return {"stack": stack}


def main(argv: list[str] | None = None) -> None:
    cli = common.parser("scale")
    cli.add_argument("--sizes", help="client counts for the local stack, e.g. 250,1000")
    cli.add_argument("--seconds", type=float, help="the measured window per size (at least 60 for the issue)")
    cli.add_argument("--reuse-stack", action="store_true", help=f"use {SAVED.relative_to(ROOT)} instead of running "
                                                                "the stack")
    ns, _ = cli.parse_known_args(argv)
    run(quick=ns.quick, write_doc=True if ns.write_doc else None,
        sizes=[int(x) for x in ns.sizes.split(",")] if ns.sizes else None, seconds=ns.seconds, reuse=ns.reuse_stack)


if __name__ == "__main__":
    main(sys.argv[1:])
