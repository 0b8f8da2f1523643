# The README's commands: `make dev` runs the backend locally, `make test` runs every test.
# Both set up what they need first (virtual environments, packages), so they work on a
# fresh machine.
SHELL := /bin/bash
# Lambda runs python3.12: prefer it (pyenv keeps one under its versions folder; its shim
# fails unless selected), fall back to whatever python3 the machine has.
PYTHON ?= $(shell for p in $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null) python3.12 python3; do \
	"$$p" -c 'import sys' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
PYTHON_DIR := $(dir $(PYTHON))
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0

.PHONY: all venv sam test test-fast bench dev fuzz clean

all: test

$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r layers/common/requirements.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The SAM CLI lives in its own environment: its pinned dependencies would fight moto's.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==1.170.0
	touch $@

sam: $(SAM_VENV)/.installed

test: venv sam
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$(PYTHON_DIR):$$PATH" $(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not sam"

bench: venv
	$(PY) -m bench

# The whole backend locally, WebSockets included (sam local cannot serve WebSocket APIs):
# moto's DynamoDB/Streams/SQS on :5000, the API Gateway stand-in on :3001, the demo page on
# :8000 (DEV_HOST, DEV_*_PORT and JWT_SECRET override; see devtools/stack/config.py).
dev: venv
	$(PY) -m devtools.stack

# Rewrite events/*.json (the sam local invoke samples) from devtools/stack/sample_events.py.
.PHONY: sample-events
sample-events: venv
	$(PY) -m devtools.stack.sample_events

# The long profile of the reliability suite (tests/reliability): at least 10,000 examples
# per fuzz target and the full 1,000-client load on the local stack. `make test` runs the
# quick profile. Long: budget hours, not minutes, on a 2-core machine.
fuzz: venv
	REALTIME_FUZZ=long $(PY) -m pytest tests/reliability -p no:cacheprovider

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache
