# SPDX-License-Identifier: Apache-2.0
"""virtio-blk end to end: the guest driver (models.virtio.blk.VirtioBlk) reads and writes the
disk through the RTL's ring engine, DMA and back end; every device DMA is checked against
the driver's buffer ownership (models.pcie.dma_checker) and every byte against the
reference RAM disk."""

from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles

from models.pcie import attach_root_complex
from models.pcie.dma_checker import DmaChecker
from models.runner import run
from models.virtio import uapi
from models.virtio.blk import VirtioBlk
from models.virtio.virtio import virtio_dev_probe, virtio_pci_probe


async def bring_up(dut, **blk_kwargs):
    host = await attach_root_complex(dut)
    checker = DmaChecker()
    checker.install(host.rc)
    pci_dev = await host.enumerate()
    vdev = await virtio_pci_probe(pci_dev, host.rc, intx=host.intx)
    vdev.dma_checker = checker
    blk = VirtioBlk(**blk_kwargs)
    await virtio_dev_probe(vdev, blk)
    return host, vdev, blk, checker


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def run_write_read(dut):
    """BLK-19, BLK-20, SPL-11: write a pattern, read it back, statuses OK."""
    host, vdev, blk, checker = await bring_up(dut)
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
    run(sim, "virtio_blk_pci", "test_blk", Path(__file__).parent, {"DATA_WIDTH": 64})
