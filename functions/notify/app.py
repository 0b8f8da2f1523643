"""Notify: the bound tables' streams, and the fan-out queue's pages.

Stream batches come from DynamoDB (`eventSource` `aws:dynamodb`; each record goes to
the binding of its table, `eventSourceARN`); fan-out pages from
SQS (`aws:sqs`). Both go through Powertools' `BatchProcessor`, so one bad record is
reported in `batchItemFailures` and never blocks or replays the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from realtime import runtime
from realtime.config import ConfigurationError

if TYPE_CHECKING:
    from realtime.notifier import Notifier

logger = runtime.logger
stream_processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
queue_processor = BatchProcessor(event_type=EventType.SQS)


def notifier() -> Notifier:
    endpoint = runtime.settings().websocket_endpoint
    if not endpoint:
        raise ConfigurationError("the notifier needs WEBSOCKET_ENDPOINT (the template sets it)")
    return runtime.app(endpoint).notifier


def on_stream_record(record: DynamoDBRecord) -> None:
    logger.append_keys(route="stream", sequence_number=record.dynamodb.sequence_number if record.dynamodb else None)
    report = notifier().handle_record(record.raw_event)
    logger.debug("notified", extra={"sent": report.sent, "queued_pages": report.queued_pages})


def on_page(record: SQSRecord) -> None:
    logger.append_keys(route="fanout", message_id=record.message_id)
    report = notifier().handle_page(record.body)
    logger.debug("page delivered", extra={"sent": report.sent})


@runtime.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(event=event, record_handler=on_page, processor=queue_processor, context=context)
    return process_partial_response(event=event, record_handler=on_stream_record, processor=stream_processor,
                                    context=context)
