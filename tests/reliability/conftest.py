"""The reliability and security suite: fuzzing, fault injection, auth attacks and load.

Profiles: the quick one runs in `make test`; `REALTIME_FUZZ=long` (what `make fuzz` sets)
runs at least 10,000 examples per fuzz target and the full 1,000-client load test.
Fixtures from tests/conftest.py (`gateway`, `stub`, `dynamodb`) are available here.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

LONG = os.environ.get("REALTIME_FUZZ", "").lower() in ("1", "long", "yes", "true")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "load: the full-size load test (1,000 clients); runs under `make fuzz`")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The full-size load belongs to `make fuzz`: outside it, it is deselected (not run, and
    not reported as a skip that could pass for a result)."""
    if LONG:
        return
    deselected = [item for item in items if "load" in item.keywords]
    if deselected:
        items[:] = [item for item in items if "load" not in item.keywords]
        config.hook.pytest_deselected(items=deselected)


def fuzz_settings(quick: int, **kw: Any) -> settings:
    """Hypothesis settings for one target: `quick` examples normally, 10,000 under `make fuzz`."""
    return settings(
        max_examples=max(10_000, quick) if LONG else quick,
        deadline=None,
        derandomize=not LONG,  # CI is reproducible; the long run explores
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **kw,
    )


@pytest.fixture
def clock(gateway):
    """The application's clock, moved by the test (seconds added to the wall clock)."""
    from realtime import runtime

    offset = [0.0]
    gateway.connect()  # builds the app behind the gateway
    application = runtime.app(gateway.stub.endpoint)
    application.clock = lambda: time.time() + offset[0]
    return offset


def app_of(gateway):
    from realtime import runtime

    return runtime.app(gateway.stub.endpoint)
