# SPDX-License-Identifier: Apache-2.0
"""Bring a virtio-blk function up for a test: the root complex on the DUT's TLP port, a DMA
ownership checker on it, enumeration, the virtio-pci probe and a VirtioBlk bound to the device
(what Linux does from PCI enumeration to virtblk_probe)."""

from ..pcie import attach_root_complex
from ..pcie.dma_checker import DmaChecker
from .blk import VirtioBlk
from .virtio import virtio_dev_probe, virtio_pci_probe


async def virtio_blk_bring_up(dut, checker=None, **blk_kwargs):
    """Root complex (host settings from the environment), ``checker`` (a new DmaChecker by
    default) installed on it, enumeration, virtio probe and a ``VirtioBlk(**blk_kwargs)``;
    returns (host, vdev, blk, checker)."""
    host = await attach_root_complex(dut)
    if checker is None:
        checker = DmaChecker()
    checker.install(host.rc)
    pci_dev = await host.enumerate()
    vdev = await virtio_pci_probe(pci_dev, host.rc, intx=host.intx)
    vdev.dma_checker = checker
    blk = VirtioBlk(**blk_kwargs)
    await virtio_dev_probe(vdev, blk)
    return host, vdev, blk, checker
