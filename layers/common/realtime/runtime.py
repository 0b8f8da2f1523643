"""Builds the application once per Lambda container and shares Powertools' utilities.

This is the only module that creates AWS clients: from botocore's standard chain, so
`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` point everything at a local endpoint
without any variable of our own. Everything below it takes its clients as arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from realtime.config import Settings

if TYPE_CHECKING:
    from realtime.application import Application
    from realtime.auth import TokenVerifier
    from realtime.engine import Engine
    from realtime.events import APIGatewayWebSocketEvent
    from realtime.history import History
    from realtime.sender import Sender

# The engine (with PynamoDB, the application, Powertools' event data classes) and boto3 are
# imported by the functions below on first use, not at init: about 0.35x of the baseline
# (100 ms of 265) off Lambda's init phase (bench coldstart). Init keeps Logger, Metrics, Tracer.

logger = Logger()
metrics = Metrics()
# Patch botocore only: by default X-Ray patches every library it can import (requests,
# sqlite3, httpx...), which costs cold start for libraries these functions never call.
tracer = Tracer(patch_modules=("botocore",))
# copy_config_to_registered_loggers configures only the top-level loggers that exist already;
# the engine's modules (loggers `realtime.<module>`) are imported later, so create their parent.
logging.getLogger("realtime")
copy_config_to_registered_loggers(source_logger=logger, include={"realtime", "monitor"})

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler(handler: Handler) -> Handler:
    """Powertools around a Lambda handler: structured logs carrying the Lambda context (and
    cleared between invocations, so no key leaks into the next one), X-Ray, EMF metrics."""
    traced = tracer.capture_lambda_handler(metrics.log_metrics(handler))
    return logger.inject_lambda_context(log_event=False, clear_state=True)(traced)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=1)
def _clients() -> dict[str, Any]:
    """One boto3 session for everything, so the clients and the sender share botocore's
    loaders and credential resolution instead of each paying for their own."""
    import boto3  # imported on first use: about 40 ms of init (bench coldstart)
    from botocore.config import Config

    from realtime.groups import READ_THREADS

    config = settings()
    session = boto3.Session(region_name=config.region)
    # A broadcast reads the shards of its group at once (`Groups.first_pages`): room for
    # those reads and the handler's own, instead of botocore's default pool of 10.
    pool = Config(max_pool_connections=READ_THREADS + 8)
    return {"session": session, "dynamodb": session.client("dynamodb", config=pool)}


@lru_cache(maxsize=1)
def _sqs() -> Any:
    """Built only when a broadcast first outgrows a page: most invocations never need it."""
    return _clients()["session"].client("sqs")


@lru_cache(maxsize=1)
def verifier() -> TokenVerifier:
    from realtime.auth import TokenVerifier

    config = settings()
    secrets = None
    if config.jwt_secret_arn and not config.jwt_secret:
        # botocore's defaults (60 s timeouts, retries) could outlast API Gateway's 29 s.
        from botocore.config import Config

        quick = Config(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 2, "mode": "standard"})
        secrets = _clients()["session"].client("secretsmanager", config=quick)
    return TokenVerifier.from_settings(config, secrets)


_apps: list[Engine] = []  # what app() built, for reset(): lru_cache cannot list what it holds


@lru_cache(maxsize=4)
def app(endpoint: str) -> Engine:
    """The application for one management endpoint (one per container in practice)."""
    from realtime.sender import Sender
    from realtime.telemetry import PowertoolsTelemetry

    clients = _clients()
    built = build(settings(), dynamodb=clients["dynamodb"], verifier=verifier,
                  sender=Sender.from_session(endpoint, clients["session"]._session,
                                             concurrency=settings().send_concurrency),
                  sqs=_sqs, telemetry=PowertoolsTelemetry(metrics))
    _apps.append(built)
    return built


def build(config: Settings, *, dynamodb: Any, verifier: TokenVerifier | Callable[[], TokenVerifier], sender: Sender,
          sqs: Callable[[], Any] | None = None, telemetry: Any = None,
          application: Application | None = None) -> Engine:
    """Wire the engine and the application (`REALTIME_APP`, unless given) from explicit parts;
    `sqs` makes the queues' client when first needed."""
    from realtime.announcing import AnnounceQueue, Coalescer
    from realtime.application import load as load_application
    from realtime.broadcast import Broadcaster, FanoutQueue
    from realtime.connections import Connections, FrameRate
    from realtime.counter import UserCounter
    from realtime.engine import Engine
    from realtime.groups import Groups
    from realtime.presence import Presence
    from realtime.services import Services
    from realtime.telemetry import CountingTelemetry

    application = application or load_application(config.application, config.environment)
    table = config.connections_table
    groups = Groups(dynamodb, table)
    fanout = FanoutQueue(sqs, config.fanout_queue_url) if sqs is not None and config.fanout_queue_url else None
    announce = AnnounceQueue(sqs, config.announce_queue_url) if sqs is not None and config.announce_queue_url else None
    rooms = application.rooms
    services = Services(
        settings=config,
        connections=Connections(dynamodb, table, presence_grace=config.presence_ttl_seconds,
                                frame_rate=FrameRate(config.frame_rate, config.frame_burst)),
        groups=groups,
        broadcaster=Broadcaster(groups, sender, page_size=config.fanout_page_size, queue=fanout),
        sender=sender,
        counter=UserCounter(dynamodb, table, max_connections=config.max_connections_per_user),
        coalescer=Coalescer(dynamodb, table, queue=announce, interval=config.broadcast_interval_ms / 1000,
                            budget=config.group_post_budget),
        presence=Presence(dynamodb, table, ttl_seconds=config.presence_ttl_seconds, states=rooms.states,
                          summary_names=config.list_names) if rooms is not None else None,
        telemetry=telemetry or CountingTelemetry(),
        history=_history(config, dynamodb, application),
    )
    services.coalescer.clock = lambda: services.clock()
    return Engine(services, application, verifier=verifier, sqs=sqs)


def _history(config: Settings, dynamodb: Any, application: Application) -> History | None:
    keeping = sorted(s.name for s in application.streams.values() if s.history)
    if not keeping:
        return None
    if not config.history_table:
        logger.warning("streams %s keep history but HISTORY_TABLE is not set: no catch-up (a `since` is "
                       "answered with a reset)", ", ".join(keeping))
        return None
    from realtime.history import History

    return History(dynamodb, config.history_table, hours=config.history_hours, limit=config.replay_limit)


def websocket(event: dict[str, Any]) -> tuple[APIGatewayWebSocketEvent, Engine]:
    """What every WebSocket handler does first: tag the logs, log the event (redacted), find the app."""
    # imported on first use: Powertools' data_classes package, about 15 ms of init (-X importtime)
    from realtime.events import APIGatewayWebSocketEvent, management_endpoint, redacted

    ws = APIGatewayWebSocketEvent(event)
    request = ws.request_context
    logger.append_keys(connection_id=request.connection_id, route=request.route_key)
    logger.debug("event", extra={"event": redacted(event)})  # never the raw event: it carries the token
    return ws, app(management_endpoint(settings().websocket_endpoint, ws))


def reset() -> None:
    """Close what this module built and forget it, so the next call reads the environment
    afresh. Lambda never needs this; the local stack and the tests, which change the
    environment within one process, do."""
    while _apps:
        _apps.pop().sender.close()
    if _sqs.cache_info().currsize:
        _sqs().close()
    if _clients.cache_info().currsize:
        _clients()["dynamodb"].close()
    for cached in (app, verifier, _sqs, _clients, settings):
        cached.cache_clear()
