"""Published events: what any AWS service puts on the event bus, delivered to a stream.

An event with detail-type `realtime.publish` and the detail
`{"stream": "<stream>", "to": {"group": g} | {"user": u} | {"connection": c}, "payload": {...}}`
reaches the publish function through the template's rule. `parse` checks the detail's
shape (the `realtime.publish(...)` helper runs it too, before sending); `Publications`
checks it against the application (the stream exists and accepts published events to
that kind of target, `Stream.publish`), then delivers it through the one fan-out path:

- `group`: every member of that group (a group the stream declares: `Publish.groups`);
- `user`: every connection of that user subscribed to the stream (the group
  `<stream>/user/<encoded user id>`, which those subscriptions join);
- `connection`: that connection, if it is subscribed to the stream (a member of the
  stream's own group).

Every frame carries the EventBridge event's id as `event` (constant across retries: pages
de-duplicate on it). On a stream that keeps history the frame carries a cursor too and
the event is logged for the target group (a user's group included) before it is sent; an
event to one connection is not logged (a connection that reconnects is another connection).

An event that fails a check is never delivered and never retried: its reason is logged
(never its payload), counted (`PublishRejected`, `PublishRejected.<reason>`) and the event
goes to the dead-letter queue with the reason. The function then succeeds. Faults a retry
can fix (DynamoDB, SQS) raise, so Lambda's bounded async retries and on-failure
destination apply.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime import keys, protocol
from realtime.audience import Audience
from realtime.broadcast import BroadcastReport, QueuedPage
from realtime.deliveries import EventDelivery
from realtime.streams import user_group

if TYPE_CHECKING:
    from realtime.application import Application
    from realtime.publishing import Publisher
    from realtime.services import Services
    from realtime.streams import Stream

logger = logging.getLogger(__name__)

DETAIL_TYPE = "realtime.publish"
#: A payload's compact JSON, in UTF-8 bytes.
MAX_PAYLOAD_BYTES = 32 * 1024
TARGETS = ("group", "user", "connection")
#: Payload keys clients read as the server's own signals (docs/protocol.md).
RESERVED_KEYS = ("reset", "removed")
MAX_GROUP_CHARS = 512
CONNECTION_ID = re.compile(r"[A-Za-z0-9+/=_-]{1,128}")
EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: SQS refuses messages over 256 KiB: a dead letter that would be larger keeps the event without its payload.
MAX_DEAD_LETTER_BYTES = 250_000

# Why an event was refused (the `reason` of the dead letter and of the metric).
NOT_AN_EVENT = "not_an_event"
BAD_DETAIL = "bad_detail"
UNKNOWN_STREAM = "unknown_stream"
NOT_ACCEPTED = "not_accepted"
BAD_TARGET = "bad_target"
TARGET_REFUSED = "target_refused"
BAD_PAYLOAD = "bad_payload"
TOO_LARGE = "too_large"


class Rejected(ValueError):
    """An event that is not delivered, and why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Publication:
    """A published event's detail, its shape checked."""

    stream: str
    kind: str  # "group", "user" or "connection"
    target: str
    payload: Mapping[str, Any]
    #: The EventBridge event's id: the same across EventBridge's and Lambda's retries, so a
    #: page drops a second copy by it (the frame's `event`).
    event_id: str | None = None

    def detail(self) -> dict[str, Any]:
        return {"stream": self.stream, "to": {self.kind: self.target}, "payload": dict(self.payload)}


def payload_bytes(payload: Mapping[str, Any]) -> int:
    """The size of the payload as sent; ValueError for what is not JSON (NaN, lone surrogates)."""
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8"))


def parse(detail: Any) -> Publication:
    """A detail as a `Publication`, or `Rejected` saying what is wrong with its shape."""
    if not isinstance(detail, Mapping):
        raise Rejected(BAD_DETAIL, "detail must be an object")
    unknown = sorted(set(detail) - {"stream", "to", "payload"})
    if unknown:
        raise Rejected(BAD_DETAIL, f"unknown detail field {unknown[0][:64]!r} (stream, to and payload only)")
    stream = detail.get("stream")
    if not isinstance(stream, str) or not stream:
        raise Rejected(BAD_DETAIL, "stream must be a non-empty string")
    to = detail.get("to")
    if not isinstance(to, Mapping) or len(to) != 1 or next(iter(to)) not in TARGETS:
        raise Rejected(BAD_TARGET, 'to must be one of {"group": ...}, {"user": ...}, {"connection": ...}')
    (kind, target), = to.items()
    _check_target(kind, target)
    payload = detail.get("payload")
    if not isinstance(payload, Mapping):
        raise Rejected(BAD_PAYLOAD, "payload must be a JSON object")
    reserved = [k for k in RESERVED_KEYS if k in payload]
    if reserved:
        raise Rejected(BAD_PAYLOAD, f"payload may not use the key {reserved[0]!r} (clients read it as the server's)")
    try:
        size = payload_bytes(payload)
    except (TypeError, ValueError) as exc:
        raise Rejected(BAD_PAYLOAD, f"payload is not JSON: {exc}") from None
    if size > MAX_PAYLOAD_BYTES:
        raise Rejected(TOO_LARGE, f"payload is {size} bytes; at most {MAX_PAYLOAD_BYTES}")
    return Publication(stream, kind, target, payload)


