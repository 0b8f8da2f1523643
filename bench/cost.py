"""Cost model: ``python -m bench cost [--quick]``.

Dollars per million notifications (10, 1,000 and 100,000 subscribers) and per million
connection-minutes, for this project and for the naive sequential design of the AWS
samples (one Lambda: a Scan of the connections table, then boto3 ``post_to_connection``
to each connection in turn), from

* the DynamoDB benchmark's measured requests and capacity (its full run earlier in this
  process, as under ``python -m bench``; else it runs here, without writing its section);
* the fan-out benchmark's measured send rates (its section of ``docs/performance.md``:
  ``realtime.sender`` and sequential boto3 against an endpoint adding 10 ms per request);
* AWS's published us-east-1 prices below, with their sources.

Assumptions are named in the output; nothing here calls AWS.
"""

from __future__ import annotations

import math
import re
import sys

from bench import common
from bench.common import DOC, measured_line, table, today

# -- prices: us-east-1, first tier, as published (sources in SOURCES) -----------------------------
PRICES = {
    "lambda_gb_s_arm": 0.0000133334,  # $/GB-s, Arm, first 7.5 billion GB-s a month
    "lambda_request": 0.20 / 1e6,  # $/request
    "apigw_message": 1.00 / 1e6,  # $/message (first billion a month), metered in 32 KB increments
    "apigw_connection_minute": 0.25 / 1e6,  # $/connection-minute
    "dynamodb_wru": 0.625 / 1e6,  # $/write request unit, on-demand, Standard table class
    "dynamodb_rru": 0.125 / 1e6,  # $/read request unit, on-demand
    "sqs_request": 0.40 / 1e6,  # $/request, standard queue (each 64 KB chunk a request)
    "streams_lambda": 0.0,  # GetRecords by a Lambda trigger: free
}
SOURCES = [
    ("Lambda: Arm $0.0000133334 per GB-s (first 7.5 billion GB-s/month), $0.20 per million requests; duration "
     "includes initialization code outside the handler",
     "https://aws.amazon.com/lambda/pricing/ (Arm rate as quoted for us-east-1 by https://cloudchipr.com/blog/aws-lambda-pricing)"),
    ("API Gateway WebSocket: $1.00 per million messages (first billion, 32 KB increments), $0.25 per million "
     "connection-minutes", "https://aws.amazon.com/api-gateway/pricing/ (rates as tabulated by "
     "https://amnic.com/blogs/aws-api-gateway-pricing)"),
    ("DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request units "
     "(Standard table class, after the November 2024 reduction)",
     "https://aws.amazon.com/dynamodb/pricing/on-demand/ (rates as quoted by "
     "https://airbyte.com/data-engineering-resources/dynamodb-pricing)"),
    ("DynamoDB Streams: GetRecords calls made by Lambda triggers are not charged",
     "https://aws.amazon.com/dynamodb/pricing/on-demand/ and "
     "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html"),
    ("SQS standard: $0.40 per million requests (first 100 billion/month), each 64 KB chunk of a payload one "
     "request", "https://aws.amazon.com/sqs/pricing/ (as of March 2026 per https://cloudburn.io/blog/amazon-sqs-pricing)"),
]
PRICES_DATE = "published prices current in 2026 (sources checked 2026-11-25)"

