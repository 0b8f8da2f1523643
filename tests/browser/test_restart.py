"""`make dev` stopped and started again while a page stays open: the page reconnects by
itself with the token it holds, and still tells its user about updates to a document it
was notified about before the restart (the stream's `seq` keeps growing across restarts,
so the page's "highest seq per document" does not swallow them)."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from devtools.stack.process import StackProcess
from realtime import keys
from tests.browser.conftest import People, dynamodb, ports, put_document


def notified_connections(stack: StackProcess, user: str) -> int:
    """Connections of `user` in the `notifications` group (the fan-out index: a group of a
    few members has one shard, docs/data-model.md)."""
    client = dynamodb(stack)
    return sum(len(client.query(TableName=stack.tables["ConnectionsTable"], IndexName="by_group",
                                KeyConditionExpression="grp = :g", FilterExpression="uid = :u",
                                ExpressionAttributeValues={":g": {"S": shard}, ":u": {"S": user}})["Items"])
               for shard in keys.group_shards("notifications", 1))


def wait_for(condition, what: str, timeout: float = 45.0) -> None:
    """A bounded wait for a condition outside the page (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def make_dev(tmp_path, **fixed_ports: int) -> StackProcess:
    """What `make dev` runs, with its state directory in `tmp_path` (never the developer's .dev/)."""
    return StackProcess(state_dir=tmp_path / "dev", env={"POWERTOOLS_LOG_LEVEL": "ERROR"}, **fixed_ports).start()


def test_open_page_still_gets_update_notifications_after_a_restart(browser, people: People, tmp_path):
    first = make_dev(tmp_path)
    fixed = ports(first)
    second = None
    try:
        alice = people.open_page(first, "alice", "Alice")
        for version in (1, 2, 3):  # the page now holds roadmap's seq from three updates
            put_document(first, "roadmap", f"Roadmap v{version}", owner="bob")
            expect(alice.notifications(f"Roadmap v{version}")).to_have_count(1)
        first.stop()
        expect(alice.state).to_have_text("reconnecting")

        second = make_dev(tmp_path, **fixed)
        expect(alice.state).to_have_text("open", timeout=45_000)  # the token from before still signs in
        wait_for(lambda: notified_connections(second, "alice") == 1, "the page's notifications subscription")
        put_document(second, "roadmap", "Roadmap after the restart", owner="bob")
        expect(alice.notifications("Roadmap after the restart")).to_have_count(1)
        expect(alice.notifications("Roadmap after the restart")).to_contain_text("Document updated")
    finally:
        if second is not None:
            second.stop()
        first.stop()
