# The two commands a newcomer needs: `make run` and `make test`. Each creates .venv and installs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := rules payloads workflows activities db mail api licensing

.PHONY: run test lint install compile clean histories fuzz bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Our sources compiled to bytecode, again whenever one changed: the worker's sandbox imports the workflow modules
# afresh for every workflow it starts, and with their bytecode on disk loads them instead of compiling them each
# time (PYTHONDONTWRITEBYTECODE, set here and in the image, stops Python from writing it itself).
compile: $(STAMP)
	$(BIN)/python -m compileall -q $(PACKAGES) worker.py

install: compile

## Run the whole embedded stack: SQLite, the Temporal dev server (Web UI :8233), SMTP sink, worker, API :8000.
run: compile
	$(BIN)/licensing dev

## Run the tests on SQLite; with LICENSING_TEST_DATABASE_URL set, on PostgreSQL as well.
test: compile
	$(BIN)/pytest -q
	@if [ -n "$$LICENSING_TEST_DATABASE_URL" ]; then \
		echo "== the same suite on $$LICENSING_TEST_DATABASE_URL"; \
		LICENSING_TEST_DATABASE=postgresql $(BIN)/pytest -q; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## A bounded schemathesis run (examples, coverage, fuzzing) against the live stack with real tokens.
fuzz: $(STAMP)
	$(BIN)/python -m scripts.fuzz

## Speed and memory as ratios against baselines measured in the same run (see docs/performance.md).
bench: compile
	$(BIN)/python -m scripts.bench

## Capture fresh workflow histories into tests/histories/ (see docs/changing-workflows.md).
histories: compile
	$(BIN)/python -m scripts.capture_histories

clean:
	rm -rf $(VENV) var