# -- assumptions -------------------------------------------------------------------------------------
MEMORY_GB = 1.0  # template.yaml: MemorySize 1024 (Globals)
PAGE = 1000  # FANOUT_PAGE_SIZE default
SQS_BATCH = 5  # template: the fan-out queue's BatchSize
INVOCATION_OVERHEAD_S = 0.020  # per invocation beyond the sends: event parsing, the Query, logging (assumed)
FRAME_HANDLER_S = 0.015  # a warm `$default` frame: one UpdateItem + the ack (assumed; moto is not DynamoDB)
CONNECT_HANDLER_S = 0.040  # `$connect` / `$disconnect` warm (assumed)
PRESENCE_HEARTBEAT_S = 25.0  # client/realtime.js: heartbeatMs, while it holds presence
IDLE_HEARTBEAT_S = 300.0  # client/realtime.js: idleHeartbeatMs, otherwise
SESSION_MINUTES = 60.0  # average connection lifetime (API Gateway caps it at 120)
NAIVE_ITEM_BYTES = 40  # the samples' connections item: {connectionId}
LAMBDA_TIMEOUT_S = 900.0
#: An idle connection as this section showed it before the scale work (generated 2026-11-25 from
#: that day's measured heartbeat: 1 UpdateItem of 3 WRU every 25 s, answered with an ack).
BEFORE_IDLE = {
    "date": "2026-11-25", "total": 10.76, "heartbeat_s": 25.0, "heartbeat_wru": 3.0,
    "what": "a heartbeat every 25 s whatever the connection held, each an UpdateItem of 3 WRU rewriting the "
            "`by_seen` index entry: the sweep's index of last-seen times, which `by_deadline` replaced",
    "parts": {"API Gateway connection-minutes": 0.25, "API Gateway messages (heartbeat + ack)": 4.80,
              "Lambda (heartbeats)": 0.96, "DynamoDB (heartbeat: touch and deadline)": 4.50,
              "connect + subscribe + disconnect, per session": 0.25},
}
REPLAY_POST_S = 0.010  # a replay posts its frames one at a time (order): one round trip each, 10 ms as above


def fanout_rates() -> dict[str, float]:
    """msgs/s of `realtime.sender` and sequential boto3 from the fan-out section of the doc."""
    text = DOC.read_text() if DOC.exists() else ""
    rates = {"sender": 9485.0, "boto3_seq": 79.0, "source": "defaults (fan-out section not found)"}
    m = re.search(r"\| `realtime\.sender`[^|]*\| ([\d,]+) \|", text)
    n = re.search(r"\| boto3 `post_to_connection`, sequential \| ([\d,]+) \|", text)
    if m and n:
        rates = {"sender": float(m.group(1).replace(",", "")), "boto3_seq": float(n.group(1).replace(",", "")),
                 "source": "the fan-out section of this document"}
    return rates


def dynamodb_figures(quick: bool) -> dict:
    from bench.dynamodb import LAST, run

    if LAST and not quick:
        return dict(LAST)
    return run(quick=quick, write_doc=False)


def notification_model(d: dict) -> list[tuple[int, float]]:
    """(recipients, RRU) measured for a public document whose fields changed, by N."""
    pts = [(int(re.search(r"N = ([\d,]+)", r["name"]).group(1).replace(",", "")), r["rru"])
           for r in d["notifications"] if "public document, a field changed" in r["name"]]
    return sorted(pts)


def log_write_units(d: dict) -> float:
    """WRU a notification writes whatever its audience (the history log's entry, the documents
    list's entry and its mark), measured."""
    rows = [r for r in d["notifications"] if "public document, a field changed" in r["name"]]
    return max(r["wru"] for r in rows)


def fixed_sqs_requests(d: dict) -> int:
    """SQS requests of a notification whatever its audience (the list's mark), measured at the
    smallest N (no fan-out pages yet)."""
    rows = sorted((r for r in d["notifications"] if "public document, a field changed" in r["name"]),
                  key=lambda r: r["posts"])
    return sum(rows[0]["sqs"].values())


def replay_rows(d: dict) -> list[tuple[int, dict]]:
    """(missed notifications, the row) of the measured subscribes with `since`."""
    found = []
    for r in d["rows"]:
        m = re.search(r"with `since`: ([\d,]+) missed", r["name"])
        if m:
            found.append((int(m.group(1).replace(",", "")), r))
    return sorted(found, key=lambda kv: kv[0])


