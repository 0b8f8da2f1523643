"""`Stack`: the whole backend in this process, from `template.yaml`.

    with Stack(host="127.0.0.1", ws_port=0, web_port=0, aws_port=0) as stack:
        stack.ws_url, stack.aws_endpoint, stack.web_url, stack.token("alice", "Alice")

Port 0 picks a free port. The functions' environment is process-global (the handlers read
`os.environ` once per process and `realtime.runtime` caches one application), so only one
Stack may run per process at a time; `stop()` restores the environment and clears those
caches, so a later Stack in the same process starts fresh.

With `state_dir` (what `python -m devtools.stack` gives it: `.dev/`), the development
secret and the application's tables survive restarts (`state`, `persist`); without it
(tests), a Stack keeps nothing. A host beyond loopback needs `allow_remote=True`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from devtools import template as tpl
from devtools.stack import eventbridge, exposure, moto_streams, persist
from devtools.stack import web as webapp
from devtools.stack.aws import FAKE_CREDENTIALS, LocalAws, MotoServer
from devtools.stack.config import Limits
from devtools.stack.errors import StackError
from devtools.stack.events import ACCOUNT, REGION
from devtools.stack.functions import LocalFunctions
from devtools.stack.gateway import Gateway
from devtools.stack.signatures import SignatureCheck
from devtools.stack.state import StateDir
from devtools.stack.triggers import QueuePoller, Scheduler, StreamPoller, schedule_seconds
from devtools.stack.web_security import DemoOrigins

log = logging.getLogger("devtools.stack")

ROOT = tpl.ROOT
API_ID = "local0api1"


#: Pending connections a listening socket queues. Bursts of handshakes and of the
#: functions' @connections posts overflowed the default 128: the kernel then drops SYNs
#: and the client retries after 1 s, 3 s, 7 s..., which looked like a hung gateway.
BACKLOG = 2048


#: Posts in flight per function invocation. In Lambda each invocation has its own CPU and
#: API Gateway scales; here up to `workers` invocations share one process and one event
#: loop serves every post, so 128 each queued thousands of posts inside the gateway until
#: they timed out. (The functions' own default stays 128.)
LOCAL_SEND_CONCURRENCY = 16


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StackError(f"cannot listen on {host}:{port}: {exc.strerror} (set another port in the environment)") from exc
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


#: Bind addresses that mean "every interface".
ANY_INTERFACE = ("0.0.0.0", "::", "")


def _url_host(host: str) -> str:
    if host in ANY_INTERFACE:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Stack:
    _active: Stack | None = None
    _active_lock = threading.Lock()

    def __init__(
        self,
        host: str = "127.0.0.1",
        ws_port: int = 3001,
        web_port: int = 8000,
        aws_port: int = 5000,
        *,
        template: str | Path | Mapping[str, Any] | None = None,
        jwt_secret: str | None = None,
        stage: str | None = None,
        limits: Limits | None = None,
        sweep_interval: float | None = None,
        schedules: bool = True,
        stream_poll_interval: float = 0.1,
        queue_poll_interval: float = 0.1,
        retry_delay: float = 0.2,
        seed: bool = True,
        documents: list[dict[str, Any]] | None = None,
        name: str = "realtime",
        env: Mapping[str, str] | None = None,
        workers: int = 32,
        client_dir: str | Path | None = None,
        state_dir: str | Path | None = None,
        fresh: bool = False,
        persist_interval: float = 1.0,
        allow_remote: bool = False,
        allow_remote_tokens: bool = False,
    ) -> None:
        """`state_dir`: keep the secret and the tables there across restarts (None: keep nothing);
        `fresh`: ignore the saved tables (seed again). `allow_remote`: a host beyond loopback
        may be bound; `allow_remote_tokens`: `/dev/token` then still mints with `jwt_secret`."""
        self.host = host
        self._ports = {"ws": ws_port, "web": web_port, "aws": aws_port}
        self.template = template if isinstance(template, Mapping) else tpl.load_template(template)
        self.state = StateDir(state_dir) if state_dir is not None else None
        self.fresh = fresh
        self.persist_interval = persist_interval
        self.allow_remote = allow_remote
        self.allow_remote_tokens = allow_remote_tokens
        self.remote = not exposure.is_loopback(host)
        self.secret_given = bool(jwt_secret)
        self.secret_origin = "JWT_SECRET (environment)" if jwt_secret else "generated for this run"
        self.jwt_secret = jwt_secret or ("" if self.state else secrets.token_urlsafe(48))
        self.data_origin = "in memory only: a restart starts again from the sample documents"
        self.persister: persist.Persister | None = None
        routes = tpl.websocket_routes(self.template)
        self.routes: dict[str, str] = routes["routes"]
        self.route_selection: str | None = routes["route_selection_expression"]
        self.parameters = tpl.parameter_defaults(self.template)
        stage_raw = routes["stage_name"]
        self.stage = stage or (tpl.resolve(stage_raw, self.parameters) if stage_raw else "local")
        self.limits = limits or Limits()
        self.sweep_interval = sweep_interval
        self.schedules = schedules
        self.stream_poll_interval = stream_poll_interval
        self.queue_poll_interval = queue_poll_interval
        self.retry_delay = retry_delay
        self.seed_documents = seed
        self.documents = documents
        self.name = name
        self.extra_env = dict(env or {})
        self.workers = workers
        self.client_dir = Path(client_dir) if client_dir else ROOT / "client"
        self.specs = tpl.function_specs(self.template)
        self.functions = LocalFunctions(self.specs, max_workers=workers)
        self.event_rules: list[eventbridge.Rule] = []
        self.event_buses: list[str] = []
        self.env: dict[str, str] = {}
        self.triggers: list[Any] = []
        self.gateway: Gateway | None = None
        self.aws: LocalAws | None = None
        self.startup_seconds: float | None = None
        self._moto: MotoServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self._saved_env: dict[str, str | None] = {}
        self._added_paths: list[str] = []
        self._started = False
        self._stopped = False

    # ---------------------------------------------------------------- URLs

    @property
    def ws_port(self) -> int:
        return self._ports["ws"]

    @property
    def web_port(self) -> int:
        return self._ports["web"]

    @property
    def aws_port(self) -> int:
        return self._ports["aws"]

    @property
    def ws_url(self) -> str:
        return f"ws://{_url_host(self.host)}:{self.ws_port}"

    @property
    def ws_stage_url(self) -> str:
        return f"{self.ws_url}/{self.stage}"

    @property
    def management_endpoint(self) -> str:
        return f"http://{_url_host(self.host)}:{self.ws_port}"

    @property
    def web_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.web_port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{_url_host(self.host)}:{self.aws_port}"

    @property
    def tables(self) -> dict[str, str]:
        return dict(self.aws.tables) if self.aws else {}

    @property
    def queues(self) -> dict[str, str]:
        return dict(self.aws.queues) if self.aws else {}

    def url(self, token: str | None = None, *, stage: bool = False) -> str:
        """The WebSocket URL, with `?token=` when given."""
        base = self.ws_stage_url if stage else self.ws_url
        return f"{base}?token={token}" if token else base

    def token(self, user: str, name: str | None = None, lifetime: int = webapp.TOKEN_LIFETIME) -> str:
        return webapp.mint_token(self.jwt_secret, user, name, lifetime)

    def client(self, service: str) -> Any:
        """A boto3 client for the local endpoint (closed when the stack stops)."""
        assert self.aws is not None, "start the stack first"
        return self.aws.client(service)

    def config(self) -> dict[str, Any]:
        return {"websocket": self.ws_url, "stage": self.stage, "aws": self.aws_endpoint, "region": REGION,
                "eventBusName": self.event_bus_name, "alerts": f"{self.web_url}/dev/alerts",
                "phases": self.env.get("PHASES", "view,edit,review").split(","),
                "tokens": f"{self.web_url}/dev/token"}

    # ---------------------------------------------------------------- start

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stack:
        if self._started:
            raise StackError("a Stack starts once; make a new one")
        with Stack._active_lock:
            if Stack._active is not None:
                raise StackError("another Stack runs in this process (the handlers' environment is process-global)")
            Stack._active = self
        self._started = True
        began = time.perf_counter()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - began
        return self

    @property
    def token_refusal(self) -> str | None:
        """Why `/dev/token` does not mint (None: it does)."""
        if self.remote and self.secret_given and not self.allow_remote_tokens:
            return (f"this stack listens on {self.host} (beyond loopback) and signs with JWT_SECRET from the "
                    "environment, which may be valid in production: /dev/token is off. "
                    "Set DEV_ALLOW_REMOTE_TOKENS=1 to mint anyway.")
        return None

    def _start(self) -> None:
        if self.remote and not self.allow_remote:
            raise StackError(exposure.refusal(self.host))
        if self.state is not None:
            self.state.lock()
            if not self.secret_given:
                self.jwt_secret = self.state.secret()
                self.secret_origin = (f"{self.state.display(self.state.secret_file)} (generated once, reused "
                                      "across restarts: tokens stay valid; delete it for a new one)")
        ws_sock = _bind(self.host, self._ports["ws"])
        web_sock = _bind(self.host, self._ports["web"])
        self._ports["ws"] = ws_sock.getsockname()[1]
        self._ports["web"] = web_sock.getsockname()[1]
        try:
            self._moto = MotoServer(self.host, self._ports["aws"])
        except OSError as exc:
            ws_sock.close()
            web_sock.close()
            raise StackError(f"cannot listen on {self.host}:{self._ports['aws']}: {exc.strerror}") from exc
        self._ports["aws"] = self._moto.port
        self._moto.start()
        self._moto.reset()
        self.aws = LocalAws(self.aws_endpoint, self.template, self.name)
        self.aws.create()
        self._load_tables()

        self.env = self._environment()
        self._apply_environment(self.env)
        self._add_code_paths()
        _reset_runtime()
        self.functions.load()
        self._create_event_rules()

        self.gateway = Gateway(self.functions, routes=self.routes, route_selection=self.route_selection,
                               stage=self.stage, api_id=API_ID, limits=self.limits,
                               domain_name=f"{_url_host(self.host)}:{self.ws_port}",
                               signatures=SignatureCheck(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                                         FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]))
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="stack-loop", daemon=True)
        self._loop_thread.start()
        origins = DemoOrigins.for_server({_url_host(self.host)}, self.web_port,
                                         any_interface=self.host in ANY_INTERFACE)
        web_app = webapp.make_app(client_dir=self.client_dir, secret=self.jwt_secret, config=self.config,
                                  origins=origins, token_refusal=self.token_refusal,
                                  documents=lambda: (self.client("dynamodb"), self.tables["DocumentsTable"]),
                                  alerts=lambda: (self.client("events"), self.event_bus_name))
        self._call(self._serve([(self.gateway.app, ws_sock), (web_app, web_sock)]))

        self._make_triggers()
        for trigger in self.triggers:
            trigger.start()
        if self.persister is not None:
            self.persister.start()

    def _load_tables(self) -> None:
        """Number the streams past anything handed out before, then restore the saved tables
        (no stream records) or, on a first or fresh start, seed the sample documents."""
        assert self.aws is not None and self._moto is not None
        saved = None
        if self.state is not None and not self.fresh:
            saved = persist.read(self.state.tables_file)
        floors = saved["streams"] if saved else {}
        for lid, arn in self.aws.table_arns.items():
            moto_streams.start_numbering(arn, floors.get(lid, 0))
        if saved is not None:
            count = persist.restore(self.aws.client("dynamodb"), self.aws.tables, self.aws.table_arns,
                                    saved["tables"])
            self.data_origin = (f"restored {count} item(s) from {self.state.display(self.state.tables_file)}"
                                " (saved as they change)")
        elif self.seed_documents:
            count = self.aws.seed(documents=self.documents)
            self.data_origin = f"{count} sample document(s) seeded"
        else:
            self.data_origin = "empty tables (DEV_SEED=0)"
        if self.state is None:
            self.data_origin += "; in memory only: a restart starts again"
            return
        if saved is None:
            self.data_origin += " (a fresh start: DEV_FRESH=1)" if self.fresh else " (first start)"
            self.data_origin += f"; saved to {self.state.display(self.state.tables_file)} as they change"
        self.persister = persist.Persister(self.state.tables_file, client=self.aws.client("dynamodb"),
                                           tables=self.aws.tables, table_arns=self.aws.table_arns,
                                           writes=lambda: self._moto.writes if self._moto else 0,
                                           interval=self.persist_interval)
        self.persister.save(force=True)

    async def _serve(self, apps: list[tuple[web.Application, socket.socket]]) -> None:
        for app, sock in apps:
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
            await runner.setup()
            self._runners.append(runner)
            await web.SockSite(runner, sock, backlog=BACKLOG).start()  # aiohttp listens again
        assert self.gateway is not None
        self.gateway.start_watchdog()

    def _call(self, coro: Any, timeout: float | None = 30) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _intrinsics(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, bool]]:
        """What `Ref`, `Fn::GetAtt` and conditions mean here: local names, ARNs and parameters."""
        assert self.aws is not None
        refs: dict[str, Any] = dict(self.parameters)
        refs.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                     "AWS::StackName": self.name, "AWS::URLSuffix": "amazonaws.com",
                     "AWS::NoValue": None})
        refs.update(self.aws.refs())
        for lid, resource in tpl.resources_of_type(self.template, eventbridge.BUS_TYPE).items():
            refs[lid] = tpl.resolve((resource.get("Properties") or {})["Name"], refs)  # a bus's Ref is its name
        for lid, resource in (self.template.get("Resources") or {}).items():
            refs.setdefault(lid, API_ID if resource.get("Type", "").endswith("WebSocketApi") else f"{self.name}-{lid}")
        getatt = self.aws.getatt()
        for lid in self.specs:
            getatt.setdefault(f"{lid}.Arn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{lid}")
        return refs, getatt, tpl.evaluate_conditions(self.template, refs)

    def _environment(self) -> dict[str, str]:
        """The functions' environment: the template's, intrinsics resolved to local values."""
        refs, getatt, conditions = self._intrinsics()
        env: dict[str, str] = {}
        for lid, spec in self.specs.items():
            for key, raw in spec["Environment"].items():
                try:
                    value = tpl.resolve(raw, refs, getatt, conditions)
                except (KeyError, ValueError) as exc:
                    log.warning("%s: cannot resolve %s (%s); set to ''", lid, key, exc)
                    value = ""
                value = "" if value is None else str(value)
                if key in env and env[key] != value:
                    log.warning("%s=%r differs between functions; all share one process, using %r", key, value, env[key])
                    continue
                env[key] = value
        env.update({
            "WEBSOCKET_ENDPOINT": self.management_endpoint,
            "JWT_SECRET": self.jwt_secret,
            "JWT_SECRET_ARN": "",
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.aws_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.aws_endpoint,
            "AWS_ENDPOINT_URL_SQS": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": None,
            "AWS_PROFILE": None,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_DEV": os.environ.get("POWERTOOLS_DEV", "1"),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
            "SEND_CONCURRENCY": os.environ.get("SEND_CONCURRENCY") or str(LOCAL_SEND_CONCURRENCY),
        })
        env.update(self.extra_env)
        return env

    def _apply_environment(self, env: Mapping[str, str | None]) -> None:
        for key, value in env.items():
            if key not in self._saved_env:
                self._saved_env[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _add_code_paths(self) -> None:
        """The repository root (for `functions.*`) and each layer's ContentUri (for `realtime`)."""
        paths = [str(ROOT)]
        for resource in tpl.resources_of_type(self.template, "AWS::Serverless::LayerVersion").values():
            content = (resource.get("Properties") or {}).get("ContentUri")
            if isinstance(content, str):
                paths.append(str((ROOT / content).resolve()))
        for path in paths:
            if path not in sys.path:
                sys.path.insert(0, path)
                self._added_paths.append(path)

    def _create_event_rules(self) -> None:
        """The template's buses and event-pattern rules, in moto and for the `EventRouter`."""
        assert self.aws is not None
        refs, getatt, conditions = self._intrinsics()
        functions = {getatt[f"{lid}.Arn"]: lid for lid in self.specs}
        self.event_rules = eventbridge.rules(self.template, refs, getatt, conditions, functions)
        self.event_buses = eventbridge.buses(self.template, refs, conditions)
        self.aws.create_event_rules(self.event_buses, self.event_rules)

    @property
    def event_bus_name(self) -> str:
        """Where `realtime.publish` events go: the bus of the rule that targets a function."""
        for rule in self.event_rules:
            if any(t.function for t in rule.targets):
                return rule.bus
        return "default"

    def _make_triggers(self) -> None:
        assert self.aws is not None
        if self.event_rules and self._moto is not None:
            refs, getatt, conditions = self._intrinsics()
            router = eventbridge.EventRouter(
                self.functions, self.event_rules, sqs_client=self.aws.client("sqs"),
                queue_urls={arn: self.aws.queues[lid] for lid, arn in self.aws.queue_arns.items()},
                invoke_configs={lid: tpl.resolve(spec["Properties"].get("EventInvokeConfig") or {}, refs, getatt,
                                                 conditions) for lid, spec in self.specs.items()},
                retry_delay=self.retry_delay)
            self._moto.on_put_events(router.accept)
            self.triggers.append(router)
        getatt = self.aws.getatt()
        arn_to_url = {arn: self.aws.queues[lid] for lid, arn in self.aws.queue_arns.items()}
        for lid, spec in self.specs.items():
            for event_name, event in spec["Events"].items():
                kind = event.get("Type")
                props = event.get("Properties") or {}
                if not self.functions.available(lid):
                    log.warning("%s: not loaded, its %s trigger %s is off", lid, kind, event_name)
                    continue
                try:
                    props = tpl.resolve(props, dict(self.parameters), getatt)
                except (KeyError, ValueError) as exc:
                    log.warning("%s: trigger %s not resolvable (%s); off", lid, event_name, exc)
                    continue
                if kind == "DynamoDB":
                    destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
                    poller = StreamPoller(self.functions, lid, props, stream_arn=props["Stream"],
                                          streams_client=self.aws.client("dynamodbstreams"),
                                          sqs_client=self.aws.client("sqs"),
                                          on_failure_url=arn_to_url.get(destination) if destination else None,
                                          poll_interval=self.stream_poll_interval, retry_delay=self.retry_delay)
                    poller.prime()
                    self.triggers.append(poller)
                elif kind == "SQS":
                    queue_arn = props["Queue"]
                    self.triggers.append(QueuePoller(self.functions, lid, props, queue_url=arn_to_url[queue_arn],
                                                     queue_arn=queue_arn, sqs_client=self.aws.client("sqs"),
                                                     poll_interval=self.queue_poll_interval))
                elif kind == "Schedule":
                    if not self.schedules or str(props.get("Enabled", True)).lower() == "false":
                        continue
                    interval = self.sweep_interval or schedule_seconds(str(props.get("Schedule", "")))
                    if interval is None:
                        log.warning("%s: schedule %r not understood (rate(...) only); using 60 s", lid,
                                    props.get("Schedule"))
                        interval = 60.0
                    self.triggers.append(Scheduler(self.functions, lid, event_name, interval))
                else:
                    log.warning("%s: event type %s (%s) has no local trigger", lid, kind, event_name)

    def trigger(self, cls: type, logical_id: str | None = None) -> Any:
        """The running trigger of that class (and function), e.g. `stack.trigger(Scheduler)`."""
        for trig in self.triggers:
            if isinstance(trig, cls) and (logical_id is None or trig.logical_id == logical_id):
                return trig
        raise LookupError(f"no {cls.__name__} trigger running")

    # ---------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stop everything this stack started (idempotent): no thread or port is left behind."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        if self._moto is not None:
            self._moto.on_put_events(None)
        for trigger in self.triggers:
            trigger._stop.set()
        for trigger in self.triggers:
            trigger.stop()
        if self._loop is not None and self._loop.is_running():
            try:
                self._call(self._shutdown(), timeout=30)
            except Exception:  # noqa: BLE001
                log.exception("gateway shutdown")
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(10)
        if self._loop is not None and not self._loop.is_running():
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()
        self.functions.shutdown()
        _close_runtime()
        if self.persister is not None:
            try:
                self.persister.stop()  # after $disconnect ran: the last writes are in
            except Exception:  # noqa: BLE001 - stopping must go on; the previous save stays
                log.exception("saving the tables on stop")
        if self.aws is not None:
            self.aws.close()
        if self._moto is not None:
            self._moto.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        _reset_runtime()
        if self.state is not None:
            self.state.unlock()
        with Stack._active_lock:
            if Stack._active is self:
                Stack._active = None

    async def _shutdown(self) -> None:
        if self.gateway is not None:
            await self.gateway.shutdown()
        for runner in self._runners:
            await runner.cleanup()


def _runtime() -> Any:
    return sys.modules.get("realtime.runtime")


def _close_runtime() -> None:
    """Close what `realtime.runtime` built (senders' pools, boto3 clients) and forget it."""
    runtime = _runtime()
    if runtime is None:
        return
    try:
        runtime.reset()
    except Exception:  # noqa: BLE001 - best effort: the caches are cleared below anyway
        log.debug("closing the runtime's clients", exc_info=True)


def _reset_runtime() -> None:
    runtime = _runtime()
    if runtime is not None:
        runtime.reset()
