# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
# One instance for everything: the demo, the CLI, `dagster asset materialize` and the UI all use
# $(MLOPS_HOME)/dagster (a shell that runs `dagster` itself needs `export DAGSTER_HOME=$MLOPS_HOME/dagster`,
# or Dagster runs on a throw-away ephemeral instance the UI never shows).
export MLOPS_HOME ?= $(CURDIR)/.mlops_home
export DAGSTER_HOME ?= $(MLOPS_HOME)/dagster

.PHONY: venv demo test ui bench docs clean

venv: $(STAMP)

# Rebuilt whenever the lock file or the project metadata changes (stale venv).
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlops-assets demo $(if $(DAYS),--days $(DAYS))

PYTEST_ARGS ?= -n 2 --dist loadfile --durations=15
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: $(STAMP)
	@$(BIN)/mlops-assets instance   # writes the embedded dagster.yaml when missing; warns about a stray DAGSTER_HOME
	$(BIN)/dagster dev -w workspace.yaml

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# docs/spec.md is generated from the spec's pydantic schema (test_spec_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m mlops_assets.ml.spec_docs > docs/spec.md

clean:
	rm -rf $(VENV) .mlops_home
