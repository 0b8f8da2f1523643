"""Each benchmark's `--quick` mode runs and prints a table (no timing is asserted).

Each runs in its own interpreter, as `python -m bench NAME --quick` does: the benchmarks
start child processes, set the functions' environment and mock AWS, none of which should
leak into the test session. `--quick` never writes docs/performance.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_quick_mode_prints_a_table(name: str) -> None:
    doc = ROOT / "docs" / "performance.md"
    before = doc.read_bytes() if doc.exists() else None
    out = subprocess.run([sys.executable, "-m", "bench", name, "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert any(set(line.replace("|", "").replace(" ", "")) <= set("-:") for line in rows), out.stdout[-2000:]
    assert len(rows) >= 3, out.stdout[-2000:]
    assert "--quick run: not representative" in out.stdout
    assert (doc.read_bytes() if doc.exists() else None) == before, "--quick must not write the document"
