"""The reference application's settings, parsed from the engine's environment snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from realtime.config import ConfigurationError, split

DEFAULT_PHASES = ("view", "edit", "review")
DEFAULT_DOCUMENT_FIELDS = ("slug", "title", "abstract", "image")


@dataclass(frozen=True)
class MonitorSettings:
    phases: tuple[str, ...] = DEFAULT_PHASES
    document_fields: tuple[str, ...] = DEFAULT_DOCUMENT_FIELDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorSettings:
        phases = split(env.get("PHASES")) or DEFAULT_PHASES
        for phase in phases:
            if not phase.isidentifier():
                raise ConfigurationError(f"PHASES entries must be simple names, got {phase!r}")
        return cls(phases=phases, document_fields=split(env.get("DOCUMENT_FIELDS")) or DEFAULT_DOCUMENT_FIELDS)
