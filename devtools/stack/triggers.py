"""Event sources on the template's settings: DynamoDB stream, SQS queue, schedule.

Each runs on its own thread (boto3 is blocking) and invokes the function synchronously,
as Lambda's pollers do, with Lambda-shaped events:

- `StreamPoller`: reads every shard of the stream (`StartingPosition`), batches of
  `BatchSize`; on a function error retries up to `MaximumRetryAttempts` (-1: forever),
  halving the batch first when `BisectBatchOnFunctionError`; with
  `ReportBatchItemFailures` it resumes from the lowest failed `SequenceNumber` (an unknown
  or empty identifier fails the whole batch, as on AWS); records that exhaust their retries
  or are older than `MaximumRecordAgeInSeconds` go to the `OnFailure` destination (an SQS
  message in Lambda's `DDBStreamBatchInfo` shape), then the shard moves on.
- `QueuePoller`: batches of `BatchSize` (at most 10), up to `ScalingConfig.MaximumConcurrency`
  batches at once; deletes the messages the function did not report in `batchItemFailures`
  (all of them are kept when it raised: they come back after the visibility timeout and
  the queue's redrive policy applies).
- `Scheduler`: `rate(...)` expressions (or a fixed interval for tests) with an EventBridge
  `Scheduled Event`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from devtools.stack import events
from devtools.stack.functions import LocalFunctions, Outcome

log = logging.getLogger("devtools.stack")


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _failures(outcome: Outcome, known: set[str]) -> list[str] | None:
    """The reported item identifiers; None means "the whole batch failed"."""
    if not outcome.ok:
        return None
    result = outcome.result
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return []
    ids = []
    for item in result["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in known:
            return None
        ids.append(identifier)
    return ids


class _Worker:
    name = "trigger"

    def __init__(self, functions: LocalFunctions, logical_id: str) -> None:
        self.functions = functions
        self.logical_id = logical_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invocations = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_safely, name=f"{self.name}-{self.logical_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_safely(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
                return
            except Exception:  # noqa: BLE001 - an endpoint hiccup must not kill the poller
                if self._stop.is_set():
                    return
                log.exception("[%s %s] poller error; retrying", self.logical_id, self.name)
                self._stop.wait(1.0)

    def run(self) -> None:
        raise NotImplementedError

    def _invoke(self, event: dict[str, Any], what: str) -> Outcome:
        self.invocations += 1
        outcome = self.functions.invoke_sync(self.logical_id, event)
        tag = f"[{self.logical_id} {self.name}]"
        if outcome.ok:
            result = outcome.result
            failed = len(result.get("batchItemFailures") or []) if isinstance(result, dict) else 0
            log.info("%s %s in %.0f ms%s", tag, what, outcome.duration_ms,
                     f", {failed} reported failed" if failed else "")
        else:
            log.error("%s %s failed in %.0f ms: %s: %s", tag, what, outcome.duration_ms,
                      type(outcome.error).__name__, outcome.error, exc_info=outcome.error)
        return outcome


class StreamPoller(_Worker):
    name = "stream"

    def __init__(self, functions: LocalFunctions, logical_id: str, properties: Mapping[str, Any], *,
                 stream_arn: str, streams_client: Any, sqs_client: Any = None, on_failure_url: str | None = None,
                 poll_interval: float = 0.2, retry_delay: float = 0.2) -> None:
        super().__init__(functions, logical_id)
        self.stream_arn = stream_arn
        self.client = streams_client
        self.sqs = sqs_client
        self.on_failure_url = on_failure_url
        self.batch_size = int(properties.get("BatchSize") or 100)
        self.max_retries = int(properties.get("MaximumRetryAttempts", -1))
        self.max_age = int(properties.get("MaximumRecordAgeInSeconds", -1))
        self.bisect = _truthy(properties.get("BisectBatchOnFunctionError", False))
        self.partial = "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or [])
        self.starting_position = str(properties.get("StartingPosition") or "LATEST")
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.iterators: dict[str, str | None] = {}
        self.discarded: list[dict[str, Any]] = []

    def prime(self) -> None:
        """Take the starting iterators now (so writes after `Stack.start()` are seen)."""
        self._refresh_shards(self.starting_position)

    def _refresh_shards(self, position: str) -> None:
        shards = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=position)["ShardIterator"]

    def run(self) -> None:
        last_refresh = time.monotonic()
        while not self._stop.is_set():
            busy = False
            for shard_id, iterator in list(self.iterators.items()):
                if iterator is None or self._stop.is_set():
                    continue
                response = self.client.get_records(ShardIterator=iterator, Limit=self.batch_size)
                records = response.get("Records") or []
                if records:
                    busy = True
                    self._deliver(shard_id, [events.stream_record(r, self.stream_arn) for r in records])
                self.iterators[shard_id] = response.get("NextShardIterator")
            if time.monotonic() - last_refresh > 5:
                self._refresh_shards("TRIM_HORIZON")  # shards created since start: read them whole
                last_refresh = time.monotonic()
            if not busy:
                self._stop.wait(self.poll_interval)

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        work: deque[tuple[list[dict[str, Any]], int]] = deque([(records, 0)])
        while work and not self._stop.is_set():
            batch, attempts = work.popleft()
            if self.max_age >= 0:
                now = time.time()
                old = [r for r in batch if now - float(r["dynamodb"].get("ApproximateCreationDateTime") or now) > self.max_age]
                if old:
                    self._give_up(shard_id, old, attempts, "RecordAgeExceeded")
                    batch = [r for r in batch if r not in old]
                    if not batch:
                        continue
            what = f"{len(batch)} record(s) from {shard_id}" + (f" (retry {attempts})" if attempts else "")
            outcome = self._invoke({"Records": batch}, what)
            sequence = {r["dynamodb"]["SequenceNumber"]: r for r in batch}
            failed_ids = _failures(outcome, set(sequence)) if self.partial or not outcome.ok else []
            if failed_ids == []:
                continue
            if failed_ids is None:
                failed = batch
            else:
                lowest = min(int(i) for i in failed_ids)
                failed = [r for r in batch if int(r["dynamodb"]["SequenceNumber"]) >= lowest]
            attempts += 1
            if 0 <= self.max_retries < attempts:
                self._give_up(shard_id, failed, attempts, "RetryAttemptsExhausted")
                continue
            if not outcome.ok and self.bisect and len(failed) > 1:
                half = len(failed) // 2
                work.appendleft((failed[half:], attempts))
                work.appendleft((failed[:half], attempts))
            else:
                work.appendleft((failed, attempts))
            self._stop.wait(min(self.retry_delay * attempts, 5.0))

    def _give_up(self, shard_id: str, records: list[dict[str, Any]], attempts: int, condition: str) -> None:
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        log.warning("[%s stream] %d record(s) %s..%s discarded: %s", self.logical_id, len(records),
                    first["SequenceNumber"], last["SequenceNumber"], condition)
        info = {
            "requestContext": {"requestId": events.new_request_id(), "condition": condition,
                               "functionArn": f"arn:aws:lambda:{events.REGION}:{events.ACCOUNT}:function:{self.logical_id}",
                               "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id, "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(records), "streamArn": self.stream_arn,
            },
        }
        if self.sqs is not None and self.on_failure_url:
            self.sqs.send_message(QueueUrl=self.on_failure_url, MessageBody=json.dumps(info))
        self.discarded.append(info)  # after the message, so a watcher of `discarded` finds it queued


def _iso(epoch: Any) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(float(epoch), timezone.utc).isoformat()


class QueuePoller(_Worker):
    name = "queue"

    def __init__(self, functions: LocalFunctions, logical_id: str, properties: Mapping[str, Any], *,
                 queue_url: str, queue_arn: str, sqs_client: Any, poll_interval: float = 0.2) -> None:
        super().__init__(functions, logical_id)
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.sqs = sqs_client
        self.batch_size = max(1, min(10, int(properties.get("BatchSize") or 10)))
        self.partial = "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or [])
        scaling = properties.get("ScalingConfig") or {}
        self.max_concurrency = max(1, int(scaling.get("MaximumConcurrency") or 5))
        self.poll_interval = poll_interval
        self._pool = concurrent.futures.ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="queue-batch")
        self._in_flight = threading.Semaphore(self.max_concurrency)
        self.deleted = 0

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._in_flight.acquire(timeout=self.poll_interval):
                    continue
                try:
                    messages = self.sqs.receive_message(
                        QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=0,
                        MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages") or []
                except Exception:
                    self._in_flight.release()
                    raise
                if not messages:
                    self._in_flight.release()
                    self._stop.wait(self.poll_interval)
                    continue
                self._pool.submit(self._handle, messages)
        finally:
            self._pool.shutdown(wait=True)

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        try:
            records = [events.sqs_record(m, self.queue_arn) for m in messages]
            outcome = self._invoke({"Records": records}, f"{len(records)} message(s)")
            by_id = {r["messageId"]: r for r in records}
            failed = _failures(outcome, set(by_id)) if self.partial or not outcome.ok else []
            if failed is None:
                return  # all stay: visible again after the visibility timeout
            done = [r for r in records if r["messageId"] not in set(failed)]
            for start in range(0, len(done), 10):
                chunk = done[start:start + 10]
                self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)])
                self.deleted += len(chunk)
        except Exception:  # noqa: BLE001
            log.exception("[%s queue] batch handling failed", self.logical_id)
        finally:
            self._in_flight.release()


_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def schedule_seconds(expression: str) -> float | None:
    match = _RATE.match(expression.strip())
    return float(int(match.group(1)) * _UNIT[match.group(2)]) if match else None


class Scheduler(_Worker):
    name = "schedule"

    def __init__(self, functions: LocalFunctions, logical_id: str, event_name: str, interval: float) -> None:
        super().__init__(functions, logical_id)
        self.event_name = event_name
        self.interval = interval
        self.rule_arn = f"arn:aws:events:{events.REGION}:{events.ACCOUNT}:rule/{logical_id}{event_name}"

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self._invoke(events.schedule_event(self.rule_arn), f"{self.event_name}")

    def fire(self) -> Outcome:
        """Run the scheduled invocation now (tests)."""
        return self._invoke(events.schedule_event(self.rule_arn), f"{self.event_name} (manual)")
