# SPDX-License-Identifier: Apache-2.0
"""PCI layer of ``virtio_blk_pci``: configuration header, capability list, BAR0 sizing and
decode, the request completer (completion splitting, byte enables, UR and drop rules, bus and
device capture) and the virtio PCI_CFG access window.

Each cocotb test names the conformance IDs it checks (spec/conformance.md §10 PCI-*, §4 RST-*).
Requests the root complex would never route to us (other functions, type 1, I/O, locked,
atomics, messages, malformed ones) and every request whose completions are checked field by
field go straight into rx_req through ``PcieHost.inject``; the protocol checker
(``host.checker``) watches every completion on top of that.
"""

import itertools
import os
import random
import struct
from pathlib import Path

import cocotb
import pytest
from cocotb.triggers import ClockCycles, Event, RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpAttr, TlpType
from cocotbext.pcie.core.utils import PcieId

from models import runner
from models.pcie import attach_root_complex
from models.pcie.tlp_stream import idle_pattern
from models.virtio.uapi import (
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    PCI_BASE_ADDRESS_0,
    PCI_BASE_ADDRESS_MEM_PREFETCH,
    PCI_BASE_ADDRESS_MEM_TYPE_64,
    PCI_BASE_ADDRESS_MEM_TYPE_MASK,
    PCI_BASE_ADDRESS_SPACE,
    PCI_CAP_ID_EXP,
    PCI_CAP_ID_MSIX,
    PCI_CAP_ID_VNDR,
    PCI_CAPABILITY_LIST,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_COMMAND_PARITY,
    PCI_COMMAND_SERR,
    PCI_EXP_DEVCAP,
    PCI_EXP_DEVCAP_EXT_TAG,
    PCI_EXP_DEVCAP_PAYLOAD,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_PAYLOAD,
    PCI_EXP_FLAGS,
    PCI_HEADER_TYPE,
    PCI_INTERRUPT_LINE,
    PCI_INTERRUPT_PIN,
    PCI_MSIX_ENTRY_SIZE,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_MSIX_FLAGS_QSIZE,
    PCI_MSIX_PBA,
    PCI_MSIX_PBA_BIR,
    PCI_MSIX_PBA_OFFSET,
    PCI_MSIX_TABLE,
    PCI_MSIX_TABLE_BIR,
    PCI_MSIX_TABLE_OFFSET,
    PCI_REVISION_ID,
    PCI_ROM_ADDRESS,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STATUS_INTERRUPT,
    PCI_SUBSYSTEM_ID,
    PCI_SUBSYSTEM_VENDOR_ID,
    PCI_VENDOR_ID,
    VIRTIO_BLK_CFG_CAPACITY,
    VIRTIO_BLK_F_BLK_SIZE,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_ACCESS_PLATFORM,
    VIRTIO_F_NOTIFICATION_DATA,
    VIRTIO_F_ORDER_PLATFORM,
    VIRTIO_F_RING_RESET,
    VIRTIO_F_VERSION_1,
    VIRTIO_ID_BLOCK,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_CAP_BAR,
    VIRTIO_PCI_CAP_CFG_TYPE,
    VIRTIO_PCI_CAP_COMMON_CFG,
    VIRTIO_PCI_CAP_DEVICE_CFG,
    VIRTIO_PCI_CAP_ID,
    VIRTIO_PCI_CAP_ISR_CFG,
    VIRTIO_PCI_CAP_LEN,
    VIRTIO_PCI_CAP_LENGTH,
    VIRTIO_PCI_CAP_NEXT,
    VIRTIO_PCI_CAP_NOTIFY_CFG,
    VIRTIO_PCI_CAP_OFFSET,
    VIRTIO_PCI_CAP_PCI_CFG,
    VIRTIO_PCI_CAP_SIZEOF,
    VIRTIO_PCI_CAP_VNDR,
    VIRTIO_PCI_CFG_BAR,
    VIRTIO_PCI_CFG_CAP_SIZEOF,
    VIRTIO_PCI_CFG_DATA,
    VIRTIO_PCI_CFG_LENGTH,
    VIRTIO_PCI_CFG_OFFSET,
    VIRTIO_PCI_COMMON_CFGGENERATION,
    VIRTIO_PCI_COMMON_DF,
    VIRTIO_PCI_COMMON_DFSELECT,
    VIRTIO_PCI_COMMON_GF,
    VIRTIO_PCI_COMMON_GFSELECT,
    VIRTIO_PCI_COMMON_MSIX,
    VIRTIO_PCI_COMMON_NUMQ,
    VIRTIO_PCI_COMMON_Q_DESCHI,
    VIRTIO_PCI_COMMON_Q_DESCLO,
    VIRTIO_PCI_COMMON_Q_ENABLE,
    VIRTIO_PCI_COMMON_Q_MSIX,
    VIRTIO_PCI_COMMON_Q_NOFF,
    VIRTIO_PCI_COMMON_Q_RESET,
    VIRTIO_PCI_COMMON_Q_SELECT,
    VIRTIO_PCI_COMMON_Q_SIZE,
    VIRTIO_PCI_COMMON_STATUS,
    VIRTIO_PCI_ISR_CONFIG,
    VIRTIO_PCI_MODERN_COMMON_CFG_SIZEOF,
    VIRTIO_PCI_MODERN_DEVICE_ID_BASE,
    VIRTIO_PCI_NOTIFY_CAP_MULT,
    VIRTIO_PCI_NOTIFY_CAP_SIZEOF,
    VIRTIO_PCI_VENDOR_ID,
)

# --------------------------------------------------------------------------------------------
# Parameters of this build (models/runner.py passes each one as PARAM_<NAME>)
# --------------------------------------------------------------------------------------------


def _param(name, default):
    return int(os.environ.get(f"PARAM_{name}", default))


DATA_WIDTH = _param("DATA_WIDTH", 64)
NUM_QUEUES = _param("NUM_QUEUES", 1)
MSIX_VECTORS = _param("MSIX_VECTORS", NUM_QUEUES + 1)
QUEUE_SIZE_MAX = _param("QUEUE_SIZE_MAX", 256)
CAPACITY = _param("CAPACITY", 2048)
READ_ONLY = _param("READ_ONLY", 0)
RING_RESET = _param("RING_RESET", 1)
NOTIFICATION_DATA = _param("NOTIFICATION_DATA", 1)
BAR0_PREFETCHABLE = _param("BAR0_PREFETCHABLE", 1)

# --------------------------------------------------------------------------------------------
# What the device is specified to present (docs/register-map.md)
# --------------------------------------------------------------------------------------------

DEVICE_ID = VIRTIO_PCI_MODERN_DEVICE_ID_BASE + VIRTIO_ID_BLOCK
REVISION_ID = 0x01
CLASS_CODE = 0x018000  # mass storage, other
SUBSYSTEM_VENDOR_ID = 0x1AF4
SUBSYSTEM_ID = 0x1100
INTERRUPT_PIN_INTA = 1

BAR0_SIZE = 0x8000
PAGE_SIZE = 0x1000  # one structure per 4 KiB page of BAR0
COMMON_CFG_OFFSET = 0x0000
NOTIFY_CFG_OFFSET = 0x1000
ISR_CFG_OFFSET = 0x2000
DEVICE_CFG_OFFSET = 0x3000
MSIX_TABLE_OFFSET = 0x4000
MSIX_PBA_OFFSET = 0x5000
COMMON_CFG_LENGTH = VIRTIO_PCI_MODERN_COMMON_CFG_SIZEOF
NOTIFY_OFF_MULTIPLIER = 4
ISR_CFG_LENGTH = 4
DEVICE_CFG_LENGTH = 60  # struct virtio_blk_config through unused1

CAP_PCIE = 0x40
CAP_MSIX = 0x80
CAP_COMMON = 0x8C
CAP_NOTIFY = 0x9C
CAP_ISR = 0xB0
CAP_DEVICE = 0xC0
CAP_PCI_CFG = 0xD0
CONFIG_SPACE_SIZE = 0x1000
FIRST_UNIMPLEMENTED = CAP_PCI_CFG + VIRTIO_PCI_CFG_CAP_SIZEOF  # 0xE4

# the capability list in order: (capability id, position)
CAPABILITY_LIST = [
    (PCI_CAP_ID_EXP, CAP_PCIE),
    (PCI_CAP_ID_MSIX, CAP_MSIX),
    (PCI_CAP_ID_VNDR, CAP_COMMON),
    (PCI_CAP_ID_VNDR, CAP_NOTIFY),
    (PCI_CAP_ID_VNDR, CAP_ISR),
    (PCI_CAP_ID_VNDR, CAP_DEVICE),
    (PCI_CAP_ID_VNDR, CAP_PCI_CFG),
]
# virtio vendor capabilities: cfg_type -> (position, cap_len, offset in BAR0, length)
VIRTIO_CAPS = {
    VIRTIO_PCI_CAP_COMMON_CFG: (CAP_COMMON, VIRTIO_PCI_CAP_SIZEOF, COMMON_CFG_OFFSET, COMMON_CFG_LENGTH),
    VIRTIO_PCI_CAP_NOTIFY_CFG: (CAP_NOTIFY, VIRTIO_PCI_NOTIFY_CAP_SIZEOF, NOTIFY_CFG_OFFSET,
                                NOTIFY_OFF_MULTIPLIER * NUM_QUEUES),
    VIRTIO_PCI_CAP_ISR_CFG: (CAP_ISR, VIRTIO_PCI_CAP_SIZEOF, ISR_CFG_OFFSET, ISR_CFG_LENGTH),
    VIRTIO_PCI_CAP_DEVICE_CFG: (CAP_DEVICE, VIRTIO_PCI_CAP_SIZEOF, DEVICE_CFG_OFFSET, DEVICE_CFG_LENGTH),
    VIRTIO_PCI_CAP_PCI_CFG: (CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_SIZEOF, 0, 0),
}

# PCI Express capability: version 2, device/port type 0 (endpoint)
PCI_EXP_FLAGS_VALUE = 0x0002
PCI_EXP_DEVCAP_RBER = 0x8000  # role-based error reporting
MPS_SUPPORTED = 512
PCI_EXP_LNKCAP = 0x0C
PCI_EXP_LNKCTL = 0x10
LINK_SPEED = 3  # 8 GT/s
LINK_WIDTH = 8
PCI_EXP_CAP_SIZEOF = 0x3C  # version 2 endpoint

COMMAND_RW_BITS = (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR
                   | PCI_COMMAND_INTX_DISABLE)

DEVICE_FEATURES = ((1 << VIRTIO_RING_F_INDIRECT_DESC) | (1 << VIRTIO_RING_F_EVENT_IDX)
                   | (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_ACCESS_PLATFORM)
                   | (1 << VIRTIO_F_ORDER_PLATFORM) | (RING_RESET << VIRTIO_F_RING_RESET)
                   | (NOTIFICATION_DATA << VIRTIO_F_NOTIFICATION_DATA)
                   | (1 << VIRTIO_BLK_F_SEG_MAX) | (1 << VIRTIO_BLK_F_BLK_SIZE) | (1 << VIRTIO_BLK_F_FLUSH)
                   | (READ_ONLY << VIRTIO_BLK_F_RO) | (int(NUM_QUEUES > 1) << VIRTIO_BLK_F_MQ))

# MSI-X table entry fields (dword index inside an entry) and the bits each one keeps
MSIX_ADDR_LO, MSIX_ADDR_HI, MSIX_DATA, MSIX_VECTOR_CTRL = range(4)
MSIX_ADDR_LO_MASK = 0xFFFF_FFFC  # message address is dword aligned: bits 1:0 read 0
MSIX_VECTOR_CTRL_MASK = 0x1  # only the mask bit is implemented

