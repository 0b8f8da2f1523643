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

.PHONY: all venv sam test test-fast bench dev dev-reset fuzz clean

all: test

# Installs print one line; pip's output goes to a log (.dev/, git-ignored), shown only when
# the install fails.
LOG_DIR := .dev
PIP := -m pip install --disable-pip-version-check

$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	@mkdir -p $(LOG_DIR)
	@echo "make: installing Python packages into $(VENV) (log: $(LOG_DIR)/install.log)..."
	@{ $(PYTHON) -m venv $(VENV) && $(PY) $(PIP) --upgrade pip && \
	   $(PY) $(PIP) -r layers/common/requirements.txt -e '.[dev]'; } >$(LOG_DIR)/install.log 2>&1 \
	 || { cat $(LOG_DIR)/install.log; echo "make: the install failed (output above, also in $(LOG_DIR)/install.log)"; exit 1; }
	@touch $@

venv: $(VENV)/.installed

# The SAM CLI lives in its own environment: its pinned dependencies would fight moto's.
$(SAM_VENV)/.installed:
	@mkdir -p $(LOG_DIR)
	@echo "make: installing the SAM CLI into $(SAM_VENV) (log: $(LOG_DIR)/install-sam.log)..."
	@{ $(PYTHON) -m venv $(SAM_VENV) && $(SAM_VENV)/bin/python $(PIP) --upgrade pip && \
	   $(SAM_VENV)/bin/python $(PIP) aws-sam-cli==1.170.0; } >$(LOG_DIR)/install-sam.log 2>&1 \
	 || { cat $(LOG_DIR)/install-sam.log; echo "make: the install failed (output above, also in $(LOG_DIR)/install-sam.log)"; exit 1; }
	@touch $@

# AWS's serverless rules for cfn-lint (the SAM CLI brings cfn-lint 1.x; this package needs
# >=1.57): tests/test_template.py lints the template with them. A stamp of its own, so an
# existing .venv-sam gets it too.
$(SAM_VENV)/.serverless-rules: $(SAM_VENV)/.installed
	@mkdir -p $(LOG_DIR)
	@{ $(SAM_VENV)/bin/python $(PIP) cfn-lint-serverless==0.3.6; } >>$(LOG_DIR)/install-sam.log 2>&1 \
	 || { cat $(LOG_DIR)/install-sam.log; echo "make: the install failed (output above, also in $(LOG_DIR)/install-sam.log)"; exit 1; }
	@touch $@

sam: $(SAM_VENV)/.installed $(SAM_VENV)/.serverless-rules

# Two workers, a test file each at a time (module fixtures such as a local stack stay in one
# process): most tests wait on sockets and intervals, so two overlap well even on two cores
# (23 min serial, 10.5 min so, on the 2-core machine). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: venv sam
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$(PYTHON_DIR):$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: venv
	$(PY) -m pytest -m "not sam"

bench: venv
	$(PY) -m bench

# The whole backend locally, WebSockets included (sam local cannot serve WebSocket APIs):
# moto's DynamoDB/Streams/SQS on :5000, the API Gateway stand-in on :3001, the demo page on
# :8000 (DEV_HOST, DEV_*_PORT and JWT_SECRET override; see devtools/stack/config.py).
# The development secret and the documents are kept in .dev/ across restarts.
dev: venv
	@$(PY) -m devtools.stack

# `make dev` with fresh tables: the sample documents again, the saved ones replaced (the
# development secret stays: delete .dev/secret for a new one).
dev-reset: venv
	@DEV_FRESH=1 $(PY) -m devtools.stack

# Rewrite events/*.json (the sam local invoke samples) from devtools/stack/sample_events.py.
.PHONY: sample-events
sample-events: venv
	$(PY) -m devtools.stack.sample_events

# The long profile of the reliability suite (tests/reliability): at least 10,000 examples
# per fuzz target and the full 1,000-client load on the local stack. `make test` runs the
# quick profile. Long: budget hours, not minutes, on a 2-core machine.
fuzz: venv
	REALTIME_FUZZ=long $(PY) -m pytest tests/reliability -p no:cacheprovider

# Not .dev/: it holds the developer's documents and secret (`make dev-reset`, or delete it).
clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache
