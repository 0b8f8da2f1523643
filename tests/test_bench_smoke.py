"""Each benchmark's `--quick` mode runs and prints a table (no timing is asserted).

Each runs in its own interpreter, as `python -m bench NAME --quick` does: the benchmarks
start child processes, set the functions' environment and mock AWS, none of which should
leak into the test session. `--quick` never writes docs/performance.md (nor docs/scale.md).

Below, the parts of `bench scale` whose mistakes would not show in a table: how the local
stack's tap tells which partition key a request lands on, and the model's fan-out pages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "performance.md", ROOT / "docs" / "scale.md")


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_quick_mode_prints_a_table(name: str) -> None:
    before = [doc.read_bytes() if doc.exists() else None for doc in DOCS]
    out = subprocess.run([sys.executable, "-m", "bench", name, "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert any(set(line.replace("|", "").replace(" ", "")) <= set("-:") for line in rows), out.stdout[-2000:]
    assert len(rows) >= 3, out.stdout[-2000:]
    assert "--quick run: not representative" in out.stdout
    after = [doc.read_bytes() if doc.exists() else None for doc in DOCS]
    assert after == before, "--quick must not write the documents"


class _Client:
    """What the tap asks of a botocore client: the key schema of a table and its indexes."""

    def describe_table(self, TableName: str) -> dict:
        return {"Table": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                        {"AttributeName": "sk", "KeyType": "RANGE"}],
                          "GlobalSecondaryIndexes": [{"IndexName": "by_group", "KeySchema": [
                              {"AttributeName": "grp", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}]}]}}


def touched(op: str, params: dict) -> list[tuple[str, bool]]:
    from bench.scale_load import Tap

    return list(Tap().touched(_Client(), op, params))


def test_the_tap_counts_an_update_on_the_items_partition_key_as_a_write() -> None:
    assert touched("UpdateItem", {"TableName": "t", "Key": {"pk": {"S": "c#1"}, "sk": {"S": "meta"}}}) == [
        ("t c#1", True)]


def test_the_tap_counts_an_index_query_on_the_index_partition_key_it_names() -> None:
    params = {"TableName": "t", "IndexName": "by_group", "KeyConditionExpression": "grp = :g AND gsk > :after",
              "ExpressionAttributeValues": {":g": {"S": "users#3"}, ":after": {"S": "x"}}}
    assert touched("Query", params) == [("t[by_group] users#3", False)]


def test_the_tap_resolves_attribute_names_in_a_key_condition() -> None:
    params = {"TableName": "t", "KeyConditionExpression": "#k = :v", "ExpressionAttributeNames": {"#k": "pk"},
              "ExpressionAttributeValues": {":v": {"S": "p#room#0"}}}
    assert touched("Query", params) == [("t p#room#0", False)]


def test_the_tap_counts_every_item_of_a_batch_and_a_transaction() -> None:
    batch = {"RequestItems": {"t": {"Keys": [{"pk": {"S": "n#0"}, "sk": {"S": "users"}},
                                             {"pk": {"S": "n#1"}, "sk": {"S": "users"}}]}}}
    transaction = {"TransactItems": [{"Put": {"TableName": "t", "Item": {"pk": {"S": "u#a"}, "sk": {"S": "user"}}}},
                                     {"Update": {"TableName": "t", "Key": {"pk": {"S": "n#5"}, "sk": {"S": "users"}}}}]}
    assert touched("BatchGetItem", batch) == [("t n#0", False), ("t n#1", False)]
    assert touched("TransactWriteItems", transaction) == [("t u#a", True), ("t n#5", True)]


def test_the_model_queues_a_page_per_shard_past_the_inline_page() -> None:
    """2,500 members over 16 shards (156 each): the first 1,000 inline, so 6.4 shards; the other
    9.6 shards one page each (what the DynamoDB benchmark measures: 10 SendMessageBatch)."""
    from bench.scale_model import pages

    assert pages(1000, 1000, 16) == 0
    assert pages(2500, 1000, 16) == pytest.approx(9.6)
    assert pages(1_000_000, 1000, 16) == pytest.approx(16 * 63 - 1000 / 62_500 * 63, rel=1e-3)


def test_coalesced_announcements_never_exceed_one_per_interval() -> None:
    from bench.scale_model import coalesced

    assert coalesced(0.0, 1.0) == 0.0
    assert coalesced(1.0, 1.0) == pytest.approx(0.5)
    assert coalesced(1e9, 10.0) < 0.1
