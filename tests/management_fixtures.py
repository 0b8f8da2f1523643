"""Fixtures around ``devtools.management_stub`` (import them into a test module)."""

from __future__ import annotations

import pytest
from botocore.credentials import Credentials

from devtools.management_stub import ManagementStub

TEST_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//session+token=="
TEST_REGION = "us-east-1"


def test_credentials(token: str | None = TEST_TOKEN) -> Credentials:
    return Credentials("ASIATESTACCESSKEY", "test/secret+key", token)


test_credentials.__test__ = False  # not a test


@pytest.fixture
def stub():
    """A live stub on a free port (no added latency); stopped after the test."""
    with ManagementStub(hang_seconds=2.0) as s:
        yield s


@pytest.fixture
def make_sender(stub):
    """``make_sender(**kw)`` -> a signed Sender pointed at the stub; closed after the test."""
    from realtime.sender import Sender

    made = []

    def factory(**kw):
        kw.setdefault("region", TEST_REGION)
        kw.setdefault("credentials", test_credentials())
        kw.setdefault("backoff_base", 0.001)
        kw.setdefault("backoff_cap", 0.01)
        endpoint = kw.pop("endpoint", stub.endpoint)
        s = Sender(endpoint, **kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.close()
