# SPDX-License-Identifier: Apache-2.0
"""Driver notifications (doorbells): 16-bit writes at notify_addr(q) pulse ``notify_valid``
with ``notify_queue`` = q, and only for an enabled queue of a live device.

The pins are sampled on every clock by ``PinMonitor`` (virtio_tb.py).

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb

from virtio_tb import (
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_RING_RESET,
    VIRTIO_F_VERSION_1,
    VIRTIO_PCI_CAP_NOTIFY_CFG,
    VIRTIO_PCI_COMMON_Q_ENABLE,
    VIRTIO_PCI_COMMON_Q_NOFF,
    VIRTIO_PCI_COMMON_Q_RESET,
    VirtioTB,
    bit,
)

TIMEOUT_MS = 10

# cycles to wait after a flushed doorbell before the pins are judged
SETTLE_CYCLES = 8


async def ring(tb, q, addr):
    """One doorbell, flushed, then the pulses it produced."""
    await tb.notify(q, addr)
    await tb.flush()
    await tb.cycles(SETTLE_CYCLES)
    return tb.pins.take_notifies()


async def doorbell_addresses(tb):
    return {q: await tb.notify_addr(q) for q in range(tb.p.num_queues)}


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_doorbell_pulses(dut):
    """A 16-bit write of the queue index at cap.offset + queue_notify_off * multiplier gives
    exactly one one-cycle pulse of notify_valid with notify_queue = q (DNOT-01), one by one
    and in a back-to-back burst, in order. The notify capability obeys PCI-19, PCI-20 and
    PCI-21 (offset 2-aligned, multiplier 0 or an even power of two, every doorbell inside)."""
    tb = VirtioTB(dut, seed=101)
    await tb.start()
    p = tb.p
    cap = tb.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
    mult = cap.notify_off_multiplier
    assert cap.cap_len >= 20 and cap.offset % 2 == 0, cap
    assert mult == 0 or (mult >= 2 and mult & (mult - 1) == 0), f"notify_off_multiplier {mult}"
    await tb.init_device()
    addrs = await doorbell_addresses(tb)
    for q, addr in addrs.items():
        await tb.select_queue(q)
        assert addr + 2 <= cap.offset + cap.length, f"queue {q} doorbell outside the notify structure"
    tb.pins.take_notifies()

    for _ in range(4 * p.num_queues + 4):
        q = tb.rng.randrange(p.num_queues)
        got = await ring(tb, q, addrs[q])
        assert got == [q], f"doorbell for queue {q} gave pulses {got}"

    burst = [tb.rng.randrange(p.num_queues) for _ in range(24)]
    for q in burst:
        await tb.notify(q, addrs[q])
    await tb.flush()
    await tb.cycles(SETTLE_CYCLES)
    got = tb.pins.take_notifies()
    assert got == burst, f"burst {burst} gave pulses {got}"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_doorbell_ignored(dut):
    """No pulse for a doorbell before DRIVER_OK (STS-01), for a disabled queue, for a queue
    index that does not exist, after a refused FEATURES_OK, after a queue reset and after a
    device reset (DNOT-05, RST-02, VQ-01)."""
    tb = VirtioTB(dut, seed=103)
    await tb.start()
    p = tb.p
    cap = tb.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
    addrs = await doorbell_addresses(tb)

    async def silent(q, addr, what):
        got = await ring(tb, q, addr)
        assert got == [], f"{what}: doorbell for queue {q} gave pulses {got}"

    # queues enabled, FEATURES_OK, no DRIVER_OK
    assert await tb.negotiate(p.offered_features)
    for q in range(p.num_queues):
        await tb.setup_queue(q)
    assert await tb.get_status() & VIRTIO_CONFIG_S_FEATURES_OK
    for q in range(p.num_queues):
        await silent(q, addrs[q], "before DRIVER_OK")

    # only the even queues enabled
    assert await tb.negotiate(p.offered_features)
    for q in range(0, p.num_queues, 2):
        await tb.setup_queue(q)
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    for q in range(p.num_queues):
        if q % 2:
            await silent(q, addrs[q], "disabled queue")
        else:
            assert await ring(tb, q, addrs[q]) == [q]
    # queue indices that do not exist: where their doorbells would be, and the notify page's end
    mult = cap.notify_off_multiplier
    for q in (p.num_queues, p.num_queues + 1):
        await silent(q, cap.offset + q * mult, "non-existent queue")
    await silent(0x7FFF, (cap.offset | 0xFFF) & ~0x3, "end of the notify page")

    # refused FEATURES_OK, then DRIVER_OK anyway, queues enabled
    assert not await tb.negotiate(bit(VIRTIO_F_VERSION_1) | bit(63))
    for q in range(p.num_queues):
        await tb.setup_queue(q)
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    for q in range(p.num_queues):
        await silent(q, addrs[q], "refused FEATURES_OK")

    # queue reset of one queue; the others still ring
    if p.ring_reset:
        await tb.init_device()
        q = p.num_queues - 1
        await tb.select_queue(q)
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_RESET, 1)
        while await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET):
            pass
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0
        await silent(q, addrs[q], "after queue reset")
        if p.num_queues > 1:
            assert await ring(tb, 0, addrs[0]) == [0]
        assert tb.p.offered_features & bit(VIRTIO_F_RING_RESET)

    # device reset
    await tb.init_device()
    assert await ring(tb, 0, addrs[0]) == [0]
    await tb.reset_device()
    for q in range(p.num_queues):
        await silent(q, addrs[q], "after device reset")
        await tb.select_queue(q)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_NOFF) * mult + cap.offset == addrs[q]
    await tb.finish()
