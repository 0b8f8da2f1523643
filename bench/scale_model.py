"""The scale model behind `docs/scale.md`: the reference workload at 1,000 to 1,000,000 users.

Everything a user does is a *flow*: a rate (per second, from the workload and the design's
coalescing) times the work of one operation as `bench dynamodb` measured it (DynamoDB
requests and units, SQS requests, `@connections` posts). What the measurement cannot see
(an operation's reads grow with what it reads: a group with N members, a room with k
people, a list of D documents) is scaled from the measured item sizes by DynamoDB's
rules. Lambda time, which moto cannot show, is an assumption: `REQUEST_S` per DynamoDB
request (sequential) plus `INVOCATION_S`, plus the posts at the fan-out benchmark's rate.

The design parameters are the template's defaults and `realtime.keys`; the AWS quotas are in
`QUOTAS` with their sources. Nothing here calls AWS.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.common import LAYER
from bench.cost import PRICES, fanout_rates
from bench.scale_load import Workload

if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))

from monitor.frames import MAX_STATE_FRAME_BYTES  # noqa: E402
from realtime import keys  # noqa: E402

SIZES = (1_000, 10_000, 100_000, 1_000_000)

#: Time of one DynamoDB request made from Lambda in the same Region (single-digit milliseconds;
#: a handler makes its requests one after another) and of an invocation besides (assumed).
REQUEST_S = 0.004
INVOCATION_S = 0.005
MEMORY_GB = 1.0  # template.yaml Globals: MemorySize 1024
#: A room's expiring presence re-announces it about this often while anyone is there (an item
#: expires 60 s after its last frame; heartbeats every 25 s: the next expiry is 35-60 s away).
EXPIRY_REANNOUNCE_S = 47.5
PARTITION_RRU = 3000
PARTITION_WRU = 1000


@functools.cache
def _template() -> dict[str, Any]:
    """template.yaml, parsed once: the model asks for its figures hundreds of times (1,480
    parses were 450 s of a quick run)."""
    from devtools import template as tpl

    return tpl.load_template()


def design() -> dict[str, float]:
    """The design's parameters: the template's defaults (what a deployment gets unless it
    sets them) and the shard counts of `realtime.keys`."""
    from devtools import template as tpl

    p = tpl.parameter_defaults(_template())
    return {
        "interval": int(p["BroadcastIntervalMs"]) / 1000, "budget": int(p["GroupPostBudget"]),
        "page": int(p["FanoutPageSize"]), "fanout_concurrency": int(p["FanoutMaxConcurrency"]),
        "announce_concurrency": int(p["AnnounceMaxConcurrency"]), "stage_rate": int(p["ThrottlingRateLimit"]),
        "presence_ttl": int(p["PresenceTtlSeconds"]),
        "group_shard_members": keys.GROUP_SHARD_MEMBERS, "group_shard_growth": keys.SHARD_GROWTH,
        "max_group_shards": keys.MAX_GROUP_SHARDS, "room_shard_members": keys.ROOM_SHARD_MEMBERS, "max_room_shards": keys.MAX_ROOM_SHARDS, "counter_shards": keys.COUNTER_SHARDS,
        "sweep_shards": keys.SWEEP_SHARDS, "state_shards": keys.STATE_SHARDS,
    }


@dataclass(frozen=True)
class Quota:
    name: str
    limit: float
    raisable: str
    source: str


QUOTAS = {
    "apigw_rps": Quota("API Gateway account throttle (requests/s: inbound frames, `$connect`s and `@connections` "
                       "posts together)", 10_000, "yes (Service Quotas; the 5,000 burst is set by AWS)",
                       "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"),
    "apigw_connects": Quota("API Gateway new WebSocket connections per second", 500, "yes (Service Quotas)",
                            "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
                            "apigateway-execution-service-websocket-limits-table.html"),
    "stage_rate": Quota("the stage's route throttle (frames/s; `ThrottlingRateLimit`)", 2000,
                        "yes: a template parameter, up to the account throttle", "template.yaml"),
    "lambda_concurrency": Quota("Lambda concurrent executions (account, Region)", 1000, "yes (Service Quotas)",
                                "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"),
    "fanout_consumers": Quota("fan-out queue consumers (`FanoutMaxConcurrency`)", 10,
                              "yes: a template parameter, at most 1,000 (an SQS event source's maximum concurrency)",
                              "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/"
                              "aws-properties-lambda-eventsourcemapping-scalingconfig.html"),
    "announce_consumers": Quota("announce queue consumers (`AnnounceMaxConcurrency`)", 10,
                                "yes: a template parameter, at most 1,000", "as above"),
    "table_rru": Quota("DynamoDB on-demand read request units per second, per table or per index", 40_000,
                       "yes (Service Quotas)",
                       "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"),
    "table_wru": Quota("DynamoDB on-demand write request units per second, per table or per index", 40_000,
                       "yes (Service Quotas)", "as above"),
    "timeout": Quota("Lambda timeout of the longest invocation's function (the template's `Timeout`)", 1.0,
                     "yes: the template, up to 900 s", "template.yaml; "
                     "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"),
    "partition": Quota("DynamoDB partition: 3,000 RRU/s or 1,000 WRU/s, or a linear combination", 1.0,
                       "**no** (a partition key's item collection is served by one partition)",
                       "https://repost.aws/knowledge-center/on-demand-table-throttling-dynamodb"),
}


# ---------------------------------------------------------------- measured work


@dataclass
class Work:
    """What one operation costs: DynamoDB requests, read and write units (index writes
    included, `index_wru` of them), SQS requests, posts, inbound frames, Lambda seconds."""

    requests: float = 0.0
    rru: float = 0.0
    wru: float = 0.0
    index_wru: float = 0.0
    sqs: float = 0.0
    posts: float = 0.0
    frames_in: float = 0.0

    @classmethod
    def of(cls, row: dict[str, Any], **extra: float) -> Work:
        work = cls(row["requests"], row["rru"], row["wru"], row["gsi_wru"], float(sum(row["sqs"].values())))
        for name, value in extra.items():
            setattr(work, name, getattr(work, name) + value)
        return work

    def __add__(self, other: Work) -> Work:
        return Work(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def __sub__(self, other: Work) -> Work:
        return Work(*(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__))

    def times(self, k: float) -> Work:
        return Work(*(getattr(self, f) * k for f in self.__dataclass_fields__))


class Measured:
    """The DynamoDB benchmark's rows, and what they say about reads that grow."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.rows = {r["key"]: r for r in d["rows"] + d["notifications"]}
        self.sizes = d.get("sizes", {})
        pts = sorted((int(key.rsplit("_", 1)[1]), r) for key, r in self.rows.items()
                     if key.startswith("notification_public_"))
        self.group_points = pts

    def work(self, key: str, **extra: float) -> Work:
        return Work.of(self.rows[key], **extra)

    def size(self, family: str, default: float) -> float:
        return float(self.sizes.get(family, default))

    def _at(self, n: float, field: str) -> float:
        pts = [(m, r[field] if field != "sqs" else float(sum(r["sqs"].values()))) for m, r in self.group_points]
        if n <= pts[0][0]:
            return pts[0][1]
        for (n0, v0), (n1, v1) in zip(pts, pts[1:]):
            if n <= n1:
                return v0 + (v1 - v0) * (n - n0) / (n1 - n0)
        (n0, v0), (n1, v1) = pts[-2], pts[-1]
        return v1 + (v1 - v0) / (n1 - n0) * (n - n1)

    def group(self, members: float, page: int = 1000) -> Work:
        """Reading a group every user is in and queueing its pages, as the broadcasting function
        does it, over the shards a group of that size has (`keys.group_shards_for`): read units
        from the measured notifications less their fixed part (the log entry, the list's entry
        and mark), extrapolated by the slope of the last two sizes (the queued members are read
        twice: cut into ranges, then by the page), plus half a unit per further shard; requests
        and SQS batches by `realtime.broadcast`'s structure, which the measurement at 2,500
        confirms. The queued pages' own Query is the fan-out flow's."""
        smallest = self.group_points[0][0]
        shards = keys.group_shards_for(round(members))
        rru = self._at(members, "rru") - (self._at(smallest, "rru") - 0.5) + (shards - 1) * 0.5
        if members <= page:
            return Work(requests=shards, rru=rru)
        per_shard = members / shards
        inline_shards = min(shards, math.ceil(page / per_shard))
        queued_shards = shards - page / per_shard
        ranges = pages(members, page, shards)
        return Work(requests=inline_shards + ranges, rru=rru, sqs=queued_shards * math.ceil(math.ceil(
            per_shard / page) / 10))


