# Two entry points a new user needs: `make demo` and `make test`.
# Both set everything up on a fresh Debian / Raspberry Pi OS machine.
# For the inner loop while editing: `make test-fast` (unit tests only, seconds).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# pytest-xdist: one worker per core by default (TEST_WORKERS=0 runs serially). worksteal hands
# each worker a contiguous share of the tests, so a module's tests stay together and share that
# worker's simulated rigs (hil_tests/rig/sim_rigs.py), and an idle worker takes over half of a
# busy one's remaining tests.
TEST_WORKERS ?= auto
PARALLEL := -n $(TEST_WORKERS) --dist worksteal

.PHONY: all demo test test-fast unit hil lint bench system-deps venv clean

all: test

system-deps:
	@scripts/install-system-deps

# Rebuilt only when pyproject.toml changes: a second `make test` reuses the venv as it is (the
# package is installed editable, so code changes need no reinstall). The venv's own pip is
# recent enough for an editable pyproject install; pip's download cache is reused across venvs.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: system-deps $(STAMP)
	$(BIN)/batm-sim demo --dir demo-output

# Everything: ruff, then tests/ and hil_tests/ on every core.
test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q $(PARALLEL)

# The unit tests only, serially (starting workers would cost more than it saves). Leaves out
# hil_tests/ (the rigs) and every test marked `processes`: those that start the product's
# commands, servers, Mosquitto, socat or Xvfb (test_cli, test_console, test_server_cli,
# test_server_gate, test_mqtt_master, test_agent_daemon, test_sim_supervisor, …), a mark
# tests/module_needs.py sets from each module's code.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not processes" tests

unit: $(STAMP)
	$(BIN)/pytest -q $(PARALLEL) tests

hil: system-deps $(STAMP)
	$(BIN)/pytest -q $(PARALLEL) hil_tests

lint: $(STAMP)
	$(BIN)/ruff check .

# Figures, not assertions: each script prints what it measured (see its --help).
# The benches drive the simulated rig through the HIL library, hence PYTHONPATH.
BENCHES := pairing_latency master_link vpn_latency firmware_install display_idle console_list \
	revoke_latency
bench: system-deps $(STAMP)
	@for b in $(BENCHES); do \
	  test -f bench/$$b.py || continue; \
	  echo "== bench/$$b.py"; PYTHONPATH=$(CURDIR) $(BIN)/python bench/$$b.py || exit 1; \
	done

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache *.egg-info

# Debian packages into dist/: batm-terminal (agent, display, console, updater) and batm-server.
# `sudo apt install ./dist/batm-terminal_*.deb` is the whole install on a bookworm / Pi OS device.
.PHONY: packages
packages:
	scripts/build-packages --out dist

# The booted-systemd rig's tests alone (sim/booted, hil_tests/test_booted.py; `make test` runs
# them too): this clone's batm-terminal package, installed on a cached bookworm rootfs, booted by
# systemd-nspawn, a rig per test; the shared suite's pairing tests run unchanged on one.
.PHONY: hil-booted
hil-booted: system-deps $(STAMP)
	@scripts/hil-booted

# Every terminal-side dependency has a binary wheel for linux/aarch64, CPython 3.11 (a Pi).
.PHONY: check-arm64
check-arm64:
	@scripts/check-arm64-wheels

# The terminal-side unit tests in an arm64 bookworm rootfs under qemu-user (aarch64 wheels only).
.PHONY: test-arm64
test-arm64:
	@scripts/test-arm64
