"""Group fan-out: one path for every broadcast, from any function.

The first page of a group's members is sent inline. When the group is larger than
`FANOUT_PAGE_SIZE`, the rest is cut into key ranges (reading keys only) and each range
becomes one SQS message that the notify function's queue consumer delivers in a
parallel invocation, so no handler's latency grows with the audience. A `Delivery`
decides per member what, if anything, it receives, and travels in the queue message so
later pages apply the very same decision.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from realtime.groups import Groups, Member, PageRange

if TYPE_CHECKING:
    from realtime.sender import Sender

logger = logging.getLogger(__name__)
SQS_BATCH_LIMIT = 10


class Delivery(Protocol):
    """What each member of a group receives.

    A delivery may also define `drop_after(member) -> bool`: members for whom it is true
    leave the group once their frame is sent (a reader who lost access to a document).
    """

    kind: str

    def frame_for(self, member: Member) -> bytes | None: ...

    def to_message(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Access:
    """Who may read a document: enough to decide per recipient, small enough to queue."""

    public: bool = True
    owner: str | None = None
    readers: frozenset[str] = frozenset()

    def allows(self, user_id: str | None) -> bool:
        if self.public:
            return True
        return user_id is not None and (user_id == self.owner or user_id in self.readers)

    def to_dict(self) -> dict[str, Any]:
        return {"public": self.public, "owner": self.owner, "readers": sorted(self.readers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Access:
        return cls(bool(data["public"]), data.get("owner"), frozenset(data.get("readers", ())))


@dataclass(frozen=True)
class FrameDelivery:
    """The same frame for every member, optionally only those who may read a document."""

    frame: bytes
    access: Access | None = None
    kind: str = field(default="frame", init=False)

    def frame_for(self, member: Member) -> bytes | None:
        if self.access is not None and not self.access.allows(member.user_id):
            return None
        return self.frame

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "frame": self.frame.decode(),
                "access": self.access.to_dict() if self.access else None}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> FrameDelivery:
        access = Access.from_dict(data["access"]) if data.get("access") else None
        return cls(data["frame"].encode(), access)


_DELIVERIES: dict[str, Callable[[dict[str, Any]], Delivery]] = {"frame": FrameDelivery.from_message}


def register_delivery(kind: str, factory: Callable[[dict[str, Any]], Delivery]) -> None:
    """Let a queue consumer rebuild deliveries of `kind` (the notifier registers its own)."""
    _DELIVERIES[kind] = factory


def delivery_from_message(data: dict[str, Any]) -> Delivery:
    try:
        factory = _DELIVERIES[data["kind"]]
    except KeyError:
        raise ValueError(f"unknown delivery kind {data.get('kind')!r}") from None
    return factory(data)


@dataclass
class BroadcastReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    gone: list[str] = field(default_factory=list)
    queued_pages: int = 0

    def add(self, other: BroadcastReport) -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.failed += other.failed
        self.gone.extend(other.gone)
        self.queued_pages += other.queued_pages


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

    def put(self, ranges: Iterator[PageRange], delivery: Delivery) -> int:
        """Queue one message per range (SendMessageBatch, 10 at a time); return how many."""
        count = 0
        batch: list[dict[str, str]] = []
        payload = delivery.to_message()
        for page in ranges:
            body = json.dumps({"v": 1, "group": page.group, "first": page.first, "last": page.last,
                               "delivery": payload}, separators=(",", ":"))
            batch.append({"Id": uuid.uuid4().hex, "MessageBody": body})
            if len(batch) == SQS_BATCH_LIMIT:
                count += self._send(batch)
                batch = []
        if batch:
            count += self._send(batch)
        return count

    def _send(self, entries: list[dict[str, str]]) -> int:
        pending = entries
        for attempt in range(self.attempts):
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=pending)
            failed_ids = {f["Id"] for f in response.get("Failed", [])}
            pending = [e for e in pending if e["Id"] in failed_ids]
            if not pending:
                return len(entries)
            time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
        raise RuntimeError(f"{len(pending)} fan-out pages could not be queued")


@dataclass(frozen=True)
class QueuedPage:
    """A fan-out queue message, parsed."""

    page: PageRange
    delivery: Delivery

    @classmethod
    def parse(cls, body: str) -> QueuedPage:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("not a fan-out page message")
        return cls(PageRange(data["group"], data["first"], data["last"]), delivery_from_message(data["delivery"]))


class Broadcaster:
    """Sends a delivery to every member of a group: first page inline, the rest queued."""

    def __init__(self, groups: Groups, sender: Sender, *, page_size: int, queue: FanoutQueue | None) -> None:
        self.groups = groups
        self.sender = sender
        self.page_size = page_size
        self.queue = queue

    def send(self, group: str, delivery: Delivery) -> BroadcastReport:
        members, more = self.groups.first_page(group, self.page_size)
        report = self._deliver(group, members, delivery)
        if more is None:
            return report
        ranges = self.groups.ranges(group, self.page_size, after=more)
        if self.queue is not None:
            report.queued_pages = self.queue.put(ranges, delivery)
        else:  # no queue configured (tests, single-process tools): deliver the rest here
            for page in ranges:
                report.add(self.send_page(page, delivery))
        return report

    def send_page(self, page: PageRange, delivery: Delivery) -> BroadcastReport:
        """Deliver one queued range (the queue consumer's work)."""
        report = BroadcastReport()
        for members in self.groups.pages(page.group, self.page_size, within=page):
            report.add(self._deliver(page.group, members, delivery))
        return report

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
        for connection_id in dropped:  # after their last frame from this group
            self.groups.discard(connection_id, group)
        return report
