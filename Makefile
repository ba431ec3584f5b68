# taskstatus: `make dev` runs the whole service locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two sets: what `make dev` runs (requirements-local.txt, which includes the Lambda package's
# requirements.txt) and, for `make test` and the tools, everything (requirements-dev.txt).
# Each installed set leaves a stamp named after a hash of its files.
LOCAL_REQUIREMENTS := requirements.txt requirements-local.txt
ALL_REQUIREMENTS := $(LOCAL_REQUIREMENTS) requirements-dev.txt
LOCAL_STAMP := $(VENV)/.installed-local-$(shell cat $(LOCAL_REQUIREMENTS) | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(shell cat $(ALL_REQUIREMENTS) | sha1sum | cut -c1-12)
# `make token NAME=alice`, or `make token USER=alice` (USER only when given on the command line).
NAME ?= $(if $(filter command line,$(origin USER)),$(USER),dev-user)
STAGE ?= prod
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install install-local install-browser dev dev-reset test unit unit-fast e2e doc-test lint format bench load package token service-key service-key-list service-key-revoke infra deploy deploy-rehearsal mutate clean

help:
	@echo "make dev      run the whole service locally (REST :8000, WebSocket :8001, emulator :5000)"
	@echo "make dev-reset  the same, starting from empty local state"
	@echo "make test     lint, unit and end-to-end tests, package + cfn-lint, the deploy rehearsal"
	@echo "make unit-fast  the unit tests that need no AWS (seconds)"
	@echo "make bench    calls per request, cold start, worker throughput (quick; FULL=1: all of it)"
	@echo "make load     2,000 tasks through make dev, then again with the emulator paused 30 s (TASKS= USERS= PAUSE=)"
	@echo "make token NAME=alice   mint a local token (CLAIMS='{\"tid\": \"acme\"}' adds claims)"
	@echo "make service-key NAME=n OWNERS='tenant-a* u-1' [SCOPES=...]   issue a producer's service key"
	@echo "make service-key-list | service-key-revoke ID=ak_...   (STAGE=<stage> for a deployed one)"
	@echo "make package  chalice package (prod) merged with infra/, checked by cfn-lint"

# tools/install.py creates the venv if needed and says what pip does as it goes (to stderr, so
# `$(make -s token)` stays the token), with a line every 10 s through pip's silent phases.
$(LOCAL_STAMP): $(LOCAL_REQUIREMENTS)
	@$(PYTHON) -m tools.install $(VENV) requirements-local.txt
	@rm -f $(VENV)/.installed-local-*
	@touch $(LOCAL_STAMP)

# Everything; it includes the local set, so it leaves both stamps.
$(STAMP): $(ALL_REQUIREMENTS)
	@$(PYTHON) -m tools.install $(VENV) requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP) $(LOCAL_STAMP)

install-local: $(LOCAL_STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium (Playwright's own browser builds are never downloaded).
install-browser:
	command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

dev: install-local
	$(PY) -m local.dev

dev-reset: install-local
	$(PY) -m local.dev --reset

# CLAIMS='{"tid": "acme"}' adds claims to the token (local/token.py).
token: install-local
	@$(PY) -m local.token $(NAME) $(if $(CLAIMS),--claims '$(CLAIMS)')

# Service keys (chalicelib/edge/service_keys.py): issued by the operator, never over the REST API.
service-key: install-local
	@NAME="$(NAME)" OWNERS="$(OWNERS)" SCOPES="$(SCOPES)" POOLS="$(POOLS)" $(PY) -m tools.service_key create

service-key-list: install-local
	@$(PY) -m tools.service_key list

service-key-revoke: install-local
	@ID="$(ID)" $(PY) -m tools.service_key revoke

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the layers (README: Architecture), pyproject's [tool.importlinter]

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Test tiers (tests/conftest.py marks and orders them): no AWS, in-process moto (`moto`),
# package/wheel builds (`slow`), end-to-end against one local stack (`e2e`), then `after_suite`.
# unit-fast leaves out schemathesis' and hypothesis' plugins: loading them costs seconds.
unit-fast: install
	$(PY) -m pytest tests/unit -m "not moto and not slow and not after_suite" \
	    -p no:schemathesis -p no:hypothesispytest

unit: install
	$(PY) -m pytest tests/unit

e2e: install
	$(PY) -m pytest tests/e2e

# Every bash block of the README a user runs, as typed, against local stacks
# (tests/e2e/test_readme_try_it.py).
doc-test: install
	$(PY) -m pytest tests/e2e/test_readme_try_it.py

# The unit tests, the end-to-end tests and the deploy rehearsal run at once (tools/test_all.sh
# says why that is sound); `make test PYTEST_ARGS=--durations=15` passes arguments to pytest.
test: lint install-browser
	PY=$(PY) tools/test_all.sh $(PYTEST_ARGS)

# Mutation testing of the guards (store conditions, token checks, SSRF, object prefixes).
mutate: install
	rm -rf mutants
	$(PY) -m tools.mutate

# Quick by default (every measurement at a smaller scale, a couple of minutes); FULL=1 for the
# full run behind docs/performance.md (about 12 minutes). A line per step as it goes.
bench: install
	BENCH_FULL=$(FULL) $(PY) -m bench.bench

# Its own make dev on free ports: tasks/s and submit-to-completed, steady and with the
# emulator stopped (SIGSTOP) for PAUSE seconds mid-run; fails if a task fails or is lost.
load: install
	TASKS=$(or $(TASKS),2000) USERS=$(or $(USERS),5) PAUSE=$(or $(PAUSE),30) $(PY) -m bench.load

package: install
	rm -rf build/package
	$(PY) -m infra.package $(STAGE) build/package
	$(VENV)/bin/cfn-lint build/package/sam.json
	$(VENV)/bin/cfn-lint infra/worker-fargate.yaml  # remote workers on ECS Fargate (docs/workers.md)

infra: install
	$(PY) -m infra.stage $(STAGE)

# chalice deploy, the WebSocket second pass, then the event source settings Chalice cannot set.
deploy: infra
	$(PY) -m infra.deploy $(STAGE)

# The README's deploy path, end to end, against the emulator; checks what was deployed.
deploy-rehearsal: package
	$(PY) -m infra.rehearsal

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
