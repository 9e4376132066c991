# SPDX-License-Identifier: Apache-2.0
"""pytest entry points of the virtio-blk robustness tests (tb/blk).

The cocotb tests live in ``blk_err_*.py`` next to this file and share the bench in
``blk_err_tb.py`` (pytest imports this file in importlib mode; the simulator imports the cocotb
modules with this folder on its path). Each pytest function runs one cocotb module in one
simulator process for one RTL parameter set:

* ``w64``: DATA_WIDTH 64, the other parameters at their defaults (a 1 MiB disk);
* ``w256``: DATA_WIDTH 256;
* ``ro``: READ_ONLY=1 (BLK-09);
* ``cto``: CPL_TIMEOUT=2000 cycles (completion timeouts).

The modules: ``blk_err_chain`` (malformed chains and available rings, SPL-26), ``blk_err_dma``
(UR / CA / poisoned / missing completions), ``blk_err_io`` (BLK-23 requests, BLK-09 read-only
disk), ``blk_err_reset`` (device and queue resets during I/O, bus mastering off).
"""

from pathlib import Path

import pytest

from models.runner import run

TOPLEVEL = "virtio_blk_pci"
HERE = Path(__file__).parent

CONFIGS = {
    "w64": {"DATA_WIDTH": 64},
    "w256": {"DATA_WIDTH": 256},
    "ro": {"DATA_WIDTH": 64, "READ_ONLY": 1},
    "cto": {"DATA_WIDTH": 64, "CPL_TIMEOUT": 2000},
}


def _run(sim, module, config, testcase=None):
    run(sim, TOPLEVEL, module, HERE, CONFIGS[config], testcase=testcase,
        results_name=f"{module}-{config}")


@pytest.mark.parametrize("config", ["w64", "w256"])
def test_malformed_chains(sim, config):
    _run(sim, "blk_err_chain", config)


DMA_TESTS = ["run_descriptor_read_fails", "run_data_read_fails", "run_descriptor_table_unmapped"]


@pytest.mark.parametrize("config", ["w64", "w256"])
def test_dma_errors(sim, config):
    _run(sim, "blk_err_dma", config, DMA_TESTS)


def test_completion_timeout(sim):
    _run(sim, "blk_err_dma", "cto", ["run_completion_timeout", "run_late_completion"])


IO_TESTS = ["run_past_capacity", "run_length_not_multiple_of_512", "run_missing_status"]


@pytest.mark.parametrize("config", ["w64", "w256"])
def test_io_errors(sim, config):
    _run(sim, "blk_err_io", config, IO_TESTS)


def test_read_only(sim):
    _run(sim, "blk_err_io", "ro", ["run_read_only", "run_read_only_declined"])


@pytest.mark.parametrize("config", ["w64", "w256"])
def test_resets(sim, config):
    _run(sim, "blk_err_reset", config)
