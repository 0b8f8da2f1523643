"""The embedded AWS endpoint: moto's server in process (DynamoDB, its streams, SQS, EventBridge).

`MotoServer` is moto's `ThreadedMotoServer` with seven differences:

- it remembers the sockets its request threads serve, so `stop()` can close keep-alive
  connections that boto3 clients still hold and join every thread it started;
- DynamoDB (and DynamoDB Streams) requests run one at a time. moto's DynamoDB backend is
  not thread-safe: `TransactWriteItems` deep-copies each table it touches before it starts
  and, when the transaction is cancelled, puts that copy back, silently undoing the writes
  that other request threads made meanwhile; concurrent copies also fail with
  "dictionary changed size during iteration" (a 500 that the client retries). DynamoDB
  applies each request atomically, so one at a time is the faithful model, and moto is
  pure Python under one GIL: little is lost. SQS requests stay concurrent (a long-polling
  `ReceiveMessage` waits inside its request);
- moto's model-instance tracking is off while it runs. moto appends every model object it
  ever creates (each DynamoDB `Item`, each `Table`) to a class-level list for its
  `/moto-api/data.json` dashboard and never drops them. In a long-running server that is
  an unbounded leak, and a quadratic one: every `TransactWriteItems` deep-copies the whole
  table (every item of it stays alive), every Query copies its results. With 1,000
  signed-in clients connecting (each `$connect` is a transaction on the connections
  table), the stack process grew to ~6 GB. The dashboard (`/moto-api/data.json`) then
  lists nothing; nothing here uses it;
- requests are routed to their service from a cache: moto looks the service up in its
  package directory (~170 `isdir` calls) for every request;
- moto's DynamoDB Queries and transactions no longer cost time in proportion to the
  whole table (`moto_speedups`);
- it counts DynamoDB write requests (`writes`): the saved tables (`persist`) are
  rewritten only after one;
- it hands every `PutEvents` it accepted to a listener (`on_put_events`): moto stores
  rules but cannot invoke their Lambda targets, the stack does (`eventbridge`).

`LocalAws` creates the template's tables, queues and event buses under local names and seeds documents.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from werkzeug.serving import ThreadedWSGIServer

from devtools import template as tpl
from devtools.stack import moto_speedups
from devtools.stack.shared_patch import SharedPatch
from devtools.stack.events import ACCOUNT, REGION

log = logging.getLogger("devtools.stack")

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}

SAMPLE_DOCUMENTS: list[dict[str, Any]] = [
    {"slug": "welcome", "title": "Welcome", "abstract": "Start here: what this demo shows.",
     "image": "/static/welcome.png", "visibility": "public", "owner": "alice"},
    {"slug": "roadmap", "title": "Roadmap", "abstract": "What comes next.",
     "image": "", "visibility": "public", "owner": "bob"},
    {"slug": "release-notes", "title": "Release notes", "abstract": "Every change, newest first.",
     "image": "", "owner": "alice"},  # no visibility: public
    {"slug": "design-review", "title": "Design review", "abstract": "Private to Alice and Bob.",
     "image": "", "visibility": "private", "owner": "alice", "readers": ["bob"]},
    {"slug": "alice-notes", "title": "Alice's notes", "abstract": "Only Alice may read these.",
     "image": "", "visibility": "private", "owner": "alice", "readers": []},
]


class _TrackingServer(ThreadedWSGIServer):
    daemon_threads = True
    request_queue_size = 2048  # werkzeug's 128 overflowed under bursts (SYNs dropped, 1 s+ retries)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.live_sockets: set[socket.socket] = set()
        self.live_threads: set[threading.Thread] = set()
        self._track_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve, args=(request, client_address),
                                  name="moto-request", daemon=True)
        with self._track_lock:
            self.live_sockets.add(request)
            self.live_threads.add(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._track_lock:
                self.live_sockets.discard(request)
                self.live_threads.discard(threading.current_thread())

    def close_all(self, timeout: float = 5.0) -> None:
        with self._track_lock:
            sockets, threads = list(self.live_sockets), list(self.live_threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout)


#: DynamoDB operations that may change an item (what makes the saved tables stale).
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
                              "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})


class _OneDynamoDBRequestAtATime:
    """WSGI middleware: DynamoDB and DynamoDB Streams requests (`X-Amz-Target: DynamoDB...`)
    run under one lock, their answer produced inside it; other services pass through.
    Counts the write requests (`writes`), so the saved tables are rewritten only after one."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.writes = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if target.rpartition(".")[2] in WRITE_OPERATIONS:
                    self.writes += 1
                close = getattr(result, "close", None)
                if close is not None:
                    close()


PutEventsListener = Callable[[list[Mapping[str, Any]], list[Mapping[str, Any]]], None]


class _PutEventsTap:
    """WSGI middleware: every `PutEvents` moto answers is also handed to `listener` (the
    request's entries, moto's result for each), which runs the rules' Lambda targets that
    moto cannot (`eventbridge.EventRouter`)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.listener: PutEventsListener | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        listener = self.listener
        if listener is None or environ.get("HTTP_X_AMZ_TARGET") != "AWSEvents.PutEvents":
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def capture(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        result = self.app(environ, capture)
        try:
            answer = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if status and status[0].startswith("200"):
            try:
                listener(json.loads(body)["Entries"], json.loads(answer)["Entries"])
            except Exception:  # noqa: BLE001 - the caller has its answer; the bus logs its own failures
                log.exception("routing PutEvents to the rules' targets")
        return [answer]


def _stop_tracking() -> Any:
    """Turn off moto's model-instance tracking (`BaseModel.instances_tracked`, what its
    dashboard lists) and drop what it holds; return moto's own `__new__`."""
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    saved = BaseModel.__dict__["__new__"]

    def __new__(model: type, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, model).__new__(model)

    BaseModel.__new__ = staticmethod(__new__)  # type: ignore[method-assign,assignment]
    reset_model_data()
    return saved


def _resume_tracking(saved: Any) -> None:
    from moto.core.common_models import BaseModel

    BaseModel.__new__ = saved  # type: ignore[method-assign]


_UNTRACKED = SharedPatch(_stop_tracking, _resume_tracking)