def list_entry_bytes(names: int = 3) -> int:
    """Bytes of one document in a `documents` frame, with `names` users in each phase (the
    `LIST_NAMES` default), built by the reference app's own `monitor.frames`."""
    from monitor.frames import entry, size

    users = [{"user": f"u{n:06d}", "name": f"User {n:06d}"} for n in range(names)]
    phases = ("view", "edit", "review")
    return size(entry("doc-0000", "Document 0000", {p: 100 for p in phases}, {p: users for p in phases}, names)) + 1


def pages(members: float, page: int, shards: int) -> float:
    """Queued fan-out pages of one broadcast: the first `page` members go inline; every other
    shard is cut into ranges of at most `page` (`realtime.broadcast`)."""
    if members <= page:
        return 0.0
    per_shard = members / shards
    inline_shards = min(shards, page / per_shard)
    return (shards - inline_shards) * math.ceil(per_shard / page)


def read_units(size: float, consistent: bool) -> float:
    """One Query's read units over `size` bytes (at least one unit)."""
    units = max(1.0, math.ceil(size / 4096))
    return units if consistent else units / 2


def coalesced(rate: float, interval: float) -> float:
    """Announcements per second of one key marked at `rate` (Poisson) and announced at most once
    per `interval`: the first mark after an announcement waits an interval."""
    return 0.0 if rate <= 0 else 1.0 / (interval + 1.0 / rate)


