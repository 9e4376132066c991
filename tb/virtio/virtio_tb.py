# SPDX-License-Identifier: Apache-2.0
"""Bench for the virtio PCI transport register tests of ``virtio_blk_pci`` (tb/virtio).

Everything a register-level test needs and nothing more:

* ``Params``: the RTL parameters of the build (``PARAM_*`` environment variables, the RTL's
  defaults otherwise) and what the spec says the device must then show (offered features,
  queue count, vectors);
* ``VirtioTB``: root complex + enumeration, a walk of the capability list that finds the
  virtio structures (no BAR offset is hard-coded), exact-width accessors for the common,
  ISR, notify and device structures and the MSI-X table/PBA, the steps of the driver's
  init sequence (reset, status, features, queue setup), the resize pins and monitors of the
  ``notify_valid`` (with ``notify_queue``, ``notify_data``, ``notify_idx``) / ``driver_ok`` pins.

Constants keep Linux's uapi names (virtio_pci.h, virtio_config.h, virtio_blk.h, pci_regs.h).
They are defined here rather than imported so that this bench checks the RTL against the
spec values on its own.
"""

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, Event, RisingEdge, Timer, with_timeout

from cocotbext.pcie.core.tlp import TlpType

from models.pcie import attach_root_complex
from models.pcie.tlp_stream import idle_pattern

# ---- virtio_config.h: device status bits
VIRTIO_CONFIG_S_ACKNOWLEDGE = 0x01
VIRTIO_CONFIG_S_DRIVER = 0x02
VIRTIO_CONFIG_S_DRIVER_OK = 0x04
VIRTIO_CONFIG_S_FEATURES_OK = 0x08
VIRTIO_CONFIG_S_NEEDS_RESET = 0x40
VIRTIO_CONFIG_S_FAILED = 0x80

# ---- virtio_config.h / virtio_ring.h: device-independent feature bits (spec §6)
VIRTIO_F_NOTIFY_ON_EMPTY = 24        # legacy only
VIRTIO_F_ANY_LAYOUT = 27             # legacy only
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VIRTIO_F_BAD_FEATURE = 30            # legacy QEMU check bit ("UNUSED")
VIRTIO_F_VERSION_1 = 32
VIRTIO_F_ACCESS_PLATFORM = 33
VIRTIO_F_RING_PACKED = 34
VIRTIO_F_IN_ORDER = 35
VIRTIO_F_ORDER_PLATFORM = 36
VIRTIO_F_SR_IOV = 37
VIRTIO_F_NOTIFICATION_DATA = 38
VIRTIO_F_NOTIF_CONFIG_DATA = 39
VIRTIO_F_RING_RESET = 40
VIRTIO_F_ADMIN_VQ = 41

# ---- virtio_blk.h: feature bits
VIRTIO_BLK_F_BARRIER = 0             # legacy only
VIRTIO_BLK_F_SIZE_MAX = 1
VIRTIO_BLK_F_SEG_MAX = 2
VIRTIO_BLK_F_GEOMETRY = 4
VIRTIO_BLK_F_RO = 5
VIRTIO_BLK_F_BLK_SIZE = 6
VIRTIO_BLK_F_SCSI = 7                # legacy only
VIRTIO_BLK_F_FLUSH = 9
VIRTIO_BLK_F_TOPOLOGY = 10
VIRTIO_BLK_F_CONFIG_WCE = 11
VIRTIO_BLK_F_MQ = 12
VIRTIO_BLK_F_DISCARD = 13
VIRTIO_BLK_F_WRITE_ZEROES = 14
VIRTIO_BLK_F_LIFETIME = 15
VIRTIO_BLK_F_SECURE_ERASE = 16
VIRTIO_BLK_F_ZONED = 17