# --------------------------------------------------------------------------------------------
# Requests we inject (not through the root complex)
# --------------------------------------------------------------------------------------------

# a requester other than the root complex (0:0.0), so that the completer must echo it
INJECT_REQUESTER = PcieId(0x0A, 0x1C, 0x3)
# the root complex allocates tags 0..31; injected requests use 200..255
INJECT_TAGS = range(200, 256)
# 10-bit tags exercise T9 and T8 in DW0
TEN_BIT_TAGS = (0x100, 0x200, 0x2C8, 0x1FF, 0x3FF)
# a config read target that is never ours (bus/device capture must ignore reads)
FOREIGN_ID = PcieId(0x77, 0x05, 0)

SC, UR = CplStatus.SC, CplStatus.UR

# idle cycles on rx_req and backpressure on tx_cpl, by idle_pattern() name (short names, as
# cocotb.parametrize spells them in test names)
TRAFFIC_PATTERNS = {"none": None, "random": "random", "alternate": "alternate", "paused": "mostly_paused"}
TRAFFIC = ("none", "random")


def be_low(be):
    """Offset of the first enabled byte (0 if none)."""
    for k in range(4):
        if be & (1 << k):
            return k
    return 0


def be_high(be):
    """Offset of the last enabled byte (0 if none)."""
    for k in (3, 2, 1, 0):
        if be & (1 << k):
            return k
    return 0


def read_byte_count(ndw, first_be, last_be):
    """Byte count of a memory read (PCIe base spec 2.3.1.1, table 2-40)."""
    if ndw == 1:
        return 1 if first_be == 0 else be_high(first_be) - be_low(first_be) + 1
    return ndw * 4 - be_low(first_be) - (3 - be_high(last_be))


def merge_be(old, new, be):
    for k in range(4):
        if be & (1 << k):
            mask = 0xFF << (8 * k)
            old = (old & ~mask) | (new & mask)
    return old


def dword_bes(ndw, first_be, last_be):
    """Byte enables of each dword of a request."""
    if ndw == 1:
        return [first_be]
    return [first_be] + [0xF] * (ndw - 2) + [last_be]


def contiguous_first_bes():
    return (0xF, 0xE, 0xC, 0x8)


def contiguous_last_bes():
    return (0x1, 0x3, 0x7, 0xF)


class RawTlp(Tlp):
    """A TLP with a hand-made header, for what cocotbext-pcie cannot pack (messages) or would
    not send to a completer (a completion on rx_req). Always posted: it expects no answer."""

    def __init__(self, fmt_type, header_dwords, data=b""):
        super().__init__()
        self.fmt_type = fmt_type
        self.header_dwords = list(header_dwords)
        self.data = bytearray(data)
        self.length = len(data) // 4

    def pack_header(self):
        return bytearray(b"".join(struct.pack(">L", dw) for dw in self.header_dwords))

    def is_posted(self):
        return True