def rru_at(pts: list[tuple[int, float]], s: int) -> float:
    """Piecewise linear through the measured points; beyond the last, the slope of the last two."""
    for (n0, r0), (n1, r1) in zip(pts, pts[1:]):
        if s <= n1:
            return r0 + (r1 - r0) * (s - n0) / (n1 - n0)
    (n0, r0), (n1, r1) = pts[-2], pts[-1]
    return r1 + (r1 - r0) / (n1 - n0) * (s - n1)


def per_notification(s: int, rates: dict, pts: list[tuple[int, float]], log_wru: float = 0.0,
                     fixed_sqs: int = 0) -> dict[str, dict[str, float]]:
    p = PRICES
    pages = math.ceil(s / PAGE)
    queued = pages - 1
    ours_invocations = 1 + math.ceil(queued / SQS_BATCH)
    ours_seconds = s / rates["sender"] + ours_invocations * INVOCATION_OVERHEAD_S
    # queued pages: keys-only range Queries + one Query per page are in rru_per (measured at 2,500)
    # send batches; receive + delete; the list's mark
    sqs_requests = math.ceil(queued / 10) + 2 * math.ceil(queued / SQS_BATCH) + fixed_sqs
    ours = {
        "API Gateway messages": s * p["apigw_message"],
        "Lambda requests": ours_invocations * p["lambda_request"],
        "Lambda GB-s": ours_seconds * MEMORY_GB * p["lambda_gb_s_arm"],
        "DynamoDB reads": rru_at(pts, s) * p["dynamodb_rru"],
        "DynamoDB writes (the history log's entry, the list's entry and mark: whatever N)": log_wru * p["dynamodb_wru"],
        "SQS": sqs_requests * p["sqs_request"],
        "DynamoDB Streams": 0.0,
    }
    naive_seconds = s / rates["boto3_seq"] + INVOCATION_OVERHEAD_S
    scan_rru = max(1, math.ceil(s * NAIVE_ITEM_BYTES / 4096)) * 0.5
    naive = {
        "API Gateway messages": s * p["apigw_message"],
        "Lambda requests": p["lambda_request"],
        "Lambda GB-s": naive_seconds * MEMORY_GB * p["lambda_gb_s_arm"],
        "DynamoDB reads": scan_rru * p["dynamodb_rru"],
        "DynamoDB writes (the history log's entry, the list's entry and mark: whatever N)": 0.0,
        "SQS": 0.0,
        "DynamoDB Streams": 0.0,
    }
    return {"ours": ours, "naive": naive, "ours_seconds": {"v": ours_seconds}, "naive_seconds": {"v": naive_seconds},
            "ours_invocations": {"v": ours_invocations}}


def row(d: dict, key: str) -> dict:
    """A measured row of the DynamoDB benchmark, by its key."""
    found = [r for r in d["rows"] + d["notifications"] if r.get("key") == key]
    if not found:
        raise KeyError(f"the DynamoDB benchmark has no row {key!r}")
    return found[0]


