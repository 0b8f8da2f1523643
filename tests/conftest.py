"""Shared fixtures: moto DynamoDB with tables from template.yaml, the @connections stand-in,
and an API Gateway that drives the real Lambda handlers with API Gateway-shaped events."""

from __future__ import annotations

import os

# Set before anything imports boto3 or Powertools.
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_SERVICE_NAME": "realtime-test",
    "POWERTOOLS_METRICS_NAMESPACE": "RealtimeTest",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
})
for _name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
    os.environ.pop(_name, None)

from collections.abc import Iterator  # noqa: E402

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from devtools.management_stub import ManagementStub  # noqa: E402
from devtools.template import create_tables  # noqa: E402
from tests.apigw import SECRET, ApiGateway  # noqa: E402

CONNECTIONS = "connections"
DOCUMENTS = "documents"
COMMENTS = "comments"
HISTORY = "history"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws: None):
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_tables(client, names={"ConnectionsTable": CONNECTIONS, "DocumentsTable": DOCUMENTS,
                                 "CommentsTable": COMMENTS, "HistoryTable": HISTORY})
    return client


@pytest.fixture
def stub() -> Iterator[ManagementStub]:
    with ManagementStub() as running:
        yield running


@pytest.fixture
def gateway(dynamodb, stub: ManagementStub, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiGateway]:
    """The three WebSocket handlers behind a fake API Gateway, configured as the template does."""
    env = {
        "CONNECTIONS_TABLE": CONNECTIONS,
        "DOCUMENTS_TABLE": DOCUMENTS,
        "COMMENTS_TABLE": COMMENTS,
        "HISTORY_TABLE": HISTORY,
        "WEBSOCKET_ENDPOINT": stub.endpoint,
        "JWT_SECRET": SECRET,
        "PHASES": "view,edit,review",
        "PRESENCE_TTL_SECONDS": "60",
        "ALLOWED_ORIGINS": "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    gw = ApiGateway(dynamodb, stub)
    gw.reset_runtime()
    yield gw
    gw.reset_runtime()


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch):
    """moto over HTTP on loopback, one request at a time (DynamoDB's per-request atomicity):
    for races between real threads, each its own client as each Lambda container has."""
    import threading

    from moto.moto_server import werkzeug_app
    from moto.server import ThreadedMotoServer

    lock = threading.Lock()
    original = werkzeug_app.DomainDispatcherApplication.__call__

    def atomic(self, environ, start_response):
        with lock:
            return list(original(self, environ, start_response))

    monkeypatch.setattr(werkzeug_app.DomainDispatcherApplication, "__call__", atomic)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
