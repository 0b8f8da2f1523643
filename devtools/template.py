"""Read `template.yaml`: the single source of truth for tables, functions and routes.

The tests and the local stack (`make dev`) build their DynamoDB tables, function
environments and WebSocket routes from here, so the template and the code cannot drift.

- `load_template(path=None)`: the template as plain data. CloudFormation short tags become
  their long forms (`!Ref X` -> `{"Ref": "X"}`, `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`,
  `!Condition C` -> `{"Condition": "C"}`, any other `!Name v` -> `{"Fn::Name": v}`).
- `table_definitions(template)`: boto3 `create_table` kwargs per AWS::DynamoDB::Table.
- `create_tables(client, template, names)`: create them and enable TTL as the template says.
- `function_specs(template)`: per AWS::Serverless::Function, its properties merged with
  `Globals.Function` (SAM's rules) and the pieces the local stack reads.
- `websocket_routes(template)`: route selection expression and route key -> function.
- `resolve(value, refs, ...)`: evaluate intrinsics (Ref, Sub, GetAtt, Join, If...) against
  local values, for the local stack's environment variables.

Dev tooling only: nothing under `layers/` or `functions/` may import this module.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"

TABLE_TYPE = "AWS::DynamoDB::Table"
FUNCTION_TYPE = "AWS::Serverless::Function"
WEBSOCKET_API_TYPE = "AWS::Serverless::WebSocketApi"


# --------------------------------------------------------------------------- loading


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form intrinsic tags."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)
# CloudFormation reads `2010-09-09` as a string, not a date.
CloudFormationLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    """The template at `path` (default: the repository's template.yaml) as plain data."""
    text = Path(path or TEMPLATE_PATH).read_text(encoding="utf-8")
    return yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass


def _template(template: Mapping[str, Any] | str | Path | None) -> Mapping[str, Any]:
    if template is None or isinstance(template, (str, Path)):
        return load_template(template)
    return template


def resources_of_type(template: Mapping[str, Any] | None, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource for every resource of `resource_type`, in template order."""
    resources = _template(template).get("Resources") or {}
    return {lid: res for lid, res in resources.items() if res.get("Type") == resource_type}


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and (
        next(iter(value)) in ("Ref", "Condition") or next(iter(value)).startswith("Fn::")
    )


def _literal(value: Any, where: str) -> Any:
    """`value`, refusing intrinsics (the table definitions must be plain data)."""
    if _is_intrinsic(value):
        raise ValueError(f"{where}: intrinsic {value!r} is not supported in table definitions")
    if isinstance(value, dict):
        return {k: _literal(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# --------------------------------------------------------------------------- tables


def table_definitions(template: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """boto3 `create_table` kwargs (without `TableName`) per AWS::DynamoDB::Table logical id.

    Keys: KeySchema, AttributeDefinitions, BillingMode, and when the template has them
    GlobalSecondaryIndexes (with Projection), LocalSecondaryIndexes, StreamSpecification
    (boto3 shape: StreamEnabled + StreamViewType) and ProvisionedThroughput.
    """
    definitions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources_of_type(template, TABLE_TYPE).items():
        props = _literal(resource.get("Properties") or {}, logical_id)
        kwargs: dict[str, Any] = {
            "KeySchema": copy.deepcopy(props["KeySchema"]),
            "AttributeDefinitions": copy.deepcopy(props["AttributeDefinitions"]),
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if kwargs["BillingMode"] == "PROVISIONED" and "ProvisionedThroughput" in props:
            kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = props.get(kind)
            if not indexes:
                continue
            kwargs[kind] = []
            for index in indexes:
                entry = {
                    "IndexName": index["IndexName"],
                    "KeySchema": copy.deepcopy(index["KeySchema"]),
                    "Projection": copy.deepcopy(index.get("Projection") or {"ProjectionType": "ALL"}),
                }
                if "ProvisionedThroughput" in index and kwargs["BillingMode"] == "PROVISIONED":
                    entry["ProvisionedThroughput"] = index["ProvisionedThroughput"]
                kwargs[kind].append(entry)
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        definitions[logical_id] = kwargs
    return definitions


def time_to_live(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Logical id -> TTL attribute name, for every table whose TTL the template enables."""
    result = {}
    for logical_id, resource in resources_of_type(template, TABLE_TYPE).items():
        spec = (resource.get("Properties") or {}).get("TimeToLiveSpecification") or {}
        enabled = spec.get("Enabled")
        if enabled is True or str(enabled).lower() == "true":
            result[logical_id] = _literal(spec["AttributeName"], f"{logical_id}.TimeToLiveSpecification")
    return result


def create_tables(
    client: Any,
    template: Mapping[str, Any] | str | Path | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Create the template's tables with `client` (a boto3 DynamoDB client) and enable TTL.

    `names` maps logical id -> table name; only the tables it names are created (an unknown
    logical id is an error). Without `names`, every table is created under its logical id.
    A table that already exists is left as it is (its TTL is still enabled).
    """
    template = _template(template)
    definitions = table_definitions(template)
    ttl = time_to_live(template)
    if names is None:
        names = {logical_id: logical_id for logical_id in definitions}
    unknown = sorted(set(names) - set(definitions))
    if unknown:
        raise ValueError(f"not tables in the template: {', '.join(unknown)} (tables: {', '.join(definitions)})")
    for logical_id, table_name in names.items():
        try:
            client.create_table(TableName=table_name, **definitions[logical_id])
        except client.exceptions.ResourceInUseException:
            pass
    for logical_id, table_name in names.items():
        _wait_active(client, table_name)
        if logical_id in ttl:
            current = client.describe_time_to_live(TableName=table_name).get("TimeToLiveDescription", {})
            if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
                continue
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl[logical_id]},
            )


def _wait_active(client: Any, table_name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = client.describe_table(TableName=table_name)["Table"].get("TableStatus")
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {table_name} still {status} after {timeout} s")
        time.sleep(0.05)


# --------------------------------------------------------------------------- functions


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rules: maps merge (the function wins), lists concatenate
    (globals first), anything else is replaced by the function's value."""
    if isinstance(global_value, dict) and isinstance(local_value, dict) and not (
        _is_intrinsic(global_value) or _is_intrinsic(local_value)
    ):
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + copy.deepcopy(local_value)
    return copy.deepcopy(local_value)


def function_specs(template: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per AWS::Serverless::Function logical id, what the tests and the local stack read.

    Each spec has:
    - `Properties`: every property, merged with `Globals.Function` as SAM merges them;
    - `CodeUri`, `Handler`, `Runtime`, `Timeout`, `MemorySize`, `Architectures`, `Layers`,
      `Tracing`, `Role`, `Policies` (None when absent);
    - `Environment`: the merged environment variables, raw (intrinsics left as dicts);
    - `Events`: the function's events (name -> {"Type", "Properties"});
    - `Module` (e.g. `functions.connect.app`, importable from the repository root) and
      `HandlerFunction` (e.g. `handler`), derived from CodeUri and Handler.
    """
    template = _template(template)
    global_props = ((template.get("Globals") or {}).get("Function")) or {}
    specs: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources_of_type(template, FUNCTION_TYPE).items():
        props = _merge_globals(global_props, resource.get("Properties") or {})
        code_uri = props.get("CodeUri")
        handler = props.get("Handler")
        module = handler_function = None
        if isinstance(code_uri, str) and isinstance(handler, str) and "." in handler:
            handler_module, _, handler_function = handler.rpartition(".")
            package = ".".join(part for part in Path(code_uri).parts if part not in ("", "."))
            module = ".".join(part for part in (package, handler_module) if part)
        specs[logical_id] = {
            "LogicalId": logical_id,
            "Properties": props,
            "CodeUri": code_uri,
            "Handler": handler,
            "Runtime": props.get("Runtime"),
            "Timeout": props.get("Timeout"),
            "MemorySize": props.get("MemorySize"),
            "Architectures": props.get("Architectures"),
            "Layers": props.get("Layers") or [],
            "Tracing": props.get("Tracing"),
            "Role": props.get("Role"),
            "Policies": props.get("Policies"),
            "Environment": dict(((props.get("Environment") or {}).get("Variables")) or {}),
            "Events": copy.deepcopy(props.get("Events") or {}),
            "Module": module,
            "HandlerFunction": handler_function,
        }
    return specs


def _logical_id_of(value: Any) -> str | None:
    """The logical id a `!GetAtt X.Arn` / `!Ref X` / `${X.Arn}` points at."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else str(target).split(".")[0]
        if "Ref" in value:
            return value["Ref"]
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            match = re.fullmatch(r"\$\{([A-Za-z0-9]+)(?:\.Arn)?\}", value["Fn::Sub"])
            return match.group(1) if match else None
    return None


def websocket_routes(template: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The WebSocket API: `{"api": logical id, "route_selection_expression": str,
    "stage_name": raw value, "routes": {route key: function logical id}}`."""
    apis = resources_of_type(template, WEBSOCKET_API_TYPE)
    if len(apis) != 1:
        raise ValueError(f"expected one {WEBSOCKET_API_TYPE}, found {len(apis)}")
    (api_id, api), = apis.items()
    props = api.get("Properties") or {}
    routes = {}
    for route_key, route in (props.get("Routes") or {}).items():
        function = _logical_id_of(route.get("FunctionArn"))
        if function is None:
            raise ValueError(f"{api_id} route {route_key}: cannot tell which function {route!r} names")
        routes[route_key] = function
    return {
        "api": api_id,
        "route_selection_expression": props.get("RouteSelectionExpression"),
        "stage_name": props.get("StageName"),
        "routes": routes,
    }


# --------------------------------------------------------------------------- intrinsics


def parameter_defaults(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Parameter name -> its Default as CloudFormation passes it (a string)."""
    result = {}
    for name, spec in (_template(template).get("Parameters") or {}).items():
        if "Default" in spec:
            default = spec["Default"]
            result[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    return result


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def resolve(
    value: Any,
    refs: Mapping[str, Any],
    getatt: Mapping[str, Any] | None = None,
    conditions: Mapping[str, bool] | None = None,
) -> Any:
    """Evaluate CloudFormation intrinsics in `value` against local values.

    `refs` answers `Ref` (parameters, pseudo parameters such as `AWS::Region`, resources);
    `getatt` answers `Fn::GetAtt` keyed `"Resource.Attribute"`; `conditions` answers
    `Fn::If` / `Condition`. Supports Ref, Fn::Sub (both forms), Fn::GetAtt, Fn::Join,
    Fn::Select, Fn::Split, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition.
    A missing name raises KeyError; `AWS::NoValue` removes the key or list entry.
    """
    getatt = getatt or {}
    conditions = conditions or {}

    def ev(v: Any) -> Any:
        if isinstance(v, list):
            return [x for x in (ev(item) for item in v) if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if not _is_intrinsic(v):
            return {k: x for k, x in ((k, ev(item)) for k, item in v.items()) if x is not NO_VALUE}
        (name, arg), = v.items()
        if name == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            return refs[arg]
        if name == "Condition":
            return bool(conditions[arg])
        if name == "Fn::GetAtt":
            key = ".".join(arg) if isinstance(arg, list) else arg
            return getatt[key]
        if name == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], ev(arg[1]))

            def substitute(match: re.Match[str]) -> str:
                var = match.group(1)
                if var in variables:
                    return str(variables[var])
                if "." in var and not var.startswith("AWS::"):
                    return str(getatt[var])
                return str(refs[var])

            return _SUB_VARIABLE.sub(substitute, text).replace("${!", "${")
        if name == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(str(x) for x in ev(items))
        if name == "Fn::Select":
            index, items = ev(arg)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, text = ev(arg)
            return text.split(delimiter)
        if name == "Fn::If":
            condition, if_true, if_false = arg
            return ev(if_true) if conditions[condition] else ev(if_false)
        if name == "Fn::Equals":
            left, right = ev(arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not ev(arg)[0]
        if name == "Fn::And":
            return all(ev(arg))
        if name == "Fn::Or":
            return any(ev(arg))
        raise ValueError(f"unsupported intrinsic {name}")

    return ev(value)


def evaluate_conditions(template: Mapping[str, Any] | None, refs: Mapping[str, Any]) -> dict[str, bool]:
    """Every condition of the template, evaluated against `refs` (conditions may nest)."""
    defined = dict(_template(template).get("Conditions") or {})
    result: dict[str, bool] = {}

    class _Lazy(dict):
        def __missing__(self, key: str) -> bool:
            value = bool(resolve(defined[key], refs, conditions=self))
            self[key] = value
            return value

    lazy = _Lazy()
    for name in defined:
        result[name] = lazy[name]
    return result