def per_connection_minute(d: dict, *, presence: bool = False) -> dict[str, float]:
    """$ per connection-minute of a signed-in connection subscribed to `notifications`,
    beating as `client/realtime.js` does: every 5 minutes without presence, every 25 s with."""
    p = PRICES
    interval = PRESENCE_HEARTBEAT_S if presence else IDLE_HEARTBEAT_S
    beats = 60.0 / interval
    hb = row(d, "heartbeat_presence" if presence else "heartbeat_idle")
    connect = row(d, "connect_first")
    sub = row(d, "subscribe_notifications")
    disc = row(d, "disconnect_tab")  # nothing held but the one membership: close to it
    first_frame = {k: row(d, "heartbeat_idle")[k] - row(d, "frame_in_slack")[k] for k in ("wru", "rru")}
    per_session = {
        # + the membership's delete (table + index) and the first frame's deadline rewrite
        "wru": connect["wru"] + sub["wru"] + disc["wru"] + 2 + first_frame["wru"],
        "rru": connect["rru"] + sub["rru"] + disc["rru"] + first_frame["rru"],
        "sqs": sum(connect["sqs"].values()) + sum(sub["sqs"].values()) + sum(disc["sqs"].values()),
        "invocations": 3, "seconds": 2 * CONNECT_HANDLER_S + FRAME_HANDLER_S,
        "messages": 2 + sub["posts"],  # the subscribe frame in, its ack out, the counter frame
    }
    return {
        "API Gateway connection-minutes": p["apigw_connection_minute"],
        "API Gateway messages (heartbeat + ack)": beats * (1 + hb["posts"]) * p["apigw_message"],
        "Lambda (heartbeats)": beats * (p["lambda_request"] + FRAME_HANDLER_S * MEMORY_GB * p["lambda_gb_s_arm"]),
        "DynamoDB (heartbeat: touch and deadline)": beats * (hb["wru"] * p["dynamodb_wru"]
                                                              + hb["rru"] * p["dynamodb_rru"]),
        "connect + subscribe + disconnect, per session": (
            per_session["wru"] * p["dynamodb_wru"] + per_session["rru"] * p["dynamodb_rru"]
            + per_session["sqs"] * p["sqs_request"]
            + per_session["invocations"] * p["lambda_request"]
            + per_session["seconds"] * MEMORY_GB * p["lambda_gb_s_arm"]
            + per_session["messages"] * p["apigw_message"]) / SESSION_MINUTES,
    }


def naive_connection_minute() -> dict[str, float]:
    p = PRICES
    return {
        "API Gateway connection-minutes": p["apigw_connection_minute"],
        "API Gateway messages (heartbeat + ack)": 0.0,
        "Lambda (heartbeats)": 0.0,
        "DynamoDB (heartbeat: touch and deadline)": 0.0,
        "connect + subscribe + disconnect, per session": (
            2 * 1 * p["dynamodb_wru"] + 2 * p["lambda_request"]
            + 2 * CONNECT_HANDLER_S * MEMORY_GB * p["lambda_gb_s_arm"]) / SESSION_MINUTES,
    }


def money(x: float) -> str:
    if x == 0:
        return "0"
    if x < 0.01:
        return f"{x:.4f}"
    return f"{x:,.2f}"


