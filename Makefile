# One command for the demo, one for the tests; both set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test workers (pytest-xdist); 0 runs the suite in this process. The tests mostly wait on sockets,
# subprocesses and sleeps, so three workers keep two cores busy.
TEST_WORKERS ?= 3
# COVERAGE=1: measure bettorsense while testing and fail under COVERAGE_FLOOR percent.
COVERAGE ?=
COVERAGE_FLOOR ?= 93
SCENARIO ?=
E2E_PROFILE ?= all
E2E_ARGS ?=

.PHONY: install test lint demo docs bench e2e clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy bettorsense
	$(PY) manage.py makemigrations --check --dry-run

# --dist loadgroup: the tests that start real processes share one xdist group (tests/conftest.py).
test: lint
	$(PY) -m pytest \
	  $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup) \
	  $(if $(COVERAGE),--cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)) \
	  $(PYTEST_ARGS)

demo: install
	$(PY) scripts/demo.py

# The documentation site (MkDocs, Material theme) into site/, strict: a broken link fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: install
	$(PY) bench/token_fleet.py

# End-to-end scenarios on real processes, under load and faults (about 15 minutes; see e2e/__init__.py).
# SCENARIO=3 (or 1,2) runs some; E2E_PROFILE=services|embedded runs one data profile.
e2e: install
	$(PY) -m e2e --profile $(E2E_PROFILE) $(if $(SCENARIO),--scenario $(SCENARIO)) $(E2E_ARGS)

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache .mypy_cache .coverage .coverage.* htmlcov db.sqlite3 site
