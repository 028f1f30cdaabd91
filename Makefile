# Everything goes through a project-local virtual environment (.venv).
# `make run`  — install, then start the chat on the bundled corpus (http://127.0.0.1:7860)
# `make test` — install (browser too), then run the whole test suite, as CI does
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test test-fast lint browser-deps bench-quick eval calibration clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch (on this machine's disk); an unpinned torch would pull CUDA.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/ess-assistant serve

browser-deps:
	bash scripts/install-browser.sh

test: install browser-deps
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy assistant embeddings corpus ui

bench-quick: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_build.py --quick
	$(BIN)/python bench/bench_query.py --quick
	$(BIN)/python bench/bench_cold_start.py --quick
	$(BIN)/python bench/bench_langchain.py --quick

# The sealed-part figures of the README on both bases (builds their indexes in .eval-data/).
eval: install
	$(BIN)/python bench/bench_eval.py --split sealed

# Refit the default calibrations (assistant/data/calibration*.json) on the tuning parts.
calibration: install
	ESS_ASSISTANT_PRECISION=fp32 $(BIN)/python scripts/calibrate_default.py
	ESS_ASSISTANT_PRECISION=int8 $(BIN)/python scripts/calibrate_default.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
