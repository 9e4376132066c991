# SPDX-License-Identifier: Apache-2.0
"""virtio-blk end to end: the guest driver (models.virtio.blk.VirtioBlk) reads and writes the
disk through the RTL's transport, ring engine, DMA and back end; every device DMA is checked
against the driver's buffer ownership (models.pcie.dma_checker), every TLP by the protocol
checker, and every byte against the reference RAM disk (models.ref.ramdisk).

``run_write_read`` below is the smoke test. The system-level I/O tests are the cocotb tests of
``blk_io.py`` next to this file (bench: ``blk_tb.py``); pytest imports this file in importlib
mode, where the folder is not on ``sys.path``, while the simulator runs the cocotb module with
this folder on its path. Each pytest function runs some of them in one simulator process on one
RTL configuration; the ``BLK_*`` environment variables size them (defaults keep the whole set
near three CPU minutes per simulator; see the summary line each test logs). Environment
variables set when pytest starts override the defaults below, for a longer soak, e.g.
``BLK_MIX_COUNT=20000 BLK_TIMEOUT_MS=2000``:

* ``test_blk_mix``: the random mix at DATA_WIDTH 64 (BLK_MIX_COUNT requests);
* ``test_blk_layouts``: chain framings, GET_ID, FLUSH, unsupported types;
* ``test_blk_rings``: every queue size up to QUEUE_SIZE_MAX 256, and the 16-bit index wrap;
* ``test_blk_notify``: EVENT_IDX on and off, MSI-X, INTx, polling, notification counts;
* ``test_blk_notification_data``: doorbells that carry the avail idx (VIRTIO_F_NOTIFICATION_DATA)
  at queue depth 1, refused, and with repeated, stale and bogus values;
  ``test_blk_notification_data_mq``: the same with three request queues at DATA_WIDTH 128;
* ``test_blk_order``: the publication order on the trace, poisoned avail slots, spurious kicks;
* ``test_blk_width``: the random mix and part of the framings at DATA_WIDTH 128 and 256;
* ``test_blk_big_queue``: QUEUE_SIZE_MAX 32768 (the largest the RTL supports), rings of
  512, 4096 and 32768 entries across the index wrap.
"""

import os
from pathlib import Path

import cocotb
import pytest
from cocotb.triggers import ClockCycles

from models.runner import run
from models.virtio import uapi
from models.virtio.bringup import virtio_blk_bring_up

TOPLEVEL = "virtio_blk_pci"
HERE = Path(__file__).parent
MODULE = "blk_io"

CONFIGS = {
    "w64": {"DATA_WIDTH": 64},
    "w128": {"DATA_WIDTH": 128},
    "w256": {"DATA_WIDTH": 256},
    "q32k": {"DATA_WIDTH": 64, "QUEUE_SIZE_MAX": 32768},
    "mq3": {"DATA_WIDTH": 128, "NUM_QUEUES": 3},
}


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def run_write_read(dut):
    """BLK-19, BLK-20, SPL-11: write a pattern, read it back, statuses OK."""
    host, vdev, blk, checker = await virtio_blk_bring_up(dut)
    data = bytes((i * 7 + 3) & 0xFF for i in range(4096))
    status, _ = await blk.write(8, data)
    assert status == uapi.VIRTIO_BLK_S_OK, status
    assert host.disk.read(8 * 512, len(data)) == data
    status, back = await blk.read(8, 8)
    assert status == uapi.VIRTIO_BLK_S_OK, status
    assert back == data
    await ClockCycles(dut.clk, 10)
    assert not checker.errors, checker.errors


def test_blk(sim):
    run(sim, TOPLEVEL, "test_blk", HERE, CONFIGS["w64"])


def _run(sim, config, tests, name, env=None):
    """Run ``tests`` of blk_io.py on ``config``; ``env`` holds default sizes that BLK_* variables
    of the caller's environment override."""
    env = dict(env or {})
    env.update({k: v for k, v in os.environ.items() if k.startswith("BLK_")})
    run(sim, TOPLEVEL, MODULE, HERE, CONFIGS[config], testcase=tests, extra_env=env,
        results_name=f"{name}-{config}")


def test_blk_mix(sim):
    _run(sim, "w64", ["run_random_mix"], "mix")


def test_blk_layouts(sim):
    _run(sim, "w64", ["run_layouts", "run_get_id_flush_unsupported"], "layouts")


def test_blk_rings(sim):
    _run(sim, "w64", ["run_queue_sizes", "run_index_wrap"], "rings")


def test_blk_notify(sim):
    _run(sim, "w64", ["run_event_idx", "run_no_event_idx", "run_interrupt_modes"], "notify")


def test_blk_notification_data(sim):
    _run(sim, "w64", ["run_notification_data", "run_notification_data_stale"], "ndata")


def test_blk_notification_data_mq(sim):
    _run(sim, "mq3", ["run_notification_data_mq"], "ndata_mq")


def test_blk_order(sim):
    _run(sim, "w64", ["run_order_poison", "run_spurious_kicks"], "order")


@pytest.mark.parametrize("config", ["w128", "w256"])
def test_blk_width(sim, config):
    _run(sim, config, ["run_random_mix", "run_layouts"], "width",
         {"BLK_MIX_COUNT": 150 if config == "w128" else 250, "BLK_LAYOUT_MIX_COUNT": 30,
          "BLK_LAYOUT_ROUNDS": "short"})


def test_blk_big_queue(sim):
    _run(sim, "q32k", ["run_queue_sizes"], "bigq", {"BLK_QSIZES": "512,4096,32768"})
