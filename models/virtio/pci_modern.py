# SPDX-License-Identifier: Apache-2.0
"""Modern (virtio 1.x) PCI transport: capability discovery and register access.

Mirrors Linux's ``drivers/virtio/virtio_pci_modern_dev.c`` (``vp_modern_*``), plus the config-space
accessors ``vp_get``/``vp_set`` and ``vp_notify`` from ``virtio_pci_modern.c`` and
``virtio_pci_common.c``, on top of a cocotbext-pcie ``PciDevice``.

Everything is found through the PCI capability list; no BAR offset is hard-coded. Every register is
accessed at its natural width (8-bit status, 16-bit queue fields, 32-bit feature words; 64-bit
fields as two 32-bit halves, low half first), as Linux's ``vp_ioread*``/``vp_iowrite*`` do.

This class only talks to the device. Feature policy, queue setup and interrupts live in
``virtio.py`` (``VirtioDevice``).
"""

import logging

from .uapi import (
    PCI_BASE_ADDRESS_SPACE_IO,
    PCI_CAP_ID_MSIX,
    PCI_CAP_ID_VNDR,
    PCI_CAP_LIST_ID,
    PCI_CAPABILITY_LIST,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_DEVICE_ID,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_QSIZE,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STD_HEADER_SIZEOF,
    PCI_STD_NUM_BARS,
    PCI_SUBSYSTEM_ID,
    PCI_SUBSYSTEM_VENDOR_ID,
    PCI_VENDOR_ID,
    VIRTIO_F_ADMIN_VQ,
    VIRTIO_F_NOTIF_CONFIG_DATA,
    VIRTIO_F_RING_RESET,
    VIRTIO_PCI_CAP_BAR,
    VIRTIO_PCI_CAP_CFG_TYPE,
    VIRTIO_PCI_CAP_COMMON_CFG,
    VIRTIO_PCI_CAP_DEVICE_CFG,
    VIRTIO_PCI_CAP_ID,
    VIRTIO_PCI_CAP_ISR_CFG,
    VIRTIO_PCI_CAP_LEN,
    VIRTIO_PCI_CAP_LENGTH,
    VIRTIO_PCI_CAP_NOTIFY_CFG,
    VIRTIO_PCI_CAP_OFFSET,
    VIRTIO_PCI_CAP_PCI_CFG,
    VIRTIO_PCI_CAP_SIZEOF,
    VIRTIO_PCI_CFG_BAR,
    VIRTIO_PCI_CFG_CAP_SIZEOF,
    VIRTIO_PCI_CFG_DATA,
    VIRTIO_PCI_CFG_LENGTH,
    VIRTIO_PCI_CFG_OFFSET,
    VIRTIO_PCI_COMMON_ADM_Q_IDX,
    VIRTIO_PCI_COMMON_ADM_Q_NUM,
    VIRTIO_PCI_COMMON_CFG_V1_0_SIZEOF,
    VIRTIO_PCI_COMMON_CFGGENERATION,
    VIRTIO_PCI_COMMON_DF,
    VIRTIO_PCI_COMMON_DFSELECT,
    VIRTIO_PCI_COMMON_GF,
    VIRTIO_PCI_COMMON_GFSELECT,
    VIRTIO_PCI_COMMON_MSIX,
    VIRTIO_PCI_COMMON_NUMQ,
    VIRTIO_PCI_COMMON_Q_AVAILHI,
    VIRTIO_PCI_COMMON_Q_AVAILLO,
    VIRTIO_PCI_COMMON_Q_DESCHI,
    VIRTIO_PCI_COMMON_Q_DESCLO,
    VIRTIO_PCI_COMMON_Q_ENABLE,
    VIRTIO_PCI_COMMON_Q_MSIX,
    VIRTIO_PCI_COMMON_Q_NDATA,
    VIRTIO_PCI_COMMON_Q_NOFF,
    VIRTIO_PCI_COMMON_Q_RESET,
    VIRTIO_PCI_COMMON_Q_SELECT,
    VIRTIO_PCI_COMMON_Q_SIZE,
    VIRTIO_PCI_COMMON_Q_USEDHI,
    VIRTIO_PCI_COMMON_Q_USEDLO,
    VIRTIO_PCI_COMMON_STATUS,
    VIRTIO_PCI_MODERN_COMMON_CFG_SIZEOF,
    VIRTIO_PCI_MODERN_DEVICE_ID_BASE,
    VIRTIO_PCI_NOTIFY_CAP_MULT,
    VIRTIO_PCI_NOTIFY_CAP_SIZEOF,
    VIRTIO_PCI_VENDOR_ID,
)

