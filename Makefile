# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONFIG ?= config.yaml

.PHONY: run test lint deps venv clean

$(VENV)/.installed: pyproject.toml requirements-test.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet -r requirements-test.txt -e .
	touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/passthru run -c $(CONFIG)

deps:
	bash .ci/install-debian-packages

lint: venv
	$(VENV)/bin/ruff check passthru tests identifiers bench
	$(VENV)/bin/ruff format --check passthru tests identifiers bench

test: deps venv lint
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

include bench/Makefile.fragment
include tests/hardening/Makefile.fragment