# feature bits a non-transitional virtio-blk device may offer in v1.3 (layouts.md §9)
BLK_DEFINED_FEATURES = {
    VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_GEOMETRY, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_CONFIG_WCE,
    VIRTIO_BLK_F_MQ, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_F_LIFETIME,
    VIRTIO_BLK_F_SECURE_ERASE, VIRTIO_BLK_F_ZONED,
}
TRANSPORT_DEFINED_FEATURES = {
    VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_VERSION_1,
    VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_RING_PACKED, VIRTIO_F_IN_ORDER, VIRTIO_F_ORDER_PLATFORM,
    VIRTIO_F_SR_IOV, VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_NOTIF_CONFIG_DATA, VIRTIO_F_RING_RESET,
    VIRTIO_F_ADMIN_VQ,
}
LEGACY_ONLY_FEATURES = {VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_ANY_LAYOUT, VIRTIO_F_BAD_FEATURE,
                        VIRTIO_BLK_F_BARRIER, VIRTIO_BLK_F_SCSI}
RESERVED_FEATURES = set(range(42, 50))

# ---- virtio_pci.h: capability types and struct virtio_pci_cap field offsets
VIRTIO_PCI_CAP_COMMON_CFG = 1
VIRTIO_PCI_CAP_NOTIFY_CFG = 2
VIRTIO_PCI_CAP_ISR_CFG = 3
VIRTIO_PCI_CAP_DEVICE_CFG = 4
VIRTIO_PCI_CAP_PCI_CFG = 5
VIRTIO_PCI_CAP_VNDR = 0
VIRTIO_PCI_CAP_NEXT = 1
VIRTIO_PCI_CAP_LEN = 2
VIRTIO_PCI_CAP_CFG_TYPE = 3
VIRTIO_PCI_CAP_BAR = 4
VIRTIO_PCI_CAP_ID = 5
VIRTIO_PCI_CAP_OFFSET = 8
VIRTIO_PCI_CAP_LENGTH = 12
VIRTIO_PCI_NOTIFY_CAP_MULT = 16
VIRTIO_PCI_CFG_DATA = 16             # pci_cfg_data inside struct virtio_pci_cfg_cap

# ---- virtio_pci.h: struct virtio_pci_common_cfg offsets
VIRTIO_PCI_COMMON_DFSELECT = 0x00
VIRTIO_PCI_COMMON_DF = 0x04
VIRTIO_PCI_COMMON_GFSELECT = 0x08    # driver_feature_select (Linux: guest_feature_select)
VIRTIO_PCI_COMMON_GF = 0x0C          # driver_feature (Linux: guest_feature)
VIRTIO_PCI_COMMON_MSIX = 0x10        # config_msix_vector
VIRTIO_PCI_COMMON_NUMQ = 0x12
VIRTIO_PCI_COMMON_STATUS = 0x14
VIRTIO_PCI_COMMON_CFGGENERATION = 0x15
VIRTIO_PCI_COMMON_Q_SELECT = 0x16
VIRTIO_PCI_COMMON_Q_SIZE = 0x18
VIRTIO_PCI_COMMON_Q_MSIX = 0x1A
VIRTIO_PCI_COMMON_Q_ENABLE = 0x1C
VIRTIO_PCI_COMMON_Q_NOFF = 0x1E
VIRTIO_PCI_COMMON_Q_DESCLO = 0x20    # queue_desc
VIRTIO_PCI_COMMON_Q_DESCHI = 0x24
VIRTIO_PCI_COMMON_Q_AVAILLO = 0x28   # queue_driver (Linux: queue_avail)
VIRTIO_PCI_COMMON_Q_AVAILHI = 0x2C
VIRTIO_PCI_COMMON_Q_USEDLO = 0x30    # queue_device (Linux: queue_used)
VIRTIO_PCI_COMMON_Q_USEDHI = 0x34
VIRTIO_PCI_COMMON_Q_NDATA = 0x38     # queue_notif_config_data
VIRTIO_PCI_COMMON_Q_RESET = 0x3A
VIRTIO_PCI_COMMON_ADM_Q_IDX = 0x3C
VIRTIO_PCI_COMMON_ADM_Q_NUM = 0x3E
VIRTIO_PCI_COMMON_CFG_V1_3_SIZEOF = 0x40

VIRTIO_MSI_NO_VECTOR = 0xFFFF
VIRTIO_PCI_ISR_QUEUE = 0x1
VIRTIO_PCI_ISR_CONFIG = 0x2

