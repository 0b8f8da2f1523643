"""An application: the streams, bindings and presence rooms it declares.

The application module named by `REALTIME_APP` (default: the reference app, `monitor`)
exposes `application(environment) -> Application`; the runtime calls it once per
container with the environment snapshot of `realtime.config.Settings`, so the
application reads its own settings (tables, fields) from there. Registering a stream or
a binding is one entry in `streams`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from realtime.config import ConfigurationError
from realtime.streams import CounterStream, Stream

if TYPE_CHECKING:
    from realtime.bindings import Binding
    from realtime.rooms import Rooms
    from realtime.services import Services

#: Actions the engine itself answers; no stream may declare them.
ENGINE_ACTIONS = ("subscribe", "unsubscribe", "heartbeat", "enter", "leave")


class Application:
    """What one deployment serves: streams (bindings among them) and presence rooms."""

    def __init__(self, streams: Iterable[Stream] = (), *, rooms: Rooms | None = None) -> None:
        self.streams: dict[str, Stream] = {}
        self.rooms = rooms
        for stream in streams:
            self.register(stream)

    def register(self, stream: Stream) -> Stream:
        """Serve `stream` (a `Stream` or a `Binding`): one line per stream or bound table."""
        if not stream.name:
            raise ConfigurationError(f"{type(stream).__name__} declares no stream name")
        if stream.name in self.streams:
            raise ConfigurationError(f"two streams are named {stream.name!r}")
        for action in stream.actions():
            if action in ENGINE_ACTIONS:
                raise ConfigurationError(f"stream {stream.name!r} may not redefine {action!r}")
        self.streams[stream.name] = stream
        return stream

    @property
    def bindings(self) -> list[Binding]:
        from realtime.bindings import Binding

        return [s for s in self.streams.values() if isinstance(s, Binding)]

    @property
    def counts_users(self) -> bool:
        """Whether connections are counted: only when some stream shows the count."""
        return any(isinstance(s, CounterStream) for s in self.streams.values())

    def bind(self, services: Services) -> None:
        for stream in self.streams.values():
            stream.bind(services)
        if self.rooms is not None:
            self.rooms.bind(services)


Factory = Callable[[Mapping[str, str]], Application]


def load(module: str, environment: Mapping[str, str]) -> Application:
    """Import `module` and build its `application(environment)`."""
    try:
        factory = getattr(importlib.import_module(module), "application")
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"REALTIME_APP={module!r} has no `application`: {exc}") from exc
    built = factory(environment)
    if not isinstance(built, Application):
        raise ConfigurationError(f"{module}.application() must return a realtime Application")
    return built