def run(quick: bool = False, write_doc: bool | None = None) -> dict:
    rates = fanout_rates()
    d = dynamodb_figures(quick)
    pts = notification_model(d)
    log_wru = log_write_units(d)
    fixed_sqs = fixed_sqs_requests(d)
    lines = [
        "## Cost model (`python -m bench cost`)",
        "",
        measured_line(quick, f"Prices: us-east-1, {PRICES_DATE}; first pricing tier, no free tier, no savings plans."),
        "",
        "Per **million notifications** of a public document whose whitelisted fields changed (every subscriber "
        "receives it; one stream record per invocation, the worst case: Lambda batches up to 25). This project: "
        "stream → notify (first 1,000 recipients inline, the rest in SQS pages of 1,000, 5 pages per queue "
        f"invocation), sending at the fan-out benchmark's measured {rates['sender']:,.0f} msgs/s; DynamoDB read "
        f"units from the DynamoDB benchmark (measured at N = {', '.join(f'{n:,}' for n, _ in pts)}: "
        f"{', '.join(f'{r:g}' for _, r in pts)} RRU; linear in between, beyond {pts[-1][0]:,} the slope between its "
        "last two points, which includes the second, keys-only read of every queued page). Naive: one invocation, Scan of a connections table of "
        f"{NAIVE_ITEM_BYTES}-byte items, sequential boto3 at the measured {rates['boto3_seq']:,.0f} msgs/s. Both "
        f"against an endpoint answering in 10 ms; {MEMORY_GB * 1024:.0f} MB Arm functions; "
        f"{INVOCATION_OVERHEAD_S * 1000:.0f} ms assumed per invocation besides sending. Send rates from "
        f"{rates['source']}.",
        "",
    ]
    rows = []
    result: dict = {"notifications": {}, "date": today()}
    for s in (10, 1000, 100_000):
        m = per_notification(s, rates, pts, log_wru, fixed_sqs)
        ours, naive = sum(m["ours"].values()) * 1e6, sum(m["naive"].values()) * 1e6
        comp = {k: v * 1e6 for k, v in m["ours"].items()}
        ncomp = {k: v * 1e6 for k, v in m["naive"].items()}
        top = ", ".join(f"{k} {money(v)}" for k, v in sorted(comp.items(), key=lambda kv: -kv[1]) if v)
        ntop = ", ".join(f"{k} {money(v)}" for k, v in sorted(ncomp.items(), key=lambda kv: -kv[1]) if v)
        over = m["naive_seconds"]["v"] > LAMBDA_TIMEOUT_S
        result["notifications"][s] = {"ours": ours, "naive": naive, "ours_parts": comp, "naive_parts": ncomp,
                                      "ours_seconds": m["ours_seconds"]["v"], "naive_seconds": m["naive_seconds"]["v"]}
        same = comp["API Gateway messages"]
        rows.append((f"{s:,}", f"${money(ours)}", f"${money(naive)}" + (" (**cannot run**: see below)" if over else ""),
                     f"{ours / naive:.2f}x", f"{(ours - same) / (naive - same):.2f}x", f"{m['ours_seconds']['v']:.2f} s in {m['ours_invocations']['v']} "
                     f"invocation(s)", f"{m['naive_seconds']['v']:,.1f} s", top, ntop))
    lines.append(table(["subscribers", "this project $ / M notifications", "naive $ / M", "ratio",
                        "ratio without API Gateway's per-message charge (equal in both)",
                        "this project: Lambda time per notification", "naive: Lambda time",
                        "this project, by item ($/M)", "naive, by item ($/M)"], rows, "rrrrrrrll"))
    n100k = result["notifications"][100_000]
    lines += [
        "",
        f"API Gateway's per-message charge is the same in both designs and dominates from 1,000 subscribers: what "
        f"differs is Lambda time. At 100,000 subscribers the naive loop needs {n100k['naive_seconds'] / 60:,.0f} "
        f"minutes, past Lambda's 15-minute limit, so it cannot deliver at all (its column is what it would cost if "
        f"it could); this project spends {n100k['ours_seconds']:.0f} s of Lambda time spread over parallel "
        f"invocations, each well inside its timeout. Whatever the audience, a notification also writes "
        f"{log_wru:g} WRU, measured: the history log's entry (catch-up after a reconnect; one per message and group, "
        "not per recipient) and the documents list's entry and mark (its coalesced announcement, at most one per "
        "interval whatever the number of writes, is not counted here: `docs/scale.md` counts it). The naive design "
        "keeps neither.",
        "",
    ]
    replays = replay_rows(d)
    if replays:
        rows = []
        for k, r in replays:
            parts = {"DynamoDB reads (the log Query)": r["rru"] * PRICES["dynamodb_rru"],
                     "API Gateway messages (the replayed frames)": k * PRICES["apigw_message"],
                     "Lambda GB-s (posted one at a time)": k * REPLAY_POST_S * MEMORY_GB * PRICES["lambda_gb_s_arm"]}
            total = sum(parts.values()) * 1e6
            rows.append((f"{k:,}", f"{r['rru']:g}", f"${money(total)}",
                         ", ".join(f"{name} {money(v * 1e6)}" for name, v in parts.items())))
        lines += [
            "Per **million reconnects with catch-up** (a subscribe with `since` that replays k missed notifications; "
            "what any subscribe costs besides, the touch and the membership, is in the connection-minute figures): "
            f"read units measured by the DynamoDB benchmark; frames posted one at a time, {REPLAY_POST_S * 1000:.0f} ms "
            "each (assumed, as the endpoint above).",
            "",
            table(["missed notifications replayed", "read units per replay", "$ / M reconnects", "by item ($/M)"],
                  rows, "rrrl"),
            "",
        ]
    idle = per_connection_minute(d)
    held = per_connection_minute(d, presence=True)
    naive_parts = naive_connection_minute()
    idle_cm, held_cm, naive_cm = (sum(x.values()) * 1e6 for x in (idle, held, naive_parts))
    before = BEFORE_IDLE["total"]
    rows = [(k, f"${money(BEFORE_IDLE['parts'][k])}", f"${money(idle[k] * 1e6)}", f"${money(held[k] * 1e6)}",
             f"${money(naive_parts[k] * 1e6)}") for k in idle]
    rows.append(("**total per million connection-minutes**", f"**${money(before)}**", f"**${money(idle_cm)}**",
                 f"**${money(held_cm)}**", f"**${money(naive_cm)}**"))
    rows.append(("ratio to the naive design", f"{before / naive_cm:.1f}x", f"{idle_cm / naive_cm:.1f}x",
                 f"{held_cm / naive_cm:.1f}x", "1.0x"))
    hb, hp = row(d, "heartbeat_idle"), row(d, "heartbeat_presence")
    cut = before / idle_cm
    lines += [
        f"Per **million connection-minutes** (signed in, subscribed to `notifications`; sessions of "
        f"{SESSION_MINUTES:.0f} minutes on average; each heartbeat a `$default` invocation of "
        f"{FRAME_HANDLER_S * 1000:.0f} ms assumed and its ack). `client/realtime.js` beats every "
        f"{IDLE_HEARTBEAT_S / 60:.0f} minutes while it holds no presence (measured: {hb['requests']} DynamoDB "
        f"requests, {hb['ops']}, {hb['wru']:g} WRU: the touch, and the liveness deadline moved by more than its 20 s "
        f"slack with its `by_deadline` index entry) and every {PRESENCE_HEARTBEAT_S:.0f} s while it holds presence "
        f"(measured: {hp['requests']} requests, {hp['wru']:g} WRU: the presence item pushed forward too). "
        f"**Before**: the figures this section showed on {BEFORE_IDLE['date']} ({BEFORE_IDLE['what']}). Naive: the "
        "samples' connect/disconnect only, no heartbeat (their clients are dropped after API Gateway's 10-minute idle "
        "timeout, and no presence or liveness is kept).",
        "",
        table(["item", f"before ({BEFORE_IDLE['date']}): idle", "now: idle (no presence)",
               "now: holding presence", "naive $ / M"], rows, "lrrrr"),
        "",
        f"An idle connection now costs ${money(idle_cm)} per million connection-minutes, **{cut:.1f}x less** than "
        f"before (target: at least 5x; {'met' if cut >= 5 else '**not met**'}): a heartbeat every "
        f"{IDLE_HEARTBEAT_S / 60:.0f} minutes instead of every {BEFORE_IDLE['heartbeat_s']:.0f} s, each "
        f"{hb['wru']:g} WRU where it was {BEFORE_IDLE['heartbeat_wru']:g}. What remains is mostly API Gateway's "
        f"connection-minute charge (${money(idle['API Gateway connection-minutes'] * 1e6)}), the same in the naive "
        "design. A connection holding presence still beats every 25 s (its presence expires after 60 s without a "
        f"frame): ${money(held_cm)}, {held_cm / idle_cm:.1f}x an idle one.",
        "",
        "Prices used (us-east-1):",
        "",
    ]
    lines += [f"* {what}: {where}" for what, where in SOURCES]
    lines += ["", "Not included: data transfer out, CloudWatch Logs and X-Ray (the template enables tracing), storage, "
                  "the idle SQS long polls of the queue trigger (a fixed few tens of cents a month), free tiers."]
    result["connection_minutes"] = {"ours": idle_cm, "presence": held_cm, "naive": naive_cm, "before": before}
    common.report("cost", "\n".join(lines), quick=quick, write_doc=write_doc, after="latency")
    return result


def main(argv: list[str] | None = None) -> None:
    common.main("cost", run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