# ---- virtio_blk.h: struct virtio_blk_config offsets
VIRTIO_BLK_CFG_CAPACITY = 0
VIRTIO_BLK_CFG_SIZE_MAX = 8
VIRTIO_BLK_CFG_SEG_MAX = 12
VIRTIO_BLK_CFG_GEOMETRY = 16
VIRTIO_BLK_CFG_BLK_SIZE = 20
VIRTIO_BLK_CFG_TOPOLOGY = 24
VIRTIO_BLK_CFG_WRITEBACK = 32
VIRTIO_BLK_CFG_UNUSED0 = 33
VIRTIO_BLK_CFG_NUM_QUEUES = 34
VIRTIO_BLK_CFG_UNUSED1 = 57          # u8[3]
VIRTIO_BLK_CFG_THROUGH_UNUSED1 = 60  # struct size up to and including unused1

# ---- pci_regs.h
PCI_VENDOR_ID = 0x00
PCI_COMMAND = 0x04
PCI_COMMAND_MEMORY = 0x0002
PCI_COMMAND_MASTER = 0x0004
PCI_COMMAND_PARITY = 0x0040
PCI_COMMAND_SERR = 0x0100
PCI_COMMAND_INTX_DISABLE = 0x0400
PCI_STATUS = 0x06
PCI_STATUS_INTERRUPT = 0x0008
PCI_STATUS_CAP_LIST = 0x0010
PCI_CAPABILITY_LIST = 0x34
PCI_INTERRUPT_LINE = 0x3C
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11
PCI_CAP_ID_VNDR = 0x09
PCI_EXP_DEVCTL = 0x08
PCI_EXP_LNKCTL = 0x10
PCI_MSIX_FLAGS = 2
PCI_MSIX_FLAGS_QSIZE = 0x07FF
PCI_MSIX_FLAGS_MASKALL = 0x4000
PCI_MSIX_FLAGS_ENABLE = 0x8000
PCI_MSIX_TABLE = 4
PCI_MSIX_PBA = 8
PCI_MSIX_TABLE_BIR = 0x7
PCI_MSIX_ENTRY_SIZE = 16
PCI_MSIX_ENTRY_LOWER_ADDR = 0
PCI_MSIX_ENTRY_UPPER_ADDR = 4
PCI_MSIX_ENTRY_DATA = 8
PCI_MSIX_ENTRY_VECTOR_CTRL = 12
PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1

# Linux's pci_find_capability gives up after this many entries (a looping list must end)
PCI_FIND_CAP_TTL = 48

# how long the bench waits for something that must happen, and for something that must not
EVENT_TIMEOUT_NS = 20_000
QUIET_WINDOW_NS = 2_000


def bit(n):
    return 1 << n


def features_of(*bits):
    value = 0
    for b in bits:
        value |= bit(b)
    return value


def feature_bits(value):
    return [n for n in range(64) if value >> n & 1]


class Params:
    """RTL parameters of this build (``PARAM_*``; RTL defaults otherwise) and their consequences."""

    def __init__(self):
        def get(name, default):
            return int(os.environ.get(f"PARAM_{name}", str(default)), 0)

        self.data_width = get("DATA_WIDTH", 64)
        self.num_queues = get("NUM_QUEUES", 1)
        self.queue_size_max = get("QUEUE_SIZE_MAX", 256)
        self.msix_vectors = get("MSIX_VECTORS", self.num_queues + 1)
        self.capacity = get("CAPACITY", 2048)
        self.seg_max = get("SEG_MAX", 64)
        self.blk_size = get("BLK_SIZE", 512)
        self.read_only = get("READ_ONLY", 0) != 0
        self.ring_reset = get("RING_RESET", 1) != 0
        self.notification_data = get("NOTIFICATION_DATA", 1) != 0

    @property
    def offered_features(self):
        """The feature set this configuration must offer (the project's virtio-blk brief)."""
        bits = [VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX,
                VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_ORDER_PLATFORM,
                VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH]
        if self.ring_reset:
            bits.append(VIRTIO_F_RING_RESET)
        if self.notification_data:
            bits.append(VIRTIO_F_NOTIFICATION_DATA)
        if self.read_only:
            bits.append(VIRTIO_BLK_F_RO)
        if self.num_queues > 1:
            bits.append(VIRTIO_BLK_F_MQ)
        return features_of(*bits)

    def __repr__(self):
        return (f"Params(DATA_WIDTH={self.data_width}, NUM_QUEUES={self.num_queues}, "
                f"QUEUE_SIZE_MAX={self.queue_size_max}, MSIX_VECTORS={self.msix_vectors}, "
                f"READ_ONLY={int(self.read_only)}, RING_RESET={int(self.ring_reset)}, "
                f"NOTIFICATION_DATA={int(self.notification_data)})")


