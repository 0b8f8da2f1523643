"""One application assembled for one container: the services and what runs on them.

`realtime.runtime` builds an `Engine` once per container (`build` in tests); the Lambda
handlers call its lifecycle (connect, receive, disconnect, sweep), its notifier and its
publications (events published on the bus).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from realtime.announcing import Mark
from realtime.lifecycle import Lifecycle, SweepReport
from realtime.notifier import Notifier
from realtime.published import DeadLetters, Publications

if TYPE_CHECKING:
    from realtime.application import Application
    from realtime.auth import Identity, TokenVerifier
    from realtime.broadcast import Broadcaster
    from realtime.sender import Sender
    from realtime.services import Services


class Engine:
    def __init__(self, services: Services, application: Application, *,
                 verifier: TokenVerifier | Callable[[], TokenVerifier], sqs: Callable[[], Any] | None = None) -> None:
        application.bind(services)
        self.services = services
        self.application = application
        self.lifecycle = Lifecycle(services, application, verifier=verifier)
        self.notifier = Notifier(services, application.bindings, self.lifecycle.publisher)
        #: Events published on the bus (the publish function); `sqs` makes the dead-letter queue's client.
        self.publications = Publications(services, application, self.lifecycle.publisher,
                                         DeadLetters(sqs, services.settings.publish_dead_letter_queue_url))

    # The lifecycle, for the handlers.
    def connect(self, connection_id: str, *, query: Mapping[str, str] | None,
                headers: Mapping[str, str] | None, connected_at_ms: int) -> Identity:
        return self.lifecycle.connect(connection_id, query=query, headers=headers, connected_at_ms=connected_at_ms)

    def receive(self, connection_id: str, body: str | bytes | None, *, is_base64: bool = False) -> None:
        self.lifecycle.receive(connection_id, body, is_base64=is_base64)

    def disconnect(self, connection_id: str) -> None:
        self.lifecycle.disconnect(connection_id)

    def sweep(self, remaining_ms: Callable[[], int] | None = None) -> SweepReport:
        return self.lifecycle.sweep(remaining_ms)

    def announce(self, body: str) -> bool:
        """One announce-queue message (the announce function's work)."""
        return self.services.coalescer.handle(Mark.parse(body))

    # What tests and tools reach for.
    @property
    def clock(self) -> Callable[[], float]:
        return self.services.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.services.clock = clock

    @property
    def sender(self) -> Sender:
        return self.services.sender

    @property
    def broadcaster(self) -> Broadcaster:
        return self.services.broadcaster
