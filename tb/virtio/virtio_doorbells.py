# SPDX-License-Identifier: Apache-2.0
"""Driver notifications (doorbells): 16-bit writes at notify_addr(q) pulse ``notify_valid``
with ``notify_queue`` = q, and only for an enabled queue of a live device; with
VIRTIO_F_NOTIFICATION_DATA negotiated a 32-bit write also hands its bits 31:16 (the driver's avail
idx) to the ring engine (``notify_data`` / ``notify_idx``).

The pins are sampled on every clock by ``PinMonitor`` (virtio_tb.py).

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb

from virtio_tb import (
    PCI_COMMAND_MASTER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_NOTIFICATION_DATA,
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


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_doorbell_data(dut):
    """VIRTIO_F_NOTIFICATION_DATA (DNOT-02, RFB-07). The notify capability obeys PCI-22 when the
    feature is offered (offset 4-aligned, multiplier 0 or a power of two that is a multiple of 4,
    length >= 4 and >= notify_off * multiplier + 4 for every queue). Negotiated: a 32-bit write
    of avail_idx << 16 | q gives one pulse with notify_data and notify_idx = avail_idx (next_off in
    bits 14:0, next_wrap in bit 15, so values with bit 15 set and 0xFFFF included), also when the
    same value is written again and again and when it goes backwards; a 16-bit write (DNOT-01) or a
    write that leaves byte 3 out still rings, without data. Not negotiated: a 32-bit write rings
    without data. One by one and in back-to-back bursts, in order. (Bus mastering is off meanwhile,
    so the ring engine leaves these made-up indices alone: its doorbells wait for it and the
    device reset at the end drops them.)"""
    tb = VirtioTB(dut, seed=107)
    await tb.start()
    p = tb.p
    cap = tb.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
    mult = cap.notify_off_multiplier
    offered = p.offered_features & bit(VIRTIO_F_NOTIFICATION_DATA)
    assert bool(offered) == p.notification_data
    addrs = await doorbell_addresses(tb)
    if offered:
        assert cap.offset % 4 == 0, f"notify cap.offset 0x{cap.offset:x} not 4-byte aligned (PCI-22)"
        assert mult == 0 or (mult % 4 == 0 and mult & (mult - 1) == 0), f"notify_off_multiplier {mult} (PCI-22)"
        assert cap.length >= 4, cap
        for q, addr in addrs.items():
            assert addr + 4 <= cap.offset + cap.length, f"queue {q}: 32-bit doorbell outside {cap} (PCI-22)"

    async def expect(writes, want, what):
        for kind, q, value in writes:
            if kind == "data":
                await tb.notify_with_data(q, value, addrs[q])
            elif kind == "16":
                await tb.notify(q, addrs[q])
            else:  # bytes 0..2 only
                await tb.notify_with_data(q, value, addrs[q], width=3)
        await tb.flush()
        await tb.cycles(SETTLE_CYCLES)
        got = tb.pins.take_notifies(with_data=True)
        assert got == want, f"{what}: {writes} gave pulses {got}, expected {want}"

    await tb.set_command_bits(PCI_COMMAND_MASTER, False)
    values = [0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x1234] + [tb.rng.randrange(1 << 16) for _ in range(8)]
    for negotiated in (True, False):
        features = p.offered_features if negotiated else p.offered_features & ~bit(VIRTIO_F_NOTIFICATION_DATA)
        await tb.init_device(features)
        tb.pins.take_notifies()
        with_data = negotiated and bool(offered)
        label = "negotiated" if with_data else "not negotiated"
        for v in values:
            q = tb.rng.randrange(p.num_queues)
            await expect([("data", q, v)], [(q, v if with_data else None)], f"{label}: 32-bit")
        # the same value repeated, then going backwards
        q = tb.rng.randrange(p.num_queues)
        for v in (0x0042, 0x0042, 0x0042, 0x0041, 0x0043, 0x0040):
            await expect([("data", q, v)], [(q, v if with_data else None)], f"{label}: repeated / stale")
        # narrower writes ring without data
        for q in range(p.num_queues):
            await expect([("16", q, 0)], [(q, None)], f"{label}: 16-bit")
            await expect([("3", q, 0x5555)], [(q, None)], f"{label}: bytes 0..2")
        # a back-to-back burst of mixed doorbells
        burst = []
        for _ in range(24):
            q = tb.rng.randrange(p.num_queues)
            kind = tb.rng.choice(("data", "data", "16"))
            burst.append((kind, q, tb.rng.randrange(1 << 16)))
        want = [(q, v if kind == "data" and with_data else None) for kind, q, v in burst]
        await expect(burst, want, f"{label}: burst")
        await tb.reset_device()
    await tb.set_command_bits(PCI_COMMAND_MASTER, True)
    await tb.finish()
