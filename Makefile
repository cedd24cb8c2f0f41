# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
# NannyML apart (target nannyml-venv, below)
NM_VENV := .venv-nannyml
NM_STAMP := $(NM_VENV)/.installed-from-lock
# One instance for everything: the demo, the CLI, `dagster asset materialize` and the UI all use
# $(MLOPS_HOME)/dagster (a shell that runs `dagster` itself needs `export DAGSTER_HOME=$MLOPS_HOME/dagster`,
# or Dagster runs on a throw-away ephemeral instance the UI never shows).
export MLOPS_HOME ?= $(CURDIR)/.mlops_home
export DAGSTER_HOME ?= $(MLOPS_HOME)/dagster

.PHONY: venv demo test lint ui bench docs clean nannyml-venv

venv: $(STAMP)

# Rebuilt whenever the lock file or the project metadata changes (stale venv). pip byte-compiles on one core,
# 3/4 of the install's time (3.9 of 4.8 min on 2 cores): it installs with --no-compile and compileall then
# compiles on every core. (Compiled ahead, not on first import: with PYTHONDONTWRITEBYTECODE set, as on
# CI machines, nothing compiled at import is kept and every process — each run's step workers too —
# would compile its imports again.)
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	$(BIN)/python -m pip check
	@touch $(STAMP)

# Our own modules compiled too, before each demo and suite (half a second): with PYTHONDONTWRITEBYTECODE set,
# every process — the daemon's runs and their step workers — would compile them again on import.
COMPILE_OWN := $(BIN)/python -m compileall -q -j 0 mlops_assets benchmarks mlops_assets_tests > /dev/null

demo: $(STAMP)
	@$(COMPILE_OWN)
	$(BIN)/mlops-assets demo $(if $(DAYS),--days $(DAYS))

# The linter and the formatter's check (ruff, pinned in the lock; rules in pyproject.toml): part of `make test`.
LINTED := mlops_assets mlops_assets_tests benchmarks
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check --quiet $(LINTED)

PYTEST_ARGS ?= -n 2 --dist loadfile --durations=25
test: $(STAMP) $(NM_STAMP) lint
	@$(COMPILE_OWN)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Both UIs on the same $(MLOPS_HOME): the Dagster UI (dagster dev: webserver + daemon) and the MLflow UI over the
# embedded store the registry writes (the metadata links point there). After `make demo` the demo's spec
# ($(MLOPS_HOME)/demo_spec.yaml: its partition_start and shadow_days) is used unless MLOPS_SPEC is set.
# Ctrl-C stops both: the MLflow UI runs in its own process group, killed on exit.
DAGSTER_UI_PORT ?= 3000
MLFLOW_UI_PORT ?= 5000
ui: $(STAMP)
	@$(BIN)/mlops-assets instance   # writes the embedded dagster.yaml when missing; warns about a stray DAGSTER_HOME
	@if [ -z "$$MLOPS_SPEC" ] && [ -f "$(MLOPS_HOME)/demo_spec.yaml" ]; then \
	  export MLOPS_SPEC="$(MLOPS_HOME)/demo_spec.yaml"; echo "spec: $$MLOPS_SPEC"; fi; \
	mkdir -p "$(MLOPS_HOME)/mlflow/artifacts"; \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid $(BIN)/mlflow ui --workers 1 --backend-store-uri "sqlite:///$(MLOPS_HOME)/mlflow/mlflow.db" \
	  --default-artifact-root "$(MLOPS_HOME)/mlflow/artifacts" --host 127.0.0.1 --port $(MLFLOW_UI_PORT) \
	  > "$(MLOPS_HOME)/mlflow/ui.log" 2>&1 & mlflow_pid=$$!; \
	trap 'kill -TERM -$$mlflow_pid 2>/dev/null; wait $$mlflow_pid 2>/dev/null; echo "MLflow UI stopped"' EXIT; \
	trap 'exit 130' INT TERM; \
	echo "Dagster UI: http://127.0.0.1:$(DAGSTER_UI_PORT)"; \
	echo "MLflow UI:  http://127.0.0.1:$(MLFLOW_UI_PORT)  (log: $(MLOPS_HOME)/mlflow/ui.log)"; \
	MLOPS_MLFLOW_UI_URL="$${MLOPS_MLFLOW_UI_URL:-http://127.0.0.1:$(MLFLOW_UI_PORT)}" \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_UI_PORT)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# docs/spec.md is generated from the spec's pydantic schema (test_spec_docs.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m mlops_assets.core.spec_docs > docs/spec.md

# NannyML, for the cross-check of estimation and multivariate drift (test_nannyml_crosscheck.py): its pins conflict
# with ours, so it gets its own environment from its own lock (no resolution: --no-deps, like the main venv).
nannyml-venv: $(NM_STAMP)

$(NM_STAMP): requirements-nannyml.lock
	@test -x $(NM_VENV)/bin/python || $(PYTHON) -m venv $(NM_VENV)
	$(NM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-compile --no-deps -r requirements-nannyml.lock
	$(NM_VENV)/bin/python -m compileall -q -j 0 $(NM_VENV)/lib > /dev/null
	@sha256sum requirements-nannyml.lock | cut -d' ' -f1 > $(NM_STAMP)

clean:
	rm -rf $(VENV) .mlops_home
