"""Binding the local stack beyond loopback: refused unless DEV_ALLOW_REMOTE=1, and then loud;
`/dev/token` still will not mint with a secret from the environment unless told to."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

import pytest

from devtools.stack import Stack, StackError
from devtools.stack.__main__ import banner
from devtools.stack.config import stack_kwargs_from_env
from devtools.stack.exposure import is_loopback
from tests.stack.conftest import WAIT


def remote_stack(**kwargs) -> Stack:
    return Stack(host="0.0.0.0", ws_port=0, web_port=0, aws_port=0, schedules=False,
                 env={"POWERTOOLS_DEV": "0"}, **kwargs)


def token_status(stack: Stack) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{stack.web_url}/dev/token?user=mallory", timeout=WAIT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("10.0.0.1", False), ("", False),
])
def test_only_loopback_addresses_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_without_allow_remote_is_refused():
    stack = remote_stack()
    with pytest.raises(StackError, match="DEV_ALLOW_REMOTE=1"):
        stack.start()
    assert stack.gateway is None and stack.aws is None  # nothing was bound or started


def test_dev_allow_remote_reaches_the_stack_from_the_environment():
    kwargs = stack_kwargs_from_env({"DEV_HOST": "0.0.0.0", "DEV_ALLOW_REMOTE": "1"})
    assert kwargs["allow_remote"] is True and kwargs["allow_remote_tokens"] is False
    assert stack_kwargs_from_env({})["allow_remote"] is False


def test_remote_stack_with_an_environment_secret_refuses_to_mint_tokens():
    with remote_stack(allow_remote=True, jwt_secret=secrets.token_urlsafe(48)) as stack:
        status, answer = token_status(stack)
        text = banner(stack)
    assert status == 403 and "DEV_ALLOW_REMOTE_TOKENS=1" in answer["error"]
    assert "WARNING" in text and "0.0.0.0" in text and "/dev/token" in text and "stays off" in text


def test_remote_stack_mints_with_an_environment_secret_only_when_allowed():
    with remote_stack(allow_remote=True, allow_remote_tokens=True, jwt_secret=secrets.token_urlsafe(48)) as stack:
        status, answer = token_status(stack)
        text = banner(stack)
    assert status == 200 and answer["token"]
    assert "valid wherever that secret is" in text


def test_remote_stack_mints_with_its_own_development_secret(tmp_path):
    with remote_stack(allow_remote=True, state_dir=tmp_path) as stack:
        status, answer = token_status(stack)
        text = banner(stack)
    assert status == 200 and answer["token"]
    assert "moto on :" in text and "@connections" in text and "/dev/documents" in text


def test_loopback_stack_prints_no_warning_and_mints_with_an_environment_secret():
    with Stack(ws_port=0, web_port=0, aws_port=0, schedules=False, jwt_secret=secrets.token_urlsafe(48),
               env={"POWERTOOLS_DEV": "0"}) as stack:
        status, _ = token_status(stack)
        text = banner(stack)
    assert status == 200
    assert "WARNING" not in text
