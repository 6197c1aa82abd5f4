# One set of targets for the README, CI and developers.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PYTHON    ?= python3

.PHONY: demo test lint format bench install redis postgres promtool clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,bench]"
	touch $@

install: $(VENV)/.installed

redis:
	@scripts/ensure-redis.sh

postgres:
	@scripts/ensure-postgres.sh

promtool:
	@scripts/ensure-promtool.sh

## Redis, PostgreSQL, simulator, service and persist, in the foreground (Ctrl-C stops all).
demo: install redis postgres
	@scripts/demo.sh

## The whole test suite, against real redis-server and PostgreSQL processes.
test: install redis postgres promtool
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.bench-installed redis postgres
	$(PY) -m bench

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache .mypy_cache *.egg-info
