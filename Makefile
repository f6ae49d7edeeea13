# The two commands of README.md, and the checks behind them.
#   make demo   set up, start the local stack, run examples/quickstart.py, serve the dashboard
#   make test   set up, run the whole test suite against real emulators
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# checkov (the terraform scan in tests/test_terraform.py) pins old packaging
# versions that break pytest, so it lives in a venv of its own.
CHECKOV_VENV  ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
# What terraform/ zips as the function: functions/ plus the aletheia wheel.
BUNDLE_DIR ?= build/function
# The Firebase Auth emulator (firebase-tools, from npm) for `aletheia local up --auth`
# and the sign-in tests. Pinned: the emulator's REST surface is what the tests speak.
FIREBASE_TOOLS   ?= firebase-tools@15.34.2
FIREBASE_DIR     := .tools/firebase
FIREBASE_STAMP   := $(FIREBASE_DIR)/.installed-stamp
# The google provider's schema, as published in the generated cdktf bindings
# (16.12.1 = provider 6.50.0): tests/test_terraform_schema.py checks terraform/ with it.
PROVIDER_SCHEMA       ?= @cdktf/provider-google@16.12.1
PROVIDER_SCHEMA_DIR   := .tools/provider-google
PROVIDER_SCHEMA_STAMP := $(PROVIDER_SCHEMA_DIR)/.installed-stamp
# Firebase Hosting's resources are in the google-beta provider only.
BETA_SCHEMA           ?= @cdktf/provider-google-beta@16.12.1
BETA_SCHEMA_DIR       := .tools/provider-google-beta
BETA_SCHEMA_STAMP     := $(BETA_SCHEMA_DIR)/.installed-stamp

.PHONY: demo test test-deps lint format stack-up stack-down clean checkov function-bundle auth-emulator web

# The web dashboard (web/): built with Node into the Python package (aletheia/webui/dist),
# which ships it as package data, so `aletheia ui` serves it without Node.
WEB_DIST    := aletheia/webui/dist/index.html
WEB_MODULES := web/node_modules/.installed-stamp
WEB_SOURCES := $(wildcard web/src/*.ts web/src/*/*.ts web/src/*.css) web/index.html \
               web/vite.config.ts web/tsconfig.json web/package-lock.json
DEMO_PORT   ?= 8765

$(STAMP): pyproject.toml functions/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "aletheia needs Python >= 3.10")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -r functions/requirements.txt
	@touch $(STAMP)

demo: $(STAMP) $(FIREBASE_STAMP) $(WEB_DIST)
	$(BIN)/aletheia local up --auth
	$(BIN)/python examples/quickstart.py
	$(BIN)/python examples/dashboard_user.py
	$(BIN)/aletheia ui --background --port $(DEMO_PORT)
	@echo
	@echo "The local stack and the dashboard keep running. Stop the stack with: $(BIN)/aletheia local down"

web: $(WEB_DIST)

$(WEB_MODULES): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 20) is needed to build the dashboard" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(WEB_MODULES)

$(WEB_DIST): $(WEB_MODULES) $(WEB_SOURCES)
	cd web && npm run --silent build

# Two workers, each with its own local stack on free ports: most of a test's time is spent
# waiting on emulators and subprocesses, so two share the machine's cores well. A test
# file stays on one worker (module fixtures). Files go out in collection order, which
# tests/conftest.py starts with the longest ones (LONGEST_FIRST), so no long file starts
# last. PYTEST_ARGS= runs them in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder

test: test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything the tests need; independent, so `make -j3 test-deps` installs them side by side.
test-deps: $(STAMP) $(CHECKOV_STAMP) $(FIREBASE_STAMP) $(PROVIDER_SCHEMA_STAMP) $(BETA_SCHEMA_STAMP) $(WEB_DIST) browser

# The dashboard tests drive Debian's Chromium with Playwright (its own browser download
# cannot work offline); installed with apt-get when missing (CI runs as root).
CHROMIUM ?= /usr/bin/chromium
.PHONY: browser
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" -eq 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| { echo "install Chromium: apt-get install chromium (or set CHROMIUM=path)" >&2; exit 1; }

$(PROVIDER_SCHEMA_STAMP):
	rm -rf $(PROVIDER_SCHEMA_DIR) && mkdir -p $(PROVIDER_SCHEMA_DIR)
	cd $(PROVIDER_SCHEMA_DIR) && npm pack --silent $(PROVIDER_SCHEMA) > tarball.txt \
		&& tar xzf "$$(cat tarball.txt)" --wildcards 'package/lib/*/index.d.ts' \
		&& rm -f "$$(cat tarball.txt)" tarball.txt
	@touch $(PROVIDER_SCHEMA_STAMP)

$(BETA_SCHEMA_STAMP):
	rm -rf $(BETA_SCHEMA_DIR) && mkdir -p $(BETA_SCHEMA_DIR)
	cd $(BETA_SCHEMA_DIR) && npm pack --silent $(BETA_SCHEMA) > tarball.txt \
		&& tar xzf "$$(cat tarball.txt)" --wildcards 'package/lib/*/index.d.ts' \
		&& rm -f "$$(cat tarball.txt)" tarball.txt
	@touch $(BETA_SCHEMA_STAMP)

$(FIREBASE_STAMP):
	@command -v npm >/dev/null || { echo "npm (Node.js >= 20) is needed for the Firebase Auth emulator" >&2; exit 1; }
	mkdir -p $(FIREBASE_DIR)
	npm install --prefix $(FIREBASE_DIR) --no-audit --no-fund --loglevel=error $(FIREBASE_TOOLS)
	@touch $(FIREBASE_STAMP)

auth-emulator: $(FIREBASE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy bench  # the benchmarks are scripts, not part of the package

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stack-up: $(STAMP)
	$(BIN)/aletheia local up

stack-down: $(STAMP)
	$(BIN)/aletheia local down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info .tools web/node_modules aletheia/webui/dist

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

bench: $(BENCH_STAMP) $(FIREBASE_STAMP) $(WEB_DIST) browser
	$(BENCH_VENV)/bin/python -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP) $(FIREBASE_STAMP) $(WEB_DIST) browser
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'
	@touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --quiet --skip-download --compact

# Run before `terraform apply`: the function's archive is $(BUNDLE_DIR).
function-bundle: | $(STAMP)
	rm -rf $(BUNDLE_DIR)
	mkdir -p $(BUNDLE_DIR)/wheels
	cp functions/*.py $(BUNDLE_DIR)/
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(BUNDLE_DIR)/wheels .
	cp functions/requirements.txt $(BUNDLE_DIR)/requirements.txt
	cd $(BUNDLE_DIR) && ls wheels/aletheia-*.whl | sed 's|^|./|' >> requirements.txt
