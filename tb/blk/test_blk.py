# SPDX-License-Identifier: Apache-2.0
"""virtio-blk end to end: the guest driver (models.virtio.blk.VirtioBlk) reads and writes the
disk through the RTL's transport, ring engine, DMA and back end; every device DMA is checked
against the driver's buffer ownership (models.pcie.dma_checker), every TLP by the protocol
checker, and every byte against the reference RAM disk (models.ref.ramdisk).

The cocotb tests are in ``blk_io.py`` next to this file (bench: ``blk_tb.py``); pytest imports
this file in importlib mode, where the folder is not on ``sys.path``, while the simulator runs
the cocotb module with this folder on its path. Each pytest function runs some of them in one
simulator process on one RTL configuration; the ``BLK_*`` environment variables size them:

* ``test_blk_mix``: the random mix at DATA_WIDTH 64 (BLK_MIX_COUNT requests);
* ``test_blk_layouts``: chain framings, GET_ID, FLUSH, unsupported types;
* ``test_blk_rings``: every queue size up to QUEUE_SIZE_MAX 256, and the 16-bit index wrap;
* ``test_blk_notify``: EVENT_IDX on and off, MSI-X, INTx, polling;
* ``test_blk_order``: the publication order on the trace, poisoned avail slots, spurious kicks;
* ``test_blk_width``: the random mix and the framings at DATA_WIDTH 128 and 256;
* ``test_blk_big_queue``: QUEUE_SIZE_MAX 32768, rings of 512 .. 32768 and the wrap.
"""

from pathlib import Path

import pytest

from models.runner import run

TOPLEVEL = "virtio_blk_pci"
HERE = Path(__file__).parent
MODULE = "blk_io"

CONFIGS = {
    "w64": {"DATA_WIDTH": 64},
    "w128": {"DATA_WIDTH": 128},
    "w256": {"DATA_WIDTH": 256},
    "q32k": {"DATA_WIDTH": 64, "QUEUE_SIZE_MAX": 32768},
}


def _run(sim, config, tests, name, env=None):
    run(sim, TOPLEVEL, MODULE, HERE, CONFIGS[config], testcase=tests, extra_env=env or {},
        results_name=f"{name}-{config}")


def test_blk_mix(sim):
    _run(sim, "w64", ["run_random_mix"], "mix", {"BLK_MIX_COUNT": 1200})


def test_blk_layouts(sim):
    _run(sim, "w64", ["run_layouts", "run_get_id_flush_unsupported"], "layouts")


def test_blk_rings(sim):
    _run(sim, "w64", ["run_queue_sizes", "run_index_wrap"], "rings")


def test_blk_notify(sim):
    _run(sim, "w64", ["run_event_idx", "run_no_event_idx", "run_interrupt_modes"], "notify")


def test_blk_order(sim):
    _run(sim, "w64", ["run_order_poison", "run_spurious_kicks"], "order")


@pytest.mark.parametrize("config", ["w128", "w256"])
def test_blk_width(sim, config):
    _run(sim, config, ["run_random_mix", "run_layouts"], "width",
         {"BLK_MIX_COUNT": 300, "BLK_LAYOUT_MIX_COUNT": 60})


def test_blk_big_queue(sim):
    _run(sim, "q32k", ["run_queue_sizes", "run_index_wrap"], "bigq",
         {"BLK_QSIZES": "512,4096,32768", "BLK_WRAP": "32768:200:1,4096:100:0"})
