"""The browser client's unit tests (`node --test client/test/`), run from the Python suite so
`make test` covers them. Node is required: a missing node fails under CI, skips (with the
reason shown) elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from devtools.template import ROOT


def _node() -> str | None:
    return shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)


def test_client_unit_tests_pass():
    node = _node()
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing: the browser client's unit tests cannot run (install nodejs)")
        pytest.skip("node is not installed: client/test/ not run")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 18, f"node {version}: the client's tests need node 18+"
    result = subprocess.run([node, "--test", "client/test/"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "NODE_OPTIONS": ""})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed:\n{output[-20000:]}"
    passed = re.search(r"^# pass (\d+)", output, re.M)
    failed = re.search(r"^# fail (\d+)", output, re.M)
    assert passed and failed, f"unexpected node --test output:\n{output[-5000:]}"
    assert int(failed.group(1)) == 0
    assert int(passed.group(1)) >= 30, f"only {passed.group(1)} client tests ran:\n{output[-5000:]}"
