# Two commands do all set-up from a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-lock
# The installer of the lock's packages, pinned here (it is not one of the project's dependencies).
UV := uv==0.13.10

API_HOST ?= 127.0.0.1
# The servers' default ports are defined once, in doodle/constants.py.
port_constant = $(shell sed -n 's/^$(1) = \([0-9][0-9]*\).*/\1/p' doodle/constants.py)
API_PORT ?= $(call port_constant,DEFAULT_API_PORT)
DASHBOARD_PORT ?= $(call port_constant,DEFAULT_DASHBOARD_PORT)
PYTEST_ARGS ?=

# Stage commands (papermill, dvc) come from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Quiet, offline-friendly tools, with their state kept inside the project.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export SPARK_LOCAL_IP := 127.0.0.1
export SPARK_CONF_DIR := $(CURDIR)/conf/spark
export IPYTHONDIR := $(CURDIR)/.config/ipython
export JUPYTER_DATA_DIR := $(CURDIR)/.jupyter-data
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export PYTHONHASHSEED := 0
# Local MNIST files instead of a download: a folder with the four IDX .gz files.
# Defaults to ../shared/data/mnist when that folder exists beside the clone.
DOODLE_MNIST_DIR ?= $(abspath $(wildcard ../shared/data/mnist))
export DOODLE_MNIST_DIR
# Local pen trajectories (pendigits-orig.tra) instead of the UCI archive; ../shared/data/pendigits by default.
DOODLE_PENDIGITS_DIR ?= $(abspath $(wildcard ../shared/data/pendigits))
export DOODLE_PENDIGITS_DIR

.PHONY: help venv frontend lock system-deps pipeline metrics experiments mlflow-ui test-pipeline retrain long-run torch-reference run api score lint test test-fast plots bench bench-deps clean

help:
	@echo "make run     install (first time), run the DVC pipeline, serve the API and the dashboard"
	@echo "make retrain   snapshot feedback, train, evaluate, promote; prints the decision (works while make run serves)"
	@echo "make long-run   train params-long.yaml, evaluate it into reports/long-run/, judge it by the promotion rule"
	@echo "make test    install (first time), run the pipeline in a scratch copy, then every test (CI runs this)"
	@echo "make test-fast   the tests without the slow end-to-end ones"
	@echo "make lint    ruff check and ruff format --check (pyproject.toml's rules; make test runs it first)"
	@echo "make frontend   build the drawing app's page script (npm; make run and make test do it when needed)"
	@echo "make plots  DVC plots rendered offline into dvc_plots/index.html"
	@echo "make metrics   dvc metrics show (the headline figures); make experiments: dvc exp show"
	@echo "make mlflow-ui   MLflow's UI on the project's store (mlflow.db) at http://127.0.0.1:5000"
	@echo "make bench   benchmark scripts (installs the optional PyTorch CPU build)"
	@echo "make score INPUT=folder-or.parquet OUTPUT=scores.parquet   batch scoring with Spark"

# Installed by nothing, and removed from an older venv: rfc3987-syntax (and lark, which only it
# needs). jupyter-events asks for jsonschema's "format-nongpl" checkers; that one, when installed,
# compiles three Earley parsers for IRI syntax whenever jsonschema is imported: 1.5 s of CPU in
# every papermill run, Voila server and nbval worker (importing papermill: 2.3 s with it, 0.7 s
# without). Nothing here validates IRIs; without it jsonschema leaves that one format unchecked.
NOT_INSTALLED := rfc3987-syntax lark
space := $(subst ,, )

# uv installs the lock's exact versions, downloading and unpacking in parallel (about half of pip's
# time on two cores with an empty cache). Then the packages are compiled to bytecode, as pip does:
# where PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile its imports anew (a
# fresh clone's `make test` took 2 min longer). Their own test suites, which nothing imports, are
# left out: 31 s of CPU on a quiet machine (42 s in a fresh clone's `.ci/run`) instead of 52-55 s
# for uv's --compile-bytecode, which compiles every file. uv compiled while it built pyspark's
# wheel, though, and compileall runs after: the tests start about 5 s later, with less to do.
# pip stays in the venv for `make lock`.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" "$(UV)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip uninstall --quiet --python $(BIN)/python $(NOT_INSTALLED)
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $@

