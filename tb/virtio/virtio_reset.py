# SPDX-License-Identifier: Apache-2.0
"""Device reset (device_status = 0) and virtqueue reset (queue_reset, VIRTIO_F_RING_RESET).

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb

from virtio_tb import (
    PCI_STATUS,
    PCI_STATUS_INTERRUPT,
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_RING_RESET,
    VIRTIO_F_VERSION_1,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_COMMON_CFGGENERATION,
    VIRTIO_PCI_COMMON_DFSELECT,
    VIRTIO_PCI_COMMON_GFSELECT,
    VIRTIO_PCI_COMMON_MSIX,
    VIRTIO_PCI_COMMON_Q_AVAILLO,
    VIRTIO_PCI_COMMON_Q_DESCLO,
    VIRTIO_PCI_COMMON_Q_ENABLE,
    VIRTIO_PCI_COMMON_Q_MSIX,
    VIRTIO_PCI_COMMON_Q_RESET,
    VIRTIO_PCI_COMMON_Q_SELECT,
    VIRTIO_PCI_COMMON_Q_SIZE,
    VIRTIO_PCI_COMMON_Q_USEDLO,
    VIRTIO_PCI_COMMON_STATUS,
    VirtioTB,
    bit,
)

TIMEOUT_MS = 10

QUEUE_ADDRESSES = (VIRTIO_PCI_COMMON_Q_DESCLO, VIRTIO_PCI_COMMON_Q_AVAILLO, VIRTIO_PCI_COMMON_Q_USEDLO)
QUEUE_RESET_MAX_POLLS = 100


async def check_all_defaults(tb):
    """Every field the driver can write is back at its reset value."""
    p = tb.p
    assert await tb.cread8(VIRTIO_PCI_COMMON_STATUS) == 0, "device_status (RST-01)"
    assert await tb.cread32(VIRTIO_PCI_COMMON_DFSELECT) == 0, "device_feature_select"
    assert await tb.cread32(VIRTIO_PCI_COMMON_GFSELECT) == 0, "driver_feature_select"
    assert await tb.get_driver_features() == 0, "driver_feature"
    assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == VIRTIO_MSI_NO_VECTOR, "config_msix_vector (RST-04)"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == 0, "queue_select"
    assert await tb.isr_read() == 0, "ISR"
    for q in range(p.num_queues):
        await tb.select_queue(q)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == p.queue_size_max, f"queue {q} size (RST-06)"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == VIRTIO_MSI_NO_VECTOR, f"queue {q} vector (RST-04)"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0, f"queue {q} enable (RST-03)"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0, f"queue {q} queue_reset (RST-05)"
        for off in QUEUE_ADDRESSES:
            assert await tb.cread64(off) == 0, f"queue {q} address 0x{off:x}"


async def dirty_everything(tb, features=None):
    """Bring the device to DRIVER_OK with every writable field away from its reset value."""
    p = tb.p
    features = p.offered_features if features is None else features
    assert await tb.negotiate(features)
    await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, p.msix_vectors - 1)
    for q in range(p.num_queues):
        await tb.setup_queue(q, size=max(p.queue_size_max // 4, 1),
                             desc=0x3_0000_0000 + q * 0x10000, driver=0x3_0000_4000 + q * 0x10000,
                             device=0x3_0000_8000 + q * 0x10000, vector=q % p.msix_vectors)
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    # a config change with DRIVER_OK leaves ISR bit 1 set (nobody reads it here)
    await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
    await tb.resize(p.capacity + 1 + tb.rng.randrange(1000))
    await tb.cwrite32(VIRTIO_PCI_COMMON_DFSELECT, 1)
    await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 1)
    await tb.select_queue(p.num_queues - 1 if p.num_queues > 1 else 0x55)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_reset_restores_defaults(dut):
    """Writing 0 to device_status resets every field: device_status reads 0 once done (RST-01),
    queue_enable 0 (RST-03), every vector NO_VECTOR (RST-04), queue_reset 0 (RST-05),
    queue_size the maximum (RST-06), addresses 0, features 0, selects 0, ISR 0; driver_ok
    falls (RST-02: the device is no longer live)."""
    tb = VirtioTB(dut, seed=43)
    await tb.start()
    await dirty_everything(tb)
    assert tb.dut.driver_ok.value == 1
    # MSI-X is off here: the pending ISR bit shows in Status.Interrupt and holds INTx
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "config change left no ISR bit"
    assert tb.host.intx.level == 1
    falls = tb.pins.driver_ok_falls
    await tb.reset_device()
    assert tb.pins.driver_ok_falls == falls + 1 and tb.dut.driver_ok.value == 0
    assert tb.host.intx.level == 0, "INTx still asserted after reset (RST-02)"
    assert not await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT
    await check_all_defaults(tb)
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_reset_from_every_state(dut):
    """A reset completes, and leaves everything at its defaults, from every status the driver
    can reach: ACKNOWLEDGE, +DRIVER, +FEATURES_OK, +DRIVER_OK, after a refused FEATURES_OK,
    with FAILED set, and from reset itself (RST-01, STS-04)."""
    tb = VirtioTB(dut, seed=47)
    await tb.start()
    p = tb.p
    ack_drv = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER
    sequences = {
        "reset": [],
        "ACKNOWLEDGE": [VIRTIO_CONFIG_S_ACKNOWLEDGE],
        "DRIVER": [VIRTIO_CONFIG_S_ACKNOWLEDGE, ack_drv],
        "FEATURES_OK": [VIRTIO_CONFIG_S_ACKNOWLEDGE, ack_drv, ack_drv | VIRTIO_CONFIG_S_FEATURES_OK],
        "DRIVER_OK": [VIRTIO_CONFIG_S_ACKNOWLEDGE, ack_drv, ack_drv | VIRTIO_CONFIG_S_FEATURES_OK,
                      ack_drv | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK],
        "FAILED": [VIRTIO_CONFIG_S_ACKNOWLEDGE, ack_drv, ack_drv | VIRTIO_CONFIG_S_FAILED],
        "FAILED after DRIVER_OK": [VIRTIO_CONFIG_S_ACKNOWLEDGE, ack_drv, ack_drv | VIRTIO_CONFIG_S_FEATURES_OK,
                                   ack_drv | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
                                   ack_drv | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK
                                   | VIRTIO_CONFIG_S_FAILED],
    }
    for name, steps in sequences.items():
        await tb.reset_device()
        if steps:
            await tb.set_status(steps[0])
        for status in steps[1:]:
            if status & VIRTIO_CONFIG_S_FEATURES_OK and not await tb.get_status() & VIRTIO_CONFIG_S_FEATURES_OK:
                await tb.set_driver_features(p.offered_features)
            if status & VIRTIO_CONFIG_S_DRIVER_OK and not await tb.get_status() & VIRTIO_CONFIG_S_DRIVER_OK:
                for q in range(p.num_queues):
                    await tb.setup_queue(q, vector=0)
            await tb.set_status(status)
            got = await tb.get_status()
            assert got == status, f"{name}: wrote status {status:#04x}, read {got:#04x} (STS-04)"
        await tb.reset_device()
        await tb.cycles(2)
        assert tb.dut.driver_ok.value == 0, f"{name}: driver_ok after reset"
        await check_all_defaults(tb)
    # a refused FEATURES_OK
    assert not await tb.negotiate(bit(VIRTIO_F_VERSION_1) | bit(63))
    await tb.reset_device()
    await check_all_defaults(tb)
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_reset(dut):
    """Virtqueue reset with RING_RESET negotiated (VQ-04, VQ-02, VQ-03, RST-05): queue_reset
    reads 0 after queue_enable; writing 1 resets the queue, after which queue_reset and
    queue_enable read 0 and size, vector and addresses are back at their defaults; other
    queues are untouched; the queue can be configured differently and re-enabled; a device
    reset leaves queue_reset 0."""
    tb = VirtioTB(dut, seed=53)
    await tb.start()
    p = tb.p
    assert p.ring_reset
    vectors = [(q + 1) % p.msix_vectors for q in range(p.num_queues)]
    # every field away from its default, so that the queue reset has something to undo
    small = max(p.queue_size_max // 2, 1)
    assert await tb.negotiate(p.offered_features)
    for q in range(p.num_queues):
        await tb.setup_queue(q, size=small, vector=vectors[q])
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    for q in range(p.num_queues):
        await tb.select_queue(q)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == small
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0, f"queue {q}: queue_reset after enable"

    for q in tb.rng.sample(range(p.num_queues), p.num_queues):
        await tb.select_queue(q)
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_RESET, 1)
        for _ in range(QUEUE_RESET_MAX_POLLS):
            if await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0:
                break
        else:
            raise AssertionError(f"queue {q}: queue_reset still 1 after {QUEUE_RESET_MAX_POLLS} polls")
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0, f"queue {q} still enabled"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == p.queue_size_max
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == VIRTIO_MSI_NO_VECTOR
        for off in QUEUE_ADDRESSES:
            assert await tb.cread64(off) == 0, f"queue {q} address 0x{off:x} after queue reset"
        # the others are still enabled with their configuration
        for other in range(p.num_queues):
            if other == q:
                continue
            await tb.select_queue(other)
            assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == vectors[other]
            assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1
        # re-enable with a different configuration (VQ-03 at register level)
        size = max(p.queue_size_max // 8, 1)
        await tb.setup_queue(q, size=size, desc=0x5_0000_0000, driver=0x5_0000_2000, device=0x5_0000_3000,
                             vector=0)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == size
        assert await tb.cread64(VIRTIO_PCI_COMMON_Q_DESCLO) == 0x5_0000_0000
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == 0
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0
        vectors[q] = 0
    assert await tb.get_status() & VIRTIO_CONFIG_S_DRIVER_OK, "a queue reset touched device_status"
    await tb.reset_device()
    await check_all_defaults(tb)
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_reset_not_negotiated(dut):
    """Without RING_RESET negotiated queue_reset reads 0 and writing 1 does nothing: the queue
    stays enabled with its configuration (RST-05; the field only exists with the feature)."""
    tb = VirtioTB(dut, seed=59)
    await tb.start()
    p = tb.p
    features = p.offered_features & ~bit(VIRTIO_F_RING_RESET)
    await tb.init_device(features=features, queue_vectors=[0] * p.num_queues)
    for q in range(p.num_queues):
        await tb.select_queue(q)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_RESET, 1)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1, f"queue {q} disabled by queue_reset"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == 0
        assert await tb.cread64(VIRTIO_PCI_COMMON_Q_DESCLO) != 0
    # before FEATURES_OK nothing is negotiated yet: queue_reset reads 0 as well
    await tb.reset_device()
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
    await tb.set_driver_features(p.offered_features)
    await tb.select_queue(0)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_RESET, 1)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0
    await tb.finish()
