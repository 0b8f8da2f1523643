"""template.yaml's contract, and the devtools.template helpers that read it.

The tables used by every other test come from `devtools.template.create_tables`, so these
tests pin that the template (and therefore those tables) follow docs/data-model.md.
The `sam` tests run the real SAM CLI (`sam validate --lint`, `sam build`, and SAM's
translator on the expanded template); without it they skip, or fail when CI is set.
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from devtools.template import (
    ROOT,
    TEMPLATE_PATH,
    create_tables,
    evaluate_conditions,
    function_specs,
    load_template,
    parameter_defaults,
    resolve,
    resources_of_type,
    table_definitions,
    time_to_live,
    websocket_routes,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "abc123defg"
STAGE = "prod"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:realtime/jwt-AbCdEf"

FUNCTIONS = {
    "ConnectFunction": "connect",
    "DisconnectFunction": "disconnect",
    "MessageFunction": "message",
    "NotifyFunction": "notify",
    "AnnounceFunction": "announce",
    "PublishFunction": "publish",
}
#: The functions that broadcast (and so may queue fan-out pages); connect and message only
#: mark what changed, and the announce function broadcasts it (realtime/announcing.py).
BROADCASTERS = {"DisconnectFunction", "NotifyFunction", "AnnounceFunction"}

ENVIRONMENT = {
    "REALTIME_APP", "CONNECTIONS_TABLE", "DOCUMENTS_TABLE", "COMMENTS_TABLE", "PHASES", "PRESENCE_TTL_SECONDS", "ALLOWED_ORIGINS",
    "WEBSOCKET_ENDPOINT", "JWT_SECRET_ARN", "JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL",
    "JWT_SECRET_CACHE_SECONDS", "JWT_AUDIENCE_WAIVED", "JWT_TOKEN_USE", "JWT_MAX_AGE_SECONDS",
    "JWKS_CACHE_SECONDS", "JWKS_MIN_REFETCH_SECONDS",
    "DOCUMENT_FIELDS", "FANOUT_PAGE_SIZE", "FANOUT_QUEUE_URL", "POWERTOOLS_SERVICE_NAME",
    "ANNOUNCE_QUEUE_URL", "BROADCAST_INTERVAL_MS", "GROUP_POST_BUDGET", "LIST_NAMES", "ROSTER_LIMIT",
    "MAX_PRESENCE", "MAX_SUBSCRIPTIONS", "FRAME_RATE", "FRAME_BURST", "MAX_CONNECTIONS_PER_USER",
    "HISTORY_TABLE", "HISTORY_HOURS", "REPLAY_LIMIT", "PUBLISH_DEAD_LETTER_QUEUE_URL",
    "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL",
    # Declared empty only so `sam local invoke --env-vars` may set them (events/README.md).
    "AWS_ENDPOINT_URL", "JWT_SECRET",
}
DECLARED_EMPTY = ("AWS_ENDPOINT_URL", "JWT_SECRET")

TEMPLATE = load_template()
SPECS = function_specs(TEMPLATE)


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def local_values(**parameters: str) -> tuple[dict, dict, dict]:
    """refs, getatts and conditions for resolving the template's intrinsics offline."""
    refs: dict = dict(parameter_defaults(TEMPLATE))
    refs.update(parameters)
    refs.update({
        "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
        "AWS::StackName": "realtime", "AWS::URLSuffix": "amazonaws.com",
        "RealtimeApi": API_ID, "ConnectionsTable": "Connections", "DocumentsTable": "Documents",
        "CommentsTable": "Comments", "HistoryTable": "History", "RealtimeEventBus": "realtime-realtime",
        "PublishDeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/PublishDlq",
        "PublishFunction": "realtime-PublishFunction", "PublisherPolicy": f"arn:aws:iam::{ACCOUNT}:policy/publisher",
        "FanoutQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/Fanout",
        "AnnounceQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/Announce",
        "AnnounceDeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/AnnounceDlq",
        "FanoutDeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/FanoutDlq",
        "NotifyFailureQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/NotifyFailure",
        "SweepFailureQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/SweepFailure",
        "CommonLayer": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:common:1",
    })
    getatt = {
        "ConnectionsTable.Arn": table_arn("Connections"),
        "DocumentsTable.Arn": table_arn("Documents"),
        "DocumentsTable.StreamArn": table_arn("Documents") + "/stream/2026-01-01T00:00:00.000",
        "CommentsTable.Arn": table_arn("Comments"),
        "CommentsTable.StreamArn": table_arn("Comments") + "/stream/2026-01-01T00:00:00.000",
        "FanoutQueue.Arn": queue_arn("Fanout"),
        "AnnounceQueue.Arn": queue_arn("Announce"),
        "AnnounceDeadLetterQueue.Arn": queue_arn("AnnounceDlq"),
        "AnnounceFunctionLogGroup.Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/realtime/announce:*",
        "AnnounceFunctionRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/announce",
        "FanoutDeadLetterQueue.Arn": queue_arn("FanoutDlq"),
        "NotifyFailureQueue.Arn": queue_arn("NotifyFailure"),
        "SweepFailureQueue.Arn": queue_arn("SweepFailure"),
        "DisconnectFunctionSweep.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/realtime-sweep",
        "HistoryTable.Arn": table_arn("History"),
        "PublishDeadLetterQueue.Arn": queue_arn("PublishDlq"),
        "PublishRule.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/realtime-realtime/publish",
        "RealtimeEventBus.Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/realtime-realtime",
        "NotifyFunctionLogGroup.Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/realtime/notify:*",
        "NotifyFunctionRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/notify",
        "ApiAccessLogGroup.Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:access:*",
    }
    for name in FUNCTIONS:
        getatt[f"{name}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return refs, getatt, evaluate_conditions(TEMPLATE, refs)


def resource(logical_id: str) -> dict:
    return TEMPLATE["Resources"][logical_id]


def props(logical_id: str) -> dict:
    return resource(logical_id).get("Properties") or {}


# --------------------------------------------------------------------------- loader


def test_loader_understands_cloudformation_short_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent("""\
        AWSTemplateFormatVersion: 2010-09-09
        Conditions:
          A: !Equals [!Ref P, '']
          B: !Not [!Condition A]
        Outputs:
          Ref: {Value: !Ref X}
          Sub: {Value: !Sub 'x-${AWS::Region}'}
          SubList: {Value: !Sub ['${a}', {a: !Ref X}]}
          GetAtt: {Value: !GetAtt T.StreamArn}
          GetAttList: {Value: !GetAtt [T, Arn]}
          If: {Value: !If [A, !Ref X, !Ref AWS::NoValue]}
          Join: {Value: !Join [',', [a, b]]}
          Select: {Value: !Select [0, !Split [',', 'a,b']]}
          Map: {Value: !FindInMap [M, k, v]}
          Import: {Value: !ImportValue other-Export}
          B64: {Value: !Base64 abc}
        """))
    template = load_template(path)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Conditions"] == {
        "A": {"Fn::Equals": [{"Ref": "P"}, ""]},
        "B": {"Fn::Not": [{"Condition": "A"}]},
    }
    values = {name: out["Value"] for name, out in template["Outputs"].items()}
    assert values == {
        "Ref": {"Ref": "X"},
        "Sub": {"Fn::Sub": "x-${AWS::Region}"},
        "SubList": {"Fn::Sub": ["${a}", {"a": {"Ref": "X"}}]},
        "GetAtt": {"Fn::GetAtt": ["T", "StreamArn"]},
        "GetAttList": {"Fn::GetAtt": ["T", "Arn"]},
        "If": {"Fn::If": ["A", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]},
        "Join": {"Fn::Join": [",", ["a", "b"]]},
        "Select": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
        "Map": {"Fn::FindInMap": ["M", "k", "v"]},
        "Import": {"Fn::ImportValue": "other-Export"},
        "B64": {"Fn::Base64": "abc"},
    }
    refs = {"P": "", "X": "x", "AWS::Region": "eu-west-1"}
    conditions = evaluate_conditions(template, refs)
    assert conditions == {"A": True, "B": False}
    assert resolve(values["Sub"], refs) == "x-eu-west-1"
    assert resolve(values["SubList"], refs) == "x"
    assert resolve({"k": values["If"]}, refs, conditions={"A": False}) == {}
    assert resolve(values["Select"], refs) == "a"


