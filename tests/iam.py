"""IAM as the code uses it: every AWS call a function makes, as the IAM actions and resources
it needs, against what template.yaml grants that function.

- `Recorder` hooks every botocore client created while it is installed (boto3's and
  PynamoDB's: both go through `botocore.session.Session.create_client`) with a
  `provide-client-params.*.*` handler, and attributes each call to the function whose
  handler is running; the `@connections` verbs come from what the management stub saw
  during that handler.
- `needs(service, operation, params)` maps one call to its IAM actions and resources: a
  `TransactWriteItems` needs the action of each of its parts, a batch names every table
  it touches, a Query or Scan of an index needs the index ARN.
- `granted(...)` reads one function's policies (its SAM `Policies`, or its explicit
  role's) as (action, resource) pairs; `platform(...)` is what the Lambda service itself
  does with the function's role (event source mappings, destinations, logs, traces),
  derived from the function's own configuration in the template.
- `compare(...)` says, in the template's own terms, what to add and what to remove.
"""

from __future__ import annotations

import contextlib
import fnmatch
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from devtools.template import function_specs, resolve

Grant = tuple[str, str]  # (IAM action, resource ARN or ARN pattern)

#: What Lambda's DynamoDB stream event source mapping calls with the function's role.
STREAM_READS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                "dynamodb:ListStreams")
#: What Lambda's SQS event source mapping calls with the function's role (Lambda developer
#: guide, "Execution role permissions" for Amazon SQS).
QUEUE_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
#: `Tracing: Active`; trace writes have no resource-level permissions.
TRACE_WRITES = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
LOG_WRITES = ("logs:CreateLogStream", "logs:PutLogEvents")
#: DynamoDB's transaction parts -> the action each needs.
TRANSACT_PARTS = {"ConditionCheck": "dynamodb:ConditionCheckItem", "Put": "dynamodb:PutItem",
                  "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem", "Get": "dynamodb:GetItem"}
#: SQS actions authorised under another action's name.
SQS_ACTION = {"SendMessageBatch": "sqs:SendMessage", "DeleteMessageBatch": "sqs:DeleteMessage",
              "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility"}