# Linux's pci_find_capability gives up after this many list entries, so a looping list ends.
PCI_FIND_CAP_TTL = 48

# Linux maps at most one page of device configuration (vp_modern_probe: "PAGE_SIZE is more than
# enough for all existing devices").
PAGE_SIZE = 4096

# Device IDs Linux's virtio-pci binds to: transitional 0x1000-0x103F, modern 0x1040-0x107F.
VIRTIO_PCI_DEVICE_ID_FIRST = 0x1000
VIRTIO_PCI_DEVICE_ID_LAST = 0x107F

# Default bound on busy-wait loops (queue reset), counted in register reads.
DEFAULT_MAX_POLLS = 1000

_CAP_NAMES = {
    VIRTIO_PCI_CAP_COMMON_CFG: "COMMON_CFG",
    VIRTIO_PCI_CAP_NOTIFY_CFG: "NOTIFY_CFG",
    VIRTIO_PCI_CAP_ISR_CFG: "ISR_CFG",
    VIRTIO_PCI_CAP_DEVICE_CFG: "DEVICE_CFG",
    VIRTIO_PCI_CAP_PCI_CFG: "PCI_CFG",
}


class VirtioError(Exception):
    """Base of every error the virtio driver stack raises on purpose."""


class VirtioPciCapabilityError(VirtioError):
    """A virtio vendor capability is missing or describes a structure the driver cannot use."""


def _cap_name(cfg_type):
    return "VIRTIO_PCI_CAP_" + _CAP_NAMES.get(cfg_type, f"type{cfg_type}")


