# SPDX-License-Identifier: Apache-2.0
"""The Python guest driver (models/virtio, modelled on Linux) binds to the device: probe to
DRIVER_OK with MSI-X and with INTx, queue discovery, block config, and a config-change
notification reaching the driver's ``config_changed``.

The register state the driver leaves behind is checked with the bench's own accessors
(virtio_tb.py), independently of the driver's view.

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb
from cocotb.triggers import with_timeout

from models.virtio import (
    VP_VQ_VECTOR_POLICY_EACH,
    VP_VQ_VECTOR_POLICY_INTX,
    VirtioBlkDriver,
    virtio_dev_probe,
    virtio_pci_probe,
)
from virtio_tb import (
    EVENT_TIMEOUT_NS,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_RO,
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_VERSION_1,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_COMMON_MSIX,
    VIRTIO_PCI_COMMON_Q_AVAILLO,
    VIRTIO_PCI_COMMON_Q_DESCLO,
    VIRTIO_PCI_COMMON_Q_ENABLE,
    VIRTIO_PCI_COMMON_Q_MSIX,
    VIRTIO_PCI_COMMON_Q_SIZE,
    VIRTIO_PCI_COMMON_Q_USEDLO,
    VirtioTB,
    bit,
)

TIMEOUT_MS = 10

# errno the Linux PCI core returns when no MSI/MSI-X vectors can be had
ENOSPC = 28
LIVE_STATUS = (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK
               | VIRTIO_CONFIG_S_DRIVER_OK)


async def probe(tb):
    vdev = await virtio_pci_probe(tb.pci, tb.host.rc, intx=tb.host.intx)
    driver = VirtioBlkDriver()
    await virtio_dev_probe(vdev, driver)
    return vdev, driver


async def check_bound(tb, vdev, driver):
    """What the driver found, and the device registers it left (INIT-01)."""
    p = tb.p
    assert tb.dut.driver_ok.value == 1, "driver_ok pin low after probe"
    assert await tb.get_status() == LIVE_STATUS
    assert vdev.features & bit(VIRTIO_F_VERSION_1)
    assert vdev.features & ~p.offered_features == 0, f"negotiated {vdev.features:#x} beyond the offer"
    assert await tb.get_driver_features() == vdev.features
    assert bool(vdev.features & bit(VIRTIO_BLK_F_MQ)) == (p.num_queues > 1)
    assert driver.capacity == p.capacity
    assert driver.seg_max == p.seg_max
    assert driver.blk_size == p.blk_size
    assert driver.read_only == p.read_only and bool(vdev.features & bit(VIRTIO_BLK_F_RO)) == p.read_only
    assert driver.num_queues == p.num_queues and len(driver.vqs) == p.num_queues
    for vq in driver.vqs:
        await tb.select_queue(vq.index)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1, f"queue {vq.index} not enabled"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == vq.num
        assert await tb.cread64(VIRTIO_PCI_COMMON_Q_DESCLO) == vq.desc_addr
        assert await tb.cread64(VIRTIO_PCI_COMMON_Q_AVAILLO) == vq.avail_addr
        assert await tb.cread64(VIRTIO_PCI_COMMON_Q_USEDLO) == vq.used_addr
        want = vq.vector if vq.vector is not None else VIRTIO_MSI_NO_VECTOR
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == want, f"queue {vq.index} vector"


async def resize_reaches_driver(tb, vdev, driver, new_capacity):
    """A resize makes the device notify, and the driver re-reads the capacity (INIT-03)."""
    changes = driver.config_change_count

    async def until_seen():
        while not (driver.config_change_count > changes and driver.capacity == new_capacity):
            await tb.cycles(16)

    await tb.resize(new_capacity)
    try:
        await with_timeout(until_seen(), EVENT_TIMEOUT_NS, "ns")
    except cocotb.triggers.SimTimeoutError:
        raise AssertionError(f"config change not seen by the driver: {driver.config_change_count - changes} "
                             f"calls, capacity {driver.capacity}, expected {new_capacity}") from None


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_probe_msix(dut):
    """virtio_dev_probe with VirtioBlkDriver: DRIVER_OK with one MSI-X vector for config and one
    per queue, every request queue found and enabled, capacity/seg_max/blk_size read (INIT-01,
    BLK-01, BLK-07); a resize reaches config_changed through the config vector's message and the
    driver reads the new capacity (INIT-03, CFG-04, PCI-46)."""
    tb = VirtioTB(dut)
    await tb.start()
    vdev, driver = await probe(tb)
    tb.log.info("%s", vdev.describe())
    assert vdev.vector_policy == VP_VQ_VECTOR_POLICY_EACH, vdev.find_vqs_attempts
    config_vector = await tb.cread16(VIRTIO_PCI_COMMON_MSIX)
    assert config_vector != VIRTIO_MSI_NO_VECTOR
    await check_bound(tb, vdev, driver)
    for k, new_capacity in enumerate((tb.p.capacity * 2, 0x0000_0001_8000_0200, 4096)):
        start = len(tb.host.tx_req_log)
        await resize_reaches_driver(tb, vdev, driver, new_capacity)
        msgs = tb.msix_log(start)
        vec = tb.msi_vector(config_vector)
        assert len(msgs) == 1 and msgs[0].address == vec.addr, f"resize {k}: messages {msgs}"
        assert int.from_bytes(bytes(msgs[0].data[:4]), "little") == vec.data
    assert tb.host.intx.rises == 0
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_probe_intx(dut):
    """The same probe on a platform without MSI (as Linux with pci=nomsi: the PCI core refuses
    every vector): the driver falls back to INTx, and a resize reaches config_changed through
    INTx and the ISR, which the driver's read clears so INTx drops (INIT-01, INIT-03, PCI-24,
    PCI-26, PCI-27)."""
    tb = VirtioTB(dut)
    await tb.start()

    async def no_msi(min_vecs, max_vecs, flags=0):
        return -ENOSPC

    tb.pci.alloc_irq_vectors = no_msi
    vdev, driver = await probe(tb)
    assert vdev.vector_policy == VP_VQ_VECTOR_POLICY_INTX, vdev.find_vqs_attempts
    assert not await tb.cfg_read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE
    assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == VIRTIO_MSI_NO_VECTOR
    await check_bound(tb, vdev, driver)
    for k, new_capacity in enumerate((tb.p.capacity * 2, 0x0000_0001_8000_0200)):
        rises = tb.host.intx.rises
        await resize_reaches_driver(tb, vdev, driver, new_capacity)
        assert tb.host.intx.rises == rises + 1, f"resize {k}: {tb.host.intx.rises - rises} INTx assertions"
        await tb.cycles(4)
        assert tb.host.intx.level == 0, "INTx still asserted after the driver read the ISR"
        assert await tb.isr_read() == 0
    assert not tb.host.tx_req_log, "requests sent without MSI-X"
    await tb.finish()
