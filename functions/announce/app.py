"""Announce: the coalesced state broadcasts (the announce queue's delayed messages).

Each message names a topic and key that something marked as changed; the engine makes
the announcement if it is due (one writer per pending mark). Powertools' `BatchProcessor`
reports a failed message in `batchItemFailures`, so it alone comes back after the
visibility timeout, and the queue's redrive policy bounds its attempts.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from realtime import runtime
from realtime.config import ConfigurationError

logger = runtime.logger
processor = BatchProcessor(event_type=EventType.SQS)


def on_message(record: SQSRecord) -> None:
    endpoint = runtime.settings().websocket_endpoint
    if not endpoint:
        raise ConfigurationError("the announce function needs WEBSOCKET_ENDPOINT (the template sets it)")
    logger.append_keys(route="announce", message_id=record.message_id)
    runtime.app(endpoint).announce(record.body)


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=on_message, processor=processor, context=context)