@dataclass(frozen=True)
class Arns:
    """How names in API calls become ARNs, in the account and region under test."""

    region: str
    account: str
    api_id: str
    stage: str
    queues: Mapping[str, str]  # queue URL -> queue ARN

    def table(self, name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"

    def queue(self, url: str) -> str:
        return self.queues[url]

    def connections(self, verb: str, connection_id: str) -> str:
        return f"arn:aws:execute-api:{self.region}:{self.account}:{self.api_id}/{self.stage}/{verb}/@connections/{connection_id}"


def needs(service: str, operation: str, params: Mapping[str, Any], arns: Arns) -> list[Grant]:
    """The IAM (action, resource) pairs one API call needs."""
    if service == "dynamodb":
        if operation == "TransactWriteItems" or operation == "TransactGetItems":
            return [(TRANSACT_PARTS[kind], arns.table(part["TableName"]))
                    for item in params["TransactItems"] for kind, part in item.items()]
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{operation}", arns.table(table)) for table in params["RequestItems"]]
        table = arns.table(params["TableName"])
        if operation in ("Query", "Scan") and params.get("IndexName"):
            return [(f"dynamodb:{operation}", f"{table}/index/{params['IndexName']}")]
        return [(f"dynamodb:{operation}", table)]
    if service == "sqs":
        return [(SQS_ACTION.get(operation, f"sqs:{operation}"), arns.queue(params["QueueUrl"]))]
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", params["SecretId"])]
    raise AssertionError(f"no IAM mapping for {service}:{operation}: teach tests/iam.py.needs")


@dataclass
class Recorder:
    """The AWS calls each function makes (see the module docstring)."""

    arns: Arns
    stub: Any
    #: function -> (action, resource) -> examples of the calls that needed it
    used: dict[str, dict[Grant, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    #: function -> what drove it ("$connect", "stream documents", ...)
    invoked: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _current: str | None = None
    _thread: int | None = None
    unattributed: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def installed(self, monkeypatch: Any) -> Iterator[None]:
        """Hook every botocore client created from now on."""
        import botocore.session

        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("provide-client-params.*.*", recorder._on_call)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
        yield

    def _on_call(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        service, operation = model.service_model.endpoint_prefix, model.name
        if self._current is None:
            return  # the test's own setup and checks
        # The handler's own thread, or the pool it reads a group's shards with.
        if threading.get_ident() != self._thread and not threading.current_thread().name.startswith("group-read"):
            self.unattributed.append(f"{service}:{operation} from another thread during {self._current}")
        detail = params.get("IndexName") or params.get("TableName") or params.get("QueueUrl", "")
        for grant in needs(service, operation, params, self.arns):
            self.used[self._current][grant].add(f"{operation} {detail}".strip())

    def wrap(self, function: str, handler: Callable[[Any, Any], Any], label: Callable[[Any], str]
             ) -> Callable[[Any, Any], Any]:
        """`handler`, recording what it calls as `function`."""

        def recorded(event: Any, context: Any) -> Any:
            assert self._current is None, "handlers do not nest"
            before = dict(self.stub.counts)
            self._current, self._thread = function, threading.get_ident()
            try:
                return handler(event, context)
            finally:
                self._current = self._thread = None
                self.invoked[function].add(label(event))
                for (verb, connection_id), n in dict(self.stub.counts).items():
                    if n > before.get((verb, connection_id), 0):
                        grant = ("execute-api:ManageConnections", self.arns.connections(verb, connection_id))
                        self.used[function][grant].add(f"{verb} @connections")

        return recorded


def granted(template: Mapping[str, Any], logical_id: str, values: tuple[dict, dict, dict]) -> dict[Grant, str]:
    """(action, resource) -> the statement's Sid, for every statement of the function's
    policies (SAM `Policies`, or the policies of its explicit `Role`)."""
    refs, getatt, conditions = values
    spec = function_specs(template)[logical_id]
    documents: list[Mapping[str, Any]] = []
    role = spec["Role"]
    if role is not None:
        role_props = template["Resources"][role["Fn::GetAtt"][0]]["Properties"]
        documents += [p["PolicyDocument"] for p in resolve(role_props.get("Policies") or [], refs, getatt, conditions)]
    documents += resolve(spec["Policies"] or [], refs, getatt, conditions)
    grants: dict[Grant, str] = {}
    for document in documents:
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                for resource in resources:
                    grants[(action, resource)] = statement.get("Sid", "")
    return grants


def platform(template: Mapping[str, Any], logical_id: str, values: tuple[dict, dict, dict]) -> set[Grant]:
    """What Lambda itself calls with the function's role, from the function's configuration:
    its event source mappings (and their on-failure destinations), its asynchronous
    invocations' destinations, its log group and its traces."""
    refs, getatt, conditions = values
    spec = function_specs(template)[logical_id]
    props = spec["Properties"]
    out: set[Grant] = set()

    def arn(value: Any) -> str:
        return str(resolve(value, refs, getatt, conditions))

    for event in spec["Events"].values():
        kind, event_props = event["Type"], event.get("Properties") or {}
        if kind == "DynamoDB":
            stream = arn(event_props["Stream"])
            pattern = stream.rsplit("/stream/", 1)[0] + "/stream/*"
            out |= {(action, pattern) for action in STREAM_READS}
        if kind == "SQS":
            out |= {(action, arn(event_props["Queue"])) for action in QUEUE_CONSUME}
        failure = ((event_props.get("DestinationConfig") or {}).get("OnFailure") or {})
        if failure.get("Type") == "SQS":
            out.add(("sqs:SendMessage", arn(failure["Destination"])))
    failure = (((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get("OnFailure") or {})
    if failure.get("Type") == "SQS" and "Destination" in failure:
        out.add(("sqs:SendMessage", arn(failure["Destination"])))
    if spec["Tracing"] == "Active":
        out |= {(action, "*") for action in TRACE_WRITES}
    log_group = (props.get("LoggingConfig") or {}).get("LogGroup")
    if isinstance(log_group, dict) and "Ref" in log_group:
        out |= {(action, getatt[f"{log_group['Ref']}.Arn"]) for action in LOG_WRITES}
    return out


def matches(grant: Grant, pattern: Grant) -> bool:
    """IAM's wildcards: `*` matches any run of characters, `/` included."""
    return grant[0] == pattern[0] and fnmatch.fnmatchcase(grant[1], pattern[1])


@dataclass(frozen=True)
class Difference:
    function: str
    excess: dict[Grant, str]          # granted, never used -> the statement's Sid
    missing: dict[Grant, set[str]]    # used, not granted -> examples of the calls

    def __bool__(self) -> bool:
        return bool(self.excess or self.missing)


def compare(function: str, grants: Mapping[Grant, str], platform_grants: set[Grant],
            used: Mapping[Grant, set[str]]) -> Difference:
    """Granted == used, per action and resource. A grant is used when some call needs that
    action on a resource its pattern covers; the platform's grants need no call."""
    excess = {g: sid for g, sid in grants.items()
              if g not in platform_grants and not any(matches(u, g) for u in used)}
    missing = {u: examples for u, examples in used.items() if not any(matches(u, g) for g in grants)}
    return Difference(function, excess, missing)


def explain(difference: Difference, expression: Callable[[str], str]) -> str:
    """What to change in template.yaml, in its own terms."""
    lines = []
    if difference.missing:
        lines.append(f"{difference.function}'s code calls what its policies do not grant; add to its Policies:")
        for (action, resource), examples in sorted(difference.missing.items()):
            lines.append(f"  + {action} on {expression(resource)}   (calls: {', '.join(sorted(examples))})")
    if difference.excess:
        lines.append(f"{difference.function} is granted what no code path uses; remove from its Policies:")
        for (action, resource), sid in sorted(difference.excess.items()):
            lines.append(f"  - {action} on {expression(resource)}   (statement {sid or 'without a Sid'})")
    return "\n".join(lines)