class VirtioPciModernDev:
    """One virtio-pci function seen through its modern capabilities.

    ``pci_dev`` is a cocotbext-pcie ``PciDevice`` after ``rc.enumerate()``; ``rc`` its
    ``RootComplex`` (host memory for the rings comes from ``rc.mem_pool``); ``intx`` an optional
    object with ``register_handler(async_fn)`` that calls ``async_fn()`` whenever the function's
    INTx line rises while INTx is not disabled.

    After ``await vp_modern_probe()``:
      * ``caps``: cfg_type -> dict describing the capability used for that type
        (``cap`` config-space offset, ``cap_len``, ``bar``, ``id``, ``offset``, ``length``,
        ``map_len``, ``addr`` bus address; NOTIFY adds ``notify_off_multiplier``, PCI_CFG adds
        ``data`` = config offset of pci_cfg_data);
      * ``vendor_caps``: every virtio vendor capability in list order, used or not;
      * ``pci_caps``: every (cap_id, offset) of the standard capability list;
      * ``common``, ``isr``, ``device``, ``notify_base``: windows onto the BAR structures.

    ``access_log``: set it to a list to record every access this class makes, as tuples
    ``(space, op, offset, width, value)`` with space one of "cfg", "common", "isr", "device",
    "notify"; offsets are relative to the structure (config space: absolute).
    """

    def __init__(self, pci_dev, rc, intx=None):
        self.pci_dev = pci_dev
        self.rc = rc
        self.intx = intx
        self.log = logging.getLogger("cocotb.virtio.pci")

        # Identity (struct virtio_device_id in Linux).
        self.vendor_id = None
        self.device_id = None
        self.id_device = None  # virtio device type (VIRTIO_ID_*)
        self.id_vendor = None  # PCI subsystem vendor id

        self.pci_caps = []
        self.vendor_caps = []
        self.caps = {}
        self.modern_bars = 0

        self.common = None
        self.common_len = 0
        self.isr = None
        self.device = None
        self.device_len = 0
        self.notify_base = None
        self.notify_len = 0
        self.notify_pa = None
        self.notify_offset_multiplier = 0
        self.pci_cfg_cap = None  # config-space offset of the PCI_CFG capability, or None
        self.msix_cap = None
        self.msix_table_size = 0

        # vq index -> offset of its doorbell inside notify_base (filled by vp_modern_map_vq_notify).
        self.vq_notify_offset = {}

        self.access_log = None

    # ------------------------------------------------------------------------------------------
    # Raw accessors. Window.read/write take bytes; one call is one MMIO request of that width.
    # ------------------------------------------------------------------------------------------

    def _log(self, space, op, offset, width, value):
        if self.access_log is not None:
            self.access_log.append((space, op, offset, width, value))

    async def _ioread(self, space, window, offset, width):
        data = await window.read(offset, width)
        value = int.from_bytes(bytes(data[:width]), "little")
        self._log(space, "r", offset, width, value)
        return value

    async def _iowrite(self, space, window, offset, width, value):
        self._log(space, "w", offset, width, value)
        await window.write(offset, int(value).to_bytes(width, "little"))

    async def vp_ioread8(self, offset):
        """8-bit read of the common configuration."""
        return await self._ioread("common", self.common, offset, 1)

    async def vp_ioread16(self, offset):
        """16-bit read of the common configuration."""
        return await self._ioread("common", self.common, offset, 2)

    async def vp_ioread32(self, offset):
        """32-bit read of the common configuration."""
        return await self._ioread("common", self.common, offset, 4)

    async def vp_iowrite8(self, value, offset):
        """8-bit write to the common configuration (Linux argument order: value, address)."""
        await self._iowrite("common", self.common, offset, 1, value & 0xFF)

    async def vp_iowrite16(self, value, offset):
        """16-bit write to the common configuration."""
        await self._iowrite("common", self.common, offset, 2, value & 0xFFFF)

    async def vp_iowrite32(self, value, offset):
        """32-bit write to the common configuration."""
        await self._iowrite("common", self.common, offset, 4, value & 0xFFFFFFFF)

    async def vp_iowrite64_twopart(self, value, offset_lo, offset_hi):
        """A 64-bit field as two 32-bit writes, low half first."""
        await self.vp_iowrite32(value & 0xFFFFFFFF, offset_lo)
        await self.vp_iowrite32((value >> 32) & 0xFFFFFFFF, offset_hi)

    async def _cfg_read(self, offset, width):
        if width == 1:
            value = await self.pci_dev.config_read_byte(offset)
        elif width == 2:
            value = await self.pci_dev.config_read_word(offset)
        else:
            value = await self.pci_dev.config_read_dword(offset)
        self._log("cfg", "r", offset, width, value)
        return value

    async def _cfg_write(self, offset, width, value):
        self._log("cfg", "w", offset, width, value)
        if width == 1:
            await self.pci_dev.config_write_byte(offset, value & 0xFF)
        elif width == 2:
            await self.pci_dev.config_write_word(offset, value & 0xFFFF)
        else:
            await self.pci_dev.config_write_dword(offset, value & 0xFFFFFFFF)

    # ------------------------------------------------------------------------------------------
    # Probe: capability walk and mapping
    # ------------------------------------------------------------------------------------------

    async def _walk_capabilities(self):
        """Return the standard capability list as [(cap_id, offset)], following cap_next."""
        status = await self._cfg_read(PCI_STATUS, 2)
        if not status & PCI_STATUS_CAP_LIST:
            raise VirtioPciCapabilityError(
                f"PCI_STATUS 0x{status:04x} has no PCI_STATUS_CAP_LIST: no capability list, "
                "so no virtio capabilities")
        caps = []
        pos = await self._cfg_read(PCI_CAPABILITY_LIST, 1)
        for _ in range(PCI_FIND_CAP_TTL):
            pos &= ~3
            if pos < PCI_STD_HEADER_SIZEOF:
                return caps
            if any(pos == seen for _, seen in caps):
                raise VirtioPciCapabilityError(
                    f"capability list loops back to 0x{pos:02x}: "
                    + " -> ".join(f"0x{p:02x}(id 0x{i:02x})" for i, p in caps))
            header = await self._cfg_read(pos + PCI_CAP_LIST_ID, 2)
            cap_id = header & 0xFF
            if cap_id == 0xFF:
                return caps
            caps.append((cap_id, pos))
            pos = (header >> 8) & 0xFF
        raise VirtioPciCapabilityError(f"capability list does not end after {PCI_FIND_CAP_TTL} entries")

    async def _read_vendor_cap(self, pos):
        """Read one virtio vendor capability, each field at its natural width."""
        cap = {"cap": pos}
        cap["cap_len"] = await self._cfg_read(pos + VIRTIO_PCI_CAP_LEN, 1)
        cap["cfg_type"] = await self._cfg_read(pos + VIRTIO_PCI_CAP_CFG_TYPE, 1)
        cap["bar"] = await self._cfg_read(pos + VIRTIO_PCI_CAP_BAR, 1)
        cap["id"] = await self._cfg_read(pos + VIRTIO_PCI_CAP_ID, 1)
        cap["offset"] = await self._cfg_read(pos + VIRTIO_PCI_CAP_OFFSET, 4)
        cap["length"] = await self._cfg_read(pos + VIRTIO_PCI_CAP_LENGTH, 4)
        if cap["cfg_type"] == VIRTIO_PCI_CAP_NOTIFY_CFG and cap["cap_len"] >= VIRTIO_PCI_NOTIFY_CAP_SIZEOF:
            cap["notify_off_multiplier"] = await self._cfg_read(pos + VIRTIO_PCI_NOTIFY_CAP_MULT, 4)
        return cap

    def _bar_is_usable(self, bar):
        """A BAR Linux would accept: index 0-5, implemented (size != 0), memory space."""
        if bar >= PCI_STD_NUM_BARS:
            return False
        size = self.pci_dev.bar_size[bar]
        raw = self.pci_dev.bar_raw[bar]
        if not size or raw is None or self.pci_dev.bar_window[bar] is None:
            return False
        return not raw & PCI_BASE_ADDRESS_SPACE_IO

    def virtio_pci_find_capability(self, cfg_type):
        """First vendor capability of ``cfg_type`` whose BAR is usable, as Linux picks it."""
        for cap in self.vendor_caps:
            # Structures with a reserved BAR value are ignored (spec §4.1.4).
            if cap["cfg_type"] == cfg_type and self._bar_is_usable(cap["bar"]):
                self.modern_bars |= 1 << cap["bar"]
                return cap
        return None

    def _map_capability(self, cap, minlen, align, size):
        """Check one capability against its BAR and return a window onto the structure.

        Mirrors vp_modern_map_capability, but also requires offset + length to lie inside the BAR
        (Linux only checks offset + minlen) so that a device describing a structure past the end
        of its BAR is caught here.
        """
        name = _cap_name(cap["cfg_type"])
        bar, offset, length = cap["bar"], cap["offset"], cap["length"]
        bar_size = self.pci_dev.bar_size[bar]
        where = (f"{name} capability at config offset 0x{cap['cap']:02x} "
                 f"(bar {bar}, offset 0x{offset:x}, length 0x{length:x})")
        if cap["cap_len"] < VIRTIO_PCI_CAP_SIZEOF:
            raise VirtioPciCapabilityError(f"{where}: cap_len {cap['cap_len']} < {VIRTIO_PCI_CAP_SIZEOF}")
        if length == 0 or length < minlen:
            raise VirtioPciCapabilityError(f"{where}: length must be at least {max(minlen, 1)}")
        if offset % align:
            raise VirtioPciCapabilityError(f"{where}: offset not aligned to {align} bytes")
        if offset + length > bar_size:
            raise VirtioPciCapabilityError(
                f"{where}: structure ends at 0x{offset + length:x}, past the end of BAR{bar} (size 0x{bar_size:x})")
        map_len = min(length, size)
        window = self.pci_dev.bar_window[bar].create_window(offset, map_len)
        cap["map_len"] = map_len
        cap["addr"] = self.pci_dev.bar_addr[bar] + offset
        return window

    async def vp_modern_probe(self):
        """Identify the function, walk its capabilities and map the virtio structures.

        The caller enables the PCI device first (memory space), as Linux requires.
        """
        self.vendor_id = await self._cfg_read(PCI_VENDOR_ID, 2)
        self.device_id = await self._cfg_read(PCI_DEVICE_ID, 2)
        if self.vendor_id != VIRTIO_PCI_VENDOR_ID:
            raise VirtioError(f"vendor id 0x{self.vendor_id:04x} is not virtio's 0x{VIRTIO_PCI_VENDOR_ID:04x}")
        if not VIRTIO_PCI_DEVICE_ID_FIRST <= self.device_id <= VIRTIO_PCI_DEVICE_ID_LAST:
            raise VirtioError(f"device id 0x{self.device_id:04x} is outside virtio's 0x1000-0x107f")
        if self.device_id < VIRTIO_PCI_MODERN_DEVICE_ID_BASE:
            # Transitional device: the subsystem device id is the virtio device id, as for legacy.
            self.id_device = await self._cfg_read(PCI_SUBSYSTEM_ID, 2)
        else:
            self.id_device = self.device_id - VIRTIO_PCI_MODERN_DEVICE_ID_BASE
        self.id_vendor = await self._cfg_read(PCI_SUBSYSTEM_VENDOR_ID, 2)

        self.pci_caps = await self._walk_capabilities()
        self.vendor_caps = []
        for cap_id, pos in self.pci_caps:
            if cap_id == PCI_CAP_ID_VNDR:
                self.vendor_caps.append(await self._read_vendor_cap(pos))
            elif cap_id == PCI_CAP_ID_MSIX and self.msix_cap is None:
                self.msix_cap = pos
                flags = await self._cfg_read(pos + PCI_MSIX_FLAGS, 2)
                self.msix_table_size = (flags & PCI_MSIX_FLAGS_QSIZE) + 1

        self.caps = {}
        self.modern_bars = 0
        common = self.virtio_pci_find_capability(VIRTIO_PCI_CAP_COMMON_CFG)
        if common is None:
            raise VirtioPciCapabilityError(
                "no usable VIRTIO_PCI_CAP_COMMON_CFG capability: not a modern virtio device "
                f"(vendor capabilities found: {self.vendor_caps})")
        isr = self.virtio_pci_find_capability(VIRTIO_PCI_CAP_ISR_CFG)
        notify = self.virtio_pci_find_capability(VIRTIO_PCI_CAP_NOTIFY_CFG)
        if isr is None or notify is None:
            missing = [name for name, cap in (("VIRTIO_PCI_CAP_ISR_CFG", isr),
                                              ("VIRTIO_PCI_CAP_NOTIFY_CFG", notify)) if cap is None]
            raise VirtioPciCapabilityError(f"missing capabilities: {', '.join(missing)}")
        # Only devices with device-specific configuration have this one.
        device = self.virtio_pci_find_capability(VIRTIO_PCI_CAP_DEVICE_CFG)

        self.common = self._map_capability(common, VIRTIO_PCI_COMMON_CFG_V1_0_SIZEOF, 4,
                                           VIRTIO_PCI_MODERN_COMMON_CFG_SIZEOF)
        self.common_len = common["map_len"]
        self.caps[VIRTIO_PCI_CAP_COMMON_CFG] = common

        self.isr = self._map_capability(isr, 1, 1, 1)
        self.caps[VIRTIO_PCI_CAP_ISR_CFG] = isr

        if "notify_off_multiplier" not in notify:
            raise VirtioPciCapabilityError(
                f"VIRTIO_PCI_CAP_NOTIFY_CFG capability at config offset 0x{notify['cap']:02x}: cap_len "
                f"{notify['cap_len']} < {VIRTIO_PCI_NOTIFY_CAP_SIZEOF}, so it has no notify_off_multiplier")
        self.notify_offset_multiplier = notify["notify_off_multiplier"]
        self.notify_base = self._map_capability(notify, 2, 2, notify["length"])
        self.notify_len = notify["map_len"]
        self.notify_pa = notify["addr"]
        self.caps[VIRTIO_PCI_CAP_NOTIFY_CFG] = notify

        if device is not None:
            self.device = self._map_capability(device, 0, 4, PAGE_SIZE)
            self.device_len = device["map_len"]
            self.caps[VIRTIO_PCI_CAP_DEVICE_CFG] = device

        # The PCI_CFG window's bar/offset/length are driver-written, so its BAR is not checked.
        for cap in self.vendor_caps:
            if cap["cfg_type"] == VIRTIO_PCI_CAP_PCI_CFG:
                if cap["cap_len"] < VIRTIO_PCI_CFG_CAP_SIZEOF:
                    raise VirtioPciCapabilityError(
                        f"VIRTIO_PCI_CAP_PCI_CFG capability at config offset 0x{cap['cap']:02x}: "
                        f"cap_len {cap['cap_len']} < {VIRTIO_PCI_CFG_CAP_SIZEOF}")
                cap["data"] = cap["cap"] + VIRTIO_PCI_CFG_DATA
                self.pci_cfg_cap = cap["cap"]
                self.caps[VIRTIO_PCI_CAP_PCI_CFG] = cap
                break

        self.vq_notify_offset = {}
        self.log.info("virtio-pci %s: device id 0x%04x (virtio type %d), caps %s",
                      getattr(self.pci_dev, "pcie_id", "?"), self.device_id, self.id_device,
                      {_cap_name(t): (c["bar"], hex(c["offset"]), hex(c["length"])) for t, c in self.caps.items()})

    def vp_modern_remove(self):
        """Forget the mappings (Linux unmaps them and releases the BARs)."""
        self.common = None
        self.isr = None
        self.device = None
        self.notify_base = None
        self.common_len = self.device_len = self.notify_len = 0
        self.vq_notify_offset = {}
        self.modern_bars = 0

    # ------------------------------------------------------------------------------------------
    # Common configuration
    # ------------------------------------------------------------------------------------------

    async def vp_modern_get_features(self):
        """The 64 feature bits the device offers."""
        await self.vp_iowrite32(0, VIRTIO_PCI_COMMON_DFSELECT)
        features = await self.vp_ioread32(VIRTIO_PCI_COMMON_DF)
        await self.vp_iowrite32(1, VIRTIO_PCI_COMMON_DFSELECT)
        features |= await self.vp_ioread32(VIRTIO_PCI_COMMON_DF) << 32
        return features

    async def vp_modern_get_driver_features(self):
        """The 64 feature bits as the driver_feature registers read back."""
        await self.vp_iowrite32(0, VIRTIO_PCI_COMMON_GFSELECT)
        features = await self.vp_ioread32(VIRTIO_PCI_COMMON_GF)
        await self.vp_iowrite32(1, VIRTIO_PCI_COMMON_GFSELECT)
        features |= await self.vp_ioread32(VIRTIO_PCI_COMMON_GF) << 32
        return features

    async def vp_modern_set_features(self, features):
        """Write the 64 accepted feature bits (words 0 and 1)."""
        await self.vp_iowrite32(0, VIRTIO_PCI_COMMON_GFSELECT)
        await self.vp_iowrite32(features & 0xFFFFFFFF, VIRTIO_PCI_COMMON_GF)
        await self.vp_iowrite32(1, VIRTIO_PCI_COMMON_GFSELECT)
        await self.vp_iowrite32((features >> 32) & 0xFFFFFFFF, VIRTIO_PCI_COMMON_GF)

    async def vp_modern_generation(self):
        return await self.vp_ioread8(VIRTIO_PCI_COMMON_CFGGENERATION)

    async def vp_modern_get_status(self):
        return await self.vp_ioread8(VIRTIO_PCI_COMMON_STATUS)

    async def vp_modern_set_status(self, status):
        await self.vp_iowrite8(status, VIRTIO_PCI_COMMON_STATUS)

    async def vp_modern_get_queue_reset(self, index):
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_Q_RESET)

    async def vp_modern_set_queue_reset(self, index, max_polls=DEFAULT_MAX_POLLS):
        """Reset one queue (VIRTIO_F_RING_RESET) and wait until queue_reset and queue_enable read 0."""
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        await self.vp_iowrite16(1, VIRTIO_PCI_COMMON_Q_RESET)
        for field, name in ((VIRTIO_PCI_COMMON_Q_RESET, "queue_reset"),
                            (VIRTIO_PCI_COMMON_Q_ENABLE, "queue_enable")):
            for _ in range(max_polls):
                if not await self.vp_ioread16(field):
                    break
            else:
                raise VirtioError(f"queue {index}: {name} still reads non-zero after {max_polls} polls "
                                  "following a queue reset")

    async def vp_modern_queue_vector(self, index, vector):
        """Map queue ``index`` to MSI-X ``vector``; returns the read-back (NO_VECTOR = refused)."""
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        await self.vp_iowrite16(vector, VIRTIO_PCI_COMMON_Q_MSIX)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_Q_MSIX)

    async def vp_modern_config_vector(self, vector):
        """Map configuration changes to MSI-X ``vector``; returns the read-back."""
        await self.vp_iowrite16(vector, VIRTIO_PCI_COMMON_MSIX)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_MSIX)

    async def vp_modern_queue_address(self, index, desc_addr, driver_addr, device_addr):
        """Program the Descriptor, Driver (avail) and Device (used) area addresses of a queue."""
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        await self.vp_iowrite64_twopart(desc_addr, VIRTIO_PCI_COMMON_Q_DESCLO, VIRTIO_PCI_COMMON_Q_DESCHI)
        await self.vp_iowrite64_twopart(driver_addr, VIRTIO_PCI_COMMON_Q_AVAILLO, VIRTIO_PCI_COMMON_Q_AVAILHI)
        await self.vp_iowrite64_twopart(device_addr, VIRTIO_PCI_COMMON_Q_USEDLO, VIRTIO_PCI_COMMON_Q_USEDHI)

    async def vp_modern_set_queue_enable(self, index, enable):
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        await self.vp_iowrite16(1 if enable else 0, VIRTIO_PCI_COMMON_Q_ENABLE)

    async def vp_modern_get_queue_enable(self, index):
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_Q_ENABLE)

    async def vp_modern_set_queue_size(self, index, size):
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        await self.vp_iowrite16(size, VIRTIO_PCI_COMMON_Q_SIZE)

    async def vp_modern_get_queue_size(self, index):
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_Q_SIZE)

    async def vp_modern_get_num_queues(self):
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_NUMQ)

    async def vp_modern_get_queue_notify_off(self, index):
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_Q_NOFF)

    async def vp_modern_get_queue_notify_data(self, index):
        """queue_notif_config_data of a queue (meaningful with VIRTIO_F_NOTIF_CONFIG_DATA)."""
        await self.vp_iowrite16(index, VIRTIO_PCI_COMMON_Q_SELECT)
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_Q_NDATA)

    async def vp_modern_avq_num(self):
        """admin_queue_num (meaningful with VIRTIO_F_ADMIN_VQ)."""
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_ADM_Q_NUM)

    async def vp_modern_avq_index(self):
        """admin_queue_index (meaningful with VIRTIO_F_ADMIN_VQ)."""
        return await self.vp_ioread16(VIRTIO_PCI_COMMON_ADM_Q_IDX)

    def vp_check_common_size(self, features):
        """Raise if a negotiated feature needs a common-cfg field beyond the mapped length.

        Mirrors Linux's vp_check_common_size: NOTIF_CONFIG_DATA needs queue_notif_config_data,
        RING_RESET needs queue_reset, ADMIN_VQ needs the admin queue fields.
        """
        needs = ((VIRTIO_F_NOTIF_CONFIG_DATA, VIRTIO_PCI_COMMON_Q_NDATA + 2, "VIRTIO_F_NOTIF_CONFIG_DATA"),
                 (VIRTIO_F_RING_RESET, VIRTIO_PCI_COMMON_Q_RESET + 2, "VIRTIO_F_RING_RESET"),
                 (VIRTIO_F_ADMIN_VQ, VIRTIO_PCI_COMMON_ADM_Q_NUM + 2, "VIRTIO_F_ADMIN_VQ"))
        for fbit, end, name in needs:
            if features >> fbit & 1 and self.common_len < end:
                raise VirtioError(f"{name} negotiated but the common configuration is only "
                                  f"0x{self.common_len:x} bytes long (needs 0x{end:x})")

    # ------------------------------------------------------------------------------------------
    # Notifications and ISR
    # ------------------------------------------------------------------------------------------

    async def vp_modern_map_vq_notify(self, index):
        """Find the doorbell of queue ``index`` and return its bus address.

        notify address = notify cap base + queue_notify_off(index) * notify_off_multiplier.
        """
        off = await self.vp_modern_get_queue_notify_off(index)
        offset = off * self.notify_offset_multiplier
        if offset + 2 > self.notify_len:
            raise VirtioError(f"queue {index}: bad notification offset {off} (x {self.notify_offset_multiplier}) "
                              f"beyond the notify structure length {self.notify_len}")
        self.vq_notify_offset[index] = offset
        return self.notify_pa + offset

    async def vp_notify(self, index):
        """Kick queue ``index``: 16-bit write of the queue index to its doorbell (Linux's vp_notify)."""
        if index not in self.vq_notify_offset:
            await self.vp_modern_map_vq_notify(index)
        await self._iowrite("notify", self.notify_base, self.vq_notify_offset[index], 2, index)

    async def vp_notify_with_data(self, index, data):
        """Kick queue ``index`` with VIRTIO_F_NOTIFICATION_DATA: one 32-bit write of ``data``
        (``Virtqueue.vring_notification_data``: bits 15:0 the queue index, 31:16 the avail idx) to
        its doorbell (Linux's vp_notify_with_data, iowrite32). ``data`` is written as given, so
        tests can send stale or bogus values."""
        if index not in self.vq_notify_offset:
            await self.vp_modern_map_vq_notify(index)
        await self._iowrite("notify", self.notify_base, self.vq_notify_offset[index], 4, data & 0xFFFF_FFFF)

    async def vp_modern_read_isr(self):
        """Read (and so clear) the ISR status byte."""
        return await self._ioread("isr", self.isr, 0, 1)

    # ------------------------------------------------------------------------------------------
    # Device-specific configuration (Linux's vp_get / vp_set)
    # ------------------------------------------------------------------------------------------

    def _check_device_range(self, offset, length):
        if self.device is None:
            raise VirtioError("the device has no VIRTIO_PCI_CAP_DEVICE_CFG capability")
        if length not in (1, 2, 4, 8):
            raise ValueError(f"device config access of {length} bytes: only 1, 2, 4 or 8")
        if offset < 0 or offset + length > self.device_len:
            raise VirtioError(f"device config access {length}@0x{offset:x} beyond its length 0x{self.device_len:x}")

    async def vp_get(self, offset, length):
        """Read a little-endian device-config field of 1, 2, 4 or 8 bytes (8 = two 32-bit reads)."""
        self._check_device_range(offset, length)
        if length == 8:
            lo = await self._ioread("device", self.device, offset, 4)
            hi = await self._ioread("device", self.device, offset + 4, 4)
            return lo | hi << 32
        return await self._ioread("device", self.device, offset, length)

    async def vp_set(self, offset, length, value):
        """Write a device-config field of 1, 2, 4 or 8 bytes (8 = two 32-bit writes, low first)."""
        self._check_device_range(offset, length)
        if length == 8:
            await self._iowrite("device", self.device, offset, 4, value & 0xFFFFFFFF)
            await self._iowrite("device", self.device, offset + 4, 4, (value >> 32) & 0xFFFFFFFF)
        else:
            await self._iowrite("device", self.device, offset, length, value & ((1 << (8 * length)) - 1))

    # ------------------------------------------------------------------------------------------
    # PCI configuration access capability (VIRTIO_PCI_CAP_PCI_CFG). Linux never uses it.
    # ------------------------------------------------------------------------------------------

    async def _pci_cfg_select(self, bar, offset, length):
        if self.pci_cfg_cap is None:
            raise VirtioPciCapabilityError("the device has no VIRTIO_PCI_CAP_PCI_CFG capability")
        if length not in (1, 2, 4):
            raise ValueError(f"PCI_CFG window access of {length} bytes: only 1, 2 or 4")
        if offset % length:
            raise ValueError(f"PCI_CFG window offset 0x{offset:x} not aligned to its length {length}")
        # Spec §4.1.4.9: the driver writes cap.bar, cap.length, then cap.offset.
        await self._cfg_write(self.pci_cfg_cap + VIRTIO_PCI_CFG_BAR, 1, bar)
        await self._cfg_write(self.pci_cfg_cap + VIRTIO_PCI_CFG_LENGTH, 4, length)
        await self._cfg_write(self.pci_cfg_cap + VIRTIO_PCI_CFG_OFFSET, 4, offset)

    async def vp_modern_pci_cfg_read(self, bar, offset, length):
        """Read ``length`` bytes at ``offset`` of BAR ``bar`` through the PCI_CFG window."""
        await self._pci_cfg_select(bar, offset, length)
        return await self._cfg_read(self.pci_cfg_cap + VIRTIO_PCI_CFG_DATA, length)

    async def vp_modern_pci_cfg_write(self, bar, offset, length, value):
        """Write ``length`` bytes at ``offset`` of BAR ``bar`` through the PCI_CFG window.

        The value sits in the low bytes of pci_cfg_data, as QEMU expects.
        """
        await self._pci_cfg_select(bar, offset, length)
        await self._cfg_write(self.pci_cfg_cap + VIRTIO_PCI_CFG_DATA, length, value)

    # ------------------------------------------------------------------------------------------
    # PCI core helpers cocotbext-pcie lacks
    # ------------------------------------------------------------------------------------------

    async def pci_intx(self, enable):
        """Clear (enable) or set (disable) PCI_COMMAND_INTX_DISABLE, like Linux's pci_intx()."""
        cmd = await self._cfg_read(PCI_COMMAND, 2)
        new = cmd & ~PCI_COMMAND_INTX_DISABLE if enable else cmd | PCI_COMMAND_INTX_DISABLE
        if new != cmd:
            await self._cfg_write(PCI_COMMAND, 2, new)
