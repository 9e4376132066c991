# SPDX-License-Identifier: Apache-2.0
"""Random mix of register operations checked against a Python register model.

A few hundred operations drawn at random: configuration-space reads and writes of the
function's writable registers, common-config field writes and reads at their natural widths
(features, vectors, queue select, per-queue fields, queue_enable, queue_reset, device reset
and re-initialisation), MSI-X table and PBA accesses, device-config reads, ISR reads,
config_generation reads, doorbells and resizes. Every read is compared with the model; every
MSI-X message the device sends must be one the model expects (address and data of the table
entry at the time it is sent), and every expected one must arrive; doorbell pulses must
match the model. Run with and without random idle cycles and backpressure on all four TLP
streams.

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import collections
import zlib

import cocotb
from cocotb.triggers import with_timeout

from virtio_tb import (
    EVENT_TIMEOUT_NS,
    PCI_CAP_ID_EXP,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_COMMAND_PARITY,
    PCI_COMMAND_SERR,
    PCI_EXP_DEVCTL,
    PCI_EXP_LNKCTL,
    PCI_INTERRUPT_LINE,
    PCI_MSIX_ENTRY_DATA,
    PCI_MSIX_ENTRY_LOWER_ADDR,
    PCI_MSIX_ENTRY_UPPER_ADDR,
    PCI_MSIX_ENTRY_VECTOR_CTRL,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_STATUS,
    PCI_STATUS_INTERRUPT,
    VIRTIO_BLK_CFG_BLK_SIZE,
    VIRTIO_BLK_CFG_CAPACITY,
    VIRTIO_BLK_CFG_SEG_MAX,
    VIRTIO_BLK_CFG_UNUSED0,
    VIRTIO_BLK_CFG_UNUSED1,
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_NOTIFICATION_DATA,
    VIRTIO_F_RING_RESET,
    VIRTIO_F_VERSION_1,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_CAP_BAR,
    VIRTIO_PCI_CAP_LENGTH,
    VIRTIO_PCI_CAP_NOTIFY_CFG,
    VIRTIO_PCI_CAP_OFFSET,
    VIRTIO_PCI_CAP_PCI_CFG,
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
    VIRTIO_PCI_COMMON_Q_NOFF,
    VIRTIO_PCI_COMMON_Q_RESET,
    VIRTIO_PCI_COMMON_Q_SELECT,
    VIRTIO_PCI_COMMON_Q_SIZE,
    VIRTIO_PCI_COMMON_Q_USEDLO,
    VIRTIO_PCI_COMMON_STATUS,
    Params,
    VirtioTB,
    bit,
    feature_bits,
)

TIMEOUT_MS = 60
OPERATIONS = 600

QUEUE_ADDRESSES = (VIRTIO_PCI_COMMON_Q_DESCLO, VIRTIO_PCI_COMMON_Q_AVAILLO, VIRTIO_PCI_COMMON_Q_USEDLO)
# Command bits the function implements (the mix keeps Memory Space on: it needs BAR0)
COMMAND_RW_MASK = (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR
                   | PCI_COMMAND_INTX_DISABLE)
# Device Control fields a driver may change freely (error reporting, relaxed ordering, extended
# tag, no snoop); Max_Payload_Size and Max_Read_Request_Size stay as the host set them
DEVCTL_FREE_BITS = 0x090F | 0x0010
DEVCTL_RW_MASK = 0x79FF
# Link Control: ASPM control, RCB, common clock, extended synch
LNKCTL_RW_MASK = 0x00CB
# cycles to wait after a flushed doorbell before the pins are judged
SETTLE_CYCLES = 8
# cycles with no new MSI-X message before a settle is complete
MSG_QUIET_CYCLES = 64


class QueueModel:
    def __init__(self, size_max):
        self.size = size_max
        self.vector = VIRTIO_MSI_NO_VECTOR
        self.enable = 0
        self.addr = {off: 0 for off in QUEUE_ADDRESSES}


class RegisterModel:
    """What the function's registers must read, given the operations so far.

    Device behaviour it relies on, all from the spec and the RTL's documented choices: a
    reset and a queue reset complete within one register access (nothing is in flight here);
    writes to the fields of an absent or enabled queue, and vectors >= table size, are not
    stored (the vector then reads NO_VECTOR); a config change interrupts only once DRIVER_OK
    is set; MSI-X stays enabled.
    """

    def __init__(self, p, table_size, devctl):
        self.p = p
        self.table_size = table_size
        # PCI configuration space
        self.command = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
        self.interrupt_line = 0
        self.devctl = devctl
        self.lnkctl = 0
        self.function_mask = 0
        self.pcicfg = {VIRTIO_PCI_CAP_BAR: 0, VIRTIO_PCI_CAP_OFFSET: 0, VIRTIO_PCI_CAP_LENGTH: 0}
        # MSI-X (entries as programmed by the set-up)
        self.entries = []
        self.pending = [0] * table_size
        # device
        self.capacity = p.capacity
        self.isr = 0
        self.reset()

    def reset(self):
        p = self.p
        self.dfselect = 0
        self.gfselect = 0
        self.driver_features = 0
        self.config_vector = VIRTIO_MSI_NO_VECTOR
        self.status = 0
        self.queue_select = 0
        self.isr = 0
        self.queues = [QueueModel(p.queue_size_max) for _ in range(p.num_queues)]
        # no notification may follow a reset (RST-02): events still pending in the PBA are dropped
        if hasattr(self, "pending"):
            self.pending = [0] * len(self.pending)

    # ---- derived state
    @property
    def features_ok(self):
        return bool(self.status & VIRTIO_CONFIG_S_FEATURES_OK)

    @property
    def driver_ok(self):
        return bool(self.status & VIRTIO_CONFIG_S_DRIVER_OK) and self.features_ok

    @property
    def ring_reset_negotiated(self):
        return self.features_ok and bool(self.driver_features & self.p.offered_features & bit(VIRTIO_F_RING_RESET))

    @property
    def notification_data_negotiated(self):
        return self.features_ok and bool(self.driver_features & self.p.offered_features
                                         & bit(VIRTIO_F_NOTIFICATION_DATA))

    @property
    def queue(self):
        return self.queues[self.queue_select] if self.queue_select < self.p.num_queues else None

    def valid_vector(self, v):
        return v if v < self.table_size else VIRTIO_MSI_NO_VECTOR

    def blocked(self, v):
        return (self.function_mask or self.entries[v]["mask"]
                or not self.command & PCI_COMMAND_MASTER)

    # ---- common configuration
    def read_common(self, off):
        p = self.p
        q = self.queue
        if off == VIRTIO_PCI_COMMON_DFSELECT:
            return self.dfselect
        if off == VIRTIO_PCI_COMMON_DF:
            return (p.offered_features >> (32 * self.dfselect)) & 0xFFFF_FFFF if self.dfselect < 2 else 0
        if off == VIRTIO_PCI_COMMON_GFSELECT:
            return self.gfselect
        if off == VIRTIO_PCI_COMMON_GF:
            return (self.driver_features >> (32 * self.gfselect)) & 0xFFFF_FFFF if self.gfselect < 2 else 0
        if off == VIRTIO_PCI_COMMON_MSIX:
            return self.config_vector
        if off == VIRTIO_PCI_COMMON_NUMQ:
            return p.num_queues
        if off == VIRTIO_PCI_COMMON_STATUS:
            return self.status
        if off == VIRTIO_PCI_COMMON_Q_SELECT:
            return self.queue_select
        if off == VIRTIO_PCI_COMMON_Q_SIZE:
            return q.size if q else 0
        if off == VIRTIO_PCI_COMMON_Q_MSIX:
            return q.vector if q else VIRTIO_MSI_NO_VECTOR
        if off == VIRTIO_PCI_COMMON_Q_ENABLE:
            return q.enable if q else 0
        if off == VIRTIO_PCI_COMMON_Q_NOFF:
            return None           # any value: checked by the doorbell tests
        if off == VIRTIO_PCI_COMMON_Q_RESET:
            return 0
        for lo in QUEUE_ADDRESSES:
            if off == lo:
                return q.addr[lo] & 0xFFFF_FFFF if q else 0
            if off == lo + 4:
                return q.addr[lo] >> 32 if q else 0
        raise ValueError(off)

    def write_common(self, off, value):
        p = self.p
        q = self.queue
        writable = q is not None and not q.enable
        if off == VIRTIO_PCI_COMMON_DFSELECT:
            self.dfselect = value
        elif off == VIRTIO_PCI_COMMON_GFSELECT:
            self.gfselect = value
        elif off == VIRTIO_PCI_COMMON_GF:
            if not self.features_ok and self.gfselect < 2:
                shift = 32 * self.gfselect
                self.driver_features = self.driver_features & ~(0xFFFF_FFFF << shift) | value << shift
        elif off == VIRTIO_PCI_COMMON_MSIX:
            self.config_vector = self.valid_vector(value)
        elif off == VIRTIO_PCI_COMMON_STATUS:
            if value == 0:
                self.reset()
            else:
                acceptable = (self.driver_features & ~p.offered_features) == 0 and \
                    self.driver_features & bit(VIRTIO_F_VERSION_1)
                if value & VIRTIO_CONFIG_S_FEATURES_OK and not self.features_ok and not acceptable:
                    value &= ~VIRTIO_CONFIG_S_FEATURES_OK
                self.status = value
        elif off == VIRTIO_PCI_COMMON_Q_SELECT:
            self.queue_select = value
        elif off == VIRTIO_PCI_COMMON_Q_SIZE:
            if writable and value and value & (value - 1) == 0 and value <= p.queue_size_max:
                q.size = value
        elif off == VIRTIO_PCI_COMMON_Q_MSIX:
            if q is not None:
                q.vector = self.valid_vector(value)
        elif off == VIRTIO_PCI_COMMON_Q_ENABLE:
            if writable and value & 1:
                q.enable = 1
        elif off == VIRTIO_PCI_COMMON_Q_RESET:
            if q is not None and self.ring_reset_negotiated and value & 1:
                self.queues[self.queue_select] = QueueModel(p.queue_size_max)
        else:
            for lo in QUEUE_ADDRESSES:
                if off in (lo, lo + 4) and writable:
                    shift = 0 if off == lo else 32
                    q.addr[lo] = q.addr[lo] & ~(0xFFFF_FFFF << shift) | value << shift

    # ---- events
    def config_change(self, capacity):
        """A resize; returns the vectors whose message must now go out."""
        if capacity == self.capacity:
            return []
        self.capacity = capacity
        if not self.status & VIRTIO_CONFIG_S_DRIVER_OK:
            return []
        self.isr |= 0x2
        v = self.config_vector
        if v == VIRTIO_MSI_NO_VECTOR:
            return []
        if self.blocked(v):
            self.pending[v] = 1
            return []
        return [v]

    def unblocked(self):
        """Pending vectors that may now go out (after a mask, function-mask or BME change)."""
        out = []
        for v in range(self.table_size):
            if self.pending[v] and not self.blocked(v):
                self.pending[v] = 0
                out.append(v)
        return out

    def message(self, v):
        e = self.entries[v]
        return (e["addr_hi"] << 32 | e["addr_lo"], e["data"])


class RandomMix:
    def __init__(self, tb, model, msg_base, msg_mem, blk_constants):
        self.tb = tb
        self.m = model
        self.rng = tb.rng
        self.msg_base = msg_base
        self.msg_mem = msg_mem
        self.blk_constants = blk_constants
        self.expected_msgs = []
        self.checked = 0
        self.gen_last = None
        self.changed_since_gen = False
        self.counts = collections.Counter()
        self._rings = None

    # ---- helpers
    def random_msg_addr(self):
        return self.msg_base + 4 * self.rng.randrange(1024)

    async def settle_messages(self):
        """Every expected MSI-X message has arrived, with the expected address and data, and no
        other one came."""
        tb = self.tb
        want = self.checked + len(self.expected_msgs)

        def count():
            return len(tb.msix_log())   # ring DMA shares tx_req: count the MSI-X writes only

        async def arrived():
            quiet = 0
            while count() < want or quiet < MSG_QUIET_CYCLES:
                before = count()
                await tb.cycles(1)
                quiet = quiet + 1 if count() == before else 0
                assert count() <= want, f"unexpected MSI-X messages {tb.msix_log(self.checked)}, " \
                                        f"expected {self.expected_msgs}"

        try:
            await with_timeout(arrived(), EVENT_TIMEOUT_NS, "ns")
        except cocotb.triggers.SimTimeoutError:
            raise AssertionError(f"expected MSI-X messages {self.expected_msgs}, got "
                                 f"{tb.msix_log(self.checked)}") from None
        got = sorted((tlp.address, int.from_bytes(bytes(tlp.data[:4]), "little"))
                     for tlp in tb.msix_log(self.checked))
        want_msgs = sorted(self.expected_msgs)
        assert got == want_msgs, f"MSI-X messages {got}, expected {want_msgs}"
        # the message landed in host memory (where two went to one address, either may be last)
        for addr in {a for a, _ in got}:
            stored = int.from_bytes(self.msg_mem[addr - self.msg_base:addr - self.msg_base + 4], "little")
            assert stored in [d for a, d in got if a == addr], f"host memory at {addr:#x} holds {stored:#x}"
        self.counts["msix messages"] += len(got)
        self.checked = count()
        self.expected_msgs = []

    def expect_vectors(self, vectors):
        self.expected_msgs += [self.m.message(v) for v in vectors]

    # ---- operations
    async def op_cfg_register(self):
        tb, m, rng = self.tb, self.m, self.rng
        choice = rng.randrange(6)
        if choice == 0:
            value = rng.getrandbits(8)
            await tb.cfg_write(PCI_INTERRUPT_LINE, 1, value)
            m.interrupt_line = value
            assert await tb.cfg_read(PCI_INTERRUPT_LINE, 1) == value
        elif choice == 1:
            # Command: Memory Space on, the rest at random (Bus Master only rarely off)
            value = PCI_COMMAND_MEMORY | (rng.getrandbits(16) & ~PCI_COMMAND_MEMORY & ~PCI_COMMAND_MASTER)
            if rng.random() < 0.85:
                value |= PCI_COMMAND_MASTER
            await tb.cfg_write(PCI_COMMAND, 2, value)
            m.command = value & COMMAND_RW_MASK
            self.expect_vectors(m.unblocked())
            got = await tb.cfg_read(PCI_COMMAND, 2)
            assert got == m.command, f"Command reads {got:#06x}, expected {m.command:#06x}"
            await self.settle_messages()
        elif choice == 2:
            exp = tb.pci_caps[PCI_CAP_ID_EXP]
            value = m.devctl & ~DEVCTL_FREE_BITS | rng.getrandbits(16) & DEVCTL_FREE_BITS
            await tb.cfg_write(exp + PCI_EXP_DEVCTL, 2, value)
            m.devctl = value & DEVCTL_RW_MASK
            assert await tb.cfg_read(exp + PCI_EXP_DEVCTL, 2) == m.devctl
        elif choice == 3:
            exp = tb.pci_caps[PCI_CAP_ID_EXP]
            value = rng.getrandbits(16)
            await tb.cfg_write(exp + PCI_EXP_LNKCTL, 2, value)
            m.lnkctl = value & LNKCTL_RW_MASK
            assert await tb.cfg_read(exp + PCI_EXP_LNKCTL, 2) == m.lnkctl
        elif choice == 4:
            cap = tb.caps[VIRTIO_PCI_CAP_PCI_CFG].cap
            field, width = rng.choice([(VIRTIO_PCI_CAP_BAR, 1), (VIRTIO_PCI_CAP_OFFSET, 4), (VIRTIO_PCI_CAP_LENGTH, 4)])
            value = rng.getrandbits(8 * width)
            await tb.cfg_write(cap + field, width, value)
            m.pcicfg[field] = value
            for f, w in ((VIRTIO_PCI_CAP_BAR, 1), (VIRTIO_PCI_CAP_OFFSET, 4), (VIRTIO_PCI_CAP_LENGTH, 4)):
                assert await tb.cfg_read(cap + f, w) == m.pcicfg[f], f"pci_cfg field {f}"
        else:
            # MSI-X function mask (MSI-X stays enabled)
            m.function_mask = rng.random() < 0.3
            await tb.msix_set_flags(PCI_MSIX_FLAGS_ENABLE | (PCI_MSIX_FLAGS_MASKALL if m.function_mask else 0))
            self.expect_vectors(m.unblocked())
            flags = await tb.msix_flags()
            assert flags & (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) == \
                PCI_MSIX_FLAGS_ENABLE | (PCI_MSIX_FLAGS_MASKALL if m.function_mask else 0)
            await self.settle_messages()
        # Status.Interrupt only reflects INTx: always clear in MSI-X mode
        assert not await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT
        self.counts["config space"] += 1

    async def op_common_write(self):
        tb, m, rng = self.tb, self.m, self.rng
        p = tb.p
        n = m.table_size
        kind = rng.choices(["dfselect", "gf", "config_vector", "queue_select", "queue_size",
                            "queue_vector", "queue_address", "queue_enable", "queue_reset"],
                           weights=[1, 2, 2, 3, 2, 2, 3, 1, 1])[0]
        if kind == "dfselect":
            sel = rng.choice([0, 1, 2, rng.getrandbits(32)])
            await tb.cwrite32(VIRTIO_PCI_COMMON_DFSELECT, sel)
            m.write_common(VIRTIO_PCI_COMMON_DFSELECT, sel)
            await self.check_common(VIRTIO_PCI_COMMON_DF, 4)
        elif kind == "gf":
            sel = rng.choice([0, 1, 1, 5])
            value = rng.getrandbits(32)
            await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, sel)
            m.write_common(VIRTIO_PCI_COMMON_GFSELECT, sel)
            await tb.cwrite32(VIRTIO_PCI_COMMON_GF, value)
            m.write_common(VIRTIO_PCI_COMMON_GF, value)
            await self.check_common(VIRTIO_PCI_COMMON_GF, 4)
        elif kind == "config_vector":
            v = rng.choice([rng.randrange(n)] * 5 + [VIRTIO_MSI_NO_VECTOR, n, rng.getrandbits(16)])
            await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, v)
            m.write_common(VIRTIO_PCI_COMMON_MSIX, v)
            await self.check_common(VIRTIO_PCI_COMMON_MSIX, 2)
        elif kind == "queue_select":
            q = rng.choice([rng.randrange(p.num_queues)] * 4 + [p.num_queues, 0x7FFF, 0xFFFF, rng.getrandbits(16)])
            await tb.select_queue(q)
            m.write_common(VIRTIO_PCI_COMMON_Q_SELECT, q)
            await self.check_common(VIRTIO_PCI_COMMON_Q_SIZE, 2)
        elif kind == "queue_size":
            size = rng.choice([1 << rng.randrange(16), rng.getrandbits(16), 0])
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, size)
            m.write_common(VIRTIO_PCI_COMMON_Q_SIZE, size)
            await self.check_common(VIRTIO_PCI_COMMON_Q_SIZE, 2)
        elif kind == "queue_vector":
            v = rng.choice([rng.randrange(n), VIRTIO_MSI_NO_VECTOR, n + rng.randrange(8), rng.getrandbits(16)])
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_MSIX, v)
            m.write_common(VIRTIO_PCI_COMMON_Q_MSIX, v)
            await self.check_common(VIRTIO_PCI_COMMON_Q_MSIX, 2)
        elif kind == "queue_address":
            lo = rng.choice(QUEUE_ADDRESSES)
            off = lo + rng.choice([0, 4])
            value = rng.getrandbits(32)
            await tb.cwrite32(off, value)
            m.write_common(off, value)
            await self.check_common(off, 4)
        elif kind == "queue_enable":
            value = rng.choice([0, 1, 1])
            if value:
                # a driver points the queue at real rings before enabling it (the ring engine
                # reads them on the next doorbell); random addresses stay for disabled queues
                await self.program_valid_rings()
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, value)
            m.write_common(VIRTIO_PCI_COMMON_Q_ENABLE, value)
            await self.check_common(VIRTIO_PCI_COMMON_Q_ENABLE, 2)
        else:
            await tb.cwrite16(VIRTIO_PCI_COMMON_Q_RESET, 1)
            m.write_common(VIRTIO_PCI_COMMON_Q_RESET, 1)
            for off, width in ((VIRTIO_PCI_COMMON_Q_RESET, 2), (VIRTIO_PCI_COMMON_Q_ENABLE, 2),
                               (VIRTIO_PCI_COMMON_Q_SIZE, 2)):
                await self.check_common(off, width)
        self.counts[f"write {kind}"] += 1

    async def check_common(self, off, width):
        got = await self.tb.cread(off, width)
        want = self.m.read_common(off)
        if want is not None:
            assert got == want, f"common cfg 0x{off:02x} reads {got:#x}, model {want:#x} " \
                                f"(queue_select {self.m.queue_select:#x})"

    async def rings(self):
        """Zeroed split rings big enough for any accepted queue size (avail.idx stays 0, so a
        doorbell finds nothing to do), shared by every queue the mix enables."""
        if self._rings is None:
            self._rings = await self.tb.empty_rings(self.tb.p.queue_size_max)
        return self._rings

    async def program_valid_rings(self):
        """Write the selected queue's three ring addresses (as 32-bit halves) to valid rings."""
        tb, m = self.tb, self.m
        for lo, addr in zip(QUEUE_ADDRESSES, await self.rings()):
            for k in (0, 4):
                value = (addr >> (8 * k)) & 0xFFFF_FFFF
                await tb.cwrite32(lo + k, value)
                m.write_common(lo + k, value)

    async def op_common_read(self):
        fields = [(VIRTIO_PCI_COMMON_DFSELECT, 4), (VIRTIO_PCI_COMMON_DF, 4), (VIRTIO_PCI_COMMON_GFSELECT, 4),
                  (VIRTIO_PCI_COMMON_GF, 4), (VIRTIO_PCI_COMMON_MSIX, 2), (VIRTIO_PCI_COMMON_NUMQ, 2),
                  (VIRTIO_PCI_COMMON_STATUS, 1), (VIRTIO_PCI_COMMON_Q_SELECT, 2), (VIRTIO_PCI_COMMON_Q_SIZE, 2),
                  (VIRTIO_PCI_COMMON_Q_MSIX, 2), (VIRTIO_PCI_COMMON_Q_ENABLE, 2), (VIRTIO_PCI_COMMON_Q_RESET, 2)]
        fields += [(lo + k, 4) for lo in QUEUE_ADDRESSES for k in (0, 4)]
        off, width = self.rng.choice(fields)
        await self.check_common(off, width)
        self.counts["common read"] += 1

    async def op_generation(self):
        gen = await self.tb.cread8(VIRTIO_PCI_COMMON_CFGGENERATION)
        if self.gen_last is not None:
            if self.changed_since_gen:
                assert gen != self.gen_last, "config changed but config_generation did not (CFG-02)"
            else:
                assert gen == self.gen_last, "config_generation moved without a config change"
        self.gen_last = gen
        self.changed_since_gen = False
        self.counts["generation read"] += 1

    async def op_device_config_read(self):
        tb, m = self.tb, self.m
        off, width = self.rng.choice(list(self.blk_constants) + [(VIRTIO_BLK_CFG_CAPACITY, 4),
                                                                  (VIRTIO_BLK_CFG_CAPACITY + 4, 4)] * 3)
        got = await tb.dread(off, width)
        if off == VIRTIO_BLK_CFG_CAPACITY:
            want = m.capacity & 0xFFFF_FFFF if width == 4 else None
        elif off == VIRTIO_BLK_CFG_CAPACITY + 4:
            want = m.capacity >> 32
        else:
            want = self.blk_constants[(off, width)]
        assert got == want, f"device config {off}/{width} reads {got:#x}, expected {want:#x}"
        self.counts["device config read"] += 1

    async def unmask_all(self):
        """Clear the MSI-X function mask and every per-vector mask (the model follows)."""
        tb, m = self.tb, self.m
        m.function_mask = False
        await tb.msix_set_flags(PCI_MSIX_FLAGS_ENABLE)
        for v, e in enumerate(m.entries):
            e["mask"] = False
            await tb.msix_mask(v, False)
        self.expect_vectors(m.unblocked())
        await self.settle_messages()

    async def op_resize(self):
        tb, m, rng = self.tb, self.m, self.rng
        capacity = rng.choice([m.capacity, m.capacity + 1, rng.getrandbits(64), rng.getrandbits(33)])
        changed = capacity != m.capacity
        self.expect_vectors(m.config_change(capacity))
        self.changed_since_gen |= changed
        await tb.resize(capacity)
        await self.settle_messages()
        self.counts["resize"] += 1

    async def op_isr(self):
        got = await self.tb.isr_read()
        assert got == self.m.isr, f"ISR reads {got:#x}, model {self.m.isr:#x}"
        self.m.isr = 0
        self.counts["isr read"] += 1

    async def op_msix_table(self):
        tb, m, rng = self.tb, self.m, self.rng
        v = rng.randrange(m.table_size)
        e = m.entries[v]
        kind = rng.choice(["addr", "data", "mask", "mask", "read", "pba"])
        if kind == "addr":
            value = self.random_msg_addr() | rng.getrandbits(2)
            await tb.msix_entry_write(v, PCI_MSIX_ENTRY_LOWER_ADDR, value)
            await tb.msix_entry_write(v, PCI_MSIX_ENTRY_UPPER_ADDR, 0)
            e["addr_lo"] = value & ~0x3
            e["addr_hi"] = 0
        elif kind == "data":
            e["data"] = rng.getrandbits(32)
            await tb.msix_entry_write(v, PCI_MSIX_ENTRY_DATA, e["data"])
        elif kind == "mask":
            e["mask"] = rng.random() < 0.3
            await tb.msix_mask(v, e["mask"])
            self.expect_vectors(m.unblocked())
        elif kind == "pba":
            for k in range(m.table_size):
                assert await tb.msix_pending(k) == m.pending[k], f"PBA bit {k}"
        for field, want in ((PCI_MSIX_ENTRY_LOWER_ADDR, e["addr_lo"]), (PCI_MSIX_ENTRY_UPPER_ADDR, e["addr_hi"]),
                            (PCI_MSIX_ENTRY_DATA, e["data"]), (PCI_MSIX_ENTRY_VECTOR_CTRL, int(e["mask"]))):
            got = await tb.msix_entry_read(v, field)
            assert got == want, f"MSI-X entry {v} field {field}: {got:#x}, model {want:#x}"
        await self.settle_messages()
        self.counts[f"msix {kind}"] += 1

    async def op_doorbell(self):
        tb, m, rng = self.tb, self.m, self.rng
        p = tb.p
        cap = tb.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
        q = rng.randrange(p.num_queues + 1)
        addr = cap.offset + q * cap.notify_off_multiplier
        # 16-bit (DNOT-01) or 32-bit with the avail idx (DNOT-02): the rings are empty, so the idx
        # is 0; the data reaches the engine only with NOTIFICATION_DATA negotiated
        wide = rng.random() < 0.5
        if wide:
            await tb.notify_with_data(q, 0, addr)
        else:
            await tb.notify(q, addr)
        await tb.flush()
        await tb.cycles(SETTLE_CYCLES)
        got = tb.pins.take_notifies(with_data=True)
        data = 0 if wide and m.notification_data_negotiated else None
        want = [(q, data)] if q < p.num_queues and m.driver_ok and m.queues[q].enable else []
        assert got == want, f"doorbell {q} ({32 if wide else 16}-bit): pulses {got}, expected {want}"
        self.counts["doorbell 32-bit" if wide else "doorbell"] += 1

    async def op_reinit(self, stop=None):
        """Device reset, then the init sequence to a random point with a random feature set;
        a live device gets its config vector and some enabled queues, as a driver would do."""
        tb, m, rng = self.tb, self.m, self.rng
        p = tb.p
        await tb.reset_device()
        m.write_common(VIRTIO_PCI_COMMON_STATUS, 0)
        await self.check_common(VIRTIO_PCI_COMMON_MSIX, 2)
        stop = stop or rng.choice(["ack", "driver", "features", "driver_ok", "driver_ok", "driver_ok"])
        steps = [VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER]
        for status in steps[:1 if stop == "ack" else 2]:
            await tb.set_status(status)
            m.write_common(VIRTIO_PCI_COMMON_STATUS, status)
        if stop in ("features", "driver_ok"):
            features = bit(VIRTIO_F_VERSION_1)
            for b in feature_bits(p.offered_features):
                if rng.random() < 0.5:
                    features |= bit(b)
            if rng.random() < 0.1:
                features |= bit(rng.randrange(64))          # may be refused
            for sel in (0, 1):
                await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, sel)
                m.write_common(VIRTIO_PCI_COMMON_GFSELECT, sel)
                await tb.cwrite32(VIRTIO_PCI_COMMON_GF, features >> (32 * sel) & 0xFFFF_FFFF)
                m.write_common(VIRTIO_PCI_COMMON_GF, features >> (32 * sel) & 0xFFFF_FFFF)
            status = m.status | VIRTIO_CONFIG_S_FEATURES_OK
            await tb.set_status(status)
            m.write_common(VIRTIO_PCI_COMMON_STATUS, status)
            await self.check_common(VIRTIO_PCI_COMMON_STATUS, 1)
        if stop == "driver_ok" and m.features_ok:
            # (after a refused FEATURES_OK a driver gives up: it never sets DRIVER_OK)
            v = rng.randrange(m.table_size)
            await tb.cwrite16(VIRTIO_PCI_COMMON_MSIX, v)
            m.write_common(VIRTIO_PCI_COMMON_MSIX, v)
            for q in range(p.num_queues):
                if rng.random() < 0.7:
                    fields = [(VIRTIO_PCI_COMMON_Q_SELECT, 2, q), (VIRTIO_PCI_COMMON_Q_MSIX, 2, rng.randrange(m.table_size))]
                    rings = await self.rings()
                    fields += [(lo + k, 4, (addr >> (8 * k)) & 0xFFFF_FFFF)
                               for lo, addr in zip(QUEUE_ADDRESSES, rings) for k in (0, 4)]
                    fields += [(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1)]
                    for off, width, value in fields:
                        await tb.cwrite(off, width, value)
                        m.write_common(off, value)
            status = m.status | VIRTIO_CONFIG_S_DRIVER_OK
            await tb.set_status(status)
            m.write_common(VIRTIO_PCI_COMMON_STATUS, status)
        await self.check_common(VIRTIO_PCI_COMMON_STATUS, 1)
        self.counts[f"reinit to {stop}"] += 1


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(traffic=["steady", "random"])
async def run_random_mix(dut, traffic):
    """A random mix of register operations against a register model (INIT-02, PCI-07, PCI-08,
    PCI-14, PCI-17, PCI-24, PCI-39..PCI-46, FEAT-03, FEAT-06, FEAT-07, CFG-02, CFG-05, RST-01,
    RST-03, RST-04, RST-06, VQ-04, DNOT-01, DNOT-02, DNOT-05, STS-01), with ``traffic`` = "random"
    adding random idle cycles on rx_req/rx_cpl and backpressure on tx_cpl/tx_req."""
    params = Params()
    tb = VirtioTB(dut, seed=zlib.crc32(f"{traffic}/{params}".encode()))
    pattern = "random" if traffic == "random" else None
    # The register model takes a queue reset as instant (queue_reset reads 0 right after the
    # write of 1). The device finishes it only once its DMA reads in flight are answered (VQ-04
    # lets queue_reset read 1 meanwhile), e.g. the avail idx read of a doorbell just before;
    # with the host model's default 1000 ns read latency that read is still out when the mix
    # reads queue_reset back. Hence a host that answers reads at once (no added latency).
    await tb.start(idle=pattern, backpressure=pattern, seed=5, host_kwargs={"read_latency_ns": 0})
    p = tb.p
    n = await tb.enable_msix()
    exp = tb.pci_caps[PCI_CAP_ID_EXP]
    model = RegisterModel(p, n, await tb.cfg_read(exp + PCI_EXP_DEVCTL, 2))
    model.command = await tb.cfg_read(PCI_COMMAND, 2)
    assert model.command & PCI_COMMAND_MASTER and model.command & PCI_COMMAND_MEMORY
    msg_base, msg_mem = tb.host.rc.alloc_region(4096)
    tb.msix_windows.append((msg_base, 4096))
    for v in range(n):
        entry = {"addr_lo": msg_base + 4 * v, "addr_hi": 0, "data": 0x1000 + v, "mask": False}
        await tb.msix_entry_write(v, PCI_MSIX_ENTRY_LOWER_ADDR, entry["addr_lo"])
        await tb.msix_entry_write(v, PCI_MSIX_ENTRY_UPPER_ADDR, 0)
        await tb.msix_entry_write(v, PCI_MSIX_ENTRY_DATA, entry["data"])
        model.entries.append(entry)
    blk_constants = {}
    for off, width in ((VIRTIO_BLK_CFG_SEG_MAX, 4), (VIRTIO_BLK_CFG_BLK_SIZE, 4), (VIRTIO_BLK_CFG_UNUSED0, 1),
                       (VIRTIO_BLK_CFG_UNUSED1, 1), (VIRTIO_BLK_CFG_UNUSED1 + 2, 1)):
        blk_constants[(off, width)] = await tb.dread(off, width)
    assert blk_constants[(VIRTIO_BLK_CFG_SEG_MAX, 4)] == p.seg_max
    assert blk_constants[(VIRTIO_BLK_CFG_BLK_SIZE, 4)] == p.blk_size

    mix = RandomMix(tb, model, msg_base, msg_mem, blk_constants)
    await mix.op_reinit("driver_ok")
    ops = [(mix.op_cfg_register, 3), (mix.op_common_write, 12), (mix.op_common_read, 5),
           (mix.op_generation, 3), (mix.op_device_config_read, 3), (mix.op_resize, 4), (mix.op_isr, 2),
           (mix.op_msix_table, 4), (mix.op_doorbell, 3), (mix.op_reinit, 1)]
    funcs = [f for f, _ in ops]
    weights = [w for _, w in ops]
    for _ in range(OPERATIONS):
        await tb.rng.choices(funcs, weights)[0]()
    await mix.settle_messages()
    # a directed ending, so that delivery is exercised whatever the random stream left masked:
    # the function and every vector unmasked, the driver live, then one resize
    await mix.unmask_all()
    await mix.op_reinit("driver_ok")
    await mix.op_resize()
    await mix.settle_messages()
    tb.log.info("random mix (%s): %s", traffic, dict(mix.counts))
    assert tb.host.intx.rises == 0, "INTx asserted in MSI-X mode"
    assert mix.counts["msix messages"] > 0, "the mix sent no MSI-X message: not exercised"
    assert mix.counts["doorbell"] > 0
    await tb.finish()