class Structure:
    """One virtio structure found through a vendor capability: a slice of a BAR."""

    def __init__(self, cap, cap_len, cfg_type, bar, offset, length, window):
        self.cap = cap
        self.cap_len = cap_len
        self.cfg_type = cfg_type
        self.bar = bar
        self.offset = offset
        self.length = length
        self.window = window
        self.notify_off_multiplier = None

    def __repr__(self):
        return (f"Structure(type={self.cfg_type} cap=0x{self.cap:02x} bar={self.bar} "
                f"offset=0x{self.offset:x} length=0x{self.length:x})")


class PinMonitor:
    """Samples ``notify_valid`` (with ``notify_queue``, ``notify_data``, ``notify_idx``) and
    ``driver_ok`` on every rising clock edge."""

    def __init__(self, dut):
        self.dut = dut
        # (time ns, queue, data) per cycle with notify_valid high; data is notify_idx when
        # notify_data is high, else None
        self.notifies = []
        self.driver_ok_rises = 0
        self.driver_ok_falls = 0
        self.notify_event = Event()
        cocotb.start_soon(self._run())

    async def _run(self):
        dut = self.dut
        last_ok = 0
        edge = RisingEdge(dut.clk)
        while True:
            await edge
            if dut.notify_valid.value == 1:
                data = int(dut.notify_idx.value) if dut.notify_data.value == 1 else None
                self.notifies.append((cocotb.utils.get_sim_time("ns"), int(dut.notify_queue.value), data))
                self.notify_event.set()
            ok = 1 if dut.driver_ok.value == 1 else 0
            if ok and not last_ok:
                self.driver_ok_rises += 1
            if last_ok and not ok:
                self.driver_ok_falls += 1
            last_ok = ok

    def take_notifies(self, with_data=False):
        """The doorbell pulses since the last call: their queues, or with ``with_data`` pairs
        (queue, notify_idx or None when notify_data was low)."""
        got, self.notifies = self.notifies, []
        self.notify_event.clear()
        if with_data:
            return [(q, data) for _, q, data in got]
        return [q for _, q, _ in got]


