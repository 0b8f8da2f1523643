"""The README's "Bind your own table", run exactly as written, on the local stack.

The section's Python is written to a throwaway application package, its registration
line added to the reference application, and its YAML merged into template.yaml where
each block's first line says. Nothing else is changed: if the section stops being all it
takes, this test fails.
"""

from __future__ import annotations

import copy
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import template as tpl
from devtools.stack import Stack
from tests.stack.conftest import Client, run

README = tpl.ROOT / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Bind your own table")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), re.S)


def merged_template() -> dict[str, Any]:
    """template.yaml with each of the section's YAML blocks put where its first line names."""
    merged = copy.deepcopy(tpl.load_template())
    for block in blocks("yaml"):
        first, _, body = block.partition("\n")
        assert first.startswith("# "), f"a YAML block must start with the key it goes under: {first!r}"
        fragment = yaml.load(body, Loader=tpl.CloudFormationLoader)  # noqa: S506 - a SafeLoader
        target: Any = merged
        for part in first[2:].strip().split("."):
            target = target[int(part)] if part.isdigit() else target[part]
        if isinstance(target, list):
            target.extend(fragment)
        else:
            target.update(fragment)
    return merged


@pytest.fixture(scope="module")
def tickets_app(tmp_path_factory: pytest.TempPathFactory):
    """The section's Python as a package: the model and binding, and the registration."""
    root = tmp_path_factory.mktemp("app")
    package = root / "tickets_app"
    package.mkdir()
    code, registration = blocks("python")
    (package / "tickets.py").write_text(code, encoding="utf-8")
    (package / "__init__.py").write_text(textwrap.dedent('''\
        from monitor import application as reference
        from tickets_app.tickets import Tickets


        def application(environment):
            app = reference(environment)
        ''') + textwrap.indent(registration, "    ") + "    return app\n", encoding="utf-8")
    sys.path.insert(0, str(root))
    yield "tickets_app"
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "tickets_app"]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def stack(tickets_app: str):
    with Stack(host="127.0.0.1", ws_port=0, web_port=0, aws_port=0, template=merged_template(),
               schedules=False, env={"REALTIME_APP": tickets_app, "POWERTOOLS_DEV": "0"}) as running:
        yield running


def test_the_section_is_a_model_a_binding_one_registration_and_the_template() -> None:
    code, registration = blocks("python")
    assert registration.strip().count("\n") == 0, "one registration is one line"
    assert "class Ticket(Model)" in code and "class Tickets(Binding[Ticket])" in code
    merged = merged_template()
    assert "TicketsTable" in tpl.table_definitions(merged)
    assert tpl.function_specs(merged)["NotifyFunction"]["Events"]["TicketsStream"]["Type"] == "DynamoDB"


def test_tickets_go_live_written_through_the_socket_or_by_another_service(stack: Stack) -> None:
    async def scenario() -> None:
        alice = await Client.connect(stack, "alice", "Alice")
        bob = await Client.connect(stack, "bob", "Bob")
        carol = await Client.connect(stack, label="carol")  # anonymous
        async def subscribe(client: Client) -> dict[str, Any]:  # no snapshot: the ack or error answers
            rid = await client.request(action="subscribe", stream="tickets")
            return await client.until(lambda f: f.get("stream") in ("ack", "error") and f["payload"].get("id") == rid)

        for client in (alice, bob):
            assert (await subscribe(client))["stream"] == "ack"
        assert (await subscribe(carol))["payload"]["code"] == "unauthenticated"

        rid = await bob.request(action="create", stream="tickets", data={"id": "T-1", "title": "Printer on fire"})
        ack = await bob.until(lambda f: f["payload"].get("id") == rid)
        assert ack == {"stream": "ack", "payload": {"id": rid, "pk": "T-1", "version": 1}}
        for client in (alice, bob):
            event = await client.next("tickets")
            assert (event["action"], event["model"], event["pk"]) == ("create", "ticket", "T-1")
            assert event["data"] == {"id": "T-1", "title": "Printer on fire", "version": 1}

        rid = await alice.request(action="delete", stream="tickets", pk="T-1", version=1)
        refused = await alice.until(lambda f: f["payload"].get("id") == rid)
        assert refused["payload"]["code"] == "forbidden"  # only the assignee deletes

        stack.client("dynamodb").update_item(  # another AWS service assigns it
            TableName=stack.tables["TicketsTable"], Key={"id": {"S": "T-1"}},
            UpdateExpression="SET assignee = :a, version = version + :one",
            ExpressionAttributeValues={":a": {"S": "alice"}, ":one": {"N": "1"}})
        event = await alice.next("tickets")
        assert (event["action"], event["data"]["assignee"], event["data"]["version"]) == ("update", "alice", 2)
        rid = await alice.request(action="delete", stream="tickets", pk="T-1", version=2)
        assert (await alice.until(lambda f: f["payload"].get("id") == rid))["stream"] == "ack"
        event = await bob.until(lambda f: f.get("stream") == "tickets" and f["payload"]["action"] == "delete")
        assert event["payload"]["data"] == {"id": "T-1"}
        for client in (alice, bob, carol):
            await client.close()

    run(scenario())
