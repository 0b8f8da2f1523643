"""Restarting the local stack: the development secret and the application's tables come back
(from the state directory, `.dev/` under `make dev`), and stream sequence numbers keep
growing, so a client that remembers the highest `seq` per document still hears of updates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import websockets

from devtools.stack import Stack, StackError, StackProcess
from devtools.stack.config import DEFAULT_STATE_DIR, stack_kwargs_from_env
from devtools.stack.state import StateDir
from tests.stack.conftest import WAIT, Client, run

EVERY_TYPE = {
    "slug": {"S": "typed"},
    "text": {"S": "héllo \u2603"}, "empty": {"S": ""},
    "count": {"N": "-12.50"}, "big": {"N": "123456789012345678901234567890"},
    "blob": {"B": b"\x00\xffbinary"},
    "names": {"SS": ["b", "a"]}, "numbers": {"NS": ["1", "2.5"]}, "blobs": {"BS": [b"\x01", b"\x02\x03"]},
    "list": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\x04"}, {"NULL": True}, {"L": []}]},
    "map": {"M": {"nested": {"M": {"deep": {"BOOL": False}}}, "bytes": {"BS": [b"\x05"]}}},
    "yes": {"BOOL": True}, "nothing": {"NULL": True},
}


def new_stack(state_dir: Path | None, **kwargs) -> Stack:
    return Stack(ws_port=0, web_port=0, aws_port=0, schedules=False, retry_delay=0.02, state_dir=state_dir,
                 env={"POWERTOOLS_DEV": "0"}, **kwargs)


def documents(stack: Stack) -> dict[str, dict]:
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.tables["DocumentsTable"])
    return {item["slug"]["S"]: item for page in pages for item in page["Items"]}


def put(stack: Stack, item: dict) -> None:
    stack.client("dynamodb").put_item(TableName=stack.tables["DocumentsTable"], Item=item)


def stream_records(stack: Stack) -> list[dict]:
    """Every record on the documents table's stream since the stack started."""
    streams = stack.client("dynamodbstreams")
    arn = stack.aws.stream_arns["DocumentsTable"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records = []
    for shard in shards:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return records


async def seq_of_next_update(stack: Stack, slug: str) -> int:
    """Update `slug` and return the `seq` of the notification a subscriber gets for it."""
    reader = await Client.connect(stack, "alice", "Alice")
    assert (await reader.subscribe("notifications"))["stream"] == "ack"
    await asyncio.to_thread(put, stack, {"slug": {"S": slug}, "title": {"S": f"edited {time.time()}"},
                                         "visibility": {"S": "public"}})
    note = await reader.next("notifications", lambda p: p["pk"] == slug)
    await reader.close()
    return int(note["seq"])


# ------------------------------------------------------------------ tables


def test_documents_written_before_a_restart_are_there_after_it(tmp_path):
    with new_stack(tmp_path) as first:
        put(first, {"slug": {"S": "mine"}, "title": {"S": "Written before the restart"}})
        before = documents(first)
    with new_stack(tmp_path) as second:
        after = documents(second)
    assert after == before
    assert after["mine"]["title"] == {"S": "Written before the restart"}
    assert {"welcome", "roadmap"} <= set(after)  # seeded on the first start, kept since


def test_items_of_every_attribute_type_come_back_exactly(tmp_path):
    with new_stack(tmp_path) as first:
        put(first, EVERY_TYPE)
        before = documents(first)["typed"]
    with new_stack(tmp_path) as second:
        after = documents(second)["typed"]
    assert after == before == EVERY_TYPE


def test_deleted_documents_stay_deleted_after_a_restart(tmp_path):
    with new_stack(tmp_path) as first:
        first.client("dynamodb").delete_item(TableName=first.tables["DocumentsTable"], Key={"slug": {"S": "roadmap"}})
    with new_stack(tmp_path) as second:
        assert "roadmap" not in documents(second)
        assert "welcome" in documents(second)


def test_restored_items_leave_no_stream_record(tmp_path):
    with new_stack(tmp_path) as first:
        put(first, {"slug": {"S": "kept"}, "title": {"S": "Kept"}})
    with new_stack(tmp_path) as second:
        assert "kept" in documents(second)
        assert stream_records(second) == []  # nothing for the notify function to announce
        put(second, {"slug": {"S": "new"}, "title": {"S": "New"}})
        records = stream_records(second)
    assert [r["dynamodb"]["Keys"]["slug"]["S"] for r in records] == ["new"]
    assert records[0]["eventName"] == "INSERT"


def test_connections_table_starts_empty_after_a_restart(tmp_path):
    with new_stack(tmp_path) as first:
        first.client("dynamodb").put_item(TableName=first.tables["ConnectionsTable"],
                                          Item={"pk": {"S": "conn#ghost"}, "sk": {"S": "meta"}})
    with new_stack(tmp_path) as second:
        items = second.client("dynamodb").scan(TableName=second.tables["ConnectionsTable"])["Items"]
    assert items == []
    saved = json.loads((tmp_path / "tables.json").read_text())
    assert set(saved["tables"]) == {"DocumentsTable", "CommentsTable"}  # every table but the engine's


def test_a_fresh_start_seeds_again_and_keeps_the_secret(tmp_path):
    with new_stack(tmp_path) as first:
        put(first, {"slug": {"S": "scratch"}, "title": {"S": "Scratch"}})
        secret = first.jwt_secret
    with new_stack(tmp_path, fresh=True) as fresh:
        assert "scratch" not in documents(fresh)
        assert "welcome" in documents(fresh)
        assert fresh.jwt_secret == secret
    with new_stack(tmp_path) as after:  # the fresh tables are what is kept now
        assert "scratch" not in documents(after)


def test_tables_are_saved_while_the_stack_runs(tmp_path):
    with new_stack(tmp_path, persist_interval=0.05) as stack:
        put(stack, {"slug": {"S": "saved-live"}, "title": {"S": "Saved"}})
        deadline = time.monotonic() + WAIT
        while "saved-live" not in (tmp_path / "tables.json").read_text():
            assert time.monotonic() < deadline, "the running stack never saved the write"
            time.sleep(0.02)


def test_a_killed_stack_keeps_what_it_had_saved(tmp_path):
    process = StackProcess(state_dir=tmp_path, env={"POWERTOOLS_DEV": "0"}).start()
    try:
        process.client("dynamodb").put_item(TableName=process.tables["DocumentsTable"],
                                            Item={"slug": {"S": "before-the-crash"}, "title": {"S": "Crash"}})
        deadline = time.monotonic() + WAIT
        while "before-the-crash" not in (tmp_path / "tables.json").read_text():
            assert time.monotonic() < deadline, "the write was never saved"
            time.sleep(0.05)
        process.proc.send_signal(signal.SIGKILL)  # no chance to save on the way out
        process.proc.wait(WAIT)
    finally:
        process.stop()
    with new_stack(tmp_path) as after:
        assert "before-the-crash" in documents(after)


def test_an_unreadable_state_file_stops_the_start_and_is_left_alone(tmp_path):
    (tmp_path / "tables.json").write_text('{"format": 1, "tables": {"DocumentsTable": [{"slug": {"X": 1}}]}}')
    original = (tmp_path / "tables.json").read_bytes()
    with pytest.raises(StackError, match="DEV_FRESH=1"):
        new_stack(tmp_path).start()
    assert (tmp_path / "tables.json").read_bytes() == original
    with new_stack(tmp_path, fresh=True) as fresh:  # the way out the message names
        assert "welcome" in documents(fresh)


def test_two_stacks_cannot_share_a_state_directory(tmp_path):
    first, second = StateDir(tmp_path), StateDir(tmp_path)
    first.lock()
    try:
        with pytest.raises(StackError, match="DEV_STATE_DIR"):
            second.lock()
    finally:
        first.unlock()
    second.lock()  # free again once the first lets go
    second.unlock()


# ------------------------------------------------------------------ the secret


def test_tokens_minted_before_a_restart_still_connect_after_it(tmp_path):
    with new_stack(tmp_path) as first:
        token = first.token("alice", "Alice")
    with new_stack(tmp_path) as second:
        async def connect() -> dict:
            async with websockets.connect(second.url(token), open_timeout=WAIT) as ws:
                await ws.send(json.dumps({"action": "heartbeat", "id": 1}))
                return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

        assert run(connect()) == {"stream": "ack", "payload": {"id": 1}}
        assert "reused across restarts" in second.secret_origin
    mode = stat.S_IMODE(os.stat(tmp_path / "secret").st_mode)
    assert mode == 0o600


def test_a_secret_from_the_environment_wins_over_the_kept_one(tmp_path):
    with new_stack(tmp_path) as first:
        kept = first.jwt_secret
    given = "g" * 48
    with new_stack(tmp_path, jwt_secret=given) as second:
        assert second.jwt_secret == given != kept
    assert (tmp_path / "secret").read_text().strip() == kept


def test_make_dev_keeps_state_in_dot_dev_and_tests_keep_none():
    assert stack_kwargs_from_env({})["state_dir"] == DEFAULT_STATE_DIR
    assert DEFAULT_STATE_DIR.name == ".dev"
    assert stack_kwargs_from_env({"DEV_STATE_DIR": "off"})["state_dir"] is None
    assert StackProcess().env["DEV_STATE_DIR"] == "off"
    assert Stack().state is None


# ------------------------------------------------------------------ stream sequence numbers


@pytest.mark.parametrize("kept", [True, False], ids=["state kept", "nothing kept"])
def test_the_first_update_after_a_restart_has_a_higher_seq_than_any_before(tmp_path, kept):
    state = tmp_path if kept else None
    with new_stack(state) as first:
        for _ in range(3):
            before = run(seq_of_next_update(first, "roadmap"))
    with new_stack(state) as second:
        after = run(seq_of_next_update(second, "roadmap"))
    assert after > before


def test_a_second_stack_in_one_process_reads_its_own_tables():
    """The bound models' PynamoDB connections are built for the endpoint of the stack that
    bound them: a later stack (same table names, another moto port) must not use the first's."""

    async def documents_snapshot(stack: Stack) -> dict:
        client = await Client.connect(stack, label="reader")
        snapshot = await client.subscribe("documents")
        await client.close()
        return snapshot

    for _ in range(2):
        with new_stack(None) as stack:
            snapshot = run(documents_snapshot(stack))
            assert snapshot["stream"] == "documents", snapshot  # not an `internal` error
            assert "welcome" in {entry["document"] for entry in snapshot["payload"]["documents"]}
