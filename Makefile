# taskstatus: `make dev` runs the whole service locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
# `make token NAME=alice`, or `make token USER=alice` (USER only when given on the command line).
NAME ?= $(if $(filter command line,$(origin USER)),$(USER),dev-user)
STAGE ?= prod
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install install-browser dev test unit e2e lint format bench package token infra deploy clean

help:
	@echo "make dev      run the whole service locally (REST :8000, WebSocket :8001, emulator :5000)"
	@echo "make test     lint, unit and end-to-end tests, package + cfn-lint"
	@echo "make bench    calls per request, cold start, worker throughput"
	@echo "make token NAME=alice   mint a local token"
	@echo "make package  chalice package (prod) merged with infra/, checked by cfn-lint"

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check 'pip>=23,<26.3'  # chalice 1.34 requires pip<26.3
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium (Playwright's own browser builds are never downloaded).
install-browser:
	command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

dev: install
	$(PY) -m local.dev

token: install
	@$(PY) -m local.token $(NAME)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit: install
	$(PY) -m pytest tests/unit

e2e: install
	$(PY) -m pytest tests/e2e

test: lint package install-browser
	$(PY) -m pytest tests

bench: install
	$(PY) -m bench.bench

package: install
	rm -rf build/package
	$(PY) -m infra.package $(STAGE) build/package
	$(VENV)/bin/cfn-lint build/package/sam.json

infra: install
	$(PY) -m infra.stage $(STAGE)

deploy: infra
	$(VENV)/bin/chalice deploy --stage $(STAGE)
	$(PY) -m infra.stage $(STAGE) websocket || { test $$? -eq 10 && $(VENV)/bin/chalice deploy --stage $(STAGE); }

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
