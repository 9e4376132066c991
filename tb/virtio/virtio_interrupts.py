# SPDX-License-Identifier: Apache-2.0
"""Interrupts and the device configuration: MSI-X vector mapping, config-change notification
(MSI-X and INTx), ISR, MSI-X masking, config_generation and the virtio-blk config fields.

The device has no ring engine yet, so the only interrupt source is a device config change
(a resize on ``capacity_valid``/``capacity``); queue vectors are checked at register level.

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb
from cocotbext.pcie.core.tlp import TlpType

from virtio_tb import (
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_MASTER,
    PCI_MSIX_ENTRY_DATA,
    PCI_MSIX_ENTRY_CTRL_MASKBIT,
    PCI_MSIX_ENTRY_LOWER_ADDR,
    PCI_MSIX_ENTRY_SIZE,
    PCI_MSIX_ENTRY_UPPER_ADDR,
    PCI_MSIX_ENTRY_VECTOR_CTRL,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_STATUS,
    PCI_STATUS_INTERRUPT,
    QUIET_WINDOW_NS,
    VIRTIO_BLK_CFG_BLK_SIZE,
    VIRTIO_BLK_CFG_CAPACITY,
    VIRTIO_BLK_CFG_GEOMETRY,
    VIRTIO_BLK_CFG_NUM_QUEUES,
    VIRTIO_BLK_CFG_SEG_MAX,
    VIRTIO_BLK_CFG_SIZE_MAX,
    VIRTIO_BLK_CFG_THROUGH_UNUSED1,
    VIRTIO_BLK_CFG_TOPOLOGY,
    VIRTIO_BLK_CFG_UNUSED0,
    VIRTIO_BLK_CFG_UNUSED1,
    VIRTIO_BLK_CFG_WRITEBACK,
    VIRTIO_BLK_F_MQ,
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_CAP_ISR_CFG,
    VIRTIO_PCI_CAP_PCI_CFG,
    VIRTIO_PCI_CAP_BAR,
    VIRTIO_PCI_CAP_LENGTH,
    VIRTIO_PCI_CAP_OFFSET,
    VIRTIO_PCI_CFG_DATA,
    VIRTIO_PCI_COMMON_CFGGENERATION,
    VIRTIO_PCI_COMMON_MSIX,
    VIRTIO_PCI_COMMON_Q_MSIX,
    VIRTIO_PCI_ISR_CONFIG,
    VirtioTB,
    bit,
)

TIMEOUT_MS = 20

# the fields of struct virtio_blk_config up to unused1, at their natural widths (CFG-01)
BLK_CONFIG_LAYOUT = [
    (VIRTIO_BLK_CFG_CAPACITY, 4), (VIRTIO_BLK_CFG_CAPACITY + 4, 4),
    (VIRTIO_BLK_CFG_SIZE_MAX, 4), (VIRTIO_BLK_CFG_SEG_MAX, 4),
    (VIRTIO_BLK_CFG_GEOMETRY, 2), (VIRTIO_BLK_CFG_GEOMETRY + 2, 1), (VIRTIO_BLK_CFG_GEOMETRY + 3, 1),
    (VIRTIO_BLK_CFG_BLK_SIZE, 4),
    (VIRTIO_BLK_CFG_TOPOLOGY, 1), (VIRTIO_BLK_CFG_TOPOLOGY + 1, 1), (VIRTIO_BLK_CFG_TOPOLOGY + 2, 2),
    (VIRTIO_BLK_CFG_TOPOLOGY + 4, 4),
    (VIRTIO_BLK_CFG_WRITEBACK, 1), (VIRTIO_BLK_CFG_UNUSED0, 1), (VIRTIO_BLK_CFG_NUM_QUEUES, 2),
    (36, 4), (40, 4), (44, 4),          # max_discard_sectors, max_discard_seg, discard_sector_alignment
    (48, 4), (52, 4), (56, 1),          # max_write_zeroes_sectors, max_write_zeroes_seg, may_unmap
    (VIRTIO_BLK_CFG_UNUSED1, 1), (VIRTIO_BLK_CFG_UNUSED1 + 1, 1), (VIRTIO_BLK_CFG_UNUSED1 + 2, 1),
]

# the resize value of CFG-03: both halves non-trivial, top bit of the low half set
CFG03_CAPACITY = 0x0000_0001_8000_0200


class Resizer:
    """Produces a new capacity on every call (the RTL reports a change only for a new value)."""

    def __init__(self, tb):
        self.tb = tb
        self.value = tb.p.capacity

    async def __call__(self):
        self.value = self.value + 1 if self.value < 0xFFFF_FFFF else 1
        await self.tb.resize(self.value)
        return self.value


async def table_entry(tb, vector):
    lo = await tb.msix_entry_read(vector, PCI_MSIX_ENTRY_LOWER_ADDR)
    hi = await tb.msix_entry_read(vector, PCI_MSIX_ENTRY_UPPER_ADDR)
    data = await tb.msix_entry_read(vector, PCI_MSIX_ENTRY_DATA)
    return hi << 32 | lo, data


def clear_vector_events(tb):
    for k in range(tb.msix_table_size):
        tb.msi_vector(k).event.clear()


async def expect_message(tb, vector, start):
    """Exactly one MSI-X message since log index ``start``, on ``vector``, carrying that table
    entry's address and data (PCI-46)."""
    await tb.wait_event(tb.msi_vector(vector).event, f"MSI-X message on vector {vector}")
    await tb.wait_ns(QUIET_WINDOW_NS // 4)
    msgs = tb.msix_log(start)
    assert len(msgs) == 1, f"expected one MSI-X message on vector {vector}, got {msgs}"
    addr, data = await table_entry(tb, vector)
    tlp = msgs[0]
    assert tlp.address == addr, f"message address {tlp.address:#x}, table entry {vector} has {addr:#x}"
    got = int.from_bytes(bytes(tlp.data[:4]), "little")
    assert got == data, f"message data {got:#x}, table entry {vector} has {data:#x}"
    for k in range(tb.msix_table_size):
        if k != vector:
            assert not tb.msi_vector(k).event.is_set(), f"vector {k} fired as well as {vector}"


async def expect_no_message(tb, start, what):
    await tb.wait_ns(QUIET_WINDOW_NS)
    msgs = tb.msix_log(start)
    assert not msgs, f"{what}: unexpected MSI-X messages {msgs}"


async def msix_driver_ok(tb, config_vector=0):
    """MSI-X enabled (all table entries programmed and unmasked), device at DRIVER_OK."""
    await tb.enable_msix()
    await tb.init_device(config_vector=config_vector)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_msix_vector_mapping(dut):
    """Any event can be mapped to any vector 0..TableSize, several events can share one, any
    can be unmapped with NO_VECTOR, and a read returns the mapping (PCI-39, PCI-40, PCI-41,
    PCI-42); an impossible mapping (vector >= table size) reads back NO_VECTOR and raises no
    interrupt (PCI-43); PCI-36/PCI-37 (2..2048 vectors, Table Size N-1 encoded). A config
    change on each vector sends that entry's message with ISR bit 1 set (PCI-24, PCI-46,
    INIT-03, CFG-04, BLK-08)."""
    tb = VirtioTB(dut, seed=61)
    await tb.start()
    p = tb.p
    n = tb.msix_table_size
    assert n == p.msix_vectors and 2 <= n <= 0x800, f"MSI-X table size {n}"
    await msix_driver_ok(tb, config_vector=VIRTIO_MSI_NO_VECTOR)
    resize = Resizer(tb)

    fields = [(None, VIRTIO_PCI_COMMON_MSIX)] + [(q, VIRTIO_PCI_COMMON_Q_MSIX) for q in range(p.num_queues)]
    for q, off in fields:
        if q is not None:
            await tb.select_queue(q)
        for v in [*range(n), VIRTIO_MSI_NO_VECTOR, n, n + 1, 0x7FF, 0x800, 0x7FFE]:
            await tb.cwrite16(off, v)
            want = v if v < n else VIRTIO_MSI_NO_VECTOR
            got = await tb.cread16(off)
            assert got == want, f"{'config' if q is None else f'queue {q}'} vector: wrote {v:#x} read {got:#x}"
    # every event on vector 0, then the reverse of a one-to-one mapping
    for mapping in ([0] * len(fields), [(len(fields) - 1 - k) % n for k in range(len(fields))]):
        for (q, off), v in zip(fields, mapping):
            if q is not None:
                await tb.select_queue(q)
            await tb.cwrite16(off, v)
        for (q, off), v in zip(fields, mapping):
            if q is not None:
                await tb.select_queue(q)
            assert await tb.cread16(off) == v

    # the config change goes to whichever vector is mapped, shared or not
    for v in tb.rng.sample(range(n), n):
        await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, v)
        assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == v
        clear_vector_events(tb)
        start = len(tb.msix_log())
        await resize()
        await expect_message(tb, v, start)
        assert await tb.isr_read() == VIRTIO_PCI_ISR_CONFIG, "ISR bit 1 not set with the config message (PCI-24)"
        assert await tb.isr_read() == 0, "ISR not cleared by the read (PCI-27)"
    # a failed mapping: no vector, no message
    await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, n)
    assert await tb.cread16(VIRTIO_PCI_COMMON_MSIX) == VIRTIO_MSI_NO_VECTOR
    clear_vector_events(tb)
    start = len(tb.msix_log())
    await resize()
    await expect_no_message(tb, start, "config vector >= table size")
    assert tb.host.intx.rises == 0, "INTx asserted in MSI-X mode"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_config_no_vector(dut):
    """With config_msix_vector = NO_VECTOR a config change sends no interrupt (no MSI-X
    message, no INTx), but config_generation still changes (PCI-45, CFG-02)."""
    tb = VirtioTB(dut, seed=67)
    await tb.start()
    await msix_driver_ok(tb, config_vector=VIRTIO_MSI_NO_VECTOR)
    resize = Resizer(tb)
    for _ in range(3):
        gen = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
        start = len(tb.msix_log())
        value = await resize()
        await expect_no_message(tb, start, "config vector NO_VECTOR")
        assert await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION) != gen, "config_generation did not change"
        assert await tb.read_capacity() == value
    assert tb.host.intx.rises == 0 and tb.dut.intx_assert.value == 0, "INTx asserted in MSI-X mode"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_config_generation(dut):
    """config_generation (CFG-02): two reads around any number of config changes differ
    (1, 255, 256, 257 and 300 resizes between two driver reads: an 8-bit counter must not
    wrap back), and are equal when nothing changed; a driver's generation loop around the
    two 32-bit halves of capacity never returns a torn or stale value while resizes race
    with it (PCI-07, CFG-02)."""
    tb = VirtioTB(dut, seed=71)
    await tb.start()
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
    resize = Resizer(tb)

    counts = [0, 1, 0, 2, 255, 256, 257, 300, 0, 1] + [tb.rng.choice([0, 1, 2, 3, 17]) for _ in range(10)]
    for k in counts:
        g1 = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
        cap1 = await tb.read_capacity()
        for _ in range(k):
            await resize()
        g2 = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
        cap2 = await tb.read_capacity()
        g3 = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
        assert cap2 == resize.value
        if k:
            assert cap2 != cap1
            assert g2 != g1, f"{k} config changes between two reads left config_generation at {g1}"
        else:
            # otherwise a driver's generation loop would never settle
            assert g2 == g1, f"config_generation moved from {g1} to {g2} without a config change"
        assert g3 == g2, f"config_generation moved from {g2} to {g3} without a config change"

    # a resizer racing with the driver's read loop; capacity values whose halves are tied
    def tied(n):
        return n << 32 | (n * 0x9E37_79B1) & 0xFFFF_FFFF

    running = True
    changes = 0

    async def racer():
        nonlocal changes
        n = 1
        while running:
            burst = tb.rng.choice([1, 1, 2, 5, 40])
            for _ in range(burst):
                n += 1
                await tb.resize(tied(n))
                changes += 1
            await tb.cycles(tb.rng.randrange(1, 60))

    task = cocotb.start_soon(racer())
    retries = 0
    for _ in range(60):
        for _ in range(50):
            g1 = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
            lo = await tb.dread(VIRTIO_BLK_CFG_CAPACITY, 4)
            hi = await tb.dread(VIRTIO_BLK_CFG_CAPACITY + 4, 4)
            g2 = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
            if g1 == g2:
                break
            retries += 1
        else:
            raise AssertionError("the generation loop never settled")
        if hi:
            assert tied(hi) == hi << 32 | lo, f"torn capacity {hi:#x}:{lo:#010x} with generation {g1} stable"
    running = False
    await task
    tb.log.info("%d racing changes, %d generation retries", changes, retries)
    assert retries > 0, "the racer never hit the read window: the race was not exercised"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_device_config_fields(dut):
    """struct virtio_blk_config: readable at natural widths before FEATURES_OK and unchanged
    after DRIVER_OK (CFG-01); capacity, seg_max, blk_size and num_queues as configured
    (BLK-01, BLK-07); unused0/unused1 read 0 (BLK-05); writes to the read-only fields are
    ignored and change neither a field nor config_generation (CFG-05); after a resize to
    0x0000_0001_8000_0200 capacity reads little-endian at 32-, 16- and 8-bit widths (CFG-03);
    DEVICE_CFG capability 4-byte aligned and long enough (PCI-28, PCI-29)."""
    tb = VirtioTB(dut, seed=73)
    await tb.start()
    p = tb.p
    dcfg = tb.device_cfg
    assert dcfg.offset % 4 == 0, dcfg
    assert dcfg.length >= VIRTIO_BLK_CFG_THROUGH_UNUSED1, dcfg

    async def dump():
        return {(off, width): await tb.dread(off, width) for off, width in BLK_CONFIG_LAYOUT}

    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
    before = await dump()
    assert before[(VIRTIO_BLK_CFG_CAPACITY + 4, 4)] << 32 | before[(VIRTIO_BLK_CFG_CAPACITY, 4)] == p.capacity
    assert before[(VIRTIO_BLK_CFG_SEG_MAX, 4)] == p.seg_max
    assert before[(VIRTIO_BLK_CFG_BLK_SIZE, 4)] == p.blk_size
    if p.offered_features & bit(VIRTIO_BLK_F_MQ):
        assert before[(VIRTIO_BLK_CFG_NUM_QUEUES, 2)] == p.num_queues
    for off in (VIRTIO_BLK_CFG_UNUSED0, VIRTIO_BLK_CFG_UNUSED1, VIRTIO_BLK_CFG_UNUSED1 + 1, VIRTIO_BLK_CFG_UNUSED1 + 2):
        assert before[(off, 1)] == 0, f"unused byte at {off} reads {before[(off, 1)]:#x} (BLK-05)"
    # writeback without CONFIG_WCE offered: the field does not exist, writes must not stick
    gen = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
    for off, width in BLK_CONFIG_LAYOUT:
        await tb.dwrite(off, width, (1 << (8 * width)) - 1 - before[(off, width)])
    assert await dump() == before, "a write to the read-only device config stuck (CFG-05)"
    assert await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION) == gen, "writes moved config_generation"

    await tb.init_device()
    assert await dump() == before, "device config differs after DRIVER_OK (CFG-01)"

    await tb.resize(CFG03_CAPACITY)
    assert await tb.dread(VIRTIO_BLK_CFG_CAPACITY, 4) == 0x8000_0200
    assert await tb.dread(VIRTIO_BLK_CFG_CAPACITY + 4, 4) == 0x0000_0001
    words = [await tb.dread(VIRTIO_BLK_CFG_CAPACITY + 2 * k, 2) for k in range(4)]
    assert words == [0x0200, 0x8000, 0x0001, 0x0000], [hex(w) for w in words]
    octets = bytes([await tb.dread(VIRTIO_BLK_CFG_CAPACITY + k, 1) for k in range(8)])
    assert octets == CFG03_CAPACITY.to_bytes(8, "little"), octets.hex()
    # the rest of the structure did not move
    after = await dump()
    for key, value in before.items():
        if key[0] >= VIRTIO_BLK_CFG_SIZE_MAX:
            assert after[key] == value, f"field {key} changed with the capacity"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_msix_masking(dut):
    """MSI-X per-vector mask, function mask and Bus Master Enable (PCI-01, PCI-46): an event on
    a masked vector sets its PBA bit and sends nothing; unmasking delivers exactly one message
    (two events while masked still make one) and clears the PBA bit. The same with the
    function mask, and with bus mastering off (no request at all may leave the function:
    the TLP checker also fails on any)."""
    tb = VirtioTB(dut, seed=79)
    await tb.start()
    n = tb.msix_table_size
    v = n - 1
    await msix_driver_ok(tb, config_vector=v)
    resize = Resizer(tb)

    async def blocked_then_delivered(block, unblock, what):
        clear_vector_events(tb)
        start = len(tb.msix_log())
        await block()
        await resize()
        await resize()
        await expect_no_message(tb, start, what)
        for k in range(n):
            assert await tb.msix_pending(k) == (k == v), f"{what}: PBA bit {k}"
        await unblock()
        await expect_message(tb, v, start)
        assert await tb.msix_pending(v) == 0, f"{what}: PBA bit still set after delivery"
        assert await tb.isr_read() == VIRTIO_PCI_ISR_CONFIG

    async def mask():
        await tb.msix_mask(v, True)
        assert await tb.msix_entry_read(v, PCI_MSIX_ENTRY_VECTOR_CTRL) & 1

    async def unmask():
        await tb.msix_mask(v, False)

    await blocked_then_delivered(mask, unmask, "vector mask")

    async def function_mask():
        await tb.msix_set_flags(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)
        assert await tb.msix_flags() & PCI_MSIX_FLAGS_MASKALL

    async def function_unmask():
        await tb.msix_set_flags(PCI_MSIX_FLAGS_ENABLE)

    await blocked_then_delivered(function_mask, function_unmask, "function mask")

    async def master_off():
        await tb.set_command_bits(PCI_COMMAND_MASTER, False)

    async def master_on():
        await tb.set_command_bits(PCI_COMMAND_MASTER, True)

    await blocked_then_delivered(master_off, master_on, "bus master disabled")

    # an unmasked vector with nothing pending stays silent when unmasked again
    start = len(tb.msix_log())
    await tb.msix_mask(v, True)
    await tb.msix_mask(v, False)
    await expect_no_message(tb, start, "mask/unmask with nothing pending")
    assert tb.host.intx.rises == 0
    await tb.finish()


