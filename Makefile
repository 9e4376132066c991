# SPDX-License-Identifier: Apache-2.0
#
# make help   lists the targets.  Every target except help and clean first runs
# scripts/setup.sh (installs what is missing, silent otherwise) and then works
# inside the environment of scripts/env.sh (.venv + the selected Verilator).

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

SIM ?=
TEST ?=
DISK ?=
FULL ?=
PYTEST_ARGS ?=

NPROC := $(shell nproc 2>/dev/null || echo 2)
VENV_PY := .venv/bin/python
SETUP := scripts/setup.sh
ENV := . scripts/env.sh &&

RTL := $(sort $(wildcard rtl/*.v))
VLT := $(sort $(wildcard rtl/lint/*.vlt))

comma := ,
empty :=
space := $(empty) $(empty)
SIM_WORDS := $(subst $(comma),$(space),$(SIM))

# Check SIM (and TEST for waves) before doing anything else.
ifneq ($(filter test sim waves bench,$(MAKECMDGOALS)),)
  ifneq ($(firstword $(filter-out icarus verilator,$(SIM_WORDS))),)
    $(error error: unknown SIM '$(firstword $(filter-out icarus verilator,$(SIM_WORDS)))'; use SIM=icarus or SIM=verilator)
  endif
endif
ifneq ($(filter sim waves bench,$(MAKECMDGOALS)),)
  ifneq ($(word 2,$(SIM_WORDS)),)
    $(error error: make $(filter sim waves bench,$(MAKECMDGOALS)) runs one simulator; use SIM=icarus or SIM=verilator)
  endif
endif
ifneq ($(filter waves,$(MAKECMDGOALS)),)
  ifeq ($(strip $(TEST)),)
    $(error error: TEST is missing; usage: make waves TEST=<cocotb test name> [SIM=icarus|verilator])
  endif
endif

.PHONY: help setup test sim waves lint synth bench clean

help:
	@echo "Targets:"
	@echo "  make sim     run the demo (scripts/demo.py) on SIM (default icarus) with DISK"
	@echo "  make test    run all testbenches: pytest -n $(NPROC) over tb/ on SIM (default: icarus and verilator)"
	@echo "  make waves TEST=<cocotb test>   run one cocotb test with waves on SIM (default icarus);"
	@echo "               writes sim-build/waves/<TEST>.fst and <TEST>.gtkw"
	@echo "  make lint    verilator --lint-only -Wall on every module in rtl/"
	@echo "  make synth   Yosys synth_xilinx (xc7) of virtio_blk_pci at DATA_WIDTH 64 and 256: size per module;"
	@echo "               writes sim-build/synth/report.md, results.json; installs yosys if missing (or YOSYS=<exe>)"
	@echo "  make bench   virtio-blk performance bench (quick subset: 4 KiB QD16, 512 B QD32, 4 KiB QD1, reads and"
	@echo "               writes at DATA_WIDTH 256; FULL=1: 512 B..64 KiB x QD 1..64 x DATA_WIDTH 64/128/256) on SIM"
	@echo "               (default verilator); writes sim-build/bench/report.md, results.json and PNG plots"
	@echo "  make setup   install what is missing (.venv, Icarus, Verilator); nothing else"
	@echo "  make clean   remove sim-build/"
	@echo "Variables:"
	@echo "  SIM=icarus|verilator|\"icarus verilator\"   simulator(s)"
	@echo "  TEST=<name>         cocotb test for make waves"
	@echo "  DISK=<file>         disk image for make sim"
	@echo "  FULL=1              make bench: the full sweep (prints its estimated run time first)"
	@echo "  PYTEST_ARGS=\"...\"   extra pytest arguments for make test (e.g. -k regs, -n 0, -x)"

setup:
	@$(SETUP)

test: setup
	@$(ENV) SIM="$(or $(SIM_WORDS),icarus verilator)" python -m pytest -n $(NPROC) $(PYTEST_ARGS)

sim: setup
	@if [ ! -f scripts/demo.py ]; then echo "error: scripts/demo.py does not exist yet; there is no demo to run" >&2; exit 1; fi
	@$(ENV) SIM="$(or $(SIM_WORDS),icarus)" $(if $(DISK),DISK="$(DISK)") $(VENV_PY) scripts/demo.py

waves: setup
	@$(ENV) SIM="$(or $(SIM_WORDS),icarus)" $(VENV_PY) scripts/waves.py --test "$(TEST)"

lint: setup
	@$(ENV) set -o pipefail; \
	if [ -z "$(RTL)" ]; then echo "lint: no rtl/*.v files"; exit 0; fi; \
	mods=$$(sed -n -E 's/^[[:space:]]*(macro)?module[[:space:]]+((automatic|static)[[:space:]]+)?([A-Za-z_][A-Za-z0-9_$$]*).*/\4/p' $(RTL) | sort -u); \
	n=0; bad=""; \
	for m in $$mods; do \
	  n=$$((n + 1)); \
	  verilator --lint-only --quiet -Wall --top-module "$$m" -Irtl $(VLT) $(RTL) || bad="$$bad $$m"; \
	done; \
	if [ -n "$$bad" ]; then echo "lint: warnings or errors in:$$bad" >&2; exit 1; fi; \
	echo "lint: $$n modules clean"

bench: setup
	@$(ENV) SIM="$(or $(SIM_WORDS),verilator)" $(if $(FULL),FULL="$(FULL)") $(VENV_PY) scripts/bench.py

synth:
	@command -v python3 >/dev/null 2>&1 || { echo "error: python3 not found; run: sudo apt-get install python3" >&2; exit 1; }
	@$(if $(YOSYS),YOSYS="$(YOSYS)") python3 scripts/synth.py

clean:
	rm -rf sim-build