# ---------------------------------------------------------------- the model


@dataclass
class Flow:
    name: str
    function: str  # the Lambda function that does it ("" for none)
    rate: float  # per second
    work: Work
    seconds: float = 0.0  # Lambda time per occurrence
    invocations: float = 1.0  # Lambda invocations per occurrence


@dataclass
class Partition:
    name: str
    rru: float
    wru: float

    @property
    def load(self) -> float:
        return self.rru / PARTITION_RRU + self.wru / PARTITION_WRU


@dataclass
class Size:
    users: int
    flows: list[Flow] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)
    notes: dict[str, float] = field(default_factory=dict)

    def total(self, attr: str) -> float:
        return sum(f.rate * getattr(f.work, attr) for f in self.flows)

    def by(self, attr: str, names: tuple[str, ...]) -> float:
        return sum(f.rate * getattr(f.work, attr) for f in self.flows if f.name.startswith(names))

    def concurrency(self, function: str | None = None) -> float:
        return sum(f.rate * f.seconds for f in self.flows if f.function and (function is None or f.function == function))

    def invocations(self) -> float:
        return sum(f.rate * f.invocations for f in self.flows if f.function)


def model(d: dict[str, Any], users: int, w: Workload) -> Size:
    m = Measured(d)
    p = design()
    rate = fanout_rates()["sender"]
    out = Size(users)
    interval, budget, page = p["interval"], p["budget"], p["page"]

    def lambda_s(work: Work, inline_posts: float = 0.0) -> float:
        return INVOCATION_S + work.requests * REQUEST_S + inline_posts / rate

    # ---- the workload's rates
    sessions = users / w.session_s
    changes = users / w.presence_s  # enters and leaves
    beats_per_period = math.floor(w.presence_s / w.heartbeat_presence_s)
    beats = users / (2 * w.presence_s) * (beats_per_period + math.floor(w.presence_s / w.heartbeat_idle_s))
    writes = 1.0 / w.write_every_s
    shares = w.zipf()
    present = [users / 2 * z for z in shares]  # half the users hold a presence at any time
    room_marks = [changes * z for z in shares]
    occupied = [1 - math.exp(-k) for k in present]
    room_announcements = [coalesced(lam + o / EXPIRY_REANNOUNCE_S, interval) for lam, o in zip(room_marks, occupied)]
    rooms = sum(room_announcements)
    counter_interval = max(interval, users / budget)
    list_marks = rooms + writes  # a room whose summary changed, and every document write
    counters = coalesced(2 * sessions, counter_interval)
    out.notes.update(sessions=sessions, changes=changes, beats=beats, rooms=rooms, counters=counters,
                     counter_interval=counter_interval, top_present=present[0], top_changes=room_marks[0],
                     top_share=shares[0])

    # ---- marks: a handler's row includes a mark that schedules (the first of its interval); in the
    # steady state most marks find one pending and read it (GetItem; the container's memo only
    # saves more), so the schedule (UpdateItem + SendMessage) is counted once per announcement.
    mark_first, mark_other = m.work("mark_first"), m.work("mark_other")
    schedule = mark_first - mark_other

    def marked(work: Work, marks: int = 1) -> Work:
        return work - schedule.times(marks)

    # ---- per session: connect, the three subscribes, disconnect
    documents = w.documents
    entries = read_units(documents / keys.STATE_SHARDS * m.size("st#", 254), True) * keys.STATE_SHARDS
    summaries = read_units(min(documents, sum(occupied) + 1) / keys.STATE_SHARDS * m.size("rs#", 158),
                           False) * keys.STATE_SHARDS
    measured_list_reads = keys.STATE_SHARDS * (1.0 + 0.5)  # what the benchmark's 2-document list read
    entry_json = list_entry_bytes()
    snapshot_frames = max(1, math.ceil(documents * entry_json / MAX_STATE_FRAME_BYTES))
    sub_documents = m.work("subscribe_documents", rru=entries + summaries - measured_list_reads)
    for name, work, posts in (
            ("session: `$connect`", marked(m.work("connect_first")), 0),
            ("session: subscribe `users`", m.work("subscribe_users"), 2),  # snapshot + ack
            ("session: subscribe `documents`", sub_documents, snapshot_frames + 1),
            ("session: subscribe `notifications`", m.work("subscribe_notifications"), 1),
            ("session: `$disconnect`", marked(m.work("disconnect_last"), 2), 0)):
        function = "connect" if "$connect" in name else "disconnect" if "$disconnect" in name else "message"
        frames_in = 1 if "subscribe" in name else 0
        work = work + Work(posts=posts, frames_in=frames_in)
        out.flows.append(Flow(name, function, sessions, work, lambda_s(work, posts)))
    # ---- presence and liveness
    for name, key, per_s in (("enter", "enter", changes / 2), ("leave", "leave", changes / 2)):
        work = marked(m.work(key)) + Work(posts=1, frames_in=1)
        out.flows.append(Flow(f"frame: {name}", "message", per_s, work, lambda_s(work, 1)))
    work = m.work("heartbeat_presence") + Work(posts=1, frames_in=1)
    out.flows.append(Flow("frame: heartbeat (holding presence)", "message", beats, work, lambda_s(work, 1)))
    # ---- the announcements (the announce function), each scheduled by one mark. Big groups'
    # pages go through the fan-out queue (the notify function), counted with the notifications'.
    group = m.group
    g = keys.group_shards_for(users)  # the shards of a group everyone is in, at this size
    out.notes.update(group_shards=g)
    counter = m.work("announce_users") - group(1) + group(users) + schedule + Work(posts=users)
    out.flows.append(Flow("announce: the counter (`users`)", "announce", counters, counter,
                          lambda_s(counter, min(users, page))))
    # The list sends what changed in frames of under 31 KB, each a broadcast of its own; its
    # interval grows with everything it sent (members x frames), so a long interval changes more
    # entries and needs more frames: the fixed point of the two.
    def changed_within(seconds: float) -> float:
        return sum(1 - math.exp(-rate_ * seconds) for rate_ in room_announcements)

    chunks = 1
    for _ in range(20):
        list_interval = max(interval, users * chunks / budget)
        chunks = max(1, math.ceil(changed_within(list_interval) * entry_json / MAX_STATE_FRAME_BYTES))
    list_interval = max(interval, users * chunks / budget)
    lists = coalesced(list_marks, list_interval)
    changed = changed_within(list_interval)
    listing = (m.work("announce_list") - group(1) + group(users).times(chunks) + schedule
               + Work(requests=changed - 1, wru=changed - 1, rru=entries + summaries - measured_list_reads,
                      posts=users * chunks))
    out.flows.append(Flow("announce: the list (`documents`)", "announce", lists, listing,
                          lambda_s(listing, min(users, page) * chunks)))
    out.notes.update(list_interval=list_interval, lists=lists, list_frames=chunks, list_changed=changed)
    # A room's announcement as measured (its list mark usually finds one pending, but the handler's
    # next mark usually moves the announcement's own expiry re-mark earlier: one schedule each),
    # reading the room's presence shards whole.
    room_work = Work()
    for k, per_s in zip(present, room_announcements):
        if per_s > 0:
            rs = keys.room_shards_for(round(k))  # the room's shards grow with it; measured at one
            reads = read_units(k / rs * m.size("p#", 150), True) * rs - 1
            room_work = room_work + (m.work("announce_room") + Work(rru=reads)).times(per_s)
    if rooms:
        room = room_work.times(1 / rooms)
        out.flows.append(Flow("announce: a room (`$presence`)", "announce", rooms, room, lambda_s(room)))
    for name, per_s in (("the counter", counters), ("the list", lists * chunks)):
        queued = pages(users, page, g)
        if queued:
            out.flows.append(Flow(f"notify: fan-out pages ({name})", "fanout", per_s * queued,
                                  Work(requests=1, sqs=0.4), INVOCATION_S + REQUEST_S + min(page, users / g)
                                  / rate, invocations=1 / 5))
    # ---- notifications: one document write per second; a quarter of the documents private
    public = 1 - w.private_share
    note = marked(m.work(f"notification_public_{m.group_points[0][0]}")) - group(m.group_points[0][0]) + group(users)
    note = note + Work(posts=public * users + w.private_share * 3)
    queued = pages(users, page, g)
    note_s = lambda_s(note, min(note.posts, page))
    out.flows.append(Flow("notify: a document write (stream record)", "notify", writes, note, note_s))
    if queued:
        per_page = min(page, users / g) * public
        page_s = INVOCATION_S + REQUEST_S + per_page / rate
        # one queue invocation takes up to 5 pages (the template's BatchSize)
        out.flows.append(Flow("notify: fan-out pages", "fanout", writes * queued, Work(requests=1, sqs=0.4),
                              page_s, invocations=1 / 5))
    # ---- the sweep, once a minute (nothing stale: every connection in the workload beats or moves)
    sweep = m.work("sweep") - Work(requests=4, wru=3 * 3)  # less the benchmark's 3 silent connections
    out.flows.append(Flow("sweep (every minute)", "disconnect", 1 / 60, sweep, lambda_s(sweep)))

    # ---- the partitions (`realtime.keys`): the busiest of each kind
    notification_reads = group(users).rru / g * writes
    out.partitions += [
        Partition(f"`notifications` group, one of its {g} `by_group` shards (read whole by every notification)",
                  notification_reads, 2 * sessions / g),
        Partition(f"`users` / `documents` group, one of its {g} `by_group` shards (read by each announcement)",
                  group(users).rru / g * max(counters, lists * chunks), 2 * sessions / g),
        Partition(f"the list's entries, one of {keys.STATE_SHARDS} `st#documents` partitions (read whole by every "
                  "`documents` subscribe)",
                  (sessions + lists) * entries / keys.STATE_SHARDS,
                  (writes + changed * lists) / keys.STATE_SHARDS),
        Partition(f"the rooms' summaries, one of {keys.STATE_SHARDS} `rs#` partitions",
                  (sessions + lists) * summaries / keys.STATE_SHARDS, rooms / keys.STATE_SHARDS),
    ]
    top = present[0]
    top_shards = keys.room_shards_for(round(top))
    out.notes.update(top_room_shards=top_shards)
    top_reads = read_units(top / top_shards * m.size("p#", 150), True)
    top_writes = (room_marks[0] / 2 * 1 + room_marks[0] / 2 * 2 + top / (2 * w.presence_s) * 2 * beats_per_period)
    out.partitions += [
        Partition(f"the most crowded room ({shares[0]:.1%} of the presence: {top:,.0f} people), one of "
                  f"its {top_shards} presence shards", room_announcements[0] * top_reads,
                  top_writes / top_shards),
        Partition("that room's mark (`a#$presence#<room>`: a GetItem per enter or leave, no memo counted)",
                  room_marks[0] * 0.5, room_announcements[0] * 2),
        Partition("the counter's mark (`a#users#`)", 2 * sessions * 0.5, counters * 2),
        Partition("the list's mark (`a#documents#`)", list_marks * 0.5, lists * 2),
        Partition(f"a counter shard, one of {keys.COUNTER_SHARDS} `n#` items (a transaction per first and last "
                  "connection; read by every `users` subscribe and announcement)",
                  sessions + counters, 2 * sessions / keys.COUNTER_SHARDS * 2),
        Partition(f"a `by_deadline` shard, one of {keys.SWEEP_SHARDS} (every deadline rewrite moves an entry: "
                  "2 index WRU)", 0.0,
                  # a rewrite is 2 (delete + put): each beat, enter and leave one (an enter or leave
                  # moves it in its own write), each session one (its first frame) besides the
                  # record's put and delete (1 each)
                  (2 * (beats + changes + sessions) + 2 * sessions) / keys.SWEEP_SHARDS),
        Partition("the most read document (`documents` table: an enter reads it, as does each of its room's "
                  "announcements)", room_marks[0] / 2 + room_announcements[0], writes / documents),
    ]
    return out


