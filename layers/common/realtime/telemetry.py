"""A narrow metrics interface, so the library counts things without owning Powertools' globals.

Handlers pass a `PowertoolsTelemetry` wrapping their `Metrics`; tests may pass a
`CountingTelemetry` and read what was counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol


class Telemetry(Protocol):
    def count(self, name: str, value: int = 1) -> None: ...


class CountingTelemetry:
    """Keeps counts in memory (tests, local tools)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, value: int = 1) -> None:
        self.counts[name] += value


class PowertoolsTelemetry:
    """Emits each count as an EMF metric through Powertools' `Metrics`."""

    def __init__(self, metrics: Any) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics = metrics
        self._unit = MetricUnit.Count

    def count(self, name: str, value: int = 1) -> None:
        if value:
            self._metrics.add_metric(name=name, unit=self._unit, value=value)
