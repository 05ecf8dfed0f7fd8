# Two entry points a new user needs: `make demo` and `make test`.
# Both set everything up on a fresh Debian / Raspberry Pi OS machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all demo test unit hil lint bench system-deps venv clean

all: test

system-deps:
	@scripts/install-system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: system-deps $(STAMP)
	$(BIN)/batm-sim demo --dir demo-output

test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests

hil: system-deps $(STAMP)
	$(BIN)/pytest -q hil_tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: system-deps $(STAMP)
	$(BIN)/python bench/pairing_latency.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache *.egg-info