async def isr_read_via_pci_cfg(tb):
    """The ISR byte read through the PCI_CFG access capability (PCI-27 through the window)."""
    window = tb.caps[VIRTIO_PCI_CAP_PCI_CFG].cap
    isr = tb.caps[VIRTIO_PCI_CAP_ISR_CFG]
    await tb.cfg_write(window + VIRTIO_PCI_CAP_BAR, 1, isr.bar)
    await tb.cfg_write(window + VIRTIO_PCI_CAP_OFFSET, 4, isr.offset)
    await tb.cfg_write(window + VIRTIO_PCI_CAP_LENGTH, 4, 1)
    return await tb.cfg_read(window + VIRTIO_PCI_CFG_DATA, 1)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_intx_mode(dut):
    """MSI-X disabled: a config change sets ISR bit 1, PCI Status bit 3 and asserts INTx
    (PCI-24, PCI-26); reading ISR returns the bits and clears them, which deasserts INTx and
    clears Status bit 3; a second read returns 0 (PCI-27), also through the PCI_CFG window.
    Command bit 10 (Interrupt Disable): Status bit 3 still set, INTx not asserted; clearing
    it asserts INTx for the pending ISR bit (PCI-26)."""
    tb = VirtioTB(dut, seed=83)
    await tb.start()
    await tb.init_device()
    resize = Resizer(tb)
    intx = tb.host.intx
    assert intx.level == 0 and not await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT

    for read_isr in (tb.isr_read, lambda: isr_read_via_pci_cfg(tb)):
        intx.event.clear()
        rises = intx.rises
        await resize()
        await tb.wait_event(intx.event, "INTx assertion")
        assert intx.rises == rises + 1 and intx.level == 1
        assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "Status.Interrupt not set"
        assert await read_isr() == VIRTIO_PCI_ISR_CONFIG
        await tb.flush()
        await tb.cycles(2)
        assert intx.level == 0, "INTx still asserted after the ISR read"
        assert not await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "Status.Interrupt after ISR read"
        assert await read_isr() == 0, "second ISR read not 0"

    # Interrupt Disable
    await tb.set_command_bits(PCI_COMMAND_INTX_DISABLE, True)
    rises = intx.rises
    await resize()
    await tb.wait_ns(QUIET_WINDOW_NS)
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "Status.Interrupt not set under INTx disable"
    assert intx.rises == rises and intx.level == 0, "INTx asserted although Interrupt Disable is set"
    intx.event.clear()
    await tb.set_command_bits(PCI_COMMAND_INTX_DISABLE, False)
    await tb.wait_event(intx.event, "INTx assertion after clearing Interrupt Disable")
    assert await tb.isr_read() == VIRTIO_PCI_ISR_CONFIG
    await tb.flush()
    await tb.cycles(2)
    assert intx.level == 0
    # no message without MSI-X
    assert not tb.host.tx_req_log, f"requests sent in INTx mode: {tb.msix_log()}"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_msix_mode_no_intx(dut):
    """MSI-X enabled: config changes keep sending messages although the driver never reads
    ISR (PCI-47); ISR bit 1 is still set (PCI-24); INTx and Status bit 3 stay clear."""
    tb = VirtioTB(dut, seed=89)
    await tb.start()
    await msix_driver_ok(tb, config_vector=0)
    resize = Resizer(tb)
    for _ in range(4):
        clear_vector_events(tb)
        start = len(tb.msix_log())
        await resize()
        await expect_message(tb, 0, start)
        assert not await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT
    assert await tb.isr_read() == VIRTIO_PCI_ISR_CONFIG
    assert tb.host.intx.rises == 0 and tb.dut.intx_assert.value == 0, "INTx asserted in MSI-X mode"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_no_interrupt_before_driver_ok(dut):
    """No config interrupt before DRIVER_OK (MSI-X message, INTx or ISR bit), though
    config_generation moves; the first change after DRIVER_OK interrupts; after a device
    reset nothing interrupts again (STS-01, RST-02, RST-04)."""
    tb = VirtioTB(dut, seed=97)
    await tb.start()
    p = tb.p
    await tb.enable_msix()
    resize = Resizer(tb)
    assert await tb.negotiate(p.offered_features)
    await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, 0)
    for status in (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,):
        assert await tb.get_status() == status
        gen = await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
        start = len(tb.msix_log())
        await resize()
        await expect_no_message(tb, start, f"status {status:#x}")
        assert await tb.isr_read() == 0
        assert await tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION) != gen
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    await tb.flush()
    clear_vector_events(tb)
    start = len(tb.msix_log())
    await resize()
    await expect_message(tb, 0, start)
    assert await tb.isr_read() == VIRTIO_PCI_ISR_CONFIG
    await tb.reset_device()
    start = len(tb.msix_log())
    await resize()
    await expect_no_message(tb, start, "after reset")
    assert await tb.isr_read() == 0
    # INTx mode before DRIVER_OK: nothing either
    await tb.msix_set_flags(0)
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
    await tb.flush()
    await resize()
    await tb.wait_ns(QUIET_WINDOW_NS)
    assert tb.host.intx.rises == 0 and await tb.isr_read() == 0
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_msix_table_access(dut):
    """MSI-X table and PBA as the PCI spec has them (PCI-01, PCI-37, PCI-46): after reset every
    vector is masked and no bit is pending; entries take dword, qword and whole-entry (16-byte)
    writes and reads; Vector Control keeps only its mask bit; entries past Table Size read 0 and
    ignore writes (no aliasing onto real entries); the PBA ignores writes; a message address
    above 4 GiB goes out as a 4-DW memory write to exactly that address."""
    tb = VirtioTB(dut, seed=107)
    await tb.start()
    n = tb.msix_table_size
    window, base = tb.msix_table
    pba_window, pba_base = tb.msix_pba

    for k in range(n):
        ctrl = await tb.msix_entry_read(k, PCI_MSIX_ENTRY_VECTOR_CTRL)
        assert ctrl == PCI_MSIX_ENTRY_CTRL_MASKBIT, f"entry {k} vector control {ctrl:#x} after reset"
        assert await tb.msix_pending(k) == 0

    def entry_bytes(addr, data, ctrl):
        return addr.to_bytes(8, "little") + data.to_bytes(4, "little") + ctrl.to_bytes(4, "little")

    want = {}
    for k in range(n):
        addr = 0x1_0000_0000 * (k + 1) + 0x40 * k + 0xFEE0_0000
        data = 0xA500 + k
        tb.msix_windows.append((addr, 4))
        if k % 2:
            await window.write(base + k * PCI_MSIX_ENTRY_SIZE, entry_bytes(addr, data, 0xFFFF_FFFF))
        else:
            await window.write(base + k * PCI_MSIX_ENTRY_SIZE, addr.to_bytes(8, "little"))
            await window.write(base + k * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA,
                               (data | 0xFFFF_FFFF << 32).to_bytes(8, "little"))
        want[k] = entry_bytes(addr, data, PCI_MSIX_ENTRY_CTRL_MASKBIT)
    # entries past the table: ignored, and they read 0
    for k in (n, n + 1, 255):
        await window.write(base + k * PCI_MSIX_ENTRY_SIZE, entry_bytes(0xDEAD_BEEF_0000, 0x5555, 0))
        got = bytes(await window.read(base + k * PCI_MSIX_ENTRY_SIZE, PCI_MSIX_ENTRY_SIZE))
        assert got == bytes(PCI_MSIX_ENTRY_SIZE), f"entry {k} past the table reads {got.hex()}"
    for k in range(n):
        whole = bytes(await window.read(base + k * PCI_MSIX_ENTRY_SIZE, PCI_MSIX_ENTRY_SIZE))
        assert whole == want[k], f"entry {k}: {whole.hex()}, expected {want[k].hex()}"
        qword = bytes(await window.read(base + k * PCI_MSIX_ENTRY_SIZE, 8))
        assert qword == want[k][:8]
        assert await tb.msix_entry_read(k, PCI_MSIX_ENTRY_UPPER_ADDR) == k + 1
    # the PBA is read-only
    await pba_window.write(pba_base, (0xFFFF_FFFF).to_bytes(4, "little"))
    for k in range(n):
        assert await tb.msix_pending(k) == 0, f"PBA bit {k} written by the host"

    # a message above 4 GiB: enable MSI-X with the entries as they are, unmask the last one
    v = n - 1
    await tb.msix_set_flags(PCI_MSIX_FLAGS_ENABLE)
    await tb.msix_mask(v, False)
    await tb.init_device(config_vector=v)
    start = len(tb.msix_log())
    await tb.resize(tb.p.capacity + 99)
    await tb.wait_ns(QUIET_WINDOW_NS)
    msgs = tb.msix_log(start)
    addr = int.from_bytes(want[v][:8], "little")
    assert len(msgs) == 1, msgs
    assert msgs[0].fmt_type == TlpType.MEM_WRITE_64 and msgs[0].address == addr, msgs[0]
    assert int.from_bytes(bytes(msgs[0].data[:4]), "little") == 0xA500 + v
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_isr_race(dut):
    """INTx mode, resizes racing with a driver that polls the ISR and re-reads the capacity on
    bit 1: no config change is lost between the ISR read that clears the bit and a change in
    the same cycle (PCI-24, PCI-27); once the racer stops, the driver's capacity is the final
    one and INTx is deasserted."""
    tb = VirtioTB(dut, seed=109)
    await tb.start()
    await tb.init_device()
    p = tb.p
    running = True
    final = p.capacity

    async def racer():
        nonlocal final
        for n in range(1, 151):
            final = p.capacity + n
            await tb.resize(final)
            await tb.cycles(tb.rng.choice([1, 2, 3, 5, 8, 13, 40]))

    task = cocotb.start_soon(racer())
    seen = 0
    capacity = p.capacity
    while running:
        if task.done():
            running = False
            await tb.cycles(4)
        if await tb.isr_read() & VIRTIO_PCI_ISR_CONFIG:
            seen += 1
            capacity = await tb.read_capacity()
    await task
    if await tb.isr_read() & VIRTIO_PCI_ISR_CONFIG:
        seen += 1
        capacity = await tb.read_capacity()
    assert capacity == final, f"driver ended with capacity {capacity}, device has {final}: a change was lost"
    await tb.flush()
    await tb.cycles(2)
    assert tb.host.intx.level == 0
    assert seen > 10, f"only {seen} ISR hits: the race was not exercised"
    tb.log.info("%d ISR hits for 150 changes", seen)
    await tb.finish()
