"""Each function is granted exactly the AWS actions its code calls (issue 13, finding 7).

Every function is driven through every route and trigger it serves, against moto and the
`@connections` stand-in: `$connect` (token from a Secrets Manager secret), every frame kind
(comments created, updated and deleted included), `$disconnect`, the scheduled sweep, the
notifier on both bound tables' streams, fan-out queue pages and a redelivery round. Each
step also meets a connection that closed without a `$disconnect`, so every function's
broadcasts take the removal path. `tests.iam` records the calls and maps them to IAM; the
test compares that, per function, action and resource, with template.yaml.

When it fails, its message says what to add to or remove from which function's policies.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from devtools.template import evaluate_conditions, function_specs, load_template, parameter_defaults, resolve
from realtime import keys, runtime
from realtime.connections import IDLE_GRACE_SECONDS
from tests import iam, streams
from tests.apigw import API_ID, SECRET, STAGE, ApiGateway, LambdaContext, token
from tests.iam import Arns, Recorder

REGION, ACCOUNT = "us-east-1", "123456789012"  # moto's
TEMPLATE = load_template()
SPECS = function_specs(TEMPLATE)
#: The ids of connections that closed without `$disconnect`: sorted before every other id
#: (`+` is the lowest base64 character), so with one-member pages they are each broadcast's
#: inline page (every group here is small: one shard) and the function sending it finds
#: them gone.
GHOST = "+++++++{}="


def ghost_id(name: str) -> str:
    return GHOST.format(name)


#: MAX_CONNECTIONS_PER_USER in this world: small enough to reach.
LIMIT = 3


# ---------------------------------------------------------------- the world under test


def label(event: dict[str, Any]) -> str:
    """What drove a handler: a route, the schedule, a stream or a queue message kind."""
    if "requestContext" in event:
        return event["requestContext"]["routeKey"]
    if event.get("detail-type") == "realtime.publish":
        return "publish"
    records = event.get("Records")
    if not records:
        return "schedule"
    if records[0].get("eventSource") == "aws:sqs":
        body = json.loads(records[0]["body"])
        if "topic" in body:
            return "queue announce"
        return "queue redelivery" if "recipients" in body else "queue page"
    return f"stream {records[0]['eventSourceARN'].split(':table/')[1].split('/')[0]}"


@dataclass
class World:
    gw: ApiGateway
    recorder: Recorder
    sqs: Any
    queue_url: str
    queue_arn: str
    values: tuple[dict, dict, dict]
    offset: list[float]
    stream_marks: dict[str, int]
    announce_url: str = ""
    announce_arn: str = ""
    dead_letter_url: str = ""

    def publish(self, stream: str, to: dict[str, str], payload: Any) -> dict[str, Any]:
        """An event from the bus, as the template's rule hands it to the publish function."""
        from devtools.stack.events import published_event
        from functions.publish import app

        return app.handler(published_event(stream, to, payload), LambdaContext())

    def ghost(self, name: str, *, listening: bool = True, document: str = "roadmap") -> str:
        """A signed-in connection present in `document` (and, `listening`, subscribed to
        every stream), whose socket then closes without a `$disconnect`."""
        cid = ghost_id(name)
        status, _ = self.gw.connect(query={"token": token(name, name.title())}, cid=cid)
        assert status == 200
        if listening:
            for stream in ("users", "documents", "notifications", "alerts"):
                self.gw.send(cid, {"action": "subscribe", "stream": stream})
            for stream in ("document", "comments"):
                self.gw.send(cid, {"action": "subscribe", "stream": stream, "document": document})
        self.gw.send(cid, {"action": "enter", "document": document, "phase": "edit"})
        self.gw.stub.unregister(cid)
        return cid

    def pump(self) -> None:
        """The bound tables' new stream records, through notify (one batch per table)."""
        from functions.notify import app

        for table in ("documents", "comments"):
            records = streams.read_stream(self.gw.dynamodb, table)
            fresh, self.stream_marks[table] = records[self.stream_marks[table]:], len(records)
            if fresh:
                assert app.handler(streams.event(*fresh), LambdaContext()) == {"batchItemFailures": []}

    def drain(self, wait: int = 0) -> int:
        """Every fan-out and announce queue message visible (within `wait` seconds), through
        notify and announce, until both queues are quiet."""
        from functions.announce import app as announce
        from functions.notify import app as notify

        handled = 0
        while True:
            round_ = 0
            for url, arn, function in ((self.queue_url, self.queue_arn, notify),
                                       (self.announce_url, self.announce_arn, announce)):
                while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                           WaitTimeSeconds=wait).get("Messages", []):
                    for message in messages:  # one per event: a page and a redelivery are told apart
                        assert function.handler(streams.sqs_event([message], arn), LambdaContext()) == {
                            "batchItemFailures": []}
                        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    round_ += len(messages)
            handled += round_
            if not round_:
                return handled
            wait = 0


