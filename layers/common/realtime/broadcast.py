"""Group fan-out: one path for every broadcast, from any function.

The first page of a group's members is sent inline. When the group is larger than
`FANOUT_PAGE_SIZE`, the rest is cut into key ranges (reading keys only) and each range
becomes one SQS message that the notify function's queue consumer delivers in a
parallel invocation, so no handler's latency grows with the audience. A `Delivery`
(`realtime.deliveries`) decides per member what, if anything, it receives, and travels
in the queue message so later pages apply the very same decision.

Recipients whose posts still fail after the sender's retries (429, 5xx, timeouts) are
queued again, with a growing delay, when the delivery is an event (`redeliver`): a
notification delivered late is still right. State frames (the counter, a roster) are
not: the next change or a re-subscribe brings the current state, and a stale copy
arriving late would overwrite it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtime.deliveries import Delivery, delivery_from_message
from realtime.groups import Groups, Member, PageRange
from realtime.retry import backoff

if TYPE_CHECKING:
    from realtime.sender import Sender

logger = logging.getLogger(__name__)
SQS_BATCH_LIMIT = 10
#: Redelivery rounds for recipients whose posts keep failing, and the delay before each
#: (SQS `DelaySeconds`, at most 900): about 5 minutes in all before a recipient is given up.
REDELIVERY_DELAYS = (5, 15, 45, 120, 120)
#: Connection ids per redelivery message (well under SQS's 256 KB).
REDELIVERY_CHUNK = 500


@dataclass
class BroadcastReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    gone: list[str] = field(default_factory=list)
    queued_pages: int = 0
    #: Members in the queued pages, counted as full pages (`audience` sizes the next interval).
    queued_members: int = 0
    #: Recipients queued for a later attempt, and those given up after the last one.
    redelivering: int = 0
    abandoned: int = 0
    #: Recipients whose posts may succeed later, not yet queued for it (the broadcaster
    #: queues them once per broadcast, whatever shards they were in).
    retryable: list[str] = field(default_factory=list)

    @property
    def audience(self) -> int:
        """How many members the broadcast reached or queued (queued pages counted full)."""
        return self.sent + self.skipped + self.failed + len(self.gone) + self.queued_members

    def add(self, other: BroadcastReport) -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.failed += other.failed
        self.gone.extend(other.gone)
        self.queued_pages += other.queued_pages
        self.queued_members += other.queued_members
        self.redelivering += other.redelivering
        self.abandoned += other.abandoned
        self.retryable.extend(other.retryable)


class FanoutQueue:
    """The SQS queue that carries the pages of large groups to parallel consumers."""

    def __init__(self, client: Callable[[], Any], queue_url: str, *, attempts: int = 5) -> None:
        self._client_factory = client
        self.queue_url = queue_url
        self.attempts = attempts

    @property
    def client(self) -> Any:
        """The SQS client, made on first use (most broadcasts fit in one page)."""
        return self._client_factory()

    def put(self, ranges: Iterable[PageRange], delivery: Delivery) -> int:
        """Queue one message per range (SendMessageBatch, 10 at a time); return how many."""
        payload = delivery.to_message()
        return self._send_all({"v": 1, "group": page.group, "shard": page.shard, "first": page.first,
                               "last": page.last, "delivery": payload} for page in ranges)

    def redeliver(self, group: str, connection_ids: list[str], delivery: Delivery, attempt: int) -> int:
        """Queue `connection_ids` for redelivery round `attempt` (1-based), delayed; return how many messages."""
        payload = delivery.to_message()
        delay = REDELIVERY_DELAYS[attempt - 1]
        return self._send_all(({"v": 1, "group": group, "recipients": connection_ids[i:i + REDELIVERY_CHUNK],
                                "attempt": attempt, "delivery": payload}
                               for i in range(0, len(connection_ids), REDELIVERY_CHUNK)), delay=delay)

    def _send_all(self, bodies: Iterable[dict[str, Any]], *, delay: int = 0) -> int:
        count = 0
        batch: list[dict[str, Any]] = []
        for body in bodies:
            entry: dict[str, Any] = {"Id": uuid.uuid4().hex, "MessageBody": json.dumps(body, separators=(",", ":"))}
            if delay:
                entry["DelaySeconds"] = delay
            batch.append(entry)
            if len(batch) == SQS_BATCH_LIMIT:
                count += self._send(batch)
                batch = []
        if batch:
            count += self._send(batch)
        return count

    def _send(self, entries: list[dict[str, Any]]) -> int:
        pending = entries
        for attempt in range(self.attempts):
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=pending)
            failed_ids = {f["Id"] for f in response.get("Failed", [])}
            pending = [e for e in pending if e["Id"] in failed_ids]
            if not pending:
                return len(entries)
            backoff(attempt)
        raise RuntimeError(f"{len(pending)} fan-out pages could not be queued")


@dataclass(frozen=True)
class QueuedPage:
    """A fan-out queue message, parsed: a range of a group's members, or (`recipients`)
    members whose posts failed, for redelivery round `attempt`."""

    group: str
    delivery: Delivery
    page: PageRange | None = None
    recipients: tuple[str, ...] = ()
    attempt: int = 0

    @classmethod
    def parse(cls, body: str) -> QueuedPage:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("group"), str):
            raise ValueError("not a fan-out page message")
        delivery = delivery_from_message(data["delivery"])
        if "recipients" not in data:
            shard = data.get("shard", 0)
            if not isinstance(shard, int) or isinstance(shard, bool) or shard < 0:
                raise ValueError("malformed page shard")
            return cls(data["group"], delivery, page=PageRange(data["group"], data["first"], data["last"], shard))
        recipients, attempt = data["recipients"], data["attempt"]
        if (not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients)
                or not isinstance(attempt, int) or not 1 <= attempt <= len(REDELIVERY_DELAYS)):
            raise ValueError("malformed redelivery message")
        return cls(data["group"], delivery, recipients=tuple(recipients), attempt=attempt)


class Broadcaster:
    """Sends a delivery to every member of a group: first page inline, the rest queued."""

    def __init__(self, groups: Groups, sender: Sender, *, page_size: int, queue: FanoutQueue | None) -> None:
        self.groups = groups
        self.sender = sender
        self.page_size = page_size
        self.queue = queue

    def send(self, group: str, delivery: Delivery) -> BroadcastReport:
        """Every member of every shard of `group`: about one page read and sent inline, the
        rest cut into ranges (keys only) and queued, so the caller's work stays bounded.

        The shards' first pages are read at once and sent as one batch: read one after the
        other and sent shard by shard, a broadcast waited for 16 reads in a row and never
        had more than a shard's members in flight (`bench fanout`, the notify path). Having
        counted the members, it grows the group's shards if they hold too many
        (`Groups.grow`).
        """
        report = BroadcastReport()
        members: list[Member] = []
        spilled: list[tuple[int, str | None]] = []  # (shard, the last key sent inline, or None: all of it)
        pages = self.groups.first_pages(group, self.page_size)
        for shard in pages:
            page, after = shard.members, shard.after
            room = self.page_size - len(members)
            if len(page) > room:  # the page is full: the rest of this shard goes in ranges
                page = page[:room]
                after = page[-1].connection_id if page else None
                spilled.append((shard.shard, after))
            elif after is not None:
                spilled.append((shard.shard, after))
            members.extend(page)
        report.add(self._deliver(group, members, delivery))
        counted = len(members)
        for shard_number, after in spilled:
            ranges = list(self.groups.ranges(group, shard_number, self.page_size, after=after))
            counted += sum(cut.size for cut in ranges)
            report.add(self._send_ranges(ranges, delivery))
        self.groups.grow(group, counted, len(pages))
        return self._settle(group, delivery, report)

    def _settle(self, group: str, delivery: Delivery, report: BroadcastReport, attempt: int = 0) -> BroadcastReport:
        """Queue the recipients whose posts may succeed later, all at once."""
        if report.retryable:
            self._redeliver(group, report.retryable, delivery, attempt + 1, report)
            report.retryable = []
        return report

    def _send_ranges(self, ranges: Iterable[PageRange], delivery: Delivery) -> BroadcastReport:
        report = BroadcastReport()
        if self.queue is not None:
            report.queued_pages = self.queue.put(ranges, delivery)
            report.queued_members = report.queued_pages * self.page_size
        else:  # no queue configured (tests, single-process tools): deliver the rest here
            for page in ranges:
                report.add(self.send_page(page, delivery))
        return report

    def send_page(self, page: PageRange, delivery: Delivery) -> BroadcastReport:
        """Deliver one queued range (the queue consumer's work)."""
        report = BroadcastReport()
        for members in self.groups.pages(page, self.page_size):
            report.add(self._deliver(page.group, members, delivery))
        return self._settle(page.group, delivery, report)

    def send_queued(self, queued: QueuedPage) -> BroadcastReport:
        """Deliver one fan-out queue message: a range, or a redelivery to those still members."""
        if queued.page is not None:
            return self.send_page(queued.page, queued.delivery)
        members = self.groups.members(queued.group, list(queued.recipients))
        report = self._deliver(queued.group, members, queued.delivery)
        return self._settle(queued.group, queued.delivery, report, attempt=queued.attempt)

    def _deliver(self, group: str, members: list[Member], delivery: Delivery) -> BroadcastReport:
        report = BroadcastReport()
        messages: list[tuple[str, bytes]] = []
        drop_after = getattr(delivery, "drop_after", None)
        dropped: list[str] = []
        for member in members:
            frame = delivery.frame_for(member)
            if frame is None:
                report.skipped += 1
            else:
                messages.append((member.connection_id, frame))
            if drop_after is not None and drop_after(member):
                dropped.append(member.connection_id)
        if messages:
            result = self.sender.send_many(messages)
            report.sent += result.sent
            report.gone.extend(result.gone)
            report.failed += len(result.failed)  # the sender logged each one
            if result.retryable and getattr(delivery, "redeliver", False):
                report.retryable.extend(result.retryable)
        for connection_id in dropped:  # after their last frame from this group
            self.groups.discard(connection_id, group)
        return report

    def _redeliver(self, group: str, connection_ids: list[str], delivery: Delivery, attempt: int,
                   report: BroadcastReport) -> None:
        if self.queue is None or attempt > len(REDELIVERY_DELAYS):
            report.abandoned += len(connection_ids)
            logger.error("delivery given up after %d redeliveries", attempt - 1,
                         extra={"group": group, "recipients": len(connection_ids), "kind": delivery.kind})
            return
        self.queue.redeliver(group, connection_ids, delivery, attempt)
        report.redelivering += len(connection_ids)