# The drawing app's page script and stylesheet (dashboard-frontend/: npm + esbuild), built into
# the Voilà template's static/ folder; ipycanvas's widget code comes from the installed Python package.
FRONTEND_DIR := share/jupyter/voila/templates/doodle/static
FRONTEND := $(FRONTEND_DIR)/doodle.js
$(FRONTEND): $(STAMP) dashboard-frontend/package-lock.json dashboard-frontend/build.mjs $(wildcard dashboard-frontend/src/*)
	@command -v npm >/dev/null || { echo "npm is needed to build the drawing app's page script: make system-deps (Debian), or install Node.js 18+" >&2; exit 1; }
	cd dashboard-frontend && npm ci --no-audit --no-fund --cache ../.cache/npm
	cd dashboard-frontend && node build.mjs ../$(VENV)/share/jupyter/nbextensions/ipycanvas/index.js ../$(FRONTEND_DIR)

frontend: $(FRONTEND)

venv: $(STAMP) $(FRONTEND)

# Re-pin after a change to pyproject.toml's dependencies (the optional PyTorch group stays out).
LOCK_LEAVES_OUT := doodle-digits|torch|sympy|mpmath|uv|$(subst $(space),|,$(NOT_INSTALLED))
lock: venv
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	{ echo "# Exact versions that 'make' installs (Python 3.11). Regenerate with 'make lock' after changing pyproject.toml."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^($(LOCK_LEAVES_OUT))==' ; } > requirements.lock

# Browsers and servers the end-to-end tests drive (Debian packages; needs root).
system-deps:
	@bash scripts/system-deps.sh

pipeline: venv
	$(BIN)/dvc repro

# The venv's dvc and mlflow, for those who have not activated it (`source .venv/bin/activate`).
metrics: venv
	$(BIN)/dvc metrics show

# The headline metrics (column names matched whole: every accuracy, ECE, epochs, time) and only the
# parameters and dependencies that differ between experiments: plain `dvc exp show` has a column for
# each of them, thousands of characters a line. tests/test_dvc_views.py runs the same command.
EXPERIMENTS_SHOW := exp show --no-pager --only-changed --keep '.*_accuracy|ece|epochs_run|train_seconds'
experiments: venv
	$(BIN)/dvc $(EXPERIMENTS_SHOW)

# MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: no job runner and huey consumers (MLflow's GenAI jobs), eight processes fewer.
mlflow-ui: venv
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# The feedback loop: new corrections in data/feedback.sqlite -> snapshot -> train -> evaluate ->
# promote. A running `make run` switches to the new model by itself when it is promoted.
retrain: venv
	$(BIN)/dvc repro
	@$(BIN)/python -c 'import json; m = json.load(open("reports/metrics/promotion.json")); print(m["decision"]); print("served model:", m["served_version"])'

# The long configuration (params-long.yaml): 03_train, 04_evaluate and 05_promote (the pipeline's
# rule), outputs in data/long-run/ and reports/long-run/; no part of dvc repro or make test. Needs the
# pipeline's outputs (data/prepared, data/feedback, models/) and the seed study's reports/experiments/results.csv.
long-run: venv
	$(BIN)/python scripts/long_run.py $(LONG_RUN_ARGS)

# The default MLP trained in PyTorch at the study's seeds: reports/experiments/torch_reference.csv.
torch-reference: bench-deps
	$(BIN)/python scripts/torch_reference.py

run: pipeline
	@$(BIN)/python scripts/serve.py --host $(API_HOST) --api-port $(API_PORT) --dashboard-port $(DASHBOARD_PORT)

api: venv
	$(BIN)/uvicorn serving.main:create_app --factory --host $(API_HOST) --port $(API_PORT)

# Batch scoring with Spark: a folder of PNG/JPEG drawings or a Parquet file (png or pixels column)
# -> Parquet, one row per image. SCORE_ARGS="--master spark://host:7077 --model models" for more.
score: venv
	@test -n "$(INPUT)" && test -n "$(OUTPUT)" || \
	  { echo "usage: make score INPUT=folder-or.parquet OUTPUT=scores.parquet [SCORE_ARGS='--master spark://host:7077']"; exit 2; }
	$(BIN)/python -m doodle.reading.score "$(INPUT)" "$(OUTPUT)" $(SCORE_ARGS)

# The tests get fresh pipeline outputs from a scratch copy (scripts/pipeline_scratch.py), so
# `make test` never rewrites a tracked file; only `make run` / `make pipeline` refresh reports/.
test-pipeline: venv
	$(BIN)/python scripts/pipeline_scratch.py

# ruff's rules and line length are in pyproject.toml; `ruff format .` and `ruff check --fix .` fix most findings.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Tests run on PYTEST_WORKERS processes (pytest-xdist); tests/conftest.py keeps each module with
# slow tests on one worker and starts the slow ones first. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder)

# The pipeline's scratch run goes on beside the tests (scripts/run_tests.py): the tests marked
# `pipeline` come last and wait for the outputs they read; the rest start at once.
test: system-deps lint
	$(BIN)/python scripts/run_tests.py $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: lint
	$(BIN)/python scripts/run_tests.py -m "not slow" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# dvc plots show rendered with local Vega (npm), readable offline: dvc_plots/index.html
plots: venv
	bash scripts/plots.sh

bench-deps: venv
	$(BIN)/python -m pip install --quiet torch==2.13.0

bench: system-deps bench-deps pipeline
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .cache .jupyter-data