FUNCTIONS = {"connect": "ConnectFunction", "disconnect": "DisconnectFunction", "message": "MessageFunction",
             "notify": "NotifyFunction", "fanout": "NotifyFunction", "announce": "AnnounceFunction"}


@functools.cache
def timeouts() -> dict[str, float]:
    """Each flow function's Lambda timeout, from the template."""
    from devtools import template as tpl

    specs = tpl.function_specs(_template())
    return {name: float(specs[logical]["Timeout"]) for name, logical in FUNCTIONS.items()}


def limits(size: Size) -> list[tuple[Quota, float, str]]:
    """(quota, use as a share of it, what uses it) at one size."""
    p = design()
    limit_s = timeouts()
    longest = max((f for f in size.flows if f.function), key=lambda f: f.seconds / limit_s[f.function])
    frames_in = size.total("frames_in")
    posts = size.total("posts")
    sessions = size.notes["sessions"]
    index_wru = size.total("index_wru")
    table_wru = size.total("wru") - index_wru
    hottest = max(size.partitions, key=lambda part: part.load)
    group_reads = size.by("rru", ("notify", "announce: the counter", "announce: the list"))
    found = [
        (QUOTAS["apigw_rps"], (frames_in + posts + sessions) / QUOTAS["apigw_rps"].limit,
         f"{frames_in + posts + sessions:,.0f}/s ({posts:,.0f} posts)"),
        (QUOTAS["apigw_connects"], sessions / QUOTAS["apigw_connects"].limit, f"{sessions:,.1f}/s"),
        (QUOTAS["stage_rate"], frames_in / p["stage_rate"], f"{frames_in:,.0f} frames/s"),
        (QUOTAS["lambda_concurrency"], size.concurrency() / QUOTAS["lambda_concurrency"].limit,
         f"{size.concurrency():,.0f}"),
        (QUOTAS["fanout_consumers"], size.concurrency("fanout") / p["fanout_concurrency"],
         f"{size.concurrency('fanout'):,.1f} busy"),
        (QUOTAS["announce_consumers"], size.concurrency("announce") / p["announce_concurrency"],
         f"{size.concurrency('announce'):,.1f} busy"),
        (QUOTAS["table_rru"], max(size.total("rru") - group_reads, group_reads) / QUOTAS["table_rru"].limit,
         f"table {size.total('rru') - group_reads:,.0f}, `by_group` {group_reads:,.0f} RRU/s"),
        (QUOTAS["table_wru"], max(table_wru, index_wru) / QUOTAS["table_wru"].limit,
         f"table {table_wru:,.0f}, indexes {index_wru:,.0f} WRU/s"),
        (QUOTAS["timeout"], longest.seconds / limit_s[longest.function],
         f"{longest.name.split(': ', 1)[-1]}: {longest.seconds:,.1f} s of {limit_s[longest.function]:.0f} s"),
        (QUOTAS["partition"], hottest.load, hottest.name.split(",")[0].split(" (")[0]),
    ]
    return found


def dollars_per_user_hour(size: Size) -> dict[str, float]:
    p = PRICES
    n = size.users
    hour = 3600.0 / n
    gb_s = size.concurrency() * MEMORY_GB
    return {
        "DynamoDB": (size.total("rru") * p["dynamodb_rru"] + size.total("wru") * p["dynamodb_wru"]) * hour,
        "Lambda": (size.invocations() * p["lambda_request"] + gb_s * p["lambda_gb_s_arm"]) * hour,
        "API Gateway": ((size.total("frames_in") + size.total("posts")) * p["apigw_message"]) * hour
        + 60 * p["apigw_connection_minute"],
        "SQS": size.total("sqs") * p["sqs_request"] * hour,
    }