class VirtioTB:
    """Host, enumeration and register access for one ``virtio_blk_pci`` instance."""

    def __init__(self, dut, seed=None):
        self.dut = dut
        self.p = Params()
        self.log = dut._log
        self.rng = random.Random(seed if seed is not None else 0x5EED)
        self.host = None
        self.pci = None
        self.caps = {}               # cfg_type -> Structure (the first capability of each type)
        self.vendor_caps = []        # every virtio vendor capability in list order
        self.pci_caps = {}           # capability id -> config-space offset (the first of each id)
        self.msix_cap = None
        self.msix_table_size = 0
        self.msix_table = None       # (window, offset)
        self.msix_pba = None
        self.pins = None
        self.msix_windows = []       # (base, size) of host memory a test uses as MSI-X targets

    # ------------------------------------------------------------------ bring-up
    async def start(self, idle=None, backpressure=None, seed=1, host_kwargs=None):
        """Reset, enumerate, enable memory space and bus mastering, find the capabilities.

        ``idle``/``backpressure`` name an ``idle_pattern`` for the host-to-device and the
        device-to-host streams (applied once enumeration is done). ``host_kwargs``: settings
        of the host model (PcieHost arguments, e.g. read_latency_ns).
        """
        dut = self.dut
        dut.capacity_valid.value = 0
        dut.capacity.value = 0
        self.host = await attach_root_complex(dut, **(host_kwargs or {}))
        self.pins = PinMonitor(dut)
        self.pci = await self.host.enumerate()
        # keep bus address 0 out of use: no ring or buffer of this bench ever sits there
        self.host.rc.alloc_region(4096)
        await self.pci.enable_device()
        await self.pci.set_master()
        if idle not in (None, "none"):
            self.host.set_idle_generator(lambda: idle_pattern(idle, seed))
        if backpressure not in (None, "none"):
            self.host.set_backpressure_generator(lambda: idle_pattern(backpressure, seed + 1))
        await self.find_capabilities()
        self.log.info("%s; caps %s", self.p, self.caps)

    async def find_capabilities(self):
        """Walk the PCI capability list: the virtio vendor capabilities and MSI-X."""
        status = await self.cfg_read(PCI_STATUS, 2)
        assert status & PCI_STATUS_CAP_LIST, f"PCI Status 0x{status:04x} has no capability list"
        ptr = await self.cfg_read(PCI_CAPABILITY_LIST, 1) & 0xFC
        ttl = PCI_FIND_CAP_TTL
        while ptr and ttl:
            ttl -= 1
            dw0 = await self.cfg_read(ptr, 4)
            cap_id, nxt = dw0 & 0xFF, (dw0 >> 8) & 0xFC
            self.pci_caps.setdefault(cap_id, ptr)
            if cap_id == PCI_CAP_ID_VNDR:
                cap_len = (dw0 >> 16) & 0xFF
                cfg_type = dw0 >> 24
                bar = await self.cfg_read(ptr + VIRTIO_PCI_CAP_BAR, 1)
                offset = await self.cfg_read(ptr + VIRTIO_PCI_CAP_OFFSET, 4)
                length = await self.cfg_read(ptr + VIRTIO_PCI_CAP_LENGTH, 4)
                window = self.pci.bar_window[bar] if bar < 6 else None
                s = Structure(ptr, cap_len, cfg_type, bar, offset, length, window)
                if cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG:
                    s.notify_off_multiplier = await self.cfg_read(ptr + VIRTIO_PCI_NOTIFY_CAP_MULT, 4)
                self.vendor_caps.append(s)
                if cfg_type not in self.caps and window is not None:
                    self.caps[cfg_type] = s
            elif cap_id == PCI_CAP_ID_MSIX:
                self.msix_cap = ptr
                flags = (dw0 >> 16) & 0xFFFF
                self.msix_table_size = (flags & PCI_MSIX_FLAGS_QSIZE) + 1
                table = await self.cfg_read(ptr + PCI_MSIX_TABLE, 4)
                pba = await self.cfg_read(ptr + PCI_MSIX_PBA, 4)
                self.msix_table = (self.pci.bar_window[table & PCI_MSIX_TABLE_BIR], table & ~PCI_MSIX_TABLE_BIR)
                self.msix_pba = (self.pci.bar_window[pba & PCI_MSIX_TABLE_BIR], pba & ~PCI_MSIX_TABLE_BIR)
            ptr = nxt
        for t in (VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_ISR_CFG,
                  VIRTIO_PCI_CAP_DEVICE_CFG):
            assert t in self.caps, f"virtio capability type {t} missing: {self.vendor_caps}"
        assert self.msix_cap is not None, "no MSI-X capability"

    @property
    def common(self):
        return self.caps[VIRTIO_PCI_CAP_COMMON_CFG]

    @property
    def device_cfg(self):
        return self.caps[VIRTIO_PCI_CAP_DEVICE_CFG]

    # ------------------------------------------------------------------ raw accesses
    async def cfg_read(self, offset, width):
        data = await self.pci.config_read(offset, width)
        return int.from_bytes(bytes(data[:width]), "little")

    async def cfg_write(self, offset, width, value):
        await self.pci.config_write(offset, int(value).to_bytes(width, "little"))

    @staticmethod
    async def _read(window, offset, width):
        data = await window.read(offset, width)
        return int.from_bytes(bytes(data[:width]), "little")

    @staticmethod
    async def _write(window, offset, width, value):
        await window.write(offset, int(value).to_bytes(width, "little"))

    async def struct_read(self, s, offset, width):
        assert offset + width <= s.length or s.cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG, (s, offset)
        return await self._read(s.window, s.offset + offset, width)

    async def struct_write(self, s, offset, width, value):
        await self._write(s.window, s.offset + offset, width, value)

    # common configuration, at the natural width of each field
    async def cread(self, offset, width):
        return await self.struct_read(self.common, offset, width)

    async def cwrite(self, offset, width, value):
        await self.struct_write(self.common, offset, width, value)

    async def cread8(self, offset):
        return await self.cread(offset, 1)

    async def cread16(self, offset):
        return await self.cread(offset, 2)

    async def cread32(self, offset):
        return await self.cread(offset, 4)

    async def cwrite8(self, offset, value):
        await self.cwrite(offset, 1, value)

    async def cwrite16(self, offset, value):
        await self.cwrite(offset, 2, value)

    async def cwrite32(self, offset, value):
        await self.cwrite(offset, 4, value)

    async def cread64(self, offset_lo):
        """A 64-bit field as two 32-bit halves, low first (PCI-07)."""
        lo = await self.cread32(offset_lo)
        hi = await self.cread32(offset_lo + 4)
        return hi << 32 | lo

    async def cwrite64(self, offset_lo, value, hi_first=False):
        if hi_first:
            await self.cwrite32(offset_lo + 4, value >> 32)
            await self.cwrite32(offset_lo, value & 0xFFFF_FFFF)
        else:
            await self.cwrite32(offset_lo, value & 0xFFFF_FFFF)
            await self.cwrite32(offset_lo + 4, value >> 32)

    async def isr_read(self):
        return await self.struct_read(self.caps[VIRTIO_PCI_CAP_ISR_CFG], 0, 1)

    async def dread(self, offset, width):
        return await self.struct_read(self.device_cfg, offset, width)

    async def dwrite(self, offset, width, value):
        await self.struct_write(self.device_cfg, offset, width, value)

    async def read_capacity(self):
        lo = await self.dread(VIRTIO_BLK_CFG_CAPACITY, 4)
        hi = await self.dread(VIRTIO_BLK_CFG_CAPACITY + 4, 4)
        return hi << 32 | lo

    async def flush(self):
        """A read after posted writes: returns once they have all reached the device."""
        await self.cread8(VIRTIO_PCI_COMMON_STATUS)

    # ------------------------------------------------------------------ MSI-X table and PBA
    async def msix_entry_read(self, entry, field):
        window, base = self.msix_table
        return await self._read(window, base + entry * PCI_MSIX_ENTRY_SIZE + field, 4)

    async def msix_entry_write(self, entry, field, value):
        window, base = self.msix_table
        await self._write(window, base + entry * PCI_MSIX_ENTRY_SIZE + field, 4, value)

    async def msix_mask(self, entry, masked):
        await self.msix_entry_write(entry, PCI_MSIX_ENTRY_VECTOR_CTRL,
                                    PCI_MSIX_ENTRY_CTRL_MASKBIT if masked else 0)

    async def msix_pending(self, vector):
        window, base = self.msix_pba
        dword = await self._read(window, base + (vector // 32) * 4, 4)
        return dword >> (vector % 32) & 1

    async def msix_flags(self):
        return await self.cfg_read(self.msix_cap + PCI_MSIX_FLAGS, 2)

    async def msix_set_flags(self, value):
        await self.cfg_write(self.msix_cap + PCI_MSIX_FLAGS, 2, value)

    async def enable_msix(self):
        """``pci_alloc_irq_vectors``: program every table entry to the root complex's MSI region
        and enable MSI-X. Returns the number of vectors."""
        n = self.msix_table_size
        got = await self.pci.alloc_irq_vectors(n, n)
        assert got == n, f"alloc_irq_vectors({n}) returned {got}"
        return n

    def msi_vector(self, k):
        return self.pci.msi_vectors[k]

    def msix_log(self, since=0):
        """MSI-X messages the device sent, from index ``since`` of the log: the one-dword
        memory writes to an address outside host memory pages the rings use (DMA to and from
        the rings also goes through tx_req once the ring engine runs)."""
        return [tlp for _, tlp in self.host.tx_req_log
                if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)
                and self.is_msix_address(tlp.address)][since:]

    def is_msix_address(self, address):
        """The RC's MSI region, or a window a test registered in ``msix_windows``."""
        msi = self.host.rc.msi_region
        if msi.parent is not None and address == msi.get_absolute_address(0):
            return True
        return any(base <= address < base + size for base, size in self.msix_windows)

    async def set_command_bits(self, bits, on):
        cmd = await self.cfg_read(PCI_COMMAND, 2)
        cmd = cmd | bits if on else cmd & ~bits
        await self.cfg_write(PCI_COMMAND, 2, cmd)

    # ------------------------------------------------------------------ driver steps
    async def get_status(self):
        return await self.cread8(VIRTIO_PCI_COMMON_STATUS)

    async def set_status(self, status):
        """``vp_modern_set_status``: an 8-bit write of the whole status byte."""
        await self.cwrite8(VIRTIO_PCI_COMMON_STATUS, status)

    async def add_status(self, bits):
        await self.set_status(await self.get_status() | bits)

    async def reset_device(self, max_polls=100):
        """``vp_modern_reset``: write 0, then poll until device_status reads 0 (RST-01)."""
        await self.set_status(0)
        for _ in range(max_polls):
            if await self.get_status() == 0:
                return
        raise AssertionError(f"device_status still non-zero after {max_polls} polls of a reset")

    async def get_features(self):
        """``vp_modern_get_features``: device_feature words 0 and 1."""
        await self.cwrite32(VIRTIO_PCI_COMMON_DFSELECT, 0)
        lo = await self.cread32(VIRTIO_PCI_COMMON_DF)
        await self.cwrite32(VIRTIO_PCI_COMMON_DFSELECT, 1)
        hi = await self.cread32(VIRTIO_PCI_COMMON_DF)
        return hi << 32 | lo

    async def set_driver_features(self, features):
        """``vp_modern_set_features``: driver_feature words 0 and 1."""
        await self.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 0)
        await self.cwrite32(VIRTIO_PCI_COMMON_GF, features & 0xFFFF_FFFF)
        await self.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 1)
        await self.cwrite32(VIRTIO_PCI_COMMON_GF, features >> 32)

    async def get_driver_features(self):
        await self.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 0)
        lo = await self.cread32(VIRTIO_PCI_COMMON_GF)
        await self.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, 1)
        hi = await self.cread32(VIRTIO_PCI_COMMON_GF)
        return hi << 32 | lo

    async def negotiate(self, features, reset=True):
        """Reset, ACKNOWLEDGE, DRIVER, write ``features``, set FEATURES_OK and re-read it.

        Returns True when FEATURES_OK stuck (the device accepted the set).
        """
        if reset:
            await self.reset_device()
        await self.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE)
        await self.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)
        await self.set_driver_features(features)
        await self.add_status(VIRTIO_CONFIG_S_FEATURES_OK)
        return bool(await self.get_status() & VIRTIO_CONFIG_S_FEATURES_OK)

    async def select_queue(self, q):
        await self.cwrite16(VIRTIO_PCI_COMMON_Q_SELECT, q)

    async def setup_queue(self, q, size=None, desc=None, driver=None, device=None, vector=None,
                          enable=True):
        """``vp_modern_queue_address`` & co: configure queue ``q`` and (optionally) enable it.

        Addresses not given point at zeroed split rings in host memory (avail.idx 0: nothing
        for a device to take), so a ring engine behind the doorbells finds valid, empty rings.
        """
        await self.select_queue(q)
        if size is not None:
            await self.cwrite16(VIRTIO_PCI_COMMON_Q_SIZE, size)
        if desc is None or driver is None or device is None:
            rings = await self.empty_rings(size or self.p.queue_size_max)
            desc = rings[0] if desc is None else desc
            driver = rings[1] if driver is None else driver
            device = rings[2] if device is None else device
        await self.cwrite64(VIRTIO_PCI_COMMON_Q_DESCLO, desc)
        await self.cwrite64(VIRTIO_PCI_COMMON_Q_AVAILLO, driver)
        await self.cwrite64(VIRTIO_PCI_COMMON_Q_USEDLO, device)
        if vector is not None:
            await self.cwrite16(VIRTIO_PCI_COMMON_Q_MSIX, vector)
        if enable:
            await self.cwrite16(VIRTIO_PCI_COMMON_Q_ENABLE, 1)

    async def empty_rings(self, size):
        """Zeroed descriptor table, available and used rings for ``size`` entries (split layout,
        each part page-aligned) in host memory; returns their bus addresses."""
        page = 4096
        desc_len = -(-(16 * size) // page) * page
        avail_len = -(-(6 + 2 * size) // page) * page
        used_len = -(-(6 + 8 * size) // page) * page
        base, mem = self.host.rc.alloc_region(desc_len + avail_len + used_len)
        mem[:desc_len + avail_len + used_len] = bytes(desc_len + avail_len + used_len)
        return base, base + desc_len, base + desc_len + avail_len

    async def init_device(self, features=None, queues=None, config_vector=None, queue_vectors=None):
        """The golden init sequence (INIT-01) up to DRIVER_OK. Returns the negotiated features."""
        features = self.p.offered_features if features is None else features
        assert await self.negotiate(features), f"FEATURES_OK refused for 0x{features:x}"
        if config_vector is not None:
            await self.cwrite16(VIRTIO_PCI_COMMON_MSIX, config_vector)
        for q in (range(self.p.num_queues) if queues is None else queues):
            vector = None if queue_vectors is None else queue_vectors[q]
            await self.setup_queue(q, vector=vector)
        await self.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
        await self.flush()
        return features

    async def notify_addr(self, q):
        """Offset in the notify structure's BAR of queue ``q``'s doorbell (layouts.md §4)."""
        await self.select_queue(q)
        off = await self.cread16(VIRTIO_PCI_COMMON_Q_NOFF)
        s = self.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
        return s.offset + off * s.notify_off_multiplier

    async def notify(self, q, addr=None):
        """``vp_notify``: a 16-bit write of the queue index at its doorbell (DNOT-01)."""
        s = self.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
        if addr is None:
            addr = await self.notify_addr(q)
        await self._write(s.window, addr, 2, q)

    async def notify_with_data(self, q, avail_idx, addr=None, width=4, offset=0):
        """``vp_notify_with_data``: a 32-bit write of avail_idx << 16 | q at the doorbell (DNOT-02);
        ``width`` / ``offset`` write only part of that dword (bytes offset..offset+width-1)."""
        s = self.caps[VIRTIO_PCI_CAP_NOTIFY_CFG]
        if addr is None:
            addr = await self.notify_addr(q)
        value = (avail_idx & 0xFFFF) << 16 | (q & 0xFFFF)
        await self._write(s.window, addr + offset, width, value >> (8 * offset) & ((1 << (8 * width)) - 1))

    # ------------------------------------------------------------------ device side pins
    async def resize(self, capacity):
        """Pulse ``capacity_valid`` for one clock with a new capacity (a device config change)."""
        dut = self.dut
        await RisingEdge(dut.clk)
        dut.capacity.value = capacity
        dut.capacity_valid.value = 1
        await RisingEdge(dut.clk)
        dut.capacity_valid.value = 0

    async def cycles(self, n):
        await ClockCycles(self.dut.clk, n)

    async def wait_ns(self, ns):
        await Timer(ns, unit="ns")

    async def wait_event(self, event, what, timeout_ns=EVENT_TIMEOUT_NS):
        try:
            await with_timeout(event.wait(), timeout_ns, "ns")
        except cocotb.triggers.SimTimeoutError:
            raise AssertionError(f"timed out after {timeout_ns} ns waiting for {what}") from None

    async def finish(self):
        """End of a test: every request answered, no protocol error."""
        await self.host.quiesce()
        self.host.checker.assert_quiet()
        assert not self.host.checker.errors, self.host.checker.errors
