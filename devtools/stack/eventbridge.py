"""EventBridge in the local stack: the template's buses and rules, and their Lambda targets.

moto's EventBridge keeps buses and rules and answers `PutEvents`, but cannot invoke a
Lambda target (that would need Docker). So the stack creates the template's buses and
rules in moto (`aws events list-rules` shows them), without targets, and the embedded
moto server hands every `PutEvents` it accepted to `EventRouter.accept`. The router
matches each entry against the rules of its bus (moto's own pattern matcher), and runs
the targets on its own thread with the semantics AWS gives them:

- delivery to the function: when it cannot be invoked (not loaded), retried up to the
  target's `RetryPolicy.MaximumRetryAttempts` within `MaximumEventAgeInSeconds`, then the
  event goes to the target's `DeadLetterConfig` queue with EventBridge's message
  attributes (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, `ERROR_MESSAGE`);
- the invocation is asynchronous: a function error is retried up to the function's
  `EventInvokeConfig.MaximumRetryAttempts` (Lambda's default: 2), then its
  `DestinationConfig.OnFailure` queue gets Lambda's invocation record.

Delays between attempts are `retry_delay` times the attempt (AWS waits minutes).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from devtools import template as tpl
from devtools.stack import events
from devtools.stack.functions import LocalFunctions, Outcome

log = logging.getLogger("devtools.stack")

RULE_TYPE = "AWS::Events::Rule"
BUS_TYPE = "AWS::Events::EventBus"
DEFAULT_TARGET_RETRIES = 185  # EventBridge's defaults
DEFAULT_TARGET_AGE = 86400
DEFAULT_ASYNC_RETRIES = 2  # Lambda's
DEFAULT_ASYNC_AGE = 21600


@dataclass
class Target:
    id: str
    arn: str
    function: str | None  # the logical id of a template function, else None
    retries: int
    max_age: int
    dead_letter_arn: str | None


@dataclass
class Rule:
    logical_id: str
    name: str
    bus: str
    arn: str
    pattern: Any  # moto's EventPattern
    targets: list[Target] = field(default_factory=list)

    def matches(self, bus: str, event: Mapping[str, Any]) -> bool:
        return bus == self.bus and bool(self.pattern.matches_event(dict(event)))


def bus_name(value: str | None) -> str:
    """A `PutEvents` entry's `EventBusName` (a name or an ARN; absent: `default`) as a name."""
    if not value:
        return "default"
    return value.rsplit("event-bus/", 1)[1] if value.startswith("arn:") else value


def buses(template: Mapping[str, Any], refs: Mapping[str, Any], conditions: Mapping[str, bool]) -> list[str]:
    """The names of the buses the template creates (their conditions evaluated)."""
    names = []
    for logical_id, resource in tpl.resources_of_type(template, BUS_TYPE).items():
        condition = resource.get("Condition")
        if condition and not conditions.get(condition, True):
            continue
        names.append(str(tpl.resolve((resource.get("Properties") or {})["Name"], refs, {}, conditions)))
    return names