def test_template_is_a_sam_template() -> None:
    assert TEMPLATE["Transform"] == "AWS::Serverless-2016-10-31"
    assert str(TEMPLATE["AWSTemplateFormatVersion"]) == "2010-09-09"


# --------------------------------------------------------------------------- tables


def assert_connection_indexes(indexes: dict[str, dict]) -> None:
    """The connections table's indexes as docs/data-model.md describes them: fan-out by
    group and shard (keys, user and ttl), the sweep's deadline index (keys only), and the
    user items by counter shard (with their connections, for the recount)."""
    assert indexes["by_group"]["KeySchema"] == [
        {"AttributeName": "grp", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}]
    assert indexes["by_group"]["Projection"]["ProjectionType"] == "INCLUDE"
    assert sorted(indexes["by_group"]["Projection"]["NonKeyAttributes"]) == ["ttl", "uid"]
    assert indexes["by_deadline"]["KeySchema"] == [
        {"AttributeName": "sweep", "KeyType": "HASH"}, {"AttributeName": "deadline", "KeyType": "RANGE"}]
    assert indexes["by_deadline"]["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert indexes["by_counter"]["KeySchema"] == [
        {"AttributeName": "cshard", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}]
    assert indexes["by_counter"]["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["conns"]}


def test_table_definitions_match_the_data_model() -> None:
    tables = table_definitions(TEMPLATE)
    assert set(tables) == {"ConnectionsTable", "DocumentsTable", "CommentsTable", "HistoryTable"}

    connections = tables["ConnectionsTable"]
    assert connections["BillingMode"] == "PAY_PER_REQUEST"
    assert connections["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {a["AttributeName"]: a["AttributeType"] for a in connections["AttributeDefinitions"]} == {
        "pk": "S", "sk": "S", "grp": "S", "gsk": "S", "sweep": "S", "deadline": "N", "cshard": "S"}
    indexes = {i["IndexName"]: i for i in connections["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_group", "by_deadline", "by_counter"}
    assert_connection_indexes(indexes)
    assert indexes["by_deadline"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert "StreamSpecification" not in connections

    documents = tables["DocumentsTable"]
    assert documents["BillingMode"] == "PAY_PER_REQUEST"
    assert documents["KeySchema"] == [{"AttributeName": "slug", "KeyType": "HASH"}]
    assert documents["AttributeDefinitions"] == [{"AttributeName": "slug", "AttributeType": "S"}]
    assert documents["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert "GlobalSecondaryIndexes" not in documents

    comments = tables["CommentsTable"]
    assert comments["BillingMode"] == "PAY_PER_REQUEST"
    assert comments["KeySchema"] == [{"AttributeName": "document", "KeyType": "HASH"},
                                     {"AttributeName": "id", "KeyType": "RANGE"}]
    assert comments["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}

    history = tables["HistoryTable"]
    assert history["BillingMode"] == "PAY_PER_REQUEST"
    assert history["KeySchema"] == [{"AttributeName": "log", "KeyType": "HASH"},
                                    {"AttributeName": "cursor", "KeyType": "RANGE"}]
    assert "StreamSpecification" not in history and "GlobalSecondaryIndexes" not in history

    assert time_to_live(TEMPLATE) == {"ConnectionsTable": "ttl", "HistoryTable": "ttl"}


def test_table_protection_and_encryption() -> None:
    for name in ("ConnectionsTable", "DocumentsTable", "CommentsTable", "HistoryTable"):
        assert props(name)["SSESpecification"] == {"SSEEnabled": True}
        assert "TableName" not in props(name), "let CloudFormation name tables: several stacks per account"
    for name in ("DocumentsTable", "CommentsTable"):  # the application's data: kept, recoverable
        bound = resource(name)
        assert bound["DeletionPolicy"] == "Retain"
        assert bound["UpdateReplacePolicy"] == "Retain"
        assert bound["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


@mock_aws
def test_tables_created_in_moto_from_the_template() -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    create_tables(client, TEMPLATE, {"ConnectionsTable": "t-connections", "DocumentsTable": "t-documents"})
    assert sorted(client.list_tables()["TableNames"]) == ["t-connections", "t-documents"]

    table = client.describe_table(TableName="t-connections")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert_connection_indexes({i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]})
    ttl = client.describe_time_to_live(TableName="t-connections")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}

    documents = client.describe_table(TableName="t-documents")["Table"]
    assert documents["KeySchema"] == [{"AttributeName": "slug", "KeyType": "HASH"}]
    assert documents["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert documents["LatestStreamArn"]
    ttl = client.describe_time_to_live(TableName="t-documents")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"

    # The indexes answer the queries docs/data-model.md describes.
    client.put_item(TableName="t-connections", Item={
        "pk": {"S": "c#A"}, "sk": {"S": "g#users"}, "grp": {"S": "users#3"}, "gsk": {"S": "A"},
        "uid": {"S": "alice"}, "ttl": {"N": "2000000000"}})
    client.put_item(TableName="t-connections", Item={
        "pk": {"S": "c#A"}, "sk": {"S": "meta"}, "sweep": {"S": "s#3"}, "deadline": {"N": "100"},
        "conn": {"S": "A"}, "name": {"S": "Alice"}})
    client.put_item(TableName="t-connections", Item={
        "pk": {"S": "u#alice"}, "sk": {"S": "user"}, "cshard": {"S": "n#5"}, "conns": {"SS": ["A"]}})
    members = client.query(TableName="t-connections", IndexName="by_group",
                           KeyConditionExpression="grp = :g", ExpressionAttributeValues={":g": {"S": "users#3"}})
    assert members["Items"] == [{"pk": {"S": "c#A"}, "sk": {"S": "g#users"}, "grp": {"S": "users#3"},
                                 "gsk": {"S": "A"}, "uid": {"S": "alice"}, "ttl": {"N": "2000000000"}}]
    stale = client.query(TableName="t-connections", IndexName="by_deadline",
                         KeyConditionExpression="sweep = :s AND deadline < :t",
                         ExpressionAttributeValues={":s": {"S": "s#3"}, ":t": {"N": "200"}})
    assert stale["Items"] == [{"pk": {"S": "c#A"}, "sk": {"S": "meta"}, "sweep": {"S": "s#3"},
                               "deadline": {"N": "100"}}]
    users = client.query(TableName="t-connections", IndexName="by_counter",
                         KeyConditionExpression="cshard = :s", ExpressionAttributeValues={":s": {"S": "n#5"}})
    assert users["Items"] == [{"pk": {"S": "u#alice"}, "sk": {"S": "user"}, "cshard": {"S": "n#5"},
                               "conns": {"SS": ["A"]}}]


@mock_aws
def test_create_tables_defaults_and_idempotence() -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    create_tables(client)  # default: the repository's template, tables named by logical id
    create_tables(client)  # again: existing tables are left alone
    assert sorted(client.list_tables()["TableNames"]) == ["CommentsTable", "ConnectionsTable", "DocumentsTable",
                                                          "HistoryTable"]
    with pytest.raises(ValueError, match="NoSuchTable"):
        create_tables(client, TEMPLATE, {"NoSuchTable": "x"})


# --------------------------------------------------------------------------- functions


def test_functions_and_their_shape() -> None:
    assert set(SPECS) == set(FUNCTIONS)
    layer_ids = set(resources_of_type(TEMPLATE, "AWS::Serverless::LayerVersion"))
    assert layer_ids == {"CommonLayer"}
    for logical_id, folder in FUNCTIONS.items():
        spec = SPECS[logical_id]
        assert spec["Runtime"] == "python3.12"
        assert spec["Handler"] == "app.handler"
        assert spec["CodeUri"] == f"functions/{folder}/"
        assert spec["Module"] == f"functions.{folder}.app"
        assert spec["Layers"] == [{"Ref": "CommonLayer"}]
        assert spec["Tracing"] == "Active"
        assert spec["Architectures"] in (["arm64"], ["x86_64"])
        assert 128 <= spec["MemorySize"] <= 10240
        assert 3 <= spec["Timeout"] <= 900
    # API Gateway stops waiting after 29 s: request handlers finish within it.
    for name in ("ConnectFunction", "MessageFunction"):
        assert SPECS[name]["Timeout"] <= 29
    # The sweep runs every minute: it must end before the next one starts.
    assert SPECS["DisconnectFunction"]["Timeout"] < 60


def test_common_layer() -> None:
    layer = resource("CommonLayer")
    assert layer["Properties"]["ContentUri"] == "layers/common/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    architectures = set(layer["Properties"].get("CompatibleArchitectures", ["x86_64"]))
    for spec in SPECS.values():
        assert set(spec["Architectures"]) <= architectures
    assert layer["Metadata"].get("BuildArchitecture", "x86_64") in architectures
    assert (ROOT / "layers/common/requirements.txt").is_file()
    assert (ROOT / "layers/common/realtime").is_dir()


def test_environment_names_and_values() -> None:
    refs, getatt, conditions = local_values()
    for logical_id, spec in SPECS.items():
        env = spec["Environment"]
        assert set(env) == ENVIRONMENT, logical_id
        values = resolve(env, refs, getatt, conditions)
        assert values["WEBSOCKET_ENDPOINT"] == f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}"
        assert values["CONNECTIONS_TABLE"] == "Connections"
        assert values["DOCUMENTS_TABLE"] == "Documents"
        assert values["COMMENTS_TABLE"] == "Comments"
        assert values["REALTIME_APP"] == "monitor"
        assert values["FANOUT_QUEUE_URL"] == refs["FanoutQueue"]
        assert values["PHASES"] == "view,edit,review"
        assert values["PRESENCE_TTL_SECONDS"] == "60"
        assert values["DOCUMENT_FIELDS"] == "slug,title,abstract,image"
        assert values["FANOUT_PAGE_SIZE"] == "1000"
        assert values["POWERTOOLS_SERVICE_NAME"] == "realtime"
        assert values["POWERTOOLS_METRICS_NAMESPACE"] == "ServerlessRealtime"
        assert values["POWERTOOLS_LOG_LEVEL"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert values["JWT_SECRET_ARN"] == values["ALLOWED_ORIGINS"] == ""
        assert values["HISTORY_TABLE"] == "History"
        assert values["HISTORY_HOURS"] == "24" and values["REPLAY_LIMIT"] == "500"
        assert values["PUBLISH_DEAD_LETTER_QUEUE_URL"] == refs["PublishDeadLetterQueue"]


def test_no_secret_literal_and_no_custom_endpoint_variable() -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    for line in re.findall(r"^\s*JWT_SECRET\s*:.*$", text, re.MULTILINE):
        assert line.split(":", 1)[1].strip() == "''", f"never a JWT_SECRET literal: {line.strip()}"
    for spec in SPECS.values():
        for name, value in spec["Environment"].items():
            if name in DECLARED_EMPTY:
                assert value == "", (name, value)  # botocore's standard variable, left empty on AWS
                continue
            assert "ENDPOINT_URL" not in name and not re.search(r"DYNAMO.*(ENDPOINT|HOST|URL)", name), name


def test_parameters() -> None:
    params = TEMPLATE["Parameters"]
    defaults = parameter_defaults(TEMPLATE)
    for name in ("StageName", "JwtSecretArn", "JwtIssuer", "JwtAudience", "JwksUrl", "AllowedOrigins",
                 "Phases", "PresenceTtlSeconds", "DocumentFields", "FanoutPageSize", "LogLevel",
                 "ThrottlingBurstLimit", "ThrottlingRateLimit"):
        assert name in params, name
    assert defaults["StageName"] == "prod"
    assert defaults["JwtSecretArn"] == ""
    assert defaults["Phases"] == "view,edit,review"
    assert defaults["PresenceTtlSeconds"] == "60"
    assert defaults["DocumentFields"] == "slug,title,abstract,image"
    assert defaults["FanoutPageSize"] == "1000"
    assert int(defaults["ThrottlingBurstLimit"]) > 0 and float(defaults["ThrottlingRateLimit"]) > 0
    pattern = params["JwtSecretArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, SECRET_ARN)
    assert not re.fullmatch(pattern, "my-secret-value")
    for name in ("JwtIssuer", "JwksUrl"):  # keys over plain HTTP could be swapped in transit
        url = params[name]["AllowedPattern"]
        assert re.fullmatch(url, "") and re.fullmatch(url, "https://cognito-idp.us-east-1.amazonaws.com/pool")
        assert not re.fullmatch(url, "http://cognito-idp.us-east-1.amazonaws.com/pool")


def test_auth_parameter_defaults_are_the_settings_defaults() -> None:
    """What `sam deploy` sets without overrides is what the code would assume."""
    from realtime.config import Settings

    refs, getatt, conditions = local_values()
    env = resolve(SPECS["ConnectFunction"]["Environment"], refs, getatt, conditions)
    deployed = Settings.from_env({k: str(v) for k, v in env.items()})
    defaults = Settings(connections_table="Connections")
    for field in ("jwt_audience_waived", "jwt_token_use", "jwt_max_age_seconds", "jwt_secret_cache_seconds",
                  "jwks_cache_seconds", "jwks_min_refetch_seconds", "history_hours", "replay_limit"):
        assert getattr(deployed, field) == getattr(defaults, field), field


@pytest.mark.parametrize(("issuer", "audience", "waived", "allowed"), [
    ("", "", "false", True),  # no issuer: nothing to check
    ("https://issuer.example", "client-1", "false", True),
    ("https://issuer.example", "", "false", False),
    ("https://issuer.example", "", "true", True),
])
def test_an_issuer_needs_an_audience_or_an_explicit_waiver(issuer: str, audience: str, waived: str,
                                                           allowed: bool) -> None:
    """The template's Rule, evaluated as CloudFormation would before creating anything."""
    rule = TEMPLATE["Rules"]["AudienceWithIssuer"]
    refs = {**parameter_defaults(TEMPLATE), "JwtIssuer": issuer, "JwtAudience": audience, "JwtAudienceWaived": waived}
    applies = resolve(rule["RuleCondition"], refs)
    holds = all(resolve(a["Assert"], refs) for a in rule["Assertions"])
    assert (not applies or holds) is allowed


def test_websocket_api_and_routes() -> None:
    routes = websocket_routes(TEMPLATE)
    assert routes["route_selection_expression"] == "$request.body.action"
    assert routes["routes"] == {
        "$connect": "ConnectFunction", "$disconnect": "DisconnectFunction", "$default": "MessageFunction"}
    assert routes["stage_name"] == {"Ref": "StageName"}
    api = props(routes["api"])
    assert resource(routes["api"])["Type"] == "AWS::Serverless::WebSocketApi"
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
    }
    assert "Auth" not in api, "tokens are verified by the $connect function (protocol v1)"


def test_sweep_schedule() -> None:
    events = SPECS["DisconnectFunction"]["Events"]
    schedules = [e for e in events.values() if e["Type"] in ("Schedule", "ScheduleV2")]
    assert len(schedules) == 1
    assert schedules[0]["Properties"]["Schedule" if schedules[0]["Type"] == "Schedule"
                                      else "ScheduleExpression"] == "rate(1 minute)"
    assert schedules[0]["Properties"].get("Enabled", True) is True
    for name in ("ConnectFunction", "MessageFunction"):
        assert not SPECS[name]["Events"], f"{name} is invoked by API Gateway only"


def test_a_failed_sweep_is_kept_for_an_alarm_and_never_retried() -> None:
    """The schedule runs again within a minute: no retry, but a failure is kept (the function's
    on-failure destination; EventBridge's dead letters for events it could not deliver)."""
    sweep = SPECS["DisconnectFunction"]["Events"]["Sweep"]["Properties"]
    queue = {"Fn::GetAtt": ["SweepFailureQueue", "Arn"]}
    assert sweep["DeadLetterConfig"] == {"Arn": queue}
    assert sweep["RetryPolicy"]["MaximumRetryAttempts"] == 0
    invoke = SPECS["DisconnectFunction"]["Properties"]["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert invoke["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": queue}
    assert props("SweepFailureQueue")["SqsManagedSseEnabled"] is True
    policy = props("SweepFailureQueuePolicy")
    assert policy["Queues"] == [{"Ref": "SweepFailureQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    # Only the sweep's rule may send there (the rule SAM generates for the Sweep event).
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["DisconnectFunctionSweep", "Arn"]}}}


RESERVED = {"ConnectFunction": "ConnectReservedConcurrency", "DisconnectFunction": "DisconnectReservedConcurrency",
            "MessageFunction": "MessageReservedConcurrency", "NotifyFunction": "NotifyReservedConcurrency",
            "AnnounceFunction": "AnnounceReservedConcurrency", "PublishFunction": "PublishReservedConcurrency"}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_reserved_concurrency_is_a_parameter_empty_by_default(logical_id: str) -> None:
    parameter = RESERVED[logical_id]
    assert parameter_defaults(TEMPLATE)[parameter] == ""
    pattern = TEMPLATE["Parameters"][parameter]["AllowedPattern"]
    assert all(re.fullmatch(pattern, v) for v in ("", "1", "50", "10000"))
    assert not any(re.fullmatch(pattern, v) for v in ("0", "-1", "ten", " 5"))  # 0 would stop the function
    def reserved(function: str, **parameters: str) -> object:
        refs, getatt, conditions = local_values(**parameters)
        properties = SPECS[function]["Properties"]
        return resolve({"R": properties.get("ReservedConcurrentExecutions")}, refs, getatt, conditions).get("R")

    assert reserved(logical_id) is None  # AWS::NoValue: no reservation
    assert reserved(logical_id, **{parameter: "25"}) == "25"
    assert all(reserved(other, **{parameter: "25"}) is None for other in RESERVED if other != logical_id)


def test_notifier_event_sources_and_queues() -> None:
    events = SPECS["NotifyFunction"]["Events"]
    streams = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
    # One mapping per bound table; the notifier routes each record by its table.
    assert sorted(s["Stream"]["Fn::GetAtt"][0] for s in streams) == ["CommentsTable", "DocumentsTable"]
    for stream in streams:
        assert stream["Stream"]["Fn::GetAtt"][1] == "StreamArn"
        assert stream["StartingPosition"] == "LATEST"
        assert 1 <= stream["BatchSize"] <= 1000
        assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert stream["BisectBatchOnFunctionError"] is True
        assert 0 <= stream["MaximumRetryAttempts"] <= 10
        assert 60 <= stream["MaximumRecordAgeInSeconds"] <= 86400
        assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["NotifyFailureQueue", "Arn"]}

    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert len(sqs) == 1
    sqs = sqs[0]
    assert sqs["Queue"] == {"Fn::GetAtt": ["FanoutQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= sqs["BatchSize"] <= 10

    # The coalesced announcements: their own queue and function.
    (announce,) = [e["Properties"] for e in SPECS["AnnounceFunction"]["Events"].values()]
    assert announce["Queue"] == {"Fn::GetAtt": ["AnnounceQueue", "Arn"]}
    assert announce["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert announce["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "AnnounceMaxConcurrency"}}

    for queue, consumer, dead in (("FanoutQueue", "NotifyFunction", "FanoutDeadLetterQueue"),
                                  ("AnnounceQueue", "AnnounceFunction", "AnnounceDeadLetterQueue")):
        settings = props(queue)
        assert settings["VisibilityTimeout"] >= 6 * SPECS[consumer]["Timeout"]
        assert settings["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dead, "Arn"]}
        assert 1 <= settings["RedrivePolicy"]["maxReceiveCount"] <= 10
        # Dead letters outlive the messages they keep.
        assert props(dead)["MessageRetentionPeriod"] >= settings.get("MessageRetentionPeriod", 345600)
    for name in ("FanoutQueue", "FanoutDeadLetterQueue", "NotifyFailureQueue", "AnnounceQueue",
                 "AnnounceDeadLetterQueue"):
        assert resource(name)["Type"] == "AWS::SQS::Queue"
        assert props(name).get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props(name)
    assert props("NotifyFailureQueue")["MessageRetentionPeriod"] >= props("FanoutQueue")["MessageRetentionPeriod"]


def test_published_events_reach_the_publish_function_by_one_bounded_rule() -> None:
    refs, getatt, conditions = local_values()
    rule = resolve(props("PublishRule"), refs, getatt, conditions)
    assert rule["EventPattern"] == {"detail-type": ["realtime.publish"], "account": [ACCOUNT]}
    assert rule["EventBusName"] == "realtime-realtime" and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == getatt["PublishFunction.Arn"]
    assert 0 <= target["RetryPolicy"]["MaximumRetryAttempts"] <= 185
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": queue_arn("PublishDlq")}

    permission = resolve(props("PublishRulePermission"), refs, getatt, conditions)
    assert permission == {"Action": "lambda:InvokeFunction", "FunctionName": "realtime-PublishFunction",
                          "Principal": "events.amazonaws.com", "SourceArn": getatt["PublishRule.Arn"]}

    invoke = SPECS["PublishFunction"]["Properties"]["EventInvokeConfig"]
    assert 0 <= invoke["MaximumRetryAttempts"] <= 2 and invoke["MaximumEventAgeInSeconds"] <= 21600
    assert invoke["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS", "Destination": {"Fn::GetAtt": ["PublishDeadLetterQueue", "Arn"]}}
    assert not SPECS["PublishFunction"]["Events"], "invoked by the rule only"


def test_the_default_bus_may_be_used_instead_of_the_stacks_own() -> None:
    for use_default, bus in (("false", "realtime-realtime"), ("true", "default")):
        refs, getatt, conditions = local_values(UseDefaultEventBus=use_default)
        assert conditions["CreateEventBus"] is (use_default == "false")
        assert resolve(props("PublishRule")["EventBusName"], refs, getatt, conditions) == bus
        assert resolve(TEMPLATE["Outputs"]["EventBusName"]["Value"], refs, getatt, conditions) == bus
    assert resource("RealtimeEventBus")["Condition"] == "CreateEventBus"


def test_only_the_rule_may_dead_letter_into_the_publish_queue() -> None:
    refs, getatt, conditions = local_values()
    policy = resolve(props("PublishDeadLetterQueuePolicy"), refs, getatt, conditions)
    assert policy["Queues"] == [refs["PublishDeadLetterQueue"]]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == queue_arn("PublishDlq")
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": getatt["PublishRule.Arn"]}}
    assert props("PublishDeadLetterQueue")["MessageRetentionPeriod"] == 1209600
    assert props("PublishDeadLetterQueue")["SqsManagedSseEnabled"] is True


def test_the_publisher_policy_allows_exactly_realtime_publish_events_on_the_bus() -> None:
    for use_default, bus_arn in (("false", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/realtime-realtime"),
                                 ("true", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default")):
        refs, getatt, conditions = local_values(UseDefaultEventBus=use_default)
        document = resolve(props("PublisherPolicy")["PolicyDocument"], refs, getatt, conditions)
        assert document["Statement"] == [{
            "Sid": "PublishRealtimeEvents", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn,
            "Condition": {"StringEquals": {"events:detail-type": "realtime.publish"}}}]
        assert resolve(TEMPLATE["Outputs"]["EventBusArn"]["Value"], refs, getatt, conditions) == bus_arn


def test_outputs() -> None:
    refs, getatt, conditions = local_values()
    outputs = {name: resolve(out["Value"], refs, getatt, conditions) for name, out in TEMPLATE["Outputs"].items()}
    base = f"{API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}"
    assert outputs["WebSocketUrl"] == f"wss://{base}"
    assert outputs["ManagementApiEndpoint"] == f"https://{base}"
    assert outputs["ConnectionsCallbackUrl"] == f"https://{base}/@connections"
    assert outputs["ConnectionsTableName"] == "Connections"
    assert outputs["DocumentsTableName"] == "Documents"
    assert outputs["DocumentsTableArn"] == table_arn("Documents")
    assert outputs["CommentsTableName"] == "Comments"
    assert outputs["CommentsTableArn"] == table_arn("Comments")
    assert outputs["FanoutQueueUrl"] == refs["FanoutQueue"]
    assert outputs["AnnounceQueueUrl"] == refs["AnnounceQueue"]
    assert outputs["HistoryTableName"] == "History"
    assert outputs["PublishDeadLetterQueueUrl"] == refs["PublishDeadLetterQueue"]
    assert outputs["PublisherPolicyArn"] == refs["PublisherPolicy"]


# --------------------------------------------------------------------------- handlers


def _handler_env() -> dict[str, str]:
    refs, getatt, conditions = local_values()
    env = {k: str(v) for k, v in resolve(SPECS["ConnectFunction"]["Environment"], refs, getatt, conditions).items()}
    env.update({
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_DISABLED": "1",
    })
    return env


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_handler_is_importable_from_the_repository(logical_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SPECS[logical_id]
    path = ROOT / spec["CodeUri"] / (spec["Handler"].rpartition(".")[0] + ".py")
    assert path.is_file(), f"{logical_id}: {path.relative_to(ROOT)} is missing"
    for name, value in _handler_env().items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        module = importlib.import_module(spec["Module"])
    handler = getattr(module, spec["HandlerFunction"], None)
    assert callable(handler), f"{spec['Module']} has no callable {spec['HandlerFunction']}"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_handler_imports_in_the_lambda_layout(logical_id: str, tmp_path: Path) -> None:
    """In Lambda the function's CodeUri is the code root and the layer is on sys.path;
    the repository root is not. Import `app` exactly that way, in a fresh interpreter."""
    spec = SPECS[logical_id]
    code_root = ROOT / spec["CodeUri"]
    handler_module, _, handler_function = spec["Handler"].rpartition(".")
    assert (code_root / f"{handler_module}.py").is_file(), f"{logical_id}: handler file missing"
    env = {**os.environ, **_handler_env(),
           "PYTHONPATH": os.pathsep.join([str(code_root), str(ROOT / "layers/common")])}
    env.pop("PYTHONSAFEPATH", None)
    probe = (
        "import importlib, sys\n"
        f"module = importlib.import_module({handler_module!r})\n"
        f"assert callable(getattr(module, {handler_function!r}, None)), 'no handler'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('functions', 'devtools', 'tests', 'moto'))\n"
        "assert not bad, f'imports outside the Lambda package: {bad}'\n"
    )
    result = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


# --------------------------------------------------------------------------- IAM


def _statements(logical_id: str, **parameters: str) -> list[dict]:
    """Every statement of a function's own policies (SAM Policies or its explicit Role),
    resolved to strings, with Action and Resource as lists."""
    refs, getatt, conditions = local_values(**parameters)
    spec = SPECS[logical_id]
    documents: list = []
    role = spec["Role"]
    if role is not None:
        role_id = role["Fn::GetAtt"][0]
        role_props = props(role_id)
        assert not role_props.get("ManagedPolicyArns"), f"{role_id}: managed policies are not scoped"
        documents += [p["PolicyDocument"] for p in resolve(role_props.get("Policies") or [], refs, getatt, conditions)]
    for policy in resolve(spec["Policies"] or [], refs, getatt, conditions):
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, (
            f"{logical_id}: use inline Statements, not SAM policy templates or managed policies: {policy!r}")
        documents.append(policy)
    statements = []
    for document in documents:
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            assert "NotAction" not in statement and "NotResource" not in statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            statements.append({"Action": actions, "Resource": resources})
    return statements


def _grants(statements: list[dict]) -> dict[str, set[str]]:
    """action -> resources."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        for action in statement["Action"]:
            grants.setdefault(action, set()).update(statement["Resource"])
    return grants


def _management_arns(*verbs: str) -> set[str]:
    return {f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{verb}/@connections/*" for verb in verbs}


#: The @connections verbs each function's code uses (tests/test_iam.py records them): the
#: sweep and `$connect` (a user at the connection limit) ask about connections (GET), every
#: other function posts; nothing closes one (DELETE).
MANAGEMENT_VERBS = {"ConnectFunction": ("GET",), "DisconnectFunction": ("POST", "GET"),
                    "MessageFunction": ("POST",), "NotifyFunction": ("POST",), "AnnounceFunction": ("POST",),
                    "PublishFunction": ("POST",)}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_iam_least_privilege(logical_id: str) -> None:
    connections, documents, comments = table_arn("Connections"), table_arn("Documents"), table_arn("Comments")
    history = table_arn("History")
    allowed_dynamodb = {connections, connections + "/index/*", documents, documents + "/index/*",
                        documents + "/stream/*", comments, comments + "/stream/*", history}
    grants = _grants(_statements(logical_id))
    for action, resources in grants.items():
        assert "*" not in action.split(":", 1)[1] or action.startswith("xray:"), f"wildcard action {action}"
        if not action.startswith("xray:"):
            assert all("*" != r and not r.endswith(":*:*") for r in resources), f"{action} on {resources}"
        if action.startswith("dynamodb:"):
            assert resources <= allowed_dynamodb, f"{action} on {resources - allowed_dynamodb}"
        service = action.split(":")[0]
        assert service in ("dynamodb", "execute-api", "sqs", "logs", "xray", "secretsmanager"), action

    # The management API: exactly this API's stage, and only the verbs the function uses.
    assert grants.get("execute-api:ManageConnections") == _management_arns(*MANAGEMENT_VERBS[logical_id])
    assert [a for a in grants if a.startswith("execute-api:")] == ["execute-api:ManageConnections"]

    # Connections table: items and indexes, never a Scan (fan-out and removal are Queries).
    assert connections + "/stream/*" not in set().union(*grants.values())
    assert connections not in grants.get("dynamodb:Scan", set())
    assert {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= {
        a for a, r in grants.items() if connections in r}
    if logical_id in BROADCASTERS:  # groups are read through by_group
        assert connections + "/index/*" in grants["dynamodb:Query"]
    # An index is only ever queried.
    assert {a for a, r in grants.items() if connections + "/index/*" in r} <= {"dynamodb:Query"}
    # Documents are written by other services, never by this backend.
    for action, resources in grants.items():
        if documents in resources:
            assert action in ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"), action
    if "dynamodb:Scan" in grants:
        assert logical_id == "MessageFunction", "only the documents snapshot scans (the documents table)"
    # Comments are written through the socket: only by the message function, never scanned.
    comment_actions = {a for a, r in grants.items() if comments in r}
    if logical_id == "MessageFunction":
        assert comment_actions == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem",
                                   "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    else:
        assert not comment_actions, f"{logical_id} never touches comments items"

    # The history log: appended by who sends binding or published events, read by the replay only.
    history_actions = {a for a, r in grants.items() if history in r}
    assert history_actions == HISTORY_ACCESS.get(logical_id, set()), logical_id

    # Every broadcaster may queue fan-out pages.
    fanout = queue_arn("Fanout")
    if logical_id in BROADCASTERS:
        assert grants.get("sqs:SendMessage", set()) >= {fanout}
    sqs_resources = set().union(*(r for a, r in grants.items() if a.startswith("sqs:")))
    assert sqs_resources <= {fanout, queue_arn("Announce"), queue_arn("NotifyFailure"), queue_arn("PublishDlq")}
    assert queue_arn("Announce") in grants.get("sqs:SendMessage", set()), "every function marks changes"
    if queue_arn("PublishDlq") in sqs_resources:
        assert logical_id == "PublishFunction"

    # The token secret: nobody without the parameter.
    assert not any(a.startswith("secretsmanager:") for a in grants)


HISTORY_ACCESS = {
    "MessageFunction": {"dynamodb:Query"},  # a subscribe with `since`
    "NotifyFunction": {"dynamodb:PutItem"},  # binding events of streams that keep history
    "PublishFunction": {"dynamodb:PutItem"},  # published events
}


# Every function builds the token verifier at cold start (realtime.runtime.app), so every one
# reads the secret. Once only $connect builds it, shrink this to {"ConnectFunction"}.
SECRET_READERS = {"ConnectFunction"}  # only $connect verifies tokens


def test_iam_secret_read_only_when_configured() -> None:
    for logical_id in FUNCTIONS:
        grants = _grants(_statements(logical_id, JwtSecretArn=SECRET_ARN))
        secret = {a: r for a, r in grants.items() if a.startswith("secretsmanager:")}
        if logical_id in SECRET_READERS:
            assert secret == {"secretsmanager:GetSecretValue": {SECRET_ARN}}, logical_id
        else:
            assert not secret, f"{logical_id} never verifies tokens"


def test_iam_notifier_reads_only_its_stream_and_queue() -> None:
    grants = _grants(_statements("NotifyFunction"))
    streams = {table_arn("Documents") + "/stream/*", table_arn("Comments") + "/stream/*"}
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                   "dynamodb:ListStreams"):
        assert grants[action] == streams, action
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert grants[action] == {queue_arn("Fanout")}, action
    assert grants["sqs:SendMessage"] == {queue_arn("Fanout"), queue_arn("Announce"), queue_arn("NotifyFailure")}
    assert grants["logs:PutLogEvents"] == {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/realtime/notify:*"}
    for logical_id in set(FUNCTIONS) - {"NotifyFunction"}:
        other = _grants(_statements(logical_id))
        assert "dynamodb:GetRecords" not in other, logical_id
        # Only the announce function consumes a queue besides the notifier: its own.
        assert other.get("sqs:ReceiveMessage", set()) <= ({queue_arn("Announce")} if logical_id == "AnnounceFunction"
                                                          else set()), logical_id


def test_functions_with_pull_event_sources_have_explicit_roles() -> None:
    """SAM attaches AWSLambdaDynamoDBExecutionRole / AWSLambdaSQSQueueExecutionRole (every
    stream and queue in the account: Resource "*") to the roles it generates for functions with
    stream or queue events. Such functions need their own, scoped role."""
    for logical_id, spec in SPECS.items():
        pull = [e for e in spec["Events"].values() if e["Type"] in ("DynamoDB", "Kinesis", "SQS", "MSK", "MQ")]
        if pull:
            assert spec["Role"] is not None, logical_id
            assert not spec["Policies"], f"{logical_id}: Policies are ignored with an explicit Role"


# --------------------------------------------------------------------------- SAM CLI


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _python312() -> str | None:
    found = shutil.which("python3.12")
    if found:
        return found
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    return candidates[-1] if candidates else None


def sam_tools() -> dict:
    """`sam` from PATH plus a python3.12 for `sam build`; skip without them, fail under CI.
    (Called from the test body, not a fixture, so under CI it is a failed test, not an error.)"""
    sam = shutil.which("sam")
    python = _python312()
    missing = [what for what, found in (("the SAM CLI (`sam` on PATH)", sam), ("python3.12", python)) if not found]
    if missing:
        message = f"missing {' and '.join(missing)}: run `make test`, which installs the SAM CLI into .venv-sam"
        if _ci():
            pytest.fail(f"CI is set: {message}")
        pytest.skip(message)
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
           "PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    return {"sam": sam, "python": python, "env": env}


@pytest.mark.sam
def test_sam_validate_lint_reports_nothing() -> None:
    sam_env = sam_tools()
    result = subprocess.run([sam_env["sam"], "validate", "--lint", "--template", str(TEMPLATE_PATH)],
                            cwd=ROOT, env=sam_env["env"], capture_output=True, text=True, timeout=600)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [f"{TEMPLATE_PATH} is a valid SAM Template"], output


def _serverless_rules_python() -> str | None:
    """An interpreter with cfn-lint and AWS's serverless rules (`make sam` installs them into
    .venv-sam), or None."""
    sam = shutil.which("sam")
    candidates = [str(ROOT / ".venv-sam" / "bin" / "python")] + ([_sam_python(sam)] if sam else [])
    for python in candidates:
        if Path(python).exists() and subprocess.run([python, "-c", "import cfn_lint_serverless, cfnlint"],
                                                    capture_output=True, timeout=120).returncode == 0:
            return python
    return None


_CFN_LINT = "import sys; from cfnlint.runner import main; sys.argv = ['cfn-lint', *sys.argv[1:]]; main()"


@pytest.mark.sam
def test_template_passes_the_serverless_rules() -> None:
    """cfn-lint with cfn-lint-serverless's rules reports nothing: what they flag is fixed, or
    ignored on the resource with the reason beside it (`Metadata: cfn-lint: config`)."""
    python = _serverless_rules_python()
    if python is None:
        message = "cfn-lint-serverless is not installed: run `make sam` (it installs it into .venv-sam)"
        if _ci():
            pytest.fail(f"CI is set: {message}")
        pytest.skip(message)
    result = subprocess.run([python, "-c", _CFN_LINT, "-a", "cfn_lint_serverless.rules", "-t", str(TEMPLATE_PATH)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_serverless_rule_ignored_says_why() -> None:
    """Each `ignore_checks` entry sits under a comment giving the reason."""
    lines = TEMPLATE_PATH.read_text(encoding="utf-8").splitlines()
    ignored = [n for n, line in enumerate(lines) if re.fullmatch(r"\s*- (WS|ES)\d{4}", line)]
    assert ignored, "no serverless rule is ignored any more: drop this test"
    for n in ignored:
        reason = []
        while lines[n - 1 - len(reason)].strip().startswith("#"):
            reason.append(lines[n - 1 - len(reason)].strip())
        assert len(" ".join(reason)) > 40, f"template.yaml line {n + 1}: say why {lines[n].strip()} is ignored"


@pytest.mark.sam
def test_sam_build_succeeds(tmp_path: Path) -> None:
    sam_env = sam_tools()
    had_aws_sam = (ROOT / ".aws-sam").exists()
    build_dir = tmp_path / "build"
    result = subprocess.run(
        [sam_env["sam"], "build", "--build-dir", str(build_dir), "--template", "template.yaml"],
        cwd=ROOT, env=sam_env["env"], capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Build Succeeded" in output
    assert had_aws_sam or not (ROOT / ".aws-sam").exists(), "sam build left .aws-sam in the repository"
    layer = build_dir / "CommonLayer" / "python"
    assert (layer / "realtime" / "__init__.py").is_file()
    assert (layer / "aws_lambda_powertools").is_dir() and (layer / "jwt").is_dir()
    for logical_id, spec in SPECS.items():
        assert (build_dir / logical_id / spec["Handler"].rpartition(".")[0]).with_suffix(".py").is_file()


_TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for res in template["Resources"].values():
    properties = res.get("Properties") or {}
    if res["Type"] == "AWS::Serverless::Function":
        properties["CodeUri"] = "s3://bucket/function.zip"
    if res["Type"] == "AWS::Serverless::LayerVersion":
        properties["ContentUri"] = "s3://bucket/layer.zip"
params = {"JwtSecretArn": sys.argv[2]}
print(json.dumps(transform(template, params, NoManagedPolicies())))
"""


def _sam_python(sam: str) -> str:
    """The interpreter the `sam` script runs on (it holds samtranslator)."""
    first = Path(sam).read_text(encoding="utf-8", errors="replace").splitlines()[0]
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return str(Path(sam).parent / "python")


@pytest.mark.sam
@pytest.mark.parametrize("secret_arn", ["", SECRET_ARN])
def test_sam_expanded_template_is_least_privilege(secret_arn: str) -> None:
    """What SAM generates (roles, permissions, the ApiGatewayV2 resources), checked after the transform."""
    sam_env = sam_tools()
    result = subprocess.run([_sam_python(sam_env["sam"]), "-c", _TRANSLATE, str(TEMPLATE_PATH), secret_arn],
                            cwd=ROOT, env=sam_env["env"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    resources = json.loads(result.stdout)["Resources"]

    allowed_managed = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                       "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"}
    roles = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {f"{name}Role" for name in FUNCTIONS}
    for logical_id, role in roles.items():
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= allowed_managed, logical_id
        for policy in role["Properties"].get("Policies", []):
            if "Fn::If" in policy:
                condition, policy, _ = policy["Fn::If"]
                assert condition == "HasJwtSecretArn"
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                if any(not a.startswith("xray:") for a in actions):
                    assert "*" not in targets, f"{logical_id}: {actions} on *"

    by_type: dict[str, list[str]] = {}
    for lid, r in resources.items():
        by_type.setdefault(r["Type"], []).append(lid)
    # The SAM WebSocketApi keeps its logical id on the AWS::ApiGatewayV2::Api it expands to,
    # so `!Ref RealtimeApi` in the environment and policies is the API id.
    assert by_type["AWS::ApiGatewayV2::Api"] == ["RealtimeApi"]
    api = resources["RealtimeApi"]["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET" and api["RouteSelectionExpression"] == "$request.body.action"
    assert sorted(resources[lid]["Properties"]["RouteKey"] for lid in by_type["AWS::ApiGatewayV2::Route"]) == [
        "$connect", "$default", "$disconnect"]
    (stage,) = by_type["AWS::ApiGatewayV2::Stage"]
    stage = resources[stage]["Properties"]
    assert stage["StageName"] == {"Ref": "StageName"} and stage["AutoDeploy"] is True
    assert set(stage["DefaultRouteSettings"]) >= {"ThrottlingBurstLimit", "ThrottlingRateLimit"}
    mappings = [resources[lid]["Properties"] for lid in by_type["AWS::Lambda::EventSourceMapping"]]
    assert sorted(m["EventSourceArn"]["Fn::GetAtt"][0] for m in mappings) == [
        "AnnounceQueue", "CommentsTable", "DocumentsTable", "FanoutQueue"]
    # The sweep's schedule, and the publish rule (on the stack's bus unless UseDefaultEventBus).
    assert sorted(by_type["AWS::Events::Rule"]) == ["DisconnectFunctionSweep", "PublishRule"]
    (target,) = resources["DisconnectFunctionSweep"]["Properties"]["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["SweepFailureQueue", "Arn"]}}
    # SAM grants the function's role the send to its on-failure destination, and nothing more there.
    sends = [statement for policy in roles["DisconnectFunctionRole"]["Properties"]["Policies"]
             for statement in policy["PolicyDocument"]["Statement"]
             if {"Fn::GetAtt": ["SweepFailureQueue", "Arn"]} == statement["Resource"]]
    assert [s["Action"] for s in sends] == ["sqs:SendMessage"]
