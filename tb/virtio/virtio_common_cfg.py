# SPDX-License-Identifier: Apache-2.0
"""struct virtio_pci_common_cfg: reset values, banking, widths, read-only and frozen fields.

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb

from virtio_tb import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_CAP_NOTIFY_CFG,
    VIRTIO_PCI_COMMON_ADM_Q_IDX,
    VIRTIO_PCI_COMMON_ADM_Q_NUM,
    VIRTIO_PCI_COMMON_CFG_V1_3_SIZEOF,
    VIRTIO_PCI_COMMON_CFGGENERATION,
    VIRTIO_PCI_COMMON_DF,
    VIRTIO_PCI_COMMON_DFSELECT,
    VIRTIO_PCI_COMMON_GF,
    VIRTIO_PCI_COMMON_GFSELECT,
    VIRTIO_PCI_COMMON_MSIX,
    VIRTIO_PCI_COMMON_NUMQ,
    VIRTIO_PCI_COMMON_Q_AVAILLO,
    VIRTIO_PCI_COMMON_Q_DESCLO,
    VIRTIO_PCI_COMMON_Q_ENABLE,
    VIRTIO_PCI_COMMON_Q_MSIX,
    VIRTIO_PCI_COMMON_Q_NDATA,
    VIRTIO_PCI_COMMON_Q_NOFF,
    VIRTIO_PCI_COMMON_Q_RESET,
    VIRTIO_PCI_COMMON_Q_SELECT,
    VIRTIO_PCI_COMMON_Q_SIZE,
    VIRTIO_PCI_COMMON_Q_USEDLO,
    VIRTIO_PCI_COMMON_STATUS,
    VirtioTB,
)

TIMEOUT_MS = 5

# the three 64-bit queue address fields
QUEUE_ADDRESSES = (VIRTIO_PCI_COMMON_Q_DESCLO, VIRTIO_PCI_COMMON_Q_AVAILLO, VIRTIO_PCI_COMMON_Q_USEDLO)
# queue_select values that name no queue besides NUM_QUEUES itself (PCI-14)
ABSENT_SELECTS = (0x7FFF, 0x8000, 0xFFFF)


def power_of_two_sizes(maximum):
    sizes = []
    s = 1
    while s <= maximum:
        sizes.append(s)
        s <<= 1
    return sizes


async def check_queue_defaults(tb, q):
    """Queue ``q`` as after reset: size = maximum, no vector, disabled, addresses 0."""
    p = tb.p
    await tb.select_queue(q)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == p.queue_size_max, f"queue {q} size"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == VIRTIO_MSI_NO_VECTOR, f"queue {q} vector"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0, f"queue {q} enable"
    for off in QUEUE_ADDRESSES:
        assert await tb.cread64(off) == 0, f"queue {q} address field 0x{off:x}"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_NDATA) == 0, f"queue {q} queue_notif_config_data"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_RESET) == 0, f"queue {q} queue_reset"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_reset_values(dut):
    """Every common-config field after PCI reset, at its natural width.

    FEAT-06 (device_feature words 2, 3 and 0xFFFFFFFF read 0), STS-04 (device_status 0),
    RST-03/RST-04/RST-06 after power-up (queue_enable 0, vectors NO_VECTOR, queue_size max),
    PCI-15 (sizes are powers of two), PCI-17 (num_queues), PCI-18 (length 0x40 and the
    unimplemented tail fields read 0: queue_notif_config_data, admin_queue_index/num),
    PCI-21 (every queue's doorbell lies inside the notify structure).
    """
    tb = VirtioTB(dut)
    await tb.start()
    p = tb.p

    assert tb.common.length >= VIRTIO_PCI_COMMON_CFG_V1_3_SIZEOF, tb.common

    assert await tb.cread32(VIRTIO_PCI_COMMON_DFSELECT) == 0
    assert await tb.cread32(VIRTIO_PCI_COMMON_DF) == p.offered_features & 0xFFFF_FFFF
    for sel, want in ((1, p.offered_features >> 32), (2, 0), (3, 0), (0x8000_0000, 0), (0xFFFF_FFFF, 0)):
        await tb.cwrite32(VIRTIO_PCI_COMMON_DFSELECT, sel)
        assert await tb.cread32(VIRTIO_PCI_COMMON_DFSELECT) == sel
        got = await tb.cread32(VIRTIO_PCI_COMMON_DF)
        assert got == want, f"device_feature word {sel:#x} reads {got:#010x}, expected {want:#010x}"

    assert await tb.cread32(VIRTIO_PCI_COMMON_GFSELECT) == 0
    assert await tb.cread32(VIRTIO_PCI_COMMON_GF) == 0
    assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == VIRTIO_MSI_NO_VECTOR
    assert await tb.cread16(VIRTIO_PCI_COMMON_NUMQ) == p.num_queues
    assert await tb.cread8(VIRTIO_PCI_COMMON_STATUS) == 0
    await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == 0
    assert await tb.cread16(VIRTIO_PCI_COMMON_ADM_Q_IDX) == 0
    assert await tb.cread16(VIRTIO_PCI_COMMON_ADM_Q_NUM) == 0

    notify = tb.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
    for q in range(p.num_queues):
        await check_queue_defaults(tb, q)
        size = await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE)
        assert size & (size - 1) == 0 and 0 < size <= 32768, f"queue {q} size {size} (PCI-15)"
        noff = await tb.cread16(VIRTIO_PCI_COMMON_Q_NOFF)
        assert noff * notify.notify_off_multiplier + 2 <= notify.length, \
            f"queue {q} doorbell at {noff}*{notify.notify_off_multiplier} outside {notify} (PCI-21)"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_driver_feature_readback(dut):
    """driver_feature reads back the valid bits written to each word, words 0 and 1 do not
    alias each other or the words >= 2 (FEAT-07); a word >= 2 reads 0 and writing it changes
    nothing (FEAT-06 for the driver side)."""
    tb = VirtioTB(dut, seed=7)
    await tb.start()
    offered = tb.p.offered_features
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE)
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
    for _ in range(6):
        w0 = tb.rng.getrandbits(32)
        w1 = tb.rng.getrandbits(32)
        await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 0)
        await tb.cwrite32(VIRTIO_PCI_COMMON_GF, w0)
        await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 1)
        await tb.cwrite32(VIRTIO_PCI_COMMON_GF, w1)
        # a word that does not exist: must not land in word 0 or 1
        await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, tb.rng.choice([2, 3, 0x100, 0xFFFF_FFFF]))
        await tb.cwrite32(VIRTIO_PCI_COMMON_GF, tb.rng.getrandbits(32))
        assert await tb.cread32(VIRTIO_PCI_COMMON_GF) == 0, "driver_feature word >= 2 is not 0"
        await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 0)
        r0 = await tb.cread32(VIRTIO_PCI_COMMON_GF)
        await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 1)
        r1 = await tb.cread32(VIRTIO_PCI_COMMON_GF)
        valid0, valid1 = offered & 0xFFFF_FFFF, offered >> 32
        assert r0 & valid0 == w0 & valid0, f"word 0: wrote {w0:#010x} read {r0:#010x}"
        assert r1 & valid1 == w1 & valid1, f"word 1: wrote {w1:#010x} read {r1:#010x}"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_banking(dut):
    """Per-queue fields are banked by queue_select and read back what was written (INIT-02);
    64-bit queue addresses above 4 GiB, written hi-then-lo and lo-then-hi, read back as
    independent 32-bit halves (PCI-07); a vector < table size reads back (PCI-41, PCI-42)."""
    tb = VirtioTB(dut, seed=11)
    await tb.start()
    p = tb.p
    sizes = power_of_two_sizes(p.queue_size_max)
    want = {}
    order = list(range(p.num_queues))
    for rnd in range(2):
        tb.rng.shuffle(order)
        for q in order:
            fields = {
                VIRTIO_PCI_COMMON_Q_SIZE: tb.rng.choice(sizes),
                VIRTIO_PCI_COMMON_Q_MSIX: tb.rng.randrange(p.msix_vectors),
            }
            for off in QUEUE_ADDRESSES:
                # above 4 GiB, aligned as a driver would (16 for desc, 2/4 for the rings)
                fields[off] = (tb.rng.randrange(1, 1 << 32) << 32) | (tb.rng.getrandbits(32) & ~0xF)
            await tb.select_queue(q)
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, fields[VIRTIO_PCI_COMMON_Q_SIZE])
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_MSIX, fields[VIRTIO_PCI_COMMON_Q_MSIX])
            for k, off in enumerate(QUEUE_ADDRESSES):
                await tb.cwrite64(off, fields[off], hi_first=(k + q + rnd) % 2 == 1)
            want[q] = fields
        tb.rng.shuffle(order)
        for q in order:
            await tb.select_queue(q)
            assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == q
            for off, value in want[q].items():
                if off in QUEUE_ADDRESSES:
                    lo = await tb.cread32(off)
                    hi = await tb.cread32(off + 4)
                    got = hi << 32 | lo
                else:
                    got = await tb.cread16(off)
                assert got == value, f"queue {q} field 0x{off:02x}: read {got:#x}, wrote {value:#x}"
            assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_absent_queues(dut):
    """queue_select naming no queue (NUM_QUEUES, NUM_QUEUES+1, 0x7FFF, 0x8000, 0xFFFF):
    queue_size reads 0 (PCI-14, PCI-15), queue_enable 0, and writes to its per-queue fields
    change no existing queue (no aliasing of the select's low bits)."""
    tb = VirtioTB(dut, seed=13)
    await tb.start()
    p = tb.p
    for sel in (p.num_queues, p.num_queues + 1, *ABSENT_SELECTS):
        await tb.select_queue(sel)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == sel
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == 0, f"queue_select {sel:#x}: size not 0"
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0
        # a driver must not do this; the device must not apply it to some other queue
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, 1)
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_MSIX, 0)
        for off in QUEUE_ADDRESSES:
            await tb.cwrite64(off, 0x1234_5678_9ABC_DEF0)
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, 1)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == 0
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0
    for q in range(p.num_queues):
        await check_queue_defaults(tb, q)
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_read_only_fields(dut):
    """Writes to device_feature, num_queues, config_generation, queue_notify_off,
    queue_notif_config_data and the admin fields are ignored (PCI-17)."""
    tb = VirtioTB(dut, seed=17)
    await tb.start()
    p = tb.p
    q = p.num_queues - 1
    await tb.select_queue(q)
    noff = await tb.cread16(VIRTIO_PCI_COMMON_Q_NOFF)
    gen = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
    for sel in (0, 1):
        await tb.cwrite32(VIRTIO_PCI_COMMON_DFSELECT, sel)
        await tb.cwrite32(VIRTIO_PCI_COMMON_DF, 0xFFFF_FFFF if sel else 0x5A5A_A5A5)
        assert await tb.cread32(VIRTIO_PCI_COMMON_DF) == (p.offered_features >> (32 * sel)) & 0xFFFF_FFFF
    await tb.cwrite16(VIRTIO_PCI_COMMON_NUMQ, 0xFFFF)
    await tb.cwrite8(VIRTIO_PCI_COMMON_CFGGENERATION, (gen + 0x55) & 0xFF)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_NOFF, noff ^ 0xFFFF)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_NDATA, 0xBEEF)
    await tb.cwrite16(VIRTIO_PCI_COMMON_ADM_Q_IDX, 0x1234)
    await tb.cwrite16(VIRTIO_PCI_COMMON_ADM_Q_NUM, 0x4321)
    assert await tb.cread16(VIRTIO_PCI_COMMON_NUMQ) == p.num_queues
    assert await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION) == gen
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_NOFF) == noff
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_NDATA) == 0
    assert await tb.cread16(VIRTIO_PCI_COMMON_ADM_Q_IDX) == 0
    assert await tb.cread16(VIRTIO_PCI_COMMON_ADM_Q_NUM) == 0
    # their neighbours did not move either
    assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == VIRTIO_MSI_NO_VECTOR
    assert await tb.cread8(VIRTIO_PCI_COMMON_STATUS) == 0
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == q
    await check_queue_defaults(tb, q)
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_sub_dword_writes(dut):
    """Narrow accesses touch only their own field (PCI-08): an 8-bit device_status write leaves
    queue_select and config_generation; a 16-bit queue_select write leaves device_status;
    config_msix_vector vs num_queues, queue_size vs queue_msix_vector, queue_enable vs
    queue_notify_off; 8-bit reads of config_generation and device_status."""
    tb = VirtioTB(dut, seed=19)
    await tb.start()
    p = tb.p
    q = p.num_queues - 1
    await tb.select_queue(0x7ABC)
    gen = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == 0x7ABC, "8-bit status write hit queue_select"
    assert await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION) == gen
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
    await tb.select_queue(q)
    assert await tb.cread8(VIRTIO_PCI_COMMON_STATUS) == VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, \
        "16-bit queue_select write hit device_status"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SELECT) == q
    # the whole dword agrees with the bytes
    dword = await tb.cread32(VIRTIO_PCI_COMMON_STATUS)
    assert dword == (q << 16 | gen << 8 | VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER), f"{dword:#x}"

    await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, 0)
    assert await tb.cread16(VIRTIO_PCI_COMMON_NUMQ) == p.num_queues
    assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == 0

    half = p.queue_size_max // 2 or 1
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_MSIX, p.msix_vectors - 1)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, half)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_MSIX) == p.msix_vectors - 1, "queue_size write hit the vector"
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_MSIX, 0)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == half, "queue_msix_vector write hit queue_size"
    noff = await tb.cread16(VIRTIO_PCI_COMMON_Q_NOFF)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, 1)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_NOFF) == noff
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1
    # a 32-bit read of queue_size/queue_msix_vector shows both halves
    assert await tb.cread32(VIRTIO_PCI_COMMON_Q_SIZE) == 0 << 16 | half
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_size_writes(dut):
    """queue_size: every smaller power of two is accepted; 0, a non-power-of-two and anything
    larger than the maximum are ignored, so the field never reads other than 0 or a power of
    two <= the maximum (PCI-15, RTL: size_ok)."""
    tb = VirtioTB(dut, seed=23)
    await tb.start()
    p = tb.p
    for q in range(p.num_queues):
        await tb.select_queue(q)
        current = p.queue_size_max
        for size in power_of_two_sizes(p.queue_size_max)[::-1]:
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, size)
            current = size
            assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == current
        bad = [0, 3, p.queue_size_max + 1, p.queue_size_max * 2, 0x8000 if p.queue_size_max < 0x8000 else 0x7FFF,
               0xFFFF, p.queue_size_max - 1 if p.queue_size_max > 2 else 6]
        for size in bad:
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, size)
            got = await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE)
            assert got == current, f"queue {q}: writing {size:#x} left size {got:#x}, expected {current:#x}"
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, p.queue_size_max)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == p.queue_size_max
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_frozen_while_enabled(dut):
    """Once queue_enable is 1 the queue's size and addresses ignore writes, and writing 0 to
    queue_enable is ignored (the driver never does it; only a reset disables a queue). A
    disabled queue ignores queue_enable = 0 too, and other queues stay writable."""
    tb = VirtioTB(dut, seed=29)
    await tb.start()
    p = tb.p
    assert await tb.negotiate(p.offered_features)
    q = p.num_queues - 1
    await tb.select_queue(q)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, 0)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0
    half = max(p.queue_size_max // 2, 1)
    addrs = {off: 0x2_0000_0000 + 0x1000 * k for k, off in enumerate(QUEUE_ADDRESSES)}
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, half)
    for off, value in addrs.items():
        await tb.cwrite64(off, value)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, 1)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1

    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, 1 if half != 1 else 2)
    for off in QUEUE_ADDRESSES:
        await tb.cwrite64(off, 0xDEAD_BEEF_0000_0000, hi_first=True)
    await tb.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, 0)
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 1, "queue_enable=0 write disabled the queue"
    assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == half, "queue_size changed while enabled"
    for off, value in addrs.items():
        assert await tb.cread64(off) == value, f"address 0x{off:x} changed while enabled"
    if p.num_queues > 1:
        await tb.select_queue(0)
        await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, 1)
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_SIZE) == 1
        assert await tb.cread16(VIRTIO_PCI_COMMON_Q_ENABLE) == 0
    await tb.finish()
