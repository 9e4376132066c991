# SPDX-License-Identifier: Apache-2.0
"""pytest entry points of the virtio PCI transport register tests (tb/virtio).

The cocotb tests live in ``virtio_*.py`` next to this file and share the bench in
``virtio_tb.py``. They are kept out of ``test_*.py`` on purpose: pytest imports this file in
importlib mode (the folder is not on ``sys.path``), while the simulator imports the cocotb
modules with this folder on its path, where ``import virtio_tb`` works.

Each pytest function runs one cocotb module, in one simulator process, for one RTL
parameter set: DATA_WIDTH 64/128/256 with the default parameters, plus a multi-queue
configuration (4 queues of up to 1024 entries, 5 MSI-X vectors, read-only disk).
"""

from pathlib import Path

import pytest

from models.runner import run

TOPLEVEL = "virtio_blk_pci"
HERE = Path(__file__).parent

CONFIGS = {
    "w64": {"DATA_WIDTH": 64},
    "w128": {"DATA_WIDTH": 128},
    "w256": {"DATA_WIDTH": 256},
    "mq4": {"DATA_WIDTH": 64, "NUM_QUEUES": 4, "QUEUE_SIZE_MAX": 1024, "READ_ONLY": 1},
}


def _run(sim, module, config):
    run(sim, TOPLEVEL, module, HERE, CONFIGS[config], results_name=f"{module}-{config}")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_common_cfg(sim, config):
    _run(sim, "virtio_common_cfg", config)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_negotiation(sim, config):
    _run(sim, "virtio_negotiation", config)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_reset(sim, config):
    _run(sim, "virtio_reset", config)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_interrupts(sim, config):
    _run(sim, "virtio_interrupts", config)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_doorbells(sim, config):
    _run(sim, "virtio_doorbells", config)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_random(sim, config):
    _run(sim, "virtio_random", config)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_probe(sim, config):
    _run(sim, "virtio_probe", config)