def template_values(dynamodb: Any, queues: dict[str, str], secret_arn: str) -> tuple[dict, dict, dict]:
    """refs, getatts and conditions resolving the template to what exists in moto."""
    names = {"ConnectionsTable": "connections", "DocumentsTable": "documents", "CommentsTable": "comments",
             "HistoryTable": "history"}
    refs: dict[str, Any] = {**parameter_defaults(TEMPLATE), "JwtSecretArn": secret_arn,
                            "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                            "AWS::StackName": "realtime", "AWS::URLSuffix": "amazonaws.com", "RealtimeApi": API_ID}
    getatt: dict[str, str] = {}
    for logical_id, resource in TEMPLATE["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            table = dynamodb.describe_table(TableName=names[logical_id])["Table"]
            refs[logical_id] = names[logical_id]
            getatt[f"{logical_id}.Arn"] = table["TableArn"]
            getatt[f"{logical_id}.StreamArn"] = table.get("LatestStreamArn", "")
        elif kind == "AWS::SQS::Queue":
            arn = queues.get(logical_id, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}")
            getatt[f"{logical_id}.Arn"] = arn
            refs[logical_id] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{arn.rsplit(':', 1)[1]}"
        else:
            getatt[f"{logical_id}.Arn"] = f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{logical_id}"
            refs.setdefault(logical_id, logical_id)
    return refs, getatt, evaluate_conditions(TEMPLATE, refs)


@pytest.fixture
def world(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    from realtime import broadcast
    from realtime.models import Model

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="fanout")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    announce_url = sqs.create_queue(QueueName="announce")["QueueUrl"]
    announce_arn = sqs.get_queue_attributes(QueueUrl=announce_url,
                                            AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dead_letter_url = sqs.create_queue(QueueName="publish-dead-letters")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url,
                                               AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="realtime/jwt", SecretString=SECRET)["ARN"]
    for name, value in {"FANOUT_QUEUE_URL": url, "FANOUT_PAGE_SIZE": "1", "JWT_SECRET": "",
                        "JWT_SECRET_ARN": secret_arn, "ANNOUNCE_QUEUE_URL": announce_url,
                        "BROADCAST_INTERVAL_MS": "100", "MAX_CONNECTIONS_PER_USER": str(LIMIT),
                        "PUBLISH_DEAD_LETTER_QUEUE_URL": dead_letter_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(broadcast, "REDELIVERY_DELAYS", (1, 1, 1, 1, 1))
    recorder = Recorder(Arns(REGION, ACCOUNT, API_ID, STAGE, {url: arn, announce_url: announce_arn,
                                                             dead_letter_url: dead_letter_arn}), gateway.stub)
    with recorder.installed(monkeypatch):
        gateway.reset_runtime()
        for model in Model.__subclasses__():  # PynamoDB keeps a client per model: make new, hooked ones
            model._connection = None
        for logical_id, spec in SPECS.items():
            module = importlib.import_module(spec["Module"])
            monkeypatch.setattr(module, "handler", recorder.wrap(logical_id, module.handler, label))
        connect, disconnect, message = (importlib.import_module(f"functions.{name}.app")
                                        for name in ("connect", "disconnect", "message"))
        gateway.handlers = {"$connect": connect.handler, "$disconnect": disconnect.handler,
                            "$default": message.handler}
        offset = [0.0]
        runtime.app(gateway.stub.endpoint).clock = lambda: time.time() + offset[0]
        values = template_values(gateway.dynamodb, {"FanoutQueue": arn, "AnnounceQueue": announce_arn,
                                                             "PublishDeadLetterQueue": dead_letter_arn}, secret_arn)
        yield World(gateway, recorder, sqs, url, arn, values, offset, {"documents": 0, "comments": 0},
                    announce_url, announce_arn, dead_letter_url)


def drive_everything(w: World) -> None:
    """Every route and trigger of every function, each meeting a closed connection."""
    gw = w.gw
    gw.put_document("roadmap", "Roadmap")
    gw.put_document("secret", "Secret", visibility="private", owner="alice", readers=["bob"])
    w.pump()

    # $connect: the verifier reads the secret; a counted user, a second tab, an anonymous one.
    alice, bob = gw.login("alice", "Alice"), gw.login("bob", "Bob")
    for cid in (alice, bob):
        for stream in ("users", "documents", "notifications"):
            gw.send(cid, {"action": "subscribe", "stream": stream})
        gw.send(cid, {"action": "subscribe", "stream": "document", "document": "roadmap"})
        gw.send(cid, {"action": "subscribe", "stream": "comments", "document": "roadmap"})
    w.ghost("gina")
    gw.login("carl", "Carl")  # the count changes: gina is found gone and removed
    w.drain()
    gw.login("alice", "Alice")
    anonymous = gw.anonymous()
    # A user at MAX_CONNECTIONS_PER_USER: a ghost among their tabs is found gone and removed to
    # make room; with every tab live, the next handshake is refused (429) and taken back.
    tabs = [gw.login("max", "Max") for _ in range(LIMIT - 1)]
    max_ghost = gw.connect(query={"token": token("max", "Max")}, cid=ghost_id("max"))[1]
    gw.send(max_ghost, {"action": "subscribe", "stream": "users"})
    gw.stub.unregister(max_ghost)
    tabs.append(gw.login("max", "Max"))
    assert gw.connect(query={"token": token("max", "Max")})[0] == 429

    # $default: every frame kind, and a presence change that meets a closed connection.
    w.ghost("gus")
    for frame in ({"action": "heartbeat", "id": 1},
                  {"action": "subscribe", "stream": "document", "document": "secret"},
                  {"action": "enter", "document": "roadmap", "phase": "edit"},
                  {"action": "heartbeat"},  # refreshes the presence it holds
                  {"action": "leave", "document": "roadmap", "phase": "edit"},
                  {"action": "unsubscribe", "stream": "document", "document": "secret"},
                  {"action": "enter", "document": "nowhere", "phase": "edit"},  # not_found
                  {"action": "subscribe", "stream": "nope"}):  # bad_request
        gw.send(alice, frame)
    w.drain()
    created = [gw.send(alice, {"action": "create", "stream": "comments", "id": n,
                               "data": {"document": "roadmap", "body": f"comment {n}"}}) for n in (1, 2)]
    pks = [next(f["payload"]["pk"] for f in frames if f["stream"] == "ack") for frames in created]
    gw.send(alice, {"action": "update", "stream": "comments", "pk": pks[0], "version": 1, "data": {"body": "edited"}})
    gw.send(alice, {"action": "delete", "stream": "comments", "pk": pks[1], "version": 1})
    gw.send(bob, {"action": "delete", "stream": "comments", "pk": pks[0], "version": 2})  # forbidden
    gw.send(anonymous, {"action": "subscribe", "stream": "notifications"})  # unauthenticated
    stranger = gw.connect()[1]
    gw.stub.unregister(stranger)
    gw.dynamodb.delete_item(TableName="connections", Key={"pk": {"S": f"c#{stranger}"}, "sk": {"S": "meta"}})
    gw.send(stranger, {"action": "heartbeat"})  # a connection the backend no longer knows
    gw.send(tabs[0], {"action": "subscribe", "stream": "users"})
    gw.stub.unregister(tabs[0])
    gw.send(tabs[0], {"action": "heartbeat", "id": 2})  # its ack answers 410: it is removed

    # $disconnect: a user's last connection, holding presence, while a closed one listens.
    dave = gw.login("dave", "Dave")
    gw.send(dave, {"action": "enter", "document": "roadmap", "phase": "view"})
    w.ghost("gail")
    gw.disconnect(dave)
    w.drain()

    # The stream records of the writes so far, and the fan-out pages queued so far.
    w.ghost("glen")
    w.pump()
    assert w.drain() > 0

    # The notifier on both streams: a new document, a rename, a reader dropped, a deletion;
    # a recipient whose posts keep failing is queued for a redelivery round.
    w.ghost("gwen")
    gw.put_document("launch", "Launch")
    gw.put_document("roadmap", "Roadmap 2")
    gw.put_document("secret", "Secret", visibility="private", owner="alice", readers=[])
    gw.dynamodb.delete_item(TableName="documents", Key={"slug": {"S": "launch"}})
    gw.stub.fail(bob, 500)
    w.pump()
    w.drain()  # the pages: bob's posts fail through the retries and are queued again
    gw.stub.clear_faults()
    assert w.drain(wait=3) > 0  # the redelivery round, after its delay

    # Catch-up: a subscribe with `since` replays what the notifications log holds.
    carol = gw.login("carol", "Carol")
    acks = [f["payload"] for f in gw.send(carol, {"action": "subscribe", "stream": "notifications", "id": 7})
            if f["stream"] == "ack"]
    since = acks[0]["cursor"]
    gw.put_document("roadmap", "Roadmap 3")
    w.pump()
    gw.send(carol, {"action": "subscribe", "stream": "notifications", "since": since, "id": 8})

    # Published events from the bus: to a group (its pages queued), to a user whose tab
    # closed while present in a room (removed, the room marked afresh: its last roster was
    # announced), to one connection; and one refused and dead-lettered with its reason.
    for cid in (alice, bob):
        gw.send(cid, {"action": "subscribe", "stream": "alerts"})
    gert = gw.connect(query={"token": token("gert", "Gert")}, cid=ghost_id("gert"))[1]
    gw.send(gert, {"action": "subscribe", "stream": "alerts"})  # alerts only: no roster finds it gone
    gw.send(gert, {"action": "enter", "document": "roadmap", "phase": "view"})
    gw.stub.unregister(gert)
    w.offset[0] += 5
    w.drain(wait=2)
    assert w.publish("alerts", {"group": "alerts"}, {"text": "Deploy at noon"})["rejected"] is None
    assert w.publish("alerts", {"user": "gert"}, {"text": "For gert"})["rejected"] is None
    assert w.publish("alerts", {"connection": bob}, {"text": "For this tab"})["rejected"] is None
    assert w.publish("nope", {"group": "alerts"}, {"text": "x"})["rejected"] is not None
    w.drain()

    # The sweep: closed connections silent for PRESENCE_TTL_SECONDS are asked about and
    # removed, live ones moved forward, expired presence deleted, the drifted counter repaired;
    # then a run whose budget is spent at once still counts what it left over.
    # An announcement whose message is lost: the sweep makes it once it is overdue, and the
    # roster it broadcasts has changed (alice entered, and heartbeats meanwhile).
    w.offset[0] = 100
    gw.send(alice, {"action": "enter", "document": "roadmap", "phase": "view"})
    w.sqs.purge_queue(QueueUrl=w.announce_url)
    for at in (150, 200):
        w.offset[0] = at
        gw.send(alice, {"action": "heartbeat"})
    w.offset[0] = 230
    assert gw.sweep()["expired_presence"] >= 1
    w.ghost("gil")  # found gone by the sweep's first broadcast
    w.ghost("gia", listening=False)  # only the sweep's GET @connections finds this one gone
    gw.dynamodb.update_item(TableName="connections", Key={"pk": {"S": keys.counter_shard("alice")},
                                                          "sk": {"S": "users"}},
                            UpdateExpression="ADD n :n", ExpressionAttributeValues={":n": {"N": "5"}})
    # Past every idle deadline: closed connections are asked about and removed, live ones kept.
    w.offset[0] = IDLE_GRACE_SECONDS + 1
    report = gw.sweep()
    assert report["removed"] >= 1 and report["live"] >= 1
    assert report["counter_repaired"] is True
    w.offset[0] = 2 * (IDLE_GRACE_SECONDS + 1)
    assert gw.sweep(BudgetSpent())["left_over"] >= 1
    w.drain()


class BudgetSpent(LambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 0


ROUTES = {
    "ConnectFunction": {"$connect"},
    "MessageFunction": {"$default"},
    "DisconnectFunction": {"$disconnect", "schedule"},
    "NotifyFunction": {"stream documents", "stream comments", "queue page", "queue redelivery"},
    "AnnounceFunction": {"queue announce"},
    "PublishFunction": {"publish"},
}


def expression_for(values: tuple[dict, dict, dict]):
    """A resource ARN as template.yaml would write it (the first candidate that covers it)."""
    candidates: list[tuple[str, Any]] = []
    for logical_id, resource in TEMPLATE["Resources"].items():
        if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Logs::LogGroup"):
            candidates.append((f"!GetAtt {logical_id}.Arn", {"Fn::GetAtt": [logical_id, "Arn"]}))
        if resource["Type"] == "AWS::DynamoDB::Table":
            for part in ("index", "stream"):
                candidates.append((f"!Sub ${{{logical_id}.Arn}}/{part}/*", {"Fn::Sub": f"${{{logical_id}.Arn}}/{part}/*"}))
    for verb in ("POST", "GET", "DELETE"):
        text = (f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{RealtimeApi}}/"
                f"${{StageName}}/{verb}/@connections/*")
        candidates.append((f"!Sub {text}", {"Fn::Sub": text}))
    candidates.append(("!Ref JwtSecretArn", {"Ref": "JwtSecretArn"}))
    resolved = [(text, str(resolve(value, *values[:2], values[2]))) for text, value in candidates]

    def expression(arn: str) -> str:
        for text, pattern in resolved:
            if arn == pattern:
                return text
        for text, pattern in resolved:
            if iam.matches(("", arn), ("", pattern)):
                return text
        return arn

    return expression


# ---------------------------------------------------------------- the tests


def test_each_function_is_granted_exactly_the_calls_its_code_makes(world: World) -> None:
    drive_everything(world)
    recorder = world.recorder
    assert recorder.unattributed == []
    for function, routes in ROUTES.items():
        assert recorder.invoked[function] >= routes, f"{function} was not driven through {routes - recorder.invoked[function]}"

    expression = expression_for(world.values)
    differences = [iam.compare(function, iam.granted(TEMPLATE, function, world.values),
                               iam.platform(TEMPLATE, function, world.values), recorder.used[function])
                   for function in SPECS]
    problems = [iam.explain(d, expression) for d in differences if d]
    assert not problems, "template.yaml does not grant what the code calls:\n" + "\n".join(problems)


# The comparison itself, on small inputs: it can fail both ways, and says what to change.

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/connections"


def test_a_grant_no_code_path_uses_is_reported_for_removal() -> None:
    grants = {("dynamodb:GetItem", TABLE): "Connections", ("dynamodb:BatchGetItem", TABLE): "Connections"}
    difference = iam.compare("F", grants, set(), {("dynamodb:GetItem", TABLE): {"GetItem connections"}})
    assert difference.excess == {("dynamodb:BatchGetItem", TABLE): "Connections"} and not difference.missing
    message = iam.explain(difference, lambda arn: "!GetAtt ConnectionsTable.Arn")
    assert message == ("F is granted what no code path uses; remove from its Policies:\n"
                       "  - dynamodb:BatchGetItem on !GetAtt ConnectionsTable.Arn   (statement Connections)")


def test_a_call_the_template_does_not_grant_is_reported_for_adding() -> None:
    index = TABLE + "/index/by_group"
    grants = {("dynamodb:Query", TABLE): "Connections"}
    difference = iam.compare("F", grants, set(), {("dynamodb:Query", TABLE): {"Query connections"},
                                                  ("dynamodb:Query", index): {"Query by_group"}})
    assert difference.missing == {("dynamodb:Query", index): {"Query by_group"}} and not difference.excess
    message = iam.explain(difference, lambda arn: "!Sub ${ConnectionsTable.Arn}/index/*")
    assert message == ("F's code calls what its policies do not grant; add to its Policies:\n"
                       "  + dynamodb:Query on !Sub ${ConnectionsTable.Arn}/index/*   (calls: Query by_group)")


def test_a_wildcard_grant_covers_the_resources_it_names_and_no_other() -> None:
    grants = {("dynamodb:Query", TABLE + "/index/*"): "Index"}
    used = {("dynamodb:Query", TABLE + "/index/by_deadline"): {"Query by_deadline"}}
    assert not iam.compare("F", grants, set(), used)
    other = {("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/documents/index/x"): {"Query x"}}
    assert iam.compare("F", grants, set(), other).missing == other


def test_a_transaction_needs_the_action_of_each_part_and_an_index_query_the_index() -> None:
    arns = Arns(REGION, ACCOUNT, API_ID, STAGE, {})
    transaction = {"TransactItems": [{"Put": {"TableName": "connections", "Item": {}}},
                                     {"Update": {"TableName": "connections", "Key": {}}},
                                     {"ConditionCheck": {"TableName": "documents", "Key": {}}}]}
    assert iam.needs("dynamodb", "TransactWriteItems", transaction, arns) == [
        ("dynamodb:PutItem", TABLE), ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:us-east-1:123456789012:table/documents")]
    assert iam.needs("dynamodb", "BatchWriteItem", {"RequestItems": {"connections": []}}, arns) == [
        ("dynamodb:BatchWriteItem", TABLE)]
    assert iam.needs("dynamodb", "Query", {"TableName": "connections", "IndexName": "by_group"}, arns) == [
        ("dynamodb:Query", TABLE + "/index/by_group")]


def test_the_platforms_grants_are_only_those_the_functions_configuration_implies() -> None:
    """An event source or destination the function does not have earns no grant."""
    values = template_values_offline()
    notify = iam.platform(TEMPLATE, "NotifyFunction", values)
    assert ("sqs:ReceiveMessage", values[1]["FanoutQueue.Arn"]) in notify
    assert ("dynamodb:GetRecords", values[1]["DocumentsTable.Arn"] + "/stream/*") in notify
    connect = iam.platform(TEMPLATE, "ConnectFunction", values)
    assert not any(action.startswith(("sqs:", "dynamodb:")) for action, _ in connect)


def template_values_offline() -> tuple[dict, dict, dict]:
    refs: dict[str, Any] = {**parameter_defaults(TEMPLATE), "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                            "AWS::Partition": "aws", "AWS::StackName": "realtime", "RealtimeApi": API_ID}
    getatt = {}
    for logical_id, resource in TEMPLATE["Resources"].items():
        service = resource["Type"].split("::")[1].lower()
        getatt[f"{logical_id}.Arn"] = f"arn:aws:{service}:{REGION}:{ACCOUNT}:table/{logical_id}"
        getatt[f"{logical_id}.StreamArn"] = getatt[f"{logical_id}.Arn"] + "/stream/1"
        refs.setdefault(logical_id, logical_id)
    return refs, getatt, evaluate_conditions(TEMPLATE, refs)

