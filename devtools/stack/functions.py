"""The template's functions, run in this process like separate Lambda invocations.

`LocalFunctions` imports each function's handler (`CodeUri` + `Handler`), builds a Lambda
context per invocation and runs the handler on a worker thread (handlers are sync and run
their own event loop to send), so the gateway's event loop never blocks. An exception is
reported to the caller (the gateway answers like API Gateway does), never raised through.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from devtools.stack.events import ACCOUNT, REGION
from devtools.stack.shared_patch import SharedPatch

log = logging.getLogger("devtools.stack")

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """What Powertools' `inject_lambda_context` (and most code) reads from the context."""

    def __init__(self, function_name: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Outcome:
    """One invocation: the handler's result, or the exception it raised."""

    function: str
    result: Any = None
    error: BaseException | None = None
    duration_ms: float = 0.0
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LocalFunction:
    logical_id: str
    module: str
    attribute: str
    memory_mb: int
    timeout_s: float
    events: dict[str, Any]
    handler: Handler | None = None
    import_error: str | None = None


class LocalFunctions:
    """The template's functions by logical id; `invoke()` runs one on the worker pool."""

    def __init__(self, specs: Mapping[str, Mapping[str, Any]], *, max_workers: int = 32) -> None:
        self.functions: dict[str, LocalFunction] = {}
        for logical_id, spec in specs.items():
            self.functions[logical_id] = LocalFunction(
                logical_id=logical_id,
                module=spec.get("Module") or "",
                attribute=spec.get("HandlerFunction") or "handler",
                memory_mb=int(spec.get("MemorySize") or 128),
                timeout_s=float(spec.get("Timeout") or 3),
                events=dict(spec.get("Events") or {}),
            )
        self._overrides: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="lambda")
        self.invocations = 0

    def load(self) -> None:
        """Import every handler; a function whose code is missing is reported, not fatal."""
        _WIDE_POOL.acquire(self._executor._max_workers)
        for fn in self.functions.values():
            try:
                module = importlib.import_module(fn.module)
                fn.handler = getattr(module, fn.attribute)
            except Exception as exc:  # noqa: BLE001 - reported in the banner and on invoke
                fn.import_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: cannot load %s.%s (%s); its routes and triggers answer errors",
                            fn.logical_id, fn.module, fn.attribute, fn.import_error)

    def available(self, logical_id: str) -> bool:
        fn = self.functions.get(logical_id)
        return fn is not None and (fn.handler is not None or logical_id in self._overrides)

    @contextlib.contextmanager
    def override(self, logical_id: str, handler: Handler) -> Iterator[None]:
        """Run `handler` instead of the function's own for the duration (fault injection in tests)."""
        if logical_id not in self.functions:
            raise KeyError(logical_id)
        with self._lock:
            self._overrides[logical_id] = handler
        try:
            yield
        finally:
            with self._lock:
                self._overrides.pop(logical_id, None)

    def invoke_sync(self, logical_id: str, event: dict[str, Any]) -> Outcome:
        fn = self.functions[logical_id]
        handler = self._overrides.get(logical_id) or fn.handler
        context = LambdaContext(logical_id, fn.memory_mb, fn.timeout_s)
        outcome = Outcome(logical_id, request_id=context.aws_request_id)
        self.invocations += 1
        start = time.perf_counter()
        try:
            if handler is None:
                raise RuntimeError(f"{logical_id} is not loaded: {fn.import_error}")
            outcome.result = handler(event, context)
        except BaseException as exc:  # noqa: BLE001 - a Lambda error, reported like AWS does
            outcome.error = exc
        outcome.duration_ms = (time.perf_counter() - start) * 1000
        if outcome.duration_ms > fn.timeout_s * 1000:
            log.warning("%s ran %.0f ms, past its %.0f s timeout (Lambda would have stopped it)",
                        logical_id, outcome.duration_ms, fn.timeout_s)
        return outcome

    async def invoke(self, logical_id: str, event: dict[str, Any]) -> Outcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.invoke_sync, logical_id, event)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        _WIDE_POOL.release()


def _widen_pool(workers: int) -> Any:
    """botocore's connection pools, widened to what one process of functions runs at once.

    In Lambda a container runs one invocation at a time, so botocore's default (10) and the
    runtime's own (`realtime.groups.READ_THREADS` + 8, for a broadcast's shard reads) are
    plenty. Here every function shares one process, hence one cached DynamoDB client for the
    workers, the queue pollers and the group-read threads of every invocation at once. A
    pool smaller than that discards and reopens connections ("Connection pool is full"): a
    new TCP connection and a new moto request thread per request: under the scale
    benchmark's 400 clients, 19% of the stack's sampled thread stacks (py-spy, every
    thread) were opening one. So every
    client session built while the stack runs gets at least `workers` + READ_THREADS + 32,
    whatever its Config asked for."""
    from botocore.config import Config
    from botocore.httpsession import URLLib3Session

    from realtime.groups import READ_THREADS

    floor = workers + READ_THREADS + 32
    saved_default = Config.OPTION_DEFAULTS["max_pool_connections"]
    saved_init = URLLib3Session.__init__

    def init(self: Any, *args: Any, max_pool_connections: int = 10, **kwargs: Any) -> None:
        saved_init(self, *args, max_pool_connections=max(max_pool_connections, floor), **kwargs)

    Config.OPTION_DEFAULTS["max_pool_connections"] = max(floor, saved_default)
    URLLib3Session.__init__ = init  # type: ignore[method-assign]
    return saved_default, saved_init


def _narrow_pool(saved: Any) -> None:
    from botocore.config import Config
    from botocore.httpsession import URLLib3Session

    Config.OPTION_DEFAULTS["max_pool_connections"], URLLib3Session.__init__ = saved


_WIDE_POOL = SharedPatch(_widen_pool, _narrow_pool)