def _check_target(kind: str, target: Any) -> None:
    if kind == "user":
        try:
            keys.valid_key(target, "to.user")
        except keys.InvalidKey as exc:
            raise Rejected(BAD_TARGET, str(exc)) from None
    elif kind == "connection":
        if not isinstance(target, str) or not CONNECTION_ID.fullmatch(target):
            raise Rejected(BAD_TARGET, "to.connection must be a connection id")
    elif not isinstance(target, str) or not target or len(target) > MAX_GROUP_CHARS or not target.isprintable():
        raise Rejected(BAD_TARGET, f"to.group must be a group name of at most {MAX_GROUP_CHARS} printable characters")


def accepted_by(stream: Stream | None, publication: Publication) -> Stream:
    """The stream, if it takes this publication; else `Rejected`."""
    if stream is None:
        raise Rejected(UNKNOWN_STREAM, f"no stream named {publication.stream[:64]!r}")
    policy = stream.publish
    if policy is None:
        raise Rejected(NOT_ACCEPTED, f"stream {stream.name!r} accepts no published events")
    if publication.kind == "group" and not any(fnmatch.fnmatchcase(publication.target, p) for p in policy.groups):
        raise Rejected(TARGET_REFUSED, f"stream {stream.name!r} accepts no events to group {publication.target[:64]!r}")
    if (publication.kind == "user" and not policy.users) or (publication.kind == "connection" and not policy.connections):
        raise Rejected(TARGET_REFUSED, f"stream {stream.name!r} accepts no events to a {publication.kind}")
    return stream


class DeadLetters:
    """The queue where refused events are kept for inspection (`PUBLISH_DEAD_LETTER_QUEUE_URL`)."""

    def __init__(self, client: Callable[[], Any] | None, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def put(self, event: Any, rejected: Rejected) -> None:
        if self._client is None or not self.queue_url:
            logger.error("no dead-letter queue configured: the refused event is only logged")
            return
        body = json.dumps({"reason": rejected.reason, "message": rejected.message, "event": event},
                          separators=(",", ":"), ensure_ascii=False, default=str)
        if len(body.encode()) > MAX_DEAD_LETTER_BYTES:
            kept = {k: v for k, v in event.items() if k != "detail"} if isinstance(event, Mapping) else {}
            body = json.dumps({"reason": rejected.reason, "message": rejected.message, "event": kept,
                               "detail_omitted_bytes": len(body.encode())}, default=str)
        self._client().send_message(QueueUrl=self.queue_url, MessageBody=body)


@dataclass
class PublishReport:
    delivered: BroadcastReport
    rejected: str | None = None  # the reason, when refused
    logged: bool = False


class Publications:
    """Checks and delivers the events the publish function receives."""

    def __init__(self, services: Services, application: Application, publisher: Publisher,
                 dead_letters: DeadLetters) -> None:
        self.services = services
        self.application = application
        self.publisher = publisher
        self.dead_letters = dead_letters

    def handle(self, event: Any) -> PublishReport:
        """One EventBridge event: delivered, or refused (logged, counted, dead-lettered)."""
        try:
            publication, stream = self.check(event)
        except Rejected as rejected:
            self.refuse(event, rejected)
            return PublishReport(BroadcastReport(), rejected=rejected.reason)
        return self.deliver(publication, stream)

    def check(self, event: Any) -> tuple[Publication, Stream]:
        if not isinstance(event, Mapping) or event.get("detail-type") != DETAIL_TYPE:
            raise Rejected(NOT_AN_EVENT, f"not an EventBridge event with detail-type {DETAIL_TYPE!r}")
        publication = parse(event.get("detail"))
        event_id = event.get("id")
        if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
            raise Rejected(NOT_AN_EVENT, "the event has no id")
        publication = dataclasses.replace(publication, event_id=event_id)
        return publication, accepted_by(self.application.streams.get(publication.stream), publication)

    def refuse(self, event: Any, rejected: Rejected) -> None:
        envelope = event if isinstance(event, Mapping) else {}
        detail = envelope.get("detail") if isinstance(envelope.get("detail"), Mapping) else {}
        logger.warning("published event refused: %s", rejected.message, extra={
            "reason": rejected.reason, "event_id": str(envelope.get("id"))[:128],
            "source": str(envelope.get("source"))[:256], "stream": str(detail.get("stream"))[:64]})
        telemetry = self.services.telemetry
        telemetry.count("PublishRejected")
        telemetry.count(f"PublishRejected.{rejected.reason}")
        self.dead_letters.put(event, rejected)

    def deliver(self, publication: Publication, stream: Stream) -> PublishReport:
        services = self.services
        now = services.clock()
        history = services.history if stream.history and publication.kind != "connection" else None
        cursor = history.cursor(now) if history is not None else None
        frame = protocol.encode_frame(stream.name, dict(publication.payload), cursor, publication.event_id)
        delivery = EventDelivery(frame, None if stream.anonymous else Audience.members())
        if publication.kind == "connection":
            report = services.broadcaster.send_queued(
                QueuedPage(stream.name, delivery, recipients=(publication.target,)))
        else:
            group = publication.target if publication.kind == "group" else user_group(stream.name, publication.target)
            if history is not None and cursor is not None:
                history.append(group, cursor, delivery, now)  # before it is sent, as binding events
            report = services.broadcaster.send(group, delivery)
        services.telemetry.count("EventsPublished")
        services.telemetry.count("NotificationsSent", report.sent)
        services.telemetry.count("Redelivering", report.redelivering)
        services.telemetry.count("SendFailed", report.failed)
        self.publisher.cleanup(report)
        return PublishReport(report, logged=history is not None)
