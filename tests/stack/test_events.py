"""`events/`: every file is invoked against a running stack with the function the template
routes it to, and matches what the local gateway and pollers produce (so they cannot rot)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from devtools import template as tpl
from devtools.stack import sample_events
from tests.stack.conftest import Client, run

EVENT_FILES = sorted(p for p in sample_events.EVENTS_DIR.glob("*.json") if p.name != "env.json")
ORDER = {"connect": 0, "message": 1, "stream": 2, "sqs": 2, "publish": 2, "schedule": 3, "disconnect": 4}


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def function_for(stack, event) -> str:
    if "requestContext" in event:
        return stack.routes.get(event["requestContext"]["routeKey"]) or stack.routes["$default"]
    kind = {"aws:dynamodb": "DynamoDB", "aws:sqs": "SQS"}.get((event.get("Records") or [{}])[0].get("eventSource"))
    if event.get("source") == "aws.events":
        kind = "Schedule"
    for rule in stack.event_rules:  # an event a template rule routes (EventBridge)
        if "requestContext" not in event and "Records" not in event and rule.matches(stack.event_bus_name, event):
            return next(t.function for t in rule.targets if t.function)
    queue = (event.get("Records") or [{}])[0].get("eventSourceARN") if kind == "SQS" else None
    for lid, spec in stack.specs.items():
        for trigger in spec["Events"].values():
            if trigger.get("Type") != kind:
                continue
            source = (trigger.get("Properties") or {}).get("Queue")
            if queue is None or stack.aws.queue_arns.get(source["Fn::GetAtt"][0]) == queue:
                return lid
    raise AssertionError(f"no function in the template takes {kind} events")


def test_files_are_what_the_generator_writes():
    built = sample_events.build()
    on_disk = {p.name for p in sample_events.EVENTS_DIR.glob("*.json")}
    assert on_disk == set(built), "run: .venv/bin/python -m devtools.stack.sample_events"
    for name, value in built.items():
        assert (sample_events.EVENTS_DIR / name).read_text(encoding="utf-8") == sample_events.render(value), name


def test_every_route_and_trigger_has_an_event_file(stack):
    covered = set()
    for path in EVENT_FILES:
        event = load(path)
        covered.add(event["requestContext"]["routeKey"] if "requestContext" in event else function_for(stack, event))
    assert set(stack.routes) <= covered
    for lid, spec in stack.specs.items():
        if spec["Events"]:
            assert lid in covered, f"{lid}'s triggers have no event file"
    for rule in stack.event_rules:
        for target in rule.targets:
            assert target.function in covered, f"{rule.logical_id}'s target {target.function} has no event file"


def test_every_event_file_runs_against_the_stack(stack):
    events = sorted(((path.name, load(path)) for path in EVENT_FILES),
                    key=lambda item: ORDER[item[0].split("-")[0].split(".")[0]])
    for name, event in events:
        outcome = stack.functions.invoke_sync(function_for(stack, event), event)
        assert outcome.ok, f"{name}: {outcome.error!r}"
        result = outcome.result
        if "requestContext" in event:
            assert result["statusCode"] == 200, (name, result)
        elif "Records" in event:
            assert result == {"batchItemFailures": []}, (name, result)
        elif event.get("detail-type") == "realtime.publish":
            assert result["rejected"] is None, (name, result)
        else:
            assert {"checked", "removed"} <= set(result), (name, result)


def test_api_gateway_files_have_the_live_gateway_shape(stack):
    live = {}

    def recorder(lid):
        original = stack.functions.functions[lid].handler

        def record(event, context):
            live.setdefault(event["requestContext"]["routeKey"], event)
            return original(event, context)
        return record

    async def scenario():
        with stack.functions.override("ConnectFunction", recorder("ConnectFunction")), \
                stack.functions.override("MessageFunction", recorder("MessageFunction")), \
                stack.functions.override("DisconnectFunction", recorder("DisconnectFunction")):
            client = await Client.connect(stack, label="shape")
            rid = await client.request(action="heartbeat")
            await client.next("ack")
            await client.close()
            # $disconnect runs after the close: wait for it through a second connection's round trip
            other = await Client.connect(stack, label="shape-2")
            await other.request(action="heartbeat")
            await other.next("ack")
            await other.close()
        return rid

    run(scenario())
    for path in EVENT_FILES:
        event = load(path)
        if "requestContext" not in event:
            continue
        route = event["requestContext"]["routeKey"]
        if route not in live:
            pytest.fail(f"no live {route} event recorded")
        reference = live[route]
        assert set(event) - {"queryStringParameters", "multiValueQueryStringParameters"} == \
            set(reference) - {"queryStringParameters", "multiValueQueryStringParameters"}, path.name
        assert set(event["requestContext"]) == set(reference["requestContext"]), path.name


def test_env_file_matches_the_local_stack_defaults(stack):
    env = load(sample_events.EVENTS_DIR / "env.json")["Parameters"]
    assert env["CONNECTIONS_TABLE"] == stack.tables["ConnectionsTable"]
    assert env["DOCUMENTS_TABLE"] == stack.tables["DocumentsTable"]
    assert env["COMMENTS_TABLE"] == stack.tables["CommentsTable"]
    assert env["HISTORY_TABLE"] == stack.tables["HistoryTable"]
    assert urlsplit(env["PUBLISH_DEAD_LETTER_QUEUE_URL"]).path == urlsplit(stack.queues["PublishDeadLetterQueue"]).path
    assert urlsplit(env["FANOUT_QUEUE_URL"]).path == urlsplit(stack.queues["FanoutQueue"]).path
    assert urlsplit(env["WEBSOCKET_ENDPOINT"]).port == 3001 and urlsplit(env["AWS_ENDPOINT_URL"]).port == 5000
    assert len(env["JWT_SECRET"].encode()) >= 32
    declared = set()
    for spec in tpl.function_specs().values():
        declared |= set(spec["Environment"])
    # sam local only applies variables the template declares; these are the ones that matter.
    for name in ("CONNECTIONS_TABLE", "DOCUMENTS_TABLE", "WEBSOCKET_ENDPOINT", "FANOUT_QUEUE_URL"):
        assert name in declared