def rules(template: Mapping[str, Any], refs: Mapping[str, Any], getatt: Mapping[str, Any],
          conditions: Mapping[str, bool], function_arns: Mapping[str, str]) -> list[Rule]:
    """The template's event-pattern rules, resolved to local names (schedules are `Scheduler`'s)."""
    from moto.events.models import EventPattern

    found = []
    for logical_id, resource in tpl.resources_of_type(template, RULE_TYPE).items():
        condition = resource.get("Condition")
        if condition and not conditions.get(condition, True):
            continue
        props = tpl.resolve(resource.get("Properties") or {}, refs, getatt, conditions)
        if "EventPattern" not in props or str(props.get("State", "ENABLED")) != "ENABLED":
            continue
        bus = bus_name(props.get("EventBusName"))
        name = props.get("Name") or f"{refs.get('AWS::StackName', 'realtime')}-{logical_id}"
        rule = Rule(logical_id, name, bus, f"arn:aws:events:{events.REGION}:{events.ACCOUNT}:rule/{bus}/{name}",
                    EventPattern.load(json.dumps(props["EventPattern"])))
        for target in props.get("Targets") or []:
            policy = target.get("RetryPolicy") or {}
            rule.targets.append(Target(
                id=str(target["Id"]), arn=str(target["Arn"]), function=function_arns.get(str(target["Arn"])),
                retries=int(policy.get("MaximumRetryAttempts", DEFAULT_TARGET_RETRIES)),
                max_age=int(policy.get("MaximumEventAgeInSeconds", DEFAULT_TARGET_AGE)),
                dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn")))
        found.append(rule)
    return found


@dataclass
class Delivery:
    rule: Rule
    target: Target
    event: dict[str, Any]
    received: float


class EventRouter:
    """Takes `PutEvents` entries moto accepted and runs the matching rules' Lambda targets."""

    name = "eventbridge"

    def __init__(self, functions: LocalFunctions, rules: list[Rule], *, sqs_client: Any,
                 queue_urls: Mapping[str, str], invoke_configs: Mapping[str, Mapping[str, Any]],
                 retry_delay: float = 0.2) -> None:
        self.functions = functions
        self.rules = rules
        self.sqs = sqs_client
        self.queue_urls = dict(queue_urls)  # queue ARN -> URL
        self.invoke_configs = dict(invoke_configs)  # function logical id -> EventInvokeConfig
        self.retry_delay = retry_delay
        self.logical_id = "EventBridge"
        self._queue: queue.Queue[Delivery] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = 0  # accepted, not yet delivered or dead-lettered
        self._pending_lock = threading.Condition()
        self.invocations = 0
        self.dead_lettered: list[dict[str, Any]] = []

    # ---- what the moto server calls -------------------------------------------------------

    def accept(self, entries: list[Mapping[str, Any]], results: list[Mapping[str, Any]]) -> None:
        """Entries of one `PutEvents` request and moto's answer for each (`EventId` when accepted)."""
        now = time.time()
        for entry, result in zip(entries, results):
            if "EventId" not in result:
                continue
            try:
                detail = json.loads(entry.get("Detail") or "{}")
            except ValueError:
                continue  # EventBridge refuses such an entry; moto has answered already
            event = events.bus_event(detail_type=str(entry.get("DetailType", "")), detail=detail,
                                     source=str(entry.get("Source", "")), event_id=str(result["EventId"]),
                                     resources=list(entry.get("Resources") or []))
            bus = bus_name(entry.get("EventBusName"))
            for rule in self.rules:
                if rule.matches(bus, event):
                    for target in rule.targets:
                        with self._pending_lock:
                            self._pending += 1
                        self._queue.put(Delivery(rule, target, event, now))

    # ---- the worker -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="eventbridge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every accepted event has been delivered or dead-lettered (tests)."""
        with self._pending_lock:
            return self._pending_lock.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._deliver(delivery)
            except Exception:  # noqa: BLE001 - a queue hiccup must not stop the bus
                log.exception("[eventbridge] delivering %s", delivery.event.get("id"))
            finally:
                with self._pending_lock:
                    self._pending -= 1
                    self._pending_lock.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        target = delivery.target
        for attempt in range(target.retries + 1):
            if target.function is not None and self.functions.available(target.function):
                self._invoke_async(delivery)
                return
            if time.time() - delivery.received > target.max_age or attempt == target.retries:
                break
            if self._stop.wait(self.retry_delay * (attempt + 1)):
                return
        log.warning("[eventbridge] rule %s: target %s cannot be invoked; event %s dead-lettered",
                    delivery.rule.logical_id, target.id, delivery.event["id"])
        self._dead_letter(target.dead_letter_arn, json.dumps(delivery.event), {
            "RULE_ARN": delivery.rule.arn, "TARGET_ARN": target.arn, "ERROR_CODE": "ResourceNotFoundException",
            "ERROR_MESSAGE": f"{target.function or target.arn} is not available"})

    def _invoke_async(self, delivery: Delivery) -> None:
        """Lambda's asynchronous invocation: function errors retried, then the on-failure destination."""
        function = delivery.target.function
        assert function is not None
        config = self.invoke_configs.get(function) or {}
        retries = int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
        max_age = int(config.get("MaximumEventAgeInSeconds", DEFAULT_ASYNC_AGE))
        outcome: Outcome | None = None
        condition = "RetriesExhausted"
        for attempt in range(retries + 1):
            self.invocations += 1
            outcome = self.functions.invoke_sync(function, delivery.event)
            if outcome.ok:
                log.info("[%s eventbridge] event %s in %.0f ms", function, delivery.event["id"], outcome.duration_ms)
                return
            log.error("[%s eventbridge] event %s failed: %s: %s", function, delivery.event["id"],
                      type(outcome.error).__name__, outcome.error)
            if time.time() - delivery.received > max_age:
                condition = "EventAgeExceeded"
                break
            if attempt < retries and self._stop.wait(self.retry_delay * (attempt + 1)):
                return
        assert outcome is not None and outcome.error is not None
        destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        record = {
            "version": "1.0",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "requestContext": {"requestId": outcome.request_id, "condition": condition,
                               "functionArn": f"arn:aws:lambda:{events.REGION}:{events.ACCOUNT}:function:{function}:$LATEST",
                               "approximateInvokeCount": attempt + 1},
            "requestPayload": delivery.event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": str(outcome.error), "errorType": type(outcome.error).__name__},
        }
        self._dead_letter(destination, json.dumps(record), {})

    def _dead_letter(self, queue_arn: str | None, body: str, attributes: Mapping[str, str]) -> None:
        url = self.queue_urls.get(queue_arn or "")
        if url is None:
            log.error("[eventbridge] no dead-letter queue for %s: the event is lost", queue_arn)
            return
        self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()})
        self.dead_lettered.append({"queue": queue_arn, "body": body})
