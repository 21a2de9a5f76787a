# pdp — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PDP    := $(VENV)/bin/pdp

.PHONY: run test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# Migrate the embedded SQLite store (var/pdp.db), publish and activate policies/,
# create a development API key (var/dev-key) and token signing key, start
# `pdp serve --dev` on 127.0.0.1:$(PORT) and print a curl call that is allowed.
PORT ?= 8080
run: $(VENV)/.installed
	PDP=$(PDP) PORT=$(PORT) scripts/dev-run.sh

# Every test (SQLite and PostgreSQL), then the example policy set's own tests.
test: $(VENV)/.installed
	$(PY) -m pytest -q
	$(PDP) policy test policies/

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -x -m "not slow"

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
