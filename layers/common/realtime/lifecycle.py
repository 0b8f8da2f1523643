"""The connection lifecycle: connect, receive, disconnect and the sweep.

Like a Django Channels consumer, each step is one small method; the Lambda handlers
only translate API Gateway events into calls here. Every step that changes what others
see (the user count, a roster) publishes the change before it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from realtime import protocol
from realtime.auth import AuthError, Identity, TokenVerifier, authenticate
from realtime.connections import Touched
from realtime.counter import TooManyConnections
from realtime.protocol import ProtocolError
from realtime.publishing import Changes, Publisher
from realtime.removal import Remover
from realtime.routing import NOT_REGISTERED, Router
from realtime.sender import ConnectionGone, SendError
from realtime.sweep import Sweep, SweepReport

if TYPE_CHECKING:
    from realtime.application import Application
    from realtime.services import Services

logger = logging.getLogger(__name__)


class Lifecycle:
    def __init__(self, services: Services, application: Application, *,
                 verifier: TokenVerifier | Callable[[], TokenVerifier]) -> None:
        self.services = services
        self.application = application
        self.remover = Remover(services)
        self.publisher = Publisher(services, application.streams.values(), self.remover, services.coalescer)
        self.router = Router(application, services, self.reply)
        self._verifier = verifier

    @property
    def verifier(self) -> TokenVerifier:
        """Built on first use: only `$connect` verifies tokens (and may read the secret)."""
        if not isinstance(self._verifier, TokenVerifier):
            self._verifier = self._verifier()
        return self._verifier

    def connect(self, connection_id: str, *, query: Mapping[str, str] | None,
                headers: Mapping[str, str] | None, connected_at_ms: int) -> Identity:
        """Authenticate and register; raises `AuthError` to refuse the handshake."""
        services = self.services
        try:
            identity = authenticate(query, headers, self.verifier, services.settings.allowed_origins)
        except AuthError as exc:
            services.telemetry.count(f"ConnectRefused{exc.status}")
            raise
        services.connections.register(connection_id, user_id=identity.user_id, name=identity.name,
                                      connected_at_ms=connected_at_ms, now=services.clock())
        services.telemetry.count("Connects")
        if identity.user_id is not None and self._count(identity.user_id, connection_id):
            self.publisher.publish(Changes(counter=True))
        return identity

    def _count(self, user_id: str, connection_id: str) -> bool:
        """Count the connection for its user; past `MAX_CONNECTIONS_PER_USER` the handshake
        is refused (429) and the record just written is taken back. Connections the user's
        set still lists but API Gateway says are gone are removed first, so a crashed
        browser's ghosts never lock its user out."""
        counter = self.services.counter
        for attempt in range(2):
            try:
                return counter.join(user_id, connection_id)
            except TooManyConnections:
                if attempt == 0 and self._remove_gone_connections_of(user_id, connection_id):
                    continue
                self.services.connections.delete(connection_id)
                self.services.telemetry.count("ConnectRefused429")
                raise AuthError(429, "too many connections for this user") from None
        return False

    def _remove_gone_connections_of(self, user_id: str, connection_id: str) -> bool:
        others = sorted(self.services.counter.connections_of(user_id) - {connection_id})
        gone = self.services.sender.check_connections(others).gone
        for other in gone:
            self.publisher.publish(self.remover.remove(other))
        return bool(gone)

    def receive(self, connection_id: str, body: str | bytes | None, *, is_base64: bool = False) -> None:
        """Handle one client frame; every outcome is an answer on the socket, never an exception."""
        services = self.services
        request_id: protocol.RequestId = None
        changes = Changes()
        try:
            request = protocol.parse(body, is_base64=is_base64, max_bytes=services.settings.max_frame_bytes)
            request_id = request.id
            route = self.router.resolve(request)
            services.telemetry.count(f"Messages.{route.action}")
            now = services.clock()
            touch = services.connections.touch(connection_id, now, heard=route.held is None)
            if touch.outcome is Touched.UNKNOWN:
                raise request.fail(protocol.UNAUTHENTICATED, NOT_REGISTERED)
            if touch.outcome is Touched.RATE_LIMITED:
                raise request.fail(protocol.RATE_LIMITED, "too many frames; slow down")
            connection = touch.connection
            assert connection is not None
            others = connection.presence - {route.held.token} if route.held else connection.presence
            if others and services.presence is not None:
                changes.rooms |= services.presence.refresh(connection, now, others)
            try:
                result = route.run(connection, changes)
            except ProtocolError:
                if route.held is not None:  # refused before its own write: the frame was still heard
                    services.connections.heard(connection, now)
                raise
            self.publisher.publish(changes)  # others hear of the change before the sender's ack
            changes = Changes()
            if request_id is not None:
                self.reply(connection_id, protocol.ack(request_id, **(result or {})))
        except ProtocolError as exc:
            services.telemetry.count(f"Errors.{exc.code}")
            echo = exc.request_id if exc.request_id is not None else request_id
            self.reply(connection_id, protocol.error(exc.code, exc.message, echo))
        except Exception:
            logger.exception("frame failed")
            services.telemetry.count(f"Errors.{protocol.INTERNAL}")
            self.reply(connection_id, protocol.error(protocol.INTERNAL, "internal error", request_id))
        try:  # a second chance for changes a failed publish left over; the frame is answered already
            self.publisher.publish(changes)
        except Exception:
            logger.exception("changes could not be published")
            services.telemetry.count("PublishFailed")

    def disconnect(self, connection_id: str) -> None:
        """Remove the connection and everything it holds, and tell the others."""
        self.services.telemetry.count("Disconnects")
        self.publisher.publish(self.remover.remove(connection_id))

    def sweep(self, remaining_ms: Callable[[], int] | None = None) -> SweepReport:
        """Heal what missed `$disconnect` calls left behind (run every minute; `realtime.sweep`).
        `remaining_ms` is the Lambda context's clock, when there is one."""
        return Sweep(self.services, self.remover, self.publisher, remaining_ms=remaining_ms).run()

    # ---- sending to the connection itself -------------------------------------------------

    def reply(self, connection_id: str, frame: bytes) -> None:
        try:
            self.services.sender.send(connection_id, frame)
        except ConnectionGone:
            self.services.telemetry.count("GoneRemoved")
            self.publisher.publish(self.remover.remove(connection_id))
        except SendError:
            logger.warning("reply could not be delivered", extra={"recipient": connection_id})
            self.services.telemetry.count("SendFailed")
