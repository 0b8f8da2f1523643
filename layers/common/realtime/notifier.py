"""Data binding: every write to a bound table reaches the browsers that may see it.

Each bound table's stream feeds `Notifier.handle_record`, which finds the record's
binding by its table (`eventSourceARN`) and turns the images into model instances
(PynamoDB). Like Django Channels 1's binding, each recipient's frame is decided from
who could read the old version and who can read the new one: gaining access is a
`create`, losing it a `delete` (carrying only the key), keeping it an `update` (only
when a field the binding shows changed). Only the binding's `fields` leave the server.
The binding's `changed` hook then lets state streams derived from the table (a list, a
roster) say what the change means for them.

Every decision is a serialisable `Delivery`, so pages of a large group delivered later
from the fan-out queue apply exactly the decision taken for the first page. On a binding
that keeps history the frames carry the change's cursor, and the delivery is logged once
per group, before it is sent (`realtime.history`), for pages that reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from realtime.bindings import Binding, Change
from realtime.broadcast import BroadcastReport, QueuedPage
from realtime.deliveries import ChangeDelivery

if TYPE_CHECKING:
    from realtime.publishing import Publisher
    from realtime.services import Services

logger = logging.getLogger(__name__)


class InvalidRecord(ValueError):
    """A record that cannot be interpreted (it goes to the on-failure destination)."""


def table_of(arn: object) -> str | None:
    """`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>` -> `<name>`."""
    if not isinstance(arn, str):
        return None
    _, _, resource = arn.partition(":table/")
    name, sep, _ = resource.partition("/stream/")
    return name if sep and name else None


class Notifier:
    def __init__(self, services: Services, bindings: Iterable[Binding[Any]], publisher: Publisher) -> None:
        self.services = services
        self.publisher = publisher
        self.bindings = list(bindings)

    def binding_for(self, record: Mapping[str, Any]) -> Binding[Any]:
        table = table_of(record.get("eventSourceARN"))
        for binding in self.bindings:
            if binding.table == table:
                return binding
        raise InvalidRecord(f"no binding for the stream of table {table!r}")

    def change(self, record: Mapping[str, Any]) -> Change[Any]:
        """The record as a `Change` of its binding's model; `InvalidRecord` if it is not one."""
        name = record.get("eventName")
        data = record.get("dynamodb")
        if name not in ("INSERT", "MODIFY", "REMOVE") or not isinstance(data, Mapping):
            raise InvalidRecord(f"not a DynamoDB stream record: eventName={name!r}")
        binding = self.binding_for(record)
        key = data.get("Keys")
        seq = data.get("SequenceNumber")
        if not isinstance(key, Mapping) or not all(k in key for k in binding.key_names) or not isinstance(seq, str):
            raise InvalidRecord("stream record without its keys or a sequence number")
        old, new = data.get("OldImage"), data.get("NewImage")
        if name != "REMOVE" and not new:
            raise InvalidRecord("stream record without a new image (is the stream NEW_AND_OLD_IMAGES?)")
        return Change(binding, seq,
                      old=binding.load({**old, **key}) if old and name != "INSERT" else None,
                      new=binding.load({**new, **key}) if new and name != "REMOVE" else None)

    def handle_record(self, record: Mapping[str, Any]) -> BroadcastReport:
        """One stream record; raises only for what a retry can fix or nothing can interpret."""
        change = self.change(record)
        binding = change.binding
        report = BroadcastReport()
        old_data = binding.data(change.old) if change.old is not None else {}
        new_data = binding.data(change.new) if change.new is not None else {}
        old_audience = binding.audience(change.old) if change.old is not None else None
        new_audience = binding.audience(change.new) if change.new is not None else None
        current = change.new if change.new is not None else change.old
        assert current is not None
        now = self.services.clock()
        history = self.services.history if binding.history else None
        cursor = history.cursor(now) if history is not None else None  # in every frame, so taken first
        delivery = ChangeDelivery(
            old_audience, new_audience,
            gained=binding.event("create", current, new_data, change.seq, cursor),
            kept=binding.event("update", current, new_data, change.seq, cursor) if old_data != new_data else None,
            lost=binding.event("delete", current, change.key_values, change.seq, cursor),
            signed_in_only=not binding.anonymous, redeliver=True,
        )
        groups: list[str] = []
        for instance in (change.old, change.new):
            if instance is not None:
                groups.extend(g for g in binding.group_names(instance) if g not in groups)
        for group in groups:
            if history is not None and cursor is not None:
                # Logged before it is sent: whatever a subscriber saw live, a replay finds.
                history.append(group, cursor, delivery, now)
            report.add(self.services.broadcaster.send(group, delivery))
        report.add(binding.changed(change))
        self._cleanup(report)
        return report

    def handle_page(self, body: str) -> BroadcastReport:
        """One fan-out queue message: a range of a group's members, or recipients to try again."""
        try:
            queued = QueuedPage.parse(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRecord(f"not a fan-out page: {exc}") from None
        report = self.services.broadcaster.send_queued(queued)
        self._cleanup(report)
        return report

    def _cleanup(self, report: BroadcastReport) -> None:
        """Connections found gone while notifying are removed, and what they held is published."""
        telemetry = self.services.telemetry
        telemetry.count("NotificationsSent", report.sent)
        telemetry.count("Redelivering", report.redelivering)
        telemetry.count("DeliveriesAbandoned", report.abandoned)
        telemetry.count("SendFailed", report.failed)
        self.publisher.cleanup(report)
