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

# Figures, not assertions: each script prints what it measured (see its --help).
# The benches drive the simulated rig through the HIL library, hence PYTHONPATH.
BENCHES := pairing_latency master_link vpn_latency firmware_install display_idle console_list
bench: system-deps $(STAMP)
	@for b in $(BENCHES); do \
	  test -f bench/$$b.py || continue; \
	  echo "== bench/$$b.py"; PYTHONPATH=$(CURDIR) $(BIN)/python bench/$$b.py || exit 1; \
	done

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache *.egg-info