def message_tlp(fmt_type, code, dw2=0, dw3=0, data=b"", requester=INJECT_REQUESTER):
    fmt, tlp_type = fmt_type.value
    dw0 = (fmt << 29) | (tlp_type << 24) | ((len(data) // 4) & 0x3FF)
    dw1 = (int(requester) << 16) | code  # tag 0
    return RawTlp(fmt_type, [dw0, dw1, dw2, dw3], data)


class MsixTableModel:
    """What the MSI-X table page of BAR0 must read back: entries 0..VECTORS-1 of four dwords
    (address low with bits 1:0 zero, address high, data, vector control with only the mask
    bit); everything beyond the table reads 0 and ignores writes."""

    def __init__(self, vectors):
        self.vectors = vectors
        self.dwords = [0] * (PAGE_SIZE // 4)
        self.known = False  # the table is RAM: unknown until the test has written it all

    def write_dword(self, index, value, be):
        if index // 4 >= self.vectors:
            return
        field = index % 4
        old = self.dwords[index]
        if field == MSIX_VECTOR_CTRL:
            self.dwords[index] = (value & MSIX_VECTOR_CTRL_MASK) if be & 1 else old
        else:
            new = merge_be(old, value, be)
            self.dwords[index] = new & MSIX_ADDR_LO_MASK if field == MSIX_ADDR_LO else new

    def write(self, page_offset, data, first_be, last_be):
        ndw = len(data) // 4
        for k, be in enumerate(dword_bes(ndw, first_be, last_be)):
            value = int.from_bytes(data[4 * k:4 * k + 4], "little")
            self.write_dword(page_offset // 4 + k, value, be)

    def write_bytes(self, page_offset, data):
        """A write of arbitrary bytes, as the root complex splits it into dwords and byte enables."""
        for k, byte in enumerate(data):
            offset = page_offset + k
            self.write_dword(offset // 4, byte << (8 * (offset % 4)), 1 << (offset % 4))

    def image(self):
        return b"".join(dw.to_bytes(4, "little") for dw in self.dwords)


class TB:
    """One virtio_blk_pci behind the cocotbext-pcie root complex, enumerated, memory space and
    bus mastering on; helpers for config, MMIO and injected requests."""

    def __init__(self, dut, host, seed):
        self.dut = dut
        self.host = host
        self.log = dut._log
        self.rc = host.rc
        self.dev = host.pci_dev
        self.bar0 = self.dev.bar_addr[0]
        self.bar = self.dev.bar_window[0]
        self.rng = random.Random(seed)
        self._tags = itertools.cycle(INJECT_TAGS)
        self.mps = None
        self.captured_id = None
        self.table = MsixTableModel(MSIX_VECTORS)

    @classmethod
    async def create(cls, dut, traffic="none", seed=1, enable=True):
        """Reset, attach the root complex (idle cycles and backpressure by the named pattern
        from the start, enumeration included), enumerate and enable the function."""
        dut.capacity_valid.value = 0
        dut.capacity.value = CAPACITY
        host = await attach_root_complex(dut)
        pattern = TRAFFIC_PATTERNS[traffic]
        if pattern:
            host.set_idle_generator(lambda: idle_pattern(pattern, seed=seed))
            host.set_backpressure_generator(lambda: idle_pattern(pattern, seed=seed + 1000))
        await host.enumerate()
        # models/pcie/host.py looks the PCI Express capability up with a plain int, which
        # cocotbext-pcie's get_capability_offset() does not match (it wants a PciCapId), so the
        # checker never learns where Device Control is and keeps MPS at 128: tell it here
        if host.checker.devctl_dword is None:
            host.checker.devctl_dword = (CAP_PCIE + PCI_EXP_DEVCTL) >> 2
        tb = cls(dut, host, seed)
        if enable:
            await tb.dev.enable_device()
            await tb.dev.set_master()
        # the root complex programs Device Control during enumeration, before the checker
        # knows where it is: program MPS again so that the checker tracks it
        await tb.set_mps(256)
        return tb

    # ---- identity
    @property
    def assigned_id(self):
        """Our function's id as the root complex assigned it."""
        return PcieId(self.dev.bus_num, self.dev.device_num, 0)

    @property
    def completer_id(self):
        """The id memory-read completions must carry: the bus and device number of the last
        type-0 configuration write (normally the root complex's)."""
        return self.captured_id if self.captured_id is not None else self.assigned_id

    # ---- configuration space
    async def cfg_read(self, offset, size=4):
        data = await self.dev.config_read(offset, size)
        return int.from_bytes(data, "little")

    async def cfg_write(self, offset, value, size=4):
        await self.dev.config_write(offset, value.to_bytes(size, "little"))

    async def set_mps(self, nbytes):
        devctl = await self.cfg_read(CAP_PCIE + PCI_EXP_DEVCTL, 2)
        code = (nbytes // 128).bit_length() - 1
        devctl = (devctl & ~PCI_EXP_DEVCTL_PAYLOAD) | (code << 5)
        await self.cfg_write(CAP_PCIE + PCI_EXP_DEVCTL, devctl, 2)
        assert (await self.cfg_read(CAP_PCIE + PCI_EXP_DEVCTL, 2)) == devctl
        assert self.host.checker.max_payload_size == nbytes
        # the root complex's own writes must fit the function's MPS too (Linux keeps the whole
        # path at one value); cocotbext-pcie splits its writes at the root complex's setting
        self.rc.max_payload_size = code
        self.mps = nbytes

    async def set_command(self, value):
        await self.cfg_write(PCI_COMMAND, value, 2)

    # ---- MMIO through the root complex
    async def mmio_read(self, offset, size=4):
        return int.from_bytes(await self.bar.read(offset, size), "little")

    async def mmio_write(self, offset, value, size=4):
        await self.bar.write(offset, value.to_bytes(size, "little"))

    # ---- injected requests
    def next_tag(self):
        return next(self._tags)

    def _mem_tlp(self, fmt32, fmt64, addr, ndw, first_be, last_be, tag, four_dw, tc, attr):
        tlp = Tlp()
        four = addr >= (1 << 32) if four_dw is None else four_dw
        tlp.fmt_type = fmt64 if four else fmt32
        tlp.requester_id = INJECT_REQUESTER
        tlp.tag = self.next_tag() if tag is None else tag
        tlp.address = addr & ~0x3
        tlp.length = ndw
        tlp.first_be = first_be
        tlp.last_be = (0 if ndw == 1 else 0xF) if last_be is None else last_be
        tlp.tc = tc
        tlp.attr = TlpAttr(attr)
        return tlp

    def mem_read_tlp(self, addr, ndw, first_be=0xF, last_be=None, tag=None, four_dw=None, tc=0, attr=0,
                     locked=False):
        if locked:
            return self._mem_tlp(TlpType.MEM_READ_LOCKED, TlpType.MEM_READ_LOCKED_64, addr, ndw, first_be,
                                 last_be, tag, four_dw, tc, attr)
        return self._mem_tlp(TlpType.MEM_READ, TlpType.MEM_READ_64, addr, ndw, first_be, last_be, tag,
                             four_dw, tc, attr)

    def mem_write_tlp(self, addr, data, first_be=0xF, last_be=None, four_dw=None):
        tlp = self._mem_tlp(TlpType.MEM_WRITE, TlpType.MEM_WRITE_64, addr, len(data) // 4, first_be, last_be,
                            0, four_dw, 0, 0)
        tlp.data = bytearray(data)
        return tlp

    def cfg_tlp(self, fmt_type, target, offset, value=None, first_be=0xF, tag=None):
        tlp = Tlp()
        tlp.fmt_type = fmt_type
        tlp.requester_id = INJECT_REQUESTER
        tlp.completer_id = target
        tlp.tag = self.next_tag() if tag is None else tag
        tlp.address = offset & 0xFFC
        tlp.length = 1
        tlp.first_be = first_be
        tlp.last_be = 0
        if value is not None:
            tlp.data = bytearray(value.to_bytes(4, "little"))
        return tlp

    async def inject(self, tlp, timeout_ns=400_000):
        """Send ``tlp`` straight into rx_req; return the completions of a non-posted request.

        PcieHost.inject() ends a non-posted request only on an error status or on a completion
        that carries the last data, so a successful Cpl without data (config or I/O write) would
        never end it. Non-posted requests are therefore registered with the host the way
        PcieHost.inject() does it, and end here on the completion that finishes them."""
        if tlp.is_posted():
            return await self.host.inject(tlp, timeout_ns=timeout_ns)
        host = self.host
        key = (int(tlp.requester_id), tlp.tag)
        cpls = []
        host._injected[key] = (cpls, Event())
        host.checker.host_request(tlp)
        await host.rx_req.send(tlp)
        clock_edge = RisingEdge(self.dut.clk)
        deadline = get_sim_time("ns") + timeout_ns
        while not cpls or not self._finished(cpls):
            assert get_sim_time("ns") < deadline, f"no (complete) answer to {tlp!r}: {cpls}"
            await clock_edge
        host._injected.pop(key, None)
        return cpls

    @staticmethod
    def _finished(cpls):
        last = cpls[-1]
        if last.status != SC or last.fmt_type in (TlpType.CPL, TlpType.CPL_LOCKED):
            return True
        return last.byte_count <= last.length * 4 - (last.lower_address & 3)

    async def read(self, offset, ndw, first_be=0xF, last_be=None, **kwargs):
        """One MRd of ``ndw`` dwords at BAR0 + ``offset``; every completion is checked (split at
        naturally aligned MPS boundaries, byte count, lower address, ids, tag, TC/Attr).
        Returns the payload of all completions."""
        tlp = self.mem_read_tlp(self.bar0 + offset, ndw, first_be, last_be, **kwargs)
        cpls = await self.inject(tlp)
        self.check_read_completions(tlp, cpls)
        return b"".join(bytes(cpl.data) for cpl in cpls)

    def check_read_completions(self, tlp, cpls):
        mps_dw = self.mps // 4
        dw_addr = tlp.address >> 2
        left = tlp.length
        byte_count = read_byte_count(tlp.length, tlp.first_be, tlp.last_be)
        expected = []
        first = True
        while left:
            n = min(left, mps_dw - dw_addr % mps_dw)
            low = be_low(tlp.first_be) if first else 0
            expected.append((n, byte_count, ((dw_addr << 2) & 0x7C) | low))
            byte_count -= 4 * n - low
            dw_addr += n
            left -= n
            first = False
        what = f"MRd 0x{tlp.address:x} x{tlp.length} BE {tlp.first_be:x}/{tlp.last_be:x} MPS {self.mps}"
        assert len(cpls) == len(expected), \
            f"{what}: {len(cpls)} completions, expected {len(expected)} ({[c.length for c in cpls]})"
        for k, (cpl, (n, bc, la)) in enumerate(zip(cpls, expected)):
            where = f"{what}, completion {k}"
            assert cpl.fmt_type == TlpType.CPL_DATA, f"{where}: {cpl.fmt_type}"
            assert cpl.status == SC, f"{where}: status {cpl.status!r}"
            assert cpl.requester_id == tlp.requester_id and cpl.tag == tlp.tag, \
                f"{where}: requester {cpl.requester_id} tag {cpl.tag:#x}, request {tlp.requester_id} {tlp.tag:#x}"
            assert cpl.completer_id == self.completer_id, f"{where}: completer id {cpl.completer_id}"
            assert cpl.tc == tlp.tc and cpl.attr == tlp.attr, f"{where}: TC/Attr {cpl.tc}/{cpl.attr}"
            assert cpl.length == n and len(cpl.data) == 4 * n, f"{where}: {cpl.length} dwords, expected {n}"
            assert cpl.byte_count == bc, f"{where}: byte count {cpl.byte_count}, expected {bc}"
            assert cpl.lower_address == la, f"{where}: lower address {cpl.lower_address:#x}, expected {la:#x}"

    def check_cpl(self, tlp, cpls, status, completer_id, byte_count, lower_address, types=(TlpType.CPL,)):
        """Exactly one completion without data, with these fields, for ``tlp``."""
        what = f"{tlp.fmt_type.name} tag {tlp.tag:#x}"
        assert len(cpls) == 1, f"{what}: {len(cpls)} completions"
        cpl = cpls[0]
        assert cpl.fmt_type in types, f"{what}: answered with {cpl.fmt_type.name}"
        assert cpl.status == status, f"{what}: status {cpl.status!r}, expected {status!r}"
        assert cpl.length == 0 and not cpl.data, f"{what}: completion carries data"
        assert cpl.requester_id == tlp.requester_id, f"{what}: requester id {cpl.requester_id}"
        assert cpl.tag == tlp.tag, f"{what}: tag {cpl.tag:#x}"
        assert cpl.completer_id == completer_id, f"{what}: completer id {cpl.completer_id}, expected {completer_id}"
        assert cpl.tc == tlp.tc and cpl.attr == tlp.attr, f"{what}: TC/Attr {cpl.tc}/{cpl.attr}"
        assert cpl.byte_count == byte_count, f"{what}: byte count {cpl.byte_count}, expected {byte_count}"
        assert cpl.lower_address == lower_address, \
            f"{what}: lower address {cpl.lower_address:#x}, expected {lower_address:#x}"

    async def expect_dropped(self, tlp):
        """Send a posted (or malformed) request: no completion may come back, and the function
        must still answer the next read."""
        before = self.host.tx_cpl.tlps
        await self.inject(tlp)
        await self.host.quiesce()
        assert self.host.tx_cpl.tlps == before, f"{tlp.fmt_type.name}: the completer answered a dropped request"
        data = await self.read(VIRTIO_PCI_COMMON_NUMQ & ~3, 1)
        assert int.from_bytes(data, "little") >> 16 == NUM_QUEUES, "the function stopped answering"
        assert self.host.tx_cpl.tlps == before + 1

    # ---- MSI-X table with a known pattern, and BAR0 as a whole
    async def fill_msix_table(self):
        """Write every table entry with random values (garbage in the read-only bits) through the
        root complex, and remember what must read back."""
        data = bytes(self.rng.getrandbits(8) for _ in range(MSIX_VECTORS * PCI_MSIX_ENTRY_SIZE))
        await self.bar.write(MSIX_TABLE_OFFSET, data)
        self.table.write(0, data, 0xF, 0xF)
        self.table.known = True

    async def snapshot_bar0(self):
        """Expected image of all of BAR0: the MSI-X table model, the implemented dwords of the
        common and device configuration read one at a time, zero everywhere else (the notify
        page is write-only, the ISR is clear, the PBA has nothing pending, 0x6000-0x7FFF is
        reserved)."""
        assert self.table.known
        image = bytearray(BAR0_SIZE)
        for base, length in ((COMMON_CFG_OFFSET, COMMON_CFG_LENGTH), (DEVICE_CFG_OFFSET, DEVICE_CFG_LENGTH)):
            for off in range(base, base + length, 4):
                image[off:off + 4] = await self.read(off, 1)
        self.bar0_image = image

    def expected(self, offset, nbytes):
        image = self.bar0_image
        image[MSIX_TABLE_OFFSET:MSIX_TABLE_OFFSET + PAGE_SIZE] = self.table.image()
        return bytes(image[offset:offset + nbytes])

    async def check_window(self, offset, ndw, first_be=0xF, last_be=None):
        """Read ``ndw`` dwords at BAR0 + offset in one request and compare the enabled bytes."""
        data = await self.read(offset, ndw, first_be, last_be)
        want = self.expected(offset, 4 * ndw)
        for k, be in enumerate(dword_bes(ndw, first_be, 0xF if last_be is None else last_be)):
            for b in range(4):
                if be & (1 << b):
                    i = 4 * k + b
                    assert data[i] == want[i], (f"BAR0 0x{offset + i:x} (read of {ndw} dwords at 0x{offset:x}, "
                                                f"MPS {self.mps}): 0x{data[i]:02x}, expected 0x{want[i]:02x}")

    # ---- virtio PCI_CFG window (spec 4.1.4.9)
    async def window_setup(self, offset, length, bar=0):
        await self.cfg_write(CAP_PCI_CFG + VIRTIO_PCI_CFG_BAR, bar, 1)
        await self.cfg_write(CAP_PCI_CFG + VIRTIO_PCI_CFG_LENGTH, length)
        await self.cfg_write(CAP_PCI_CFG + VIRTIO_PCI_CFG_OFFSET, offset)

    async def window_read(self, offset, length, bar=0):
        """A BAR read of ``length`` bytes through pci_cfg_data: the bytes come back in its low bytes."""
        await self.window_setup(offset, length, bar)
        value = await self.cfg_read(CAP_PCI_CFG + VIRTIO_PCI_CFG_DATA)
        return value & ((1 << (8 * length)) - 1)

    async def window_write(self, offset, length, value, bar=0):
        await self.window_setup(offset, length, bar)
        await self.cfg_write(CAP_PCI_CFG + VIRTIO_PCI_CFG_DATA, value)

    # ---- device side
    async def resize(self, sectors):
        """Pulse capacity_valid for one clock with a new capacity (a config change)."""
        await RisingEdge(self.dut.clk)
        self.dut.capacity.value = sectors
        self.dut.capacity_valid.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.capacity_valid.value = 0
        await ClockCycles(self.dut.clk, 4)


# ============================================================================================
# 1. Enumeration: header and capability list
# ============================================================================================


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def run_enumeration(dut):
    """Every type-0 header field, and every field of every capability found by walking the list.

    PCI-01 (header, capability list that terminates, Status.CapList), PCI-02 (vendor id),
    PCI-03/PCI-04 (device id 0x1042), PCI-05 (revision >= 1), PCI-06 (subsystem id >= 0x40),
    PCI-09 (cap_len covers each structure), PCI-11 (cap_vndr 0x09, bar 0..5, each structure
    inside the sized BAR), PCI-12 (common offset 4-aligned), PCI-13/PCI-19/PCI-23/PCI-28/PCI-32
    (one capability of each virtio type), PCI-18 (common length >= 0x3C with RING_RESET, 0x40),
    PCI-20/PCI-21 (notify offset 2-aligned, multiplier an even power of 2, length covers every
    queue's 16-bit doorbell), PCI-22 when NOTIFICATION_DATA is offered (offset 4-aligned,
    multiplier a power of 2 that is a multiple of 4, length covers every queue's 32-bit
    doorbell), PCI-29 (device config offset 4-aligned), PCI-36/PCI-37 (MSI-X table size N-1
    with N in 2..2048, and the table holds exactly N entries inside BAR0).
    """
    tb = await TB.create(dut)
    dev = tb.dev

    # ---- type-0 header, read at the widths a driver uses
    assert await tb.cfg_read(PCI_VENDOR_ID, 2) == VIRTIO_PCI_VENDOR_ID
    assert await tb.cfg_read(PCI_VENDOR_ID + 2, 2) == DEVICE_ID
    assert 0x1040 <= DEVICE_ID <= 0x107F
    assert dev.vendor_id == VIRTIO_PCI_VENDOR_ID and dev.device_id == DEVICE_ID
    assert await tb.cfg_read(PCI_REVISION_ID, 1) == REVISION_ID >= 1
    assert await tb.cfg_read(PCI_REVISION_ID) >> 8 == CLASS_CODE
    assert await tb.cfg_read(0x0C) == 0, "cache line size, latency timer, header type 0 single-function, BIST"
    assert await tb.cfg_read(PCI_HEADER_TYPE, 1) == 0
    command = await tb.cfg_read(PCI_COMMAND, 2)
    assert command == PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, f"command 0x{command:04x} after enable"
    status = await tb.cfg_read(PCI_STATUS, 2)
    assert status == PCI_STATUS_CAP_LIST, f"status 0x{status:04x}: only the capability list bit may be set"
    assert await tb.cfg_read(PCI_SUBSYSTEM_VENDOR_ID, 2) == SUBSYSTEM_VENDOR_ID
    subsystem_id = await tb.cfg_read(PCI_SUBSYSTEM_ID, 2)
    assert subsystem_id == SUBSYSTEM_ID and subsystem_id >= 0x40
    for offset in range(PCI_BASE_ADDRESS_0 + 8, PCI_BASE_ADDRESS_0 + 24, 4):
        assert await tb.cfg_read(offset) == 0, f"BAR at 0x{offset:02x} is not implemented and must read 0"
    assert await tb.cfg_read(0x28) == 0, "CardBus CIS pointer"
    assert await tb.cfg_read(PCI_ROM_ADDRESS) == 0, "no expansion ROM"
    assert await tb.cfg_read(PCI_CAPABILITY_LIST) == CAP_PCIE
    assert await tb.cfg_read(0x38) == 0
    assert await tb.cfg_read(PCI_INTERRUPT_PIN, 1) == INTERRUPT_PIN_INTA
    assert await tb.cfg_read(PCI_INTERRUPT_PIN + 1, 2) == 0, "min_gnt, max_lat"

    # ---- BAR0 as the root complex sized and placed it
    bar_lo = await tb.cfg_read(PCI_BASE_ADDRESS_0)
    bar_hi = await tb.cfg_read(PCI_BASE_ADDRESS_0 + 4)
    assert bar_lo & PCI_BASE_ADDRESS_SPACE == 0, "BAR0 is a memory BAR"
    assert bar_lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK == PCI_BASE_ADDRESS_MEM_TYPE_64
    assert bool(bar_lo & PCI_BASE_ADDRESS_MEM_PREFETCH) == bool(BAR0_PREFETCHABLE)
    assert dev.bar_size[0] == BAR0_SIZE
    assert (bar_hi << 32 | bar_lo & ~0xF) == dev.bar_addr[0]
    assert not any(dev.bar_size[1:]), f"the host found more BARs: {dev.bar_size}"

    # ---- capability list walk by hand: pointers dword aligned, inside the header's capability
    # area, no loops, ends with 0
    found = []
    ptr = await tb.cfg_read(PCI_CAPABILITY_LIST, 1)
    visited = set()
    while ptr:
        assert ptr & 0x3 == 0 and 0x40 <= ptr <= 0xFC, f"capability pointer 0x{ptr:02x}"
        assert ptr not in visited, f"capability list loops back to 0x{ptr:02x}"
        visited.add(ptr)
        assert len(found) < 48, "capability list does not terminate"
        header = await tb.cfg_read(ptr, 2)
        found.append((header & 0xFF, ptr))
        ptr = header >> 8
    assert found == CAPABILITY_LIST, [(hex(i), hex(p)) for i, p in found]
    assert dev.capabilities == CAPABILITY_LIST
    assert await tb.cfg_read(0x100) == 0, "no extended capabilities"

    # ---- PCI Express capability
    assert await tb.cfg_read(CAP_PCIE + PCI_EXP_FLAGS, 2) == PCI_EXP_FLAGS_VALUE
    devcap = await tb.cfg_read(CAP_PCIE + PCI_EXP_DEVCAP)
    assert 128 << (devcap & PCI_EXP_DEVCAP_PAYLOAD) == MPS_SUPPORTED
    assert devcap == (devcap & PCI_EXP_DEVCAP_PAYLOAD) | PCI_EXP_DEVCAP_EXT_TAG | PCI_EXP_DEVCAP_RBER, \
        f"DevCap 0x{devcap:08x}"
    devctl = await tb.cfg_read(CAP_PCIE + PCI_EXP_DEVCTL, 2)
    assert 128 << ((devctl & PCI_EXP_DEVCTL_PAYLOAD) >> 5) == tb.mps
    assert await tb.cfg_read(CAP_PCIE + PCI_EXP_DEVCTL + 2, 2) == 0, "Device Status"
    assert await tb.cfg_read(CAP_PCIE + PCI_EXP_LNKCAP) == (LINK_WIDTH << 4) | LINK_SPEED
    assert await tb.cfg_read(CAP_PCIE + PCI_EXP_LNKCTL + 2, 2) == (LINK_WIDTH << 4) | LINK_SPEED, "Link Status"
    for offset in range(CAP_PCIE + 0x14, CAP_PCIE + PCI_EXP_CAP_SIZEOF, 4):
        assert await tb.cfg_read(offset) == 0, f"PCI Express capability +0x{offset - CAP_PCIE:02x}"
    for offset in range(CAP_PCIE + PCI_EXP_CAP_SIZEOF, CAP_MSIX, 4):
        assert await tb.cfg_read(offset) == 0, f"gap at 0x{offset:02x}"

    # ---- MSI-X capability (PCI-36, PCI-37)
    flags = await tb.cfg_read(CAP_MSIX + PCI_MSIX_FLAGS, 2)
    assert flags & ~PCI_MSIX_FLAGS_QSIZE == 0, "MSI-X disabled and not masked after reset"
    table_size = (flags & PCI_MSIX_FLAGS_QSIZE) + 1
    assert table_size == MSIX_VECTORS and 2 <= table_size <= 0x800
    table = await tb.cfg_read(CAP_MSIX + PCI_MSIX_TABLE)
    pba = await tb.cfg_read(CAP_MSIX + PCI_MSIX_PBA)
    assert table & PCI_MSIX_TABLE_BIR == 0 and table & PCI_MSIX_TABLE_OFFSET == MSIX_TABLE_OFFSET
    assert pba & PCI_MSIX_PBA_BIR == 0 and pba & PCI_MSIX_PBA_OFFSET == MSIX_PBA_OFFSET
    table_end = MSIX_TABLE_OFFSET + table_size * PCI_MSIX_ENTRY_SIZE
    pba_end = MSIX_PBA_OFFSET + 8 * ((table_size + 63) // 64)
    assert table_end <= MSIX_PBA_OFFSET and pba_end <= BAR0_SIZE, "table and PBA inside BAR0, apart"
    # the table holds exactly table_size entries: the last one is read/write, the next is not
    last = MSIX_TABLE_OFFSET + (table_size - 1) * PCI_MSIX_ENTRY_SIZE + 4 * MSIX_DATA
    await tb.mmio_write(last, 0x5A5A_0000 | table_size)
    await tb.mmio_write(last + PCI_MSIX_ENTRY_SIZE, 0xFFFF_FFFF)
    assert await tb.mmio_read(last) == 0x5A5A_0000 | table_size
    assert await tb.mmio_read(last + PCI_MSIX_ENTRY_SIZE) == 0, "an entry beyond Table Size answers"

    # ---- virtio vendor capabilities (PCI-09, PCI-11, PCI-12, PCI-18, PCI-20, PCI-21, PCI-22, PCI-29)
    features = 0
    for select in (0, 1):
        await tb.mmio_write(VIRTIO_PCI_COMMON_DFSELECT, select)
        features |= await tb.mmio_read(VIRTIO_PCI_COMMON_DF) << (32 * select)
    assert features == DEVICE_FEATURES, f"device features 0x{features:x}"
    notification_data = bool(features & (1 << VIRTIO_F_NOTIFICATION_DATA))
    assert notification_data == bool(NOTIFICATION_DATA)
    regions = []
    seen_types = []
    for cap_id, pos in found:
        if cap_id != PCI_CAP_ID_VNDR:
            continue
        raw = (await tb.dev.config_read(pos, VIRTIO_PCI_CAP_SIZEOF))
        cfg_type = raw[VIRTIO_PCI_CAP_CFG_TYPE]
        seen_types.append(cfg_type)
        want_pos, want_len, want_offset, want_length = VIRTIO_CAPS[cfg_type]
        assert pos == want_pos, f"cfg_type {cfg_type} at 0x{pos:02x}"
        assert raw[VIRTIO_PCI_CAP_VNDR] == PCI_CAP_ID_VNDR
        cap_len = raw[VIRTIO_PCI_CAP_LEN]
        assert cap_len == want_len, f"cfg_type {cfg_type}: cap_len {cap_len}"
        assert pos + cap_len <= (raw[VIRTIO_PCI_CAP_NEXT] or CONFIG_SPACE_SIZE), "capabilities overlap"
        bar = raw[VIRTIO_PCI_CAP_BAR]
        assert bar == 0, f"cfg_type {cfg_type}: bar {bar}"
        assert raw[VIRTIO_PCI_CAP_ID] == 0 and raw[6:8] == b"\0\0", "id and padding"
        offset = int.from_bytes(raw[VIRTIO_PCI_CAP_OFFSET:VIRTIO_PCI_CAP_OFFSET + 4], "little")
        length = int.from_bytes(raw[VIRTIO_PCI_CAP_LENGTH:VIRTIO_PCI_CAP_LENGTH + 4], "little")
        assert (offset, length) == (want_offset, want_length), \
            f"cfg_type {cfg_type}: offset 0x{offset:x} length 0x{length:x}"
        if cfg_type == VIRTIO_PCI_CAP_PCI_CFG:
            assert await tb.cfg_read(pos + VIRTIO_PCI_CFG_DATA) == 0, "pci_cfg_data after reset"
            continue
        assert offset + length <= dev.bar_size[bar], f"cfg_type {cfg_type} lies outside BAR{bar}"
        regions.append((offset, offset + length, cfg_type))
        if cfg_type in (VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_DEVICE_CFG):
            assert offset % 4 == 0, f"cfg_type {cfg_type}: offset not 4-byte aligned"
        if cfg_type == VIRTIO_PCI_CAP_COMMON_CFG:
            assert length >= 0x3C if RING_RESET else length >= 0x38
        if cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG:
            multiplier = await tb.cfg_read(pos + VIRTIO_PCI_NOTIFY_CAP_MULT)
            assert multiplier == NOTIFY_OFF_MULTIPLIER
            assert multiplier == 0 or (multiplier % 2 == 0 and multiplier & (multiplier - 1) == 0)
            assert offset % 2 == 0 and length >= 2
            if notification_data:
                # PCI-22: 32-bit doorbells, naturally aligned
                assert offset % 4 == 0 and length >= 4, f"notify offset 0x{offset:x} length {length} (PCI-22)"
                assert multiplier == 0 or multiplier % 4 == 0, f"notify_off_multiplier {multiplier} (PCI-22)"
            width = 4 if notification_data else 2
            for queue in range(NUM_QUEUES):
                await tb.mmio_write(VIRTIO_PCI_COMMON_Q_SELECT, queue, 2)
                notify_off = await tb.mmio_read(VIRTIO_PCI_COMMON_Q_NOFF, 2)
                assert length >= notify_off * multiplier + width, \
                    f"queue {queue}: {8 * width}-bit doorbell outside the notify region"
            await tb.mmio_write(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2)
    assert sorted(seen_types) == sorted(VIRTIO_CAPS), f"virtio capabilities {seen_types}"
    regions += [(MSIX_TABLE_OFFSET, table_end, "msix table"), (MSIX_PBA_OFFSET, pba_end, "msix pba")]
    regions.sort()
    for (_, end, a), (start, _, b) in zip(regions, regions[1:]):
        assert end <= start, f"BAR0 structures {a} and {b} overlap"

    # ---- every dword after the last capability reads 0 (the window dword reads 0 until used)
    for offset in range(FIRST_UNIMPLEMENTED, 0x100, 4):
        assert await tb.cfg_read(offset) == 0, f"config 0x{offset:03x}"

    # ---- a host driver allocates all vectors: MSI-X gets enabled, the table is programmed
    vectors = await dev.alloc_irq_vectors(1, table_size)
    assert vectors == table_size, f"the host got {vectors} MSI-X vectors of {table_size}"
    flags = await tb.cfg_read(CAP_MSIX + PCI_MSIX_FLAGS, 2)
    assert flags & PCI_MSIX_FLAGS_ENABLE and not flags & PCI_MSIX_FLAGS_MASKALL
    assert flags & PCI_MSIX_FLAGS_QSIZE == table_size - 1
    table_image = await tb.read(MSIX_TABLE_OFFSET, 4 * table_size)
    for vector, msi in enumerate(dev.msi_vectors[:table_size]):
        entry = struct.unpack_from("<QII", table_image, vector * PCI_MSIX_ENTRY_SIZE)
        assert entry == (msi.addr, msi.data, 0), f"vector {vector}: table entry {entry}, host wrote {msi}"
    tb.host.checker.assert_quiet()


# ============================================================================================
# 2. BAR sizing and placement
# ============================================================================================


@cocotb.test(timeout_time=20, timeout_unit="ms")
@cocotb.parametrize(traffic=TRAFFIC)
async def run_bar_sizing(dut, traffic):
    """BAR0 sized by hand with the write-all-ones method, placed and relocated; BAR2-5 and the
    expansion ROM size to 0.

    PCI-01 (BAR sizing); PCI-11 (the structures fit the sized BAR); placement above 4 GiB with
    4-DW headers when prefetchable, below 4 GiB with 3-DW headers otherwise.
    """
    tb = await TB.create(dut, traffic)
    command = await tb.cfg_read(PCI_COMMAND, 2)
    await tb.set_command(command & ~PCI_COMMAND_MEMORY)  # as Linux does while sizing

    saved = [await tb.cfg_read(PCI_BASE_ADDRESS_0), await tb.cfg_read(PCI_BASE_ADDRESS_0 + 4)]
    await tb.cfg_write(PCI_BASE_ADDRESS_0, 0xFFFF_FFFF)
    await tb.cfg_write(PCI_BASE_ADDRESS_0 + 4, 0xFFFF_FFFF)
    lo = await tb.cfg_read(PCI_BASE_ADDRESS_0)
    hi = await tb.cfg_read(PCI_BASE_ADDRESS_0 + 4)
    type_bits = PCI_BASE_ADDRESS_MEM_TYPE_64 | (PCI_BASE_ADDRESS_MEM_PREFETCH if BAR0_PREFETCHABLE else 0)
    assert lo & 0xF == type_bits, f"BAR0 low 0x{lo:08x}: type bits"
    assert hi == 0xFFFF_FFFF, f"BAR0 high 0x{hi:08x}: all address bits above 32 are writable"
    mask = (hi << 32 | lo) & ~0xF
    size = (~mask + 1) & ((1 << 64) - 1)
    assert size == BAR0_SIZE, f"BAR0 sizes to 0x{size:x}"
    await tb.cfg_write(PCI_BASE_ADDRESS_0, saved[0])
    await tb.cfg_write(PCI_BASE_ADDRESS_0 + 4, saved[1])
    assert [await tb.cfg_read(PCI_BASE_ADDRESS_0), await tb.cfg_read(PCI_BASE_ADDRESS_0 + 4)] == saved

    for offset in (PCI_BASE_ADDRESS_0 + 8, PCI_BASE_ADDRESS_0 + 12, PCI_BASE_ADDRESS_0 + 16,
                   PCI_BASE_ADDRESS_0 + 20, PCI_ROM_ADDRESS):
        await tb.cfg_write(offset, 0xFFFF_FFFF)
        assert await tb.cfg_read(offset) == 0, f"0x{offset:02x} sizes to 0: not implemented"
    await tb.set_command(command)

    # ---- placement and header format
    if BAR0_PREFETCHABLE:
        assert tb.bar0 >= 1 << 32, f"prefetchable BAR0 at 0x{tb.bar0:x}, expected above 4 GiB"
    else:
        assert tb.bar0 < 1 << 32, f"BAR0 at 0x{tb.bar0:x}, expected below 4 GiB"
    assert tb.bar0 % BAR0_SIZE == 0
    # through the root complex (it picks the header format from the address) ...
    await tb.mmio_write(VIRTIO_PCI_COMMON_DFSELECT, 1)
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_DF) == DEVICE_FEATURES >> 32
    # ... and injected with the header format the address needs
    four_dw = tb.bar0 >= 1 << 32
    data = await tb.read(VIRTIO_PCI_COMMON_DFSELECT, 2, four_dw=four_dw)
    assert data == struct.pack("<II", 1, DEVICE_FEATURES >> 32)
    if four_dw:
        # the low half of the address alone (3-DW header) is not BAR0
        tlp = tb.mem_read_tlp(tb.bar0 & 0xFFFF_FFFF, 1, four_dw=False)
        tb.check_cpl(tlp, await tb.inject(tlp), UR, tb.completer_id, 4, 0)

    # ---- relocation: every address bit above the 32 KiB aperture decodes
    new_base = (tb.bar0 ^ (1 << 15) ^ (0x5A5 << 20)) if not four_dw else (tb.bar0 ^ (1 << 15) ^ (0x1234 << 36))
    await tb.cfg_write(PCI_BASE_ADDRESS_0, (new_base & 0xFFFF_FFFF) | type_bits)
    await tb.cfg_write(PCI_BASE_ADDRESS_0 + 4, new_base >> 32)
    old_base, tb.bar0 = tb.bar0, new_base
    data = await tb.read(VIRTIO_PCI_COMMON_DF, 1)
    assert int.from_bytes(data, "little") == DEVICE_FEATURES >> 32
    tlp = tb.mem_read_tlp(old_base + VIRTIO_PCI_COMMON_DF, 1)
    tb.check_cpl(tlp, await tb.inject(tlp), UR, tb.completer_id, 4, VIRTIO_PCI_COMMON_DF & 0x7C)
    await tb.cfg_write(PCI_BASE_ADDRESS_0, saved[0])
    await tb.cfg_write(PCI_BASE_ADDRESS_0 + 4, saved[1])
    tb.bar0 = old_base
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_DF) == DEVICE_FEATURES >> 32
    tb.host.checker.assert_quiet()


# ============================================================================================
# 3. Command and status registers, read-only and unimplemented config space
# ============================================================================================


@cocotb.test(timeout_time=40, timeout_unit="ms")
async def run_command_status(dut):
    """Command bits, Memory Space Enable (reads UR, writes dropped while clear), read-only header
    and capability fields ignore writes, unimplemented config space reads 0 and ignores writes.

    PCI-01 (command/status behaviour of a PCI function).
    """
    tb = await TB.create(dut)
    host = tb.host

    # ---- implemented command bits
    await tb.set_command(0xFFFF)
    assert await tb.cfg_read(PCI_COMMAND, 2) == COMMAND_RW_BITS
    await tb.set_command(0)
    assert await tb.cfg_read(PCI_COMMAND, 2) == 0
    await tb.set_command(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)
    status = await tb.cfg_read(PCI_STATUS, 2)
    assert status & PCI_STATUS_CAP_LIST and not status & PCI_STATUS_INTERRUPT

    # ---- Memory Space Enable clear: reads UR, writes have no effect
    data_reg = MSIX_TABLE_OFFSET + 4 * MSIX_DATA
    await tb.mmio_write(data_reg, 0x1111_2222)
    await tb.set_command(PCI_COMMAND_MASTER)
    try:
        await tb.mmio_read(data_reg)
    except Exception as exc:  # cocotbext-pcie raises on a completion that is not SC
        tb.log.info("MMIO read with memory space disabled failed as it should: %s", exc)
    else:
        raise AssertionError("MMIO read succeeded with Memory Space Enable clear")
    for ndw, first_be, last_be in ((1, 0xF, None), (4, 0xE, 0x3), (1, 0x4, None)):
        tlp = tb.mem_read_tlp(tb.bar0 + data_reg, ndw, first_be, last_be)
        tb.check_cpl(tlp, await tb.inject(tlp), UR, tb.completer_id,
                     read_byte_count(ndw, first_be, last_be or 0), (data_reg & 0x7C) | be_low(first_be))
    await tb.mmio_write(data_reg, 0x3333_4444)
    before = host.tx_cpl.tlps
    await tb.inject(tb.mem_write_tlp(tb.bar0 + data_reg, struct.pack("<I", 0x5555_6666)))
    await host.quiesce()
    assert host.tx_cpl.tlps == before
    await tb.set_command(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)
    assert await tb.mmio_read(data_reg) == 0x1111_2222, "a write with memory space disabled took effect"

    # ---- read-only fields ignore writes
    header = [await tb.cfg_read(offset) for offset in range(0, 0x100, 4)]
    read_only = [0x00, 0x08, 0x0C, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x2C, 0x30, 0x34, 0x38,
                 CAP_PCIE, CAP_PCIE + PCI_EXP_DEVCAP, CAP_PCIE + PCI_EXP_LNKCAP]
    read_only += list(range(CAP_PCIE + 0x14, CAP_MSIX, 4))
    read_only += [CAP_MSIX + PCI_MSIX_TABLE, CAP_MSIX + PCI_MSIX_PBA]
    read_only += list(range(CAP_COMMON, CAP_PCI_CFG + 4, 4))
    for offset in read_only:
        await tb.cfg_write(offset, 0xFFFF_FFFF)
    await tb.cfg_write(PCI_STATUS, 0xFFFF, 2)  # no RW1C status bit is implemented
    await tb.cfg_write(CAP_MSIX, 0xFFFF, 2)  # capability id and next pointer
    await tb.cfg_write(CAP_PCIE + PCI_EXP_DEVCTL + 2, 0xFFFF, 2)  # Device Status
    await tb.cfg_write(CAP_PCIE + PCI_EXP_LNKCTL + 2, 0xFFFF, 2)  # Link Status
    after = [await tb.cfg_read(offset) for offset in range(0, 0x100, 4)]
    for k, (old, new) in enumerate(zip(header, after)):
        assert old == new, f"config 0x{4 * k:02x} changed from 0x{old:08x} to 0x{new:08x}"
    # interrupt line is read/write, the pin beside it is not
    await tb.cfg_write(PCI_INTERRUPT_LINE, 0xFFFF_FFFF)
    assert await tb.cfg_read(PCI_INTERRUPT_LINE) == (INTERRUPT_PIN_INTA << 8) | 0xFF
    await tb.cfg_write(PCI_INTERRUPT_LINE, header[PCI_INTERRUPT_LINE // 4] & 0xFF, 1)

    # ---- unimplemented config space (0xE4-0xFFF): reads 0, ignores writes. Injected type-0
    # requests (cheaper than the root complex's config path) cover every dword.
    for offset in range(FIRST_UNIMPLEMENTED, CONFIG_SPACE_SIZE, 4):
        tlp = tb.cfg_tlp(TlpType.CFG_WRITE_0, tb.completer_id, offset, 0xFFFF_FFFF)
        tb.check_cpl(tlp, await tb.inject(tlp), SC, tb.completer_id, 4, 0)
    for offset in range(FIRST_UNIMPLEMENTED, CONFIG_SPACE_SIZE, 4):
        tlp = tb.cfg_tlp(TlpType.CFG_READ_0, tb.completer_id, offset)
        cpls = await tb.inject(tlp)
        assert len(cpls) == 1 and cpls[0].fmt_type == TlpType.CPL_DATA and cpls[0].status == SC
        assert cpls[0].data == b"\0\0\0\0", f"config 0x{offset:03x} reads {cpls[0].data.hex()}"
    assert await tb.mmio_read(data_reg) == 0x1111_2222
    host.checker.assert_quiet()


# ============================================================================================
# 4. Unsupported requests and dropped requests
# ============================================================================================


def atomic_tlp(tb, fmt_type, addr, operands):
    tlp = Tlp()
    tlp.fmt_type = fmt_type
    tlp.requester_id = INJECT_REQUESTER
    tlp.tag = tb.next_tag()
    tlp.address = addr
    tlp.data = bytearray(operands)
    tlp.length = len(operands) // 4
    tlp.first_be = 0xF
    tlp.last_be = 0xF if tlp.length > 1 else 0
    return tlp


@cocotb.test(timeout_time=20, timeout_unit="ms")
@cocotb.parametrize(traffic=TRAFFIC)
async def run_unsupported_requests(dut, traffic):
    """Requests the function does not implement get a UR completion with the right completer
    id, requester id, tag (8 and 10 bits), TC/Attr, byte count and lower address; posted
    requests that miss BAR0 or are malformed, messages and stray completions are dropped
    without an answer and without an effect, and the function keeps working; poisoned writes
    change nothing.

    PCI-01 (PCIe completer rules). Cases: type-0 config to functions 1-7, type-1 config, I/O
    read and write, locked read, AtomicOps (FetchAdd, Swap, CAS at 32 and 64 bits), memory reads
    outside BAR0 and crossing 4 KiB; memory writes outside BAR0 (no aliasing), longer than
    Max_Payload_Size or crossing 4 KiB; messages (local, by ID, by address, broadcast, with and
    without data); a completion arriving on the request stream; poisoned memory, config and
    pci_cfg_data writes.
    """
    tb = await TB.create(dut, traffic, seed=7)
    me = tb.completer_id
    four_dw = tb.bar0 >= 1 << 32
    await tb.set_mps(128)
    await tb.fill_msix_table()
    await tb.snapshot_bar0()
    data_reg = MSIX_TABLE_OFFSET + 4 * MSIX_DATA
    data_value = tb.table.dwords[MSIX_DATA]
    command = await tb.cfg_read(PCI_COMMAND, 2)

    # ---- configuration requests for functions 1..7: UR from the addressed function
    for function in range(1, 8):
        target = PcieId(me.bus, me.device, function)
        for tag in (tb.next_tag(), TEN_BIT_TAGS[function % len(TEN_BIT_TAGS)]):
            tlp = tb.cfg_tlp(TlpType.CFG_READ_0, target, PCI_VENDOR_ID, tag=tag)
            tb.check_cpl(tlp, await tb.inject(tlp), UR, target, 4, 0)
        tlp = tb.cfg_tlp(TlpType.CFG_WRITE_0, target, PCI_COMMAND, 0)
        tb.check_cpl(tlp, await tb.inject(tlp), UR, target, 4, 0)
    assert await tb.cfg_read(PCI_COMMAND, 2) == command, "a config write to another function hit function 0"

    # ---- type-1 configuration (an endpoint has no secondary bus), even addressed to us
    tlp = tb.cfg_tlp(TlpType.CFG_READ_1, me, PCI_VENDOR_ID)
    tb.check_cpl(tlp, await tb.inject(tlp), UR, me, 4, 0)
    tlp = tb.cfg_tlp(TlpType.CFG_WRITE_1, me, PCI_COMMAND, 0)
    tb.check_cpl(tlp, await tb.inject(tlp), UR, me, 4, 0)
    assert await tb.cfg_read(PCI_COMMAND, 2) == command, "a type-1 config write took effect"

    # ---- I/O space: there is no I/O BAR
    for fmt_type, data in ((TlpType.IO_READ, None), (TlpType.IO_WRITE, b"\x01\x02\x03\x04")):
        for tag in (tb.next_tag(), 0x3FF):
            tlp = Tlp()
            tlp.fmt_type = fmt_type
            tlp.requester_id = INJECT_REQUESTER
            tlp.tag = tag
            tlp.address = 0x1000 | (tb.bar0 & 0xFFFF_0000)
            tlp.length = 1
            tlp.first_be = 0xF
            if data:
                tlp.data = bytearray(data)
            tb.check_cpl(tlp, await tb.inject(tlp), UR, me, 4, 0)

    # ---- locked read inside BAR0: UR (with or without the locked completion type)
    for ndw, first_be, last_be in ((1, 0xF, None), (3, 0xC, 0x1)):
        tlp = tb.mem_read_tlp(tb.bar0 + data_reg, ndw, first_be, last_be, locked=True)
        tb.check_cpl(tlp, await tb.inject(tlp), UR, me, read_byte_count(ndw, first_be, last_be or 0),
                     (data_reg & 0x7C) | be_low(first_be), types=(TlpType.CPL, TlpType.CPL_LOCKED))

    # ---- AtomicOps on a BAR0 register: UR, the register untouched. An AtomicOp completion's
    # byte count is the operand size and its lower address is reserved (PCIe base spec 2.2.9).
    atomics = (
        (TlpType.FETCH_ADD, TlpType.FETCH_ADD_64, 4, 4),
        (TlpType.FETCH_ADD, TlpType.FETCH_ADD_64, 8, 8),
        (TlpType.SWAP, TlpType.SWAP_64, 4, 4),
        (TlpType.SWAP, TlpType.SWAP_64, 8, 8),
        (TlpType.CAS, TlpType.CAS_64, 8, 4),
        (TlpType.CAS, TlpType.CAS_64, 16, 8),
    )
    for fmt32, fmt64, payload, operand in atomics:
        addr = tb.bar0 + (data_reg & ~(operand - 1))
        tlp = atomic_tlp(tb, fmt64 if four_dw else fmt32, addr, bytes(range(1, payload + 1)))
        tb.check_cpl(tlp, await tb.inject(tlp), UR, me, operand, 0)
    assert await tb.mmio_read(data_reg) == data_value, "an AtomicOp modified a register"

    # ---- memory reads that miss BAR0 or cross 4 KiB
    misses = [
        (tb.bar0 - 4, 1, 0xF, None),
        (tb.bar0 + BAR0_SIZE, 4, 0xE, 0x7),
        (tb.bar0 + BAR0_SIZE + data_reg, 1, 0x0, None),  # zero-length read
        (tb.bar0 ^ ((1 << 40) if four_dw else (1 << 31)), 2, 0xF, 0xF),
        (tb.bar0 - BAR0_SIZE + data_reg, 1, 0x6, None),
        (tb.bar0 + PAGE_SIZE - 4, 2, 0xF, 0xF),  # crosses into the notify page
        (tb.bar0 + MSIX_TABLE_OFFSET + 0xF00, 128, 0xF, 0xF),
        (tb.bar0 + MSIX_TABLE_OFFSET + 4, 1024, 0x8, 0x1),
    ]
    for addr, ndw, first_be, last_be in misses:
        for tag in (tb.next_tag(), 0x2C8):
            tlp = tb.mem_read_tlp(addr, ndw, first_be, last_be, tag=tag, tc=5, attr=TlpAttr.RO | TlpAttr.IDO)
            tb.check_cpl(tlp, await tb.inject(tlp), UR, me, read_byte_count(ndw, first_be, last_be or 0),
                         (addr & 0x7C) | be_low(first_be))

    # ---- successful reads echo 10-bit tags, TC and all three Attr bits
    for k, tag in enumerate(TEN_BIT_TAGS):
        data = await tb.read(data_reg, 1, tag=tag, tc=k % 8, attr=[0, 1, 2, 4, 7][k % 5])
        assert int.from_bytes(data, "little") == data_value

    # ---- posted requests that must be dropped
    aliases = (tb.bar0 + BAR0_SIZE + data_reg, tb.bar0 - BAR0_SIZE + data_reg,
               (tb.bar0 ^ ((1 << 40) if four_dw else (1 << 31))) + data_reg)
    for addr in aliases:  # outside BAR0, same low address bits as the data register
        await tb.expect_dropped(tb.mem_write_tlp(addr, struct.pack("<I", 0xDEAD_BEEF)))
    # longer than MPS (128 bytes here) over the whole table
    await tb.expect_dropped(tb.mem_write_tlp(tb.bar0 + MSIX_TABLE_OFFSET, bytes(range(132))))
    # crossing 4 KiB from the device config page into the table
    await tb.expect_dropped(tb.mem_write_tlp(tb.bar0 + MSIX_TABLE_OFFSET - 8, bytes(range(16))))
    # crossing 4 KiB from the end of the table page into the PBA page
    await tb.expect_dropped(tb.mem_write_tlp(tb.bar0 + MSIX_PBA_OFFSET - 4, bytes(range(8)), 0xF, 0xF))
    # messages: local (INTx, slot power limit with data), by ID to us (vendor defined, with
    # data), by address onto a BAR0 register (with data), broadcast (unlock)
    data_addr = tb.bar0 + data_reg
    messages = [
        message_tlp(TlpType.MSG_LOCAL, 0x20),  # Assert_INTA
        message_tlp(TlpType.MSG_LOCAL, 0x24),  # Deassert_INTA
        message_tlp(TlpType.MSG_DATA_LOCAL, 0x50, data=b"\x11\x22\x33\x44"),  # Set_Slot_Power_Limit
        message_tlp(TlpType.MSG_DATA_ID, 0x7F, (int(me) << 16) | 0x1AF4, 0, data=bytes(range(8))),
        message_tlp(TlpType.MSG_DATA_ADDR, 0x7E, data_addr >> 32, data_addr & 0xFFFF_FFFC, data=b"\xEE" * 4),
        message_tlp(TlpType.MSG_ADDR, 0x7E, data_addr >> 32, data_addr & 0xFFFF_FFFC),
        message_tlp(TlpType.MSG_BCAST, 0x00),  # Unlock
    ]
    for msg in messages:
        await tb.expect_dropped(msg)
    # a completion on the request stream (nobody asked the device for it)
    stray = Tlp.create_completion_data_for_tlp(tb.mem_read_tlp(tb.bar0, 1), INJECT_REQUESTER)
    stray.requester_id = me
    stray.byte_count = 4
    stray.set_data(b"\x01\x02\x03\x04")
    await tb.expect_dropped(RawTlp(TlpType.CPL_DATA, struct.unpack(">3L", stray.pack_header()), stray.data))

    # ---- poisoned data (EP) must not modify a control register (PCIe base spec 2.7.2.2): a
    # poisoned memory write is dropped, a poisoned config write gets UR and changes nothing,
    # also when it targets pci_cfg_data (no BAR access through the window)
    tlp = tb.mem_write_tlp(tb.bar0 + data_reg, struct.pack("<I", 0x0BAD_0BAD))
    tlp.ep = True
    await tb.expect_dropped(tlp)
    line = await tb.cfg_read(PCI_INTERRUPT_LINE, 1)
    tlp = tb.cfg_tlp(TlpType.CFG_WRITE_0, me, PCI_INTERRUPT_LINE, line ^ 0xFF, first_be=0x1)
    tlp.ep = True
    tb.check_cpl(tlp, await tb.inject(tlp), UR, me, 4, 0)
    assert await tb.cfg_read(PCI_INTERRUPT_LINE, 1) == line, "a poisoned config write took effect"
    await tb.window_setup(data_reg, 4)
    tlp = tb.cfg_tlp(TlpType.CFG_WRITE_0, me, CAP_PCI_CFG + VIRTIO_PCI_CFG_DATA, 0x0BAD_0BAD)
    tlp.ep = True
    tb.check_cpl(tlp, await tb.inject(tlp), UR, me, 4, 0)
    assert await tb.mmio_read(data_reg) == data_value, "a poisoned pci_cfg_data write reached BAR0"

    # ---- none of it changed anything, and a write of exactly MPS ending on the page is taken
    await tb.check_window(MSIX_TABLE_OFFSET, PAGE_SIZE // 4)
    assert await tb.cfg_read(PCI_COMMAND, 2) == command
    data = bytes(tb.rng.getrandbits(8) for _ in range(tb.mps))
    await tb.inject(tb.mem_write_tlp(tb.bar0 + MSIX_PBA_OFFSET - tb.mps, data, 0xF, 0xF))
    tb.table.write(PAGE_SIZE - tb.mps, data, 0xF, 0xF)
    await tb.inject(tb.mem_write_tlp(tb.bar0 + MSIX_TABLE_OFFSET, data, 0xF, 0xF))
    tb.table.write(0, data, 0xF, 0xF)
    await tb.check_window(MSIX_TABLE_OFFSET, PAGE_SIZE // 4)
    tb.host.checker.assert_quiet()


# ============================================================================================
# 5. Bus and device number capture
# ============================================================================================


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def run_bus_device_capture(dut):
    """The function captures its bus and device number from every type-0 configuration write
    (not from reads) and uses them as the completer id of its memory-read completions.

    PCI-01 (PCIe: functions capture Bus/Device Number from CfgWr0 and use them as their ID).
    """
    tb = await TB.create(dut, "random", seed=11)
    assigned = tb.assigned_id
    tb.log.info("the root complex assigned %s", assigned)
    data = await tb.read(VIRTIO_PCI_COMMON_NUMQ & ~3, 1)  # checks the completer id
    assert int.from_bytes(data, "little") >> 16 == NUM_QUEUES
    for addr in (tb.bar0 + BAR0_SIZE, tb.bar0 - 4):  # UR completions carry it too
        tlp = tb.mem_read_tlp(addr, 1)
        tb.check_cpl(tlp, await tb.inject(tlp), UR, assigned, 4, addr & 0x7C)
    # through the root complex: the checker compares every completer id with the capture
    await tb.mmio_read(VIRTIO_PCI_COMMON_DF)

    for new in (PcieId(0x42, 0x11, 0), PcieId(0xFF, 0x1F, 0), PcieId(0x00, 0x00, 0)):
        line = tb.rng.getrandbits(8)
        tlp = tb.cfg_tlp(TlpType.CFG_WRITE_0, new, PCI_INTERRUPT_LINE, line, first_be=0x1)
        tb.check_cpl(tlp, await tb.inject(tlp), SC, new, 4, 0)
        tb.captured_id = new
        await tb.read(VIRTIO_PCI_COMMON_DFSELECT, 4)
        tlp = tb.mem_read_tlp(tb.bar0 + BAR0_SIZE, 2)
        tb.check_cpl(tlp, await tb.inject(tlp), UR, new, 8, 0)
        # a configuration read addressed elsewhere is answered but not captured
        tlp = tb.cfg_tlp(TlpType.CFG_READ_0, FOREIGN_ID, PCI_INTERRUPT_LINE)
        cpls = await tb.inject(tlp)
        assert len(cpls) == 1 and cpls[0].status == SC and cpls[0].completer_id == FOREIGN_ID
        assert cpls[0].data[0] == line
        await tb.read(MSIX_TABLE_OFFSET, 3)
    # the root complex's next config write restores its numbers
    tb.captured_id = None
    await tb.cfg_write(PCI_INTERRUPT_LINE, 0, 1)
    await tb.read(VIRTIO_PCI_COMMON_DFSELECT, 4)
    await tb.mmio_read(VIRTIO_PCI_COMMON_DF)
    tb.host.checker.assert_quiet()


# ============================================================================================
# 6. Completer data path: long reads, completion splitting, byte enables, narrow accesses
# ============================================================================================

READ_LENGTHS = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129,
                255, 256, 257, 511, 512, 513, 1000, 1023, 1024)
READ_PAGES = (COMMON_CFG_OFFSET, NOTIFY_CFG_OFFSET, ISR_CFG_OFFSET, DEVICE_CFG_OFFSET, MSIX_TABLE_OFFSET,
              MSIX_PBA_OFFSET, 0x6000, 0x7000)
MPS_VALUES = (128, 256, MPS_SUPPORTED)


def random_bes(rng, ndw, qword_aligned):
    """First/last byte enables a requester may use: any for one dword or a QW-aligned pair,
    contiguous otherwise (PCIe base spec 2.2.5)."""
    if ndw == 1:
        return rng.randrange(16), 0
    if ndw == 2 and qword_aligned:
        return rng.randrange(1, 16), rng.randrange(1, 16)
    return rng.choice(contiguous_first_bes()), rng.choice(contiguous_last_bes())


@cocotb.test(timeout_time=100, timeout_unit="ms")
@cocotb.parametrize(traffic=("none", "random", "paused"))
async def run_completer_data_path(dut, traffic):
    """Reads of 1..1024 dwords at many offsets of every BAR0 page, with MPS 128/256/512, each
    completion's size, byte count and lower address checked; the MSI-X table written with known
    patterns (multi-dword writes, every first/last byte-enable combination) and read back; 1-,
    2- and 3-byte reads and writes at odd offsets.

    PCI-01 (completions split at naturally aligned MPS boundaries, at most MPS each, correct
    byte count and lower address; MSI-X table: 16-byte entries, address bits 1:0 read 0, only
    the vector-control mask bit), PCI-08 (narrow accesses touch only their bytes; 8-bit status
    write leaves queue_select alone, 16-bit queue_select write, 8-bit config_generation read).
    """
    tb = await TB.create(dut, traffic, seed=3)
    rng = tb.rng
    await tb.fill_msix_table()
    await tb.snapshot_bar0()
    # The completer moves one dword per clock, so the read volume sets the simulation time:
    # the full length sweep at the smallest MPS (most splits) without idle cycles, fewer
    # lengths at the larger MPS values and with idle cycles (which only stretch the transfers).
    if traffic == "none":
        sweeps = [(MPS_VALUES[0], READ_LENGTHS)] + [(mps, READ_LENGTHS[2::3] + (1024,)) for mps in MPS_VALUES[1:]]
    else:
        offset = int(traffic == "paused")
        sweeps = [(mps, READ_LENGTHS[offset + k::4] + (1024,)) for k, mps in enumerate(MPS_VALUES)]

    # ---- long reads at every MPS: lengths 1..1024 dwords at random offsets of every page,
    # and reads that start or end exactly on an MPS boundary
    for mps, lengths in sweeps:
        await tb.set_mps(mps)
        mps_dw = mps // 4
        for ndw in lengths:
            page = rng.choice(READ_PAGES)
            start = rng.randrange(0, PAGE_SIZE // 4 - ndw + 1)
            first_be, last_be = random_bes(rng, ndw, start % 2 == 0)
            await tb.check_window(page + 4 * start, ndw, first_be, last_be)
        for start, ndw in ((mps_dw - 1, 2), (mps_dw, mps_dw), (mps_dw - 1, mps_dw + 2), (1, mps_dw - 1),
                           (3 * mps_dw - 5, 2 * mps_dw + 9)):
            await tb.check_window(MSIX_TABLE_OFFSET + 4 * start, ndw)

    # ---- writes of random length, offset and byte enables into the table page, then the page
    # read back in one request
    await tb.set_mps(256)
    table_dwords = min(PAGE_SIZE // 4, MSIX_VECTORS * 4 + 8)
    for _ in range(32):
        ndw = rng.randint(1, min(tb.mps // 4, table_dwords))
        start = rng.randrange(0, table_dwords - ndw + 1)
        first_be, last_be = random_bes(rng, ndw, start % 2 == 0)
        data = bytes(rng.getrandbits(8) for _ in range(4 * ndw))
        await tb.inject(tb.mem_write_tlp(tb.bar0 + MSIX_TABLE_OFFSET + 4 * start, data, first_be,
                                         last_be if ndw > 1 else 0))
        tb.table.write(4 * start, data, first_be, last_be)
    await tb.check_window(MSIX_TABLE_OFFSET, PAGE_SIZE // 4)

    # ---- every first-DW byte enable on one dword (message data of entry 0), writes and reads
    data_reg = MSIX_TABLE_OFFSET + 4 * MSIX_DATA
    for be in range(16):
        value = rng.getrandbits(32)
        await tb.inject(tb.mem_write_tlp(tb.bar0 + data_reg, struct.pack("<I", value), be, 0))
        tb.table.write(4 * MSIX_DATA, struct.pack("<I", value), be, 0)
        await tb.check_window(data_reg, 1, first_be=be)
        await tb.check_window(data_reg, 1)
    # ---- every first/last combination on a QW-aligned pair (address low and high of entry 0)
    for first_be in range(1, 16):
        for last_be in range(1, 16):
            data = bytes(rng.getrandbits(8) for _ in range(8))
            await tb.inject(tb.mem_write_tlp(tb.bar0 + MSIX_TABLE_OFFSET, data, first_be, last_be))
            tb.table.write(0, data, first_be, last_be)
            await tb.check_window(MSIX_TABLE_OFFSET, 2, first_be, last_be)
    await tb.check_window(MSIX_TABLE_OFFSET, 4)
    # ---- every contiguous first/last combination of longer requests, at every lane offset
    for first_be in contiguous_first_bes():
        for last_be in contiguous_last_bes():
            for ndw in (3, 4, 5, 9):
                start = rng.randrange(0, 8)
                data = bytes(rng.getrandbits(8) for _ in range(4 * ndw))
                await tb.inject(tb.mem_write_tlp(tb.bar0 + MSIX_TABLE_OFFSET + 4 * start, data, first_be, last_be))
                tb.table.write(4 * start, data, first_be, last_be)
                await tb.check_window(MSIX_TABLE_OFFSET + 4 * start, ndw, first_be, last_be)
    await tb.check_window(MSIX_TABLE_OFFSET, 64)

    # ---- narrow accesses through the root complex at odd offsets (PCI-08)
    for offset, size in ((9, 1), (11, 1), (5, 2), (1, 3), (7, 3), (13, 2), (19, 2), (3, 2), (15, 3), (26, 1)):
        data = bytes(rng.getrandbits(8) for _ in range(size))
        await tb.bar.write(MSIX_TABLE_OFFSET + offset, data)
        tb.table.write_bytes(offset, data)
        got = await tb.bar.read(MSIX_TABLE_OFFSET + offset, size)
        assert got == tb.expected(MSIX_TABLE_OFFSET + offset, size), \
            f"{size}-byte access at table +{offset}: read {got.hex()}"
    await tb.check_window(MSIX_TABLE_OFFSET, 16)
    # common configuration: 16-bit queue_select, 8-bit device_status, 8-bit config_generation
    generation = tb.expected(VIRTIO_PCI_COMMON_CFGGENERATION, 1)
    queue = NUM_QUEUES + 2  # any 16-bit value is stored
    await tb.bar.write(VIRTIO_PCI_COMMON_Q_SELECT, queue.to_bytes(2, "little"))
    await tb.bar.write(VIRTIO_PCI_COMMON_STATUS, bytes([VIRTIO_CONFIG_S_ACKNOWLEDGE]))
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_STATUS & ~3) == \
        (queue << 16) | (generation[0] << 8) | VIRTIO_CONFIG_S_ACKNOWLEDGE
    assert await tb.bar.read(VIRTIO_PCI_COMMON_CFGGENERATION, 1) == generation
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_SELECT, 2) == queue
    await tb.bar.write(VIRTIO_PCI_COMMON_STATUS, b"\0")
    for _ in range(100):
        if await tb.mmio_read(VIRTIO_PCI_COMMON_STATUS, 1) == 0:
            break
    else:
        raise AssertionError("device_status never read 0 after the reset")
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_SELECT, 2) == 0, "queue_select survived the reset"

    # ---- finally all of BAR0 again, page by page
    await tb.set_mps(128)
    for page in READ_PAGES if traffic == "none" else (COMMON_CFG_OFFSET, DEVICE_CFG_OFFSET, MSIX_TABLE_OFFSET):
        await tb.check_window(page, PAGE_SIZE // 4)
    tb.host.checker.assert_quiet()


# ============================================================================================
# 7. The virtio PCI_CFG access window
# ============================================================================================


@cocotb.test(timeout_time=40, timeout_unit="ms")
@cocotb.parametrize(traffic=TRAFFIC)
async def run_pci_cfg_window(dut, traffic):
    """BAR0 accesses through pci_cfg_data: 1-, 2- and 4-byte reads come back in the low bytes
    and match MMIO (device_feature, blk capacity, num_queues), writes take effect
    (device_feature_select, device_status handshake, queue_select, feature words, vectors, a
    doorbell, MSI-X data bytes), side effects happen (the ISR clears, INTx drops), and invalid
    bar/length/offset settings access nothing.

    PCI-32 (present), PCI-33 (writes of cap.length bytes), PCI-34 (reads of cap.length bytes,
    ISR clears), PCI-14 (queue_size 0 for an absent queue), PCI-24 (ISR bit 1 set on a config
    interrupt), PCI-26 (Status bit 3 follows the ISR, INTx Disable masks the pin only), PCI-27
    (reading the ISR clears it and deasserts INTx), RST-01/RST-03/RST-04/RST-05 (reset written
    through the window: device_status reads 0, queue_enable 0, vectors NO_VECTOR, queue_reset 0).
    """
    tb = await TB.create(dut, traffic, seed=5)
    cap = CAP_PCI_CFG
    doorbells = []

    async def watch_doorbells():
        while True:
            await RisingEdge(dut.clk)
            if dut.notify_valid.value == 1:
                doorbells.append(int(dut.notify_queue.value))

    cocotb.start_soon(watch_doorbells())

    # ---- cap.bar, cap.offset, cap.length are read/write; the rest of the capability is not
    header = await tb.cfg_read(cap)
    await tb.cfg_write(cap + VIRTIO_PCI_CFG_BAR, 0xFFFF_FFFF)
    assert await tb.cfg_read(cap + VIRTIO_PCI_CFG_BAR) == 0xFF, "bar is RW, id and padding are not"
    for pattern in (0xFFFF_FFFF, 0x1234_5678, 0):
        await tb.cfg_write(cap + VIRTIO_PCI_CFG_OFFSET, pattern)
        await tb.cfg_write(cap + VIRTIO_PCI_CFG_LENGTH, pattern ^ 0xFFFF)
        assert await tb.cfg_read(cap + VIRTIO_PCI_CFG_OFFSET) == pattern
        assert await tb.cfg_read(cap + VIRTIO_PCI_CFG_LENGTH) == pattern ^ 0xFFFF
    await tb.cfg_write(cap, 0xFFFF_FFFF)
    assert await tb.cfg_read(cap) == header

    # ---- reads: device_feature (both words), capacity, num_queues; 1, 2 and 4 bytes
    for select in (0, 1):
        await tb.mmio_write(VIRTIO_PCI_COMMON_DFSELECT, select)
        word = (DEVICE_FEATURES >> (32 * select)) & 0xFFFF_FFFF
        assert await tb.window_read(VIRTIO_PCI_COMMON_DF, 4) == word == await tb.mmio_read(VIRTIO_PCI_COMMON_DF)
        for k in range(4):
            assert await tb.window_read(VIRTIO_PCI_COMMON_DF + k, 1) == (word >> (8 * k)) & 0xFF
        for k in (0, 2):
            assert await tb.window_read(VIRTIO_PCI_COMMON_DF + k, 2) == (word >> (8 * k)) & 0xFFFF
    capacity = DEVICE_CFG_OFFSET + VIRTIO_BLK_CFG_CAPACITY
    assert await tb.window_read(capacity, 4) == CAPACITY & 0xFFFF_FFFF == await tb.mmio_read(capacity)
    assert await tb.window_read(capacity + 4, 4) == CAPACITY >> 32 == await tb.mmio_read(capacity + 4)
    for k in range(8):
        assert await tb.window_read(capacity + k, 1) == (CAPACITY >> (8 * k)) & 0xFF
    assert await tb.window_read(VIRTIO_PCI_COMMON_NUMQ, 2) == NUM_QUEUES
    assert await tb.window_read(VIRTIO_PCI_COMMON_NUMQ, 1) == NUM_QUEUES & 0xFF
    assert await tb.window_read(VIRTIO_PCI_COMMON_NUMQ + 1, 1) == NUM_QUEUES >> 8

    # ---- writes: device_feature_select, queue_select (absent queue: queue_size 0), bytes of
    # MSI-X message data (only cap.length bytes of pci_cfg_data are written)
    await tb.window_write(VIRTIO_PCI_COMMON_DFSELECT, 4, 1)
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_DFSELECT) == 1
    assert await tb.window_read(VIRTIO_PCI_COMMON_DF, 4) == DEVICE_FEATURES >> 32
    await tb.window_write(VIRTIO_PCI_COMMON_DFSELECT, 4, 0)
    for queue in (NUM_QUEUES, 0x7FFF, 0):
        await tb.window_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, queue)
        assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_SELECT, 2) == queue
        size = await tb.mmio_read(VIRTIO_PCI_COMMON_Q_SIZE, 2)
        assert size == (QUEUE_SIZE_MAX if queue < NUM_QUEUES else 0), f"queue {queue}: queue_size {size}"
    data_reg = MSIX_TABLE_OFFSET + 4 * MSIX_DATA
    await tb.mmio_write(data_reg, 0x1122_3344)
    await tb.window_write(data_reg + 1, 1, 0xFFFF_FFAB)
    assert await tb.mmio_read(data_reg) == 0x1122_AB44
    await tb.window_write(data_reg + 2, 2, 0xFFFF_CDEF)
    assert await tb.mmio_read(data_reg) == 0xCDEF_AB44
    await tb.window_write(data_reg, 4, 0x0102_0304)
    assert await tb.mmio_read(data_reg) == 0x0102_0304
    await tb.window_setup(data_reg + 3, 1)
    await tb.cfg_write(cap + VIRTIO_PCI_CFG_DATA, 0x77, 1)  # a byte-wide config write
    assert await tb.mmio_read(data_reg) == 0x7702_0304
    await tb.window_write(VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x89AB_CDE0)
    await tb.window_write(VIRTIO_PCI_COMMON_Q_DESCHI, 2, 0x1234)
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_DESCLO) == 0x89AB_CDE0
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_DESCHI) == 0x1234

    # ---- invalid bar, length or alignment, or an offset outside BAR0: no BAR access
    invalid = ((1, data_reg, 4), (5, data_reg, 4), (0xFF, data_reg, 1), (0, data_reg, 3), (0, data_reg, 0),
               (0, data_reg, 8), (0, data_reg + 2, 4), (0, data_reg + 1, 2), (0, data_reg + BAR0_SIZE, 4),
               (0, data_reg | (1 << 31), 4))
    for bar, offset, length in invalid:
        await tb.window_write(offset, length, 0xA5A5_A5A5, bar=bar)
        assert await tb.mmio_read(data_reg) == 0x7702_0304, f"window bar {bar} offset 0x{offset:x} length {length}"
        assert await tb.cfg_read(cap + VIRTIO_PCI_CFG_DATA) == 0xA5A5_A5A5, "pci_cfg_data keeps what was written"

    # ---- driver handshake through the window (device_status read back by MMIO)
    status = 0
    for bit in (VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER):
        status |= bit
        await tb.window_write(VIRTIO_PCI_COMMON_STATUS, 1, status)
        assert await tb.mmio_read(VIRTIO_PCI_COMMON_STATUS, 1) == status
    await tb.window_write(VIRTIO_PCI_COMMON_GFSELECT, 4, 1)
    await tb.window_write(VIRTIO_PCI_COMMON_GF, 4, 1 << (VIRTIO_F_VERSION_1 - 32))
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_GF) == 1 << (VIRTIO_F_VERSION_1 - 32)
    status |= VIRTIO_CONFIG_S_FEATURES_OK
    await tb.window_write(VIRTIO_PCI_COMMON_STATUS, 1, status)
    assert await tb.window_read(VIRTIO_PCI_COMMON_STATUS, 1) == status, "FEATURES_OK refused"
    await tb.window_write(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1)
    await tb.window_write(VIRTIO_PCI_COMMON_MSIX, 2, 0)
    await tb.window_write(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1)
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_MSIX, 2) == 0
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_MSIX, 2) == 1
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 1
    status |= VIRTIO_CONFIG_S_DRIVER_OK
    await tb.window_write(VIRTIO_PCI_COMMON_STATUS, 1, status)
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_STATUS, 1) == status
    assert dut.driver_ok.value == 1

    # ---- a doorbell through the window
    notify_off = await tb.window_read(VIRTIO_PCI_COMMON_Q_NOFF, 2)
    await tb.window_write(NOTIFY_CFG_OFFSET + notify_off * NOTIFY_OFF_MULTIPLIER, 2, 0)
    await ClockCycles(dut.clk, 4)
    assert doorbells == [0], f"doorbells {doorbells}"

    # ---- config interrupt (MSI-X off: ISR + INTx), the ISR read through the window
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT == 0
    new_capacity = CAPACITY * 2 + 8
    await tb.resize(new_capacity)
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "Status.Interrupt not set"
    assert tb.host.intx.level == 1, "INTx not asserted"
    assert await tb.window_read(ISR_CFG_OFFSET, 1) == VIRTIO_PCI_ISR_CONFIG
    assert await tb.window_read(ISR_CFG_OFFSET, 1) == 0, "the ISR did not clear on a window read"
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT == 0
    assert tb.host.intx.level == 0, "INTx still asserted after the ISR read"
    assert await tb.window_read(capacity, 4) == new_capacity & 0xFFFF_FFFF == await tb.mmio_read(capacity)
    assert await tb.window_read(capacity + 4, 4) == new_capacity >> 32
    # an invalid window does not read (and so does not clear) the ISR
    new_capacity += 8
    await tb.resize(new_capacity)
    for bar, length in ((1, 1), (0, 3)):
        await tb.window_read(ISR_CFG_OFFSET, length, bar=bar)
    assert await tb.mmio_read(ISR_CFG_OFFSET, 1) == VIRTIO_PCI_ISR_CONFIG, "an invalid window read the ISR"
    # INTx Disable masks the pin, not Status.Interrupt
    command = await tb.cfg_read(PCI_COMMAND, 2)
    await tb.set_command(command | PCI_COMMAND_INTX_DISABLE)
    new_capacity += 8
    await tb.resize(new_capacity)
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT
    assert tb.host.intx.level == 0, "INTx asserted although Interrupt Disable is set"
    assert await tb.window_read(ISR_CFG_OFFSET, 4) == VIRTIO_PCI_ISR_CONFIG
    assert await tb.cfg_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT == 0
    await tb.set_command(command)

    # ---- device reset written through the window
    await tb.window_write(VIRTIO_PCI_COMMON_STATUS, 1, 0)
    for _ in range(100):
        if await tb.window_read(VIRTIO_PCI_COMMON_STATUS, 1) == 0:
            break
    else:
        raise AssertionError("device_status never read 0 after the reset")
    assert dut.driver_ok.value == 0
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_MSI_NO_VECTOR
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_MSI_NO_VECTOR
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_Q_RESET, 2) == 0
    assert await tb.mmio_read(VIRTIO_PCI_COMMON_GF) == 0
    assert doorbells == [0]
    tb.host.checker.assert_quiet()


# ============================================================================================
# pytest: one build per parameter set, every cocotb test above in one simulator run
# ============================================================================================

TB_DIR = Path(__file__).parent


@pytest.mark.parametrize("data_width", [64, 128, 256])
def test_pci(sim, data_width):
    runner.run(sim, "virtio_blk_pci", "test_pci", TB_DIR, {"DATA_WIDTH": data_width})


def test_pci_bar0_below_4g(sim):
    """BAR0 not prefetchable (placed below 4 GiB, 3-DW headers), four queues, a full
    4 KiB MSI-X table (256 vectors), and VIRTIO_F_NOTIFICATION_DATA not offered (the notify
    capability then only has to fit 16-bit doorbells)."""
    runner.run(sim, "virtio_blk_pci", "test_pci", TB_DIR,
               {"DATA_WIDTH": 256, "BAR0_PREFETCHABLE": 0, "NUM_QUEUES": 4, "MSIX_VECTORS": 256,
                "NOTIFICATION_DATA": 0})
