"""Fault injection on a botocore client, through its event hooks.

`fail(client, "TransactWriteItems", "ThrottlingException", times=3)` makes the next three
TransactWriteItems calls raise that `ClientError` before they are sent (what the caller
sees once botocore's own retries are exhausted); `when=` narrows which calls fail.
`throttle_on_the_wire(...)` instead answers HTTP 400 throttling responses from the
"server", so botocore's retry handler sees them and retries (transient throttling).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

MESSAGES = {
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput for the table was exceeded.",
    "ThrottlingException": "Rate of requests exceeds the allowed throughput.",
    "RequestLimitExceeded": "Throughput exceeds the current throughput limit for your account.",
    "ConditionalCheckFailedException": "The conditional request failed",
    "TransactionCanceledException": "Transaction cancelled, please refer cancellation reasons for specific reasons",
    "InternalServerError": "Internal server error",
}


def client_error(operation: str, code: str, reasons: list[str | None] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": MESSAGES.get(code, code)},
                                "ResponseMetadata": {"HTTPStatusCode": 400}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r or "None"} for r in reasons]
    return ClientError(response, operation)


class Fault:
    """A registered fault; `.hits` counts the calls it failed."""

    def __init__(self) -> None:
        self.hits = 0
        self.calls = 0


@contextlib.contextmanager
def fail(client: Any, operation: str, code: str, *, times: int | None = 1,
         reasons: list[str | None] | None = None, when: Callable[[dict[str, Any]], bool] | None = None,
         raise_: Callable[[], BaseException] | None = None) -> Iterator[Fault]:
    """Make `operation` calls on `client` fail with `code` (`times=None`: every matching call)."""
    fault = Fault()
    modeled = code in ("ConditionalCheckFailedException", "TransactionCanceledException")

    def hook(params: dict[str, Any], **_: Any) -> None:
        fault.calls += 1
        if when is not None and not when(params):
            return
        if times is not None and fault.hits >= times:
            return
        fault.hits += 1
        if raise_ is not None:
            raise raise_()
        if modeled:  # the client's own exception class, as botocore raises it
            error = client_error(operation, code, reasons)
            raise getattr(client.exceptions, code)(error.response, operation)
        raise client_error(operation, code, reasons)

    event = f"before-parameter-build.dynamodb.{operation}"  # params are the API's, not yet serialised
    client.meta.events.register(event, hook)
    try:
        yield fault
    finally:
        client.meta.events.unregister(event, hook)


@contextlib.contextmanager
def throttle_on_the_wire(client: Any, operation: str, *, times: int) -> Iterator[Fault]:
    """The next `times` requests of `operation` are answered 400 ThrottlingException by "the server"."""
    fault = Fault()

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if not target.endswith("." + operation):
            return None
        fault.calls += 1
        if fault.hits >= times:
            return None
        fault.hits += 1
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                           "message": MESSAGES["ThrottlingException"]}).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(body))

    client.meta.events.register_first("before-send.dynamodb", hook)
    try:
        yield fault
    finally:
        client.meta.events.unregister("before-send.dynamodb", hook)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body


class LambdaDied(BaseException):
    """The function was killed mid-invocation (timeout, out of memory): not an `Exception`,
    so nothing inside the handler catches it and Lambda retries the whole batch."""
