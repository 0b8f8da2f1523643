"""`StackProcess`: the stack in a child process (browser tests: the page and the stack must
not share the test's GIL or event loop). Ports default to 0 (free ones), reported back.

    with StackProcess() as stack:
        stack.ws_url, stack.web_url, stack.aws_endpoint, stack.token("alice", "Alice")
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devtools.stack.web import TOKEN_LIFETIME, mint_token
from devtools.template import ROOT


class StackProcess:
    def __init__(self, host: str = "127.0.0.1", ws_port: int = 0, web_port: int = 0, aws_port: int = 0, *,
                 env: Mapping[str, str] | None = None, startup_timeout: float = 60.0, quiet: bool = True,
                 state_dir: str | Path | None = None) -> None:
        """`state_dir`: where the child keeps its secret and tables across restarts; None keeps
        nothing (never the developer's `.dev/`, which `make dev` uses)."""
        self.env = {**os.environ, "DEV_HOST": host, "DEV_WS_PORT": str(ws_port), "DEV_WEB_PORT": str(web_port),
                    "DEV_AWS_PORT": str(aws_port), "PYTHONUNBUFFERED": "1",
                    "DEV_STATE_DIR": str(state_dir) if state_dir is not None else "off", **dict(env or {})}
        self.startup_timeout = startup_timeout
        self.quiet = quiet
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def __enter__(self) -> StackProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StackProcess:
        cmd = [sys.executable, "-m", "devtools.stack", "--ready-json"] + (["--quiet"] if self.quiet else [])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="stack-process-output", daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=self.startup_timeout)
            except queue.Empty:
                self.stop()
                raise TimeoutError("the stack did not start in time:\n" + "".join(self.output)) from None
            if line is None:
                self.stop()
                raise RuntimeError("the stack exited during startup:\n" + "".join(self.output))
            self.output.append(line)
            if line.startswith("STACK_READY "):
                self.info = json.loads(line[len("STACK_READY "):])
                break
        self._lines = lines
        return self

    def __getattr__(self, name: str) -> Any:
        info = self.__dict__.get("info") or {}
        if name in info:
            return info[name]
        raise AttributeError(name)

    def token(self, user: str, name: str | None = None, lifetime: int = TOKEN_LIFETIME) -> str:
        return mint_token(self.info["jwt_secret"], user, name, lifetime)

    def url(self, token: str | None = None) -> str:
        """The WebSocket URL, with `?token=` when given (as `Stack.url`)."""
        return f"{self.info['ws_url']}?token={token}" if token else self.info["ws_url"]

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's AWS endpoint (as `Stack.client`)."""
        import boto3

        return boto3.client(service, endpoint_url=self.info["aws_endpoint"], region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (Ctrl-C), then wait; SIGKILL only if it does not stop in `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
