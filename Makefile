# The two commands of README.md, and the checks behind them.
#   make demo   set up, start the local stack, run examples/quickstart.py
#   make test   set up, run the whole test suite against real emulators
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint format stack-up stack-down clean

$(STAMP): pyproject.toml functions/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "aletheia needs Python >= 3.10")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -r functions/requirements.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aletheia local up
	$(BIN)/python examples/quickstart.py
	@echo
	@echo "The local stack keeps running. Stop it with: $(BIN)/aletheia local down"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stack-up: $(STAMP)
	$(BIN)/aletheia local up

stack-down: $(STAMP)
	$(BIN)/aletheia local down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info

# Benchmarks against the peers (bench/RESULTS.md). The peers (MLflow, DVC, pandas) live in
# their own venv so they never enter the package's or the tests' environment.
BENCH_VENV  ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
.PHONY: bench bench-quick

$(BENCH_STAMP): pyproject.toml functions/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[bench,local]' -r functions/requirements.txt
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)