def _dispatcher(create_app: Any) -> Any:
    """moto's dispatcher, remembering which backend serves each host. moto lists its own
    package directory (an `isdir` per service, ~170) to route every request, under a lock
    that all requests share: a third of each DynamoDB request's time under load."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            try:
                return self._backends[host]
            except KeyError:
                backend = self._backends[host] = super().get_backend_for_host(host)
                return backend

    return Dispatcher(create_app)


class MotoServer:
    """moto's server on `host:port` (0 picks a free port), in a thread of this process."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

        self._events = _PutEventsTap(_dispatcher(create_backend_app))
        self._app = _OneDynamoDBRequestAtATime(self._events)
        self._server = _TrackingServer(host, port, self._app, MotoRequestHandler)
        self._untracked = False
        self._sped_up = False
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server",
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    def on_put_events(self, listener: PutEventsListener | None) -> None:
        """Hand every accepted `PutEvents` to `listener` (None: stop)."""
        self._events.listener = listener

    @property
    def writes(self) -> int:
        """DynamoDB write requests served so far (any table, succeeded or not)."""
        return self._app.writes

    def start(self) -> None:
        _UNTRACKED.acquire()
        self._untracked = True
        self._sped_up = moto_speedups.apply()
        self._thread.start()

    def reset(self) -> None:
        """Forget every resource (moto's state is process-wide: a new stack starts empty)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own loopback server
            pass

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        self._thread.join(5)
        if self._untracked:
            self._untracked = False
            _UNTRACKED.release()
        if self._sped_up:
            self._sped_up = False
            moto_speedups.restore()


def _kebab(logical_id: str, suffix: str) -> str:
    base = logical_id[: -len(suffix)] if logical_id.endswith(suffix) and logical_id != suffix else logical_id
    return re.sub(r"(?<!^)(?=[A-Z])", "-", base).lower()


class LocalAws:
    """The template's tables and queues on a moto endpoint, under `{name}-...` names."""

    def __init__(self, endpoint: str, template: Mapping[str, Any], name: str) -> None:
        self.endpoint = endpoint
        self.template = template
        self.name = name
        self.tables: dict[str, str] = {}        # logical id -> table name
        self.table_arns: dict[str, str] = {}
        self.stream_arns: dict[str, str] = {}   # logical id -> latest stream ARN
        self.queues: dict[str, str] = {}        # logical id -> queue URL
        self.queue_arns: dict[str, str] = {}
        self._clients: list[Any] = []

    def client(self, service: str) -> Any:
        client = boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                              aws_access_key_id="local", aws_secret_access_key="local",
                              config=Config(retries={"max_attempts": 2, "mode": "standard"}))
        self._clients.append(client)
        return client

    def create(self) -> None:
        ddb = self.client("dynamodb")
        names = {lid: f"{self.name}-{_kebab(lid, 'Table')}"
                 for lid in tpl.resources_of_type(self.template, tpl.TABLE_TYPE)}
        tpl.create_tables(ddb, self.template, names)
        for lid, table in names.items():
            description = ddb.describe_table(TableName=table)["Table"]
            self.tables[lid] = table
            self.table_arns[lid] = description["TableArn"]
            if description.get("LatestStreamArn"):
                self.stream_arns[lid] = description["LatestStreamArn"]
        self._create_queues()

    def _create_queues(self) -> None:
        sqs = self.client("sqs")
        queues = tpl.resources_of_type(self.template, "AWS::SQS::Queue")
        for lid, resource in queues.items():
            props = resource.get("Properties") or {}
            attributes = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod",
                                                     "DelaySeconds", "ReceiveMessageWaitTimeSeconds")
                          if k in props and not isinstance(props[k], dict)}
            name = f"{self.name}-{_kebab(lid, 'Queue')}"
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            self.queues[lid] = url
            self.queue_arns[lid] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        for lid, resource in queues.items():
            redrive = (resource.get("Properties") or {}).get("RedrivePolicy")
            if not redrive:
                continue
            resolved = tpl.resolve(redrive, refs={}, getatt=self.getatt())
            sqs.set_queue_attributes(QueueUrl=self.queues[lid],
                                     Attributes={"RedrivePolicy": json.dumps(resolved)})

    def create_event_rules(self, buses: list[str], rules: list[Any]) -> None:
        """The template's buses and rules in moto (`eventbridge.rules`), without their targets:
        moto cannot invoke a Lambda (the stack's `EventRouter` does)."""
        client = self.client("events")
        for bus in buses:
            if bus != "default":
                try:
                    client.create_event_bus(Name=bus)
                except client.exceptions.ResourceAlreadyExistsException:
                    pass
        for rule in rules:
            client.put_rule(Name=rule.name, EventBusName=rule.bus, EventPattern=rule.pattern.dump(),
                            State="ENABLED")

    def getatt(self) -> dict[str, str]:
        values = {}
        for lid, arn in self.table_arns.items():
            values[f"{lid}.Arn"] = arn
        for lid, arn in self.stream_arns.items():
            values[f"{lid}.StreamArn"] = arn
        for lid, arn in self.queue_arns.items():
            values[f"{lid}.Arn"] = arn
            values[f"{lid}.QueueName"] = arn.rsplit(":", 1)[1]
        return values

    def refs(self) -> dict[str, str]:
        return {**self.tables, **self.queues}

    def seed(self, documents_logical_id: str = "DocumentsTable",
             documents: list[dict[str, Any]] | None = None) -> int:
        from boto3.dynamodb.types import TypeSerializer

        table = self.tables.get(documents_logical_id)
        if table is None:
            return 0
        serializer = TypeSerializer()
        ddb = self.client("dynamodb")
        items = SAMPLE_DOCUMENTS if documents is None else documents
        for item in items:
            ddb.put_item(TableName=table, Item={k: serializer.serialize(v) for k, v in item.items()})
        return len(items)

    def close(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
