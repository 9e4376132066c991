# SPDX-License-Identifier: Apache-2.0
"""Split virtqueue: memory layout in host memory and the driver-side ring verbs.

Mirrors Linux's ``drivers/virtio/virtio_ring.c`` (split ring only): the layout half
(``vring_create_virtqueue``, ``vring_alloc_queue_split``, ``virtqueue_get_*_addr``) and the verbs
``virtqueue_add_sgs`` (``virtqueue_add_split``), ``virtqueue_kick`` (``virtqueue_kick_prepare_split``
+ ``virtqueue_notify``), ``virtqueue_get_buf`` (``virtqueue_get_buf_ctx_split``, ``detach_buf_split``),
``virtqueue_disable_cb``, ``virtqueue_enable_cb`` (``virtqueue_enable_cb_prepare_split`` +
``virtqueue_poll``), ``virtqueue_enable_cb_delayed``, ``virtqueue_detach_unused_buf`` and
``vring_interrupt``; plus the layout helpers of ``include/uapi/linux/virtio_ring.h`` (``vring_init``,
``vring_size``).

Differences from Linux, all deliberate:

* The verbs are coroutines, because host memory (cocotbext-axi regions) is read and written
  with ``await``. Plain host memory completes at once, so a verb never really suspends except
  in the doorbell write (``virtqueue_notify``); a re-entered verb raises (Linux's START_USE).
* A scatter-gather entry is a ``(bus address, length)`` pair (or a ``HostBuffer``), and
  ``virtqueue_add_sgs`` takes the readable and the writable lists separately.
* Errors raise instead of returning -ENOSPC / NULL: ``VirtqueueFullError`` when the ring has no
  room, ``VirtqueueBadRingError`` when the device returns a used id that is not an outstanding
  head (Linux's BAD_RING, which also marks the queue broken).
* When the ring is full Linux forces a doorbell if the chain has readable parts ("for historical
  reasons"); this model does not, so kick counts stay exact.

Index wrap: avail and used indices are free-running 16-bit counters that start at 0 when the
device is reset (or the queue reset), and nothing lets a driver start them elsewhere. A test of
the wrap at 65535 -> 0 (SPL-24) therefore has to run more than 65536 requests through the queue;
``virtqueue_add_sgs`` / ``virtqueue_get_buf`` cost a few tens of microseconds of Python each, so
70 000 requests take seconds of Python time (the simulator time is the device's).

DMA checking: if the root complex carries a ``dma_checker`` (``models.pcie.dma_checker``), the
queue registers its rings with it and hands every chain's buffers to it (device ownership) from
``virtqueue_add_sgs`` until ``virtqueue_get_buf``.
"""

import inspect
import logging
import random

from cocotb.triggers import Event

from .pci_modern import VirtioError
from .uapi import (
    VIRTIO_F_NOTIFICATION_DATA,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VRING_AVAIL_ALIGN_SIZE,
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_ALIGN_SIZE,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    VRING_USED_ALIGN_SIZE,
    VRING_USED_F_NO_NOTIFY,
    vring_need_event,
)

# Not in Linux's uapi under these names: the sizes of the split ring elements.
VRING_DESC_SIZEOF = 16  # sizeof(struct vring_desc): le64 addr, le32 len, le16 flags, le16 next
VRING_AVAIL_ELEM_SIZEOF = 2  # one avail->ring[] entry
VRING_USED_ELEM_SIZEOF = 8  # sizeof(struct vring_used_elem): le32 id, le32 len
VRING_HDR_SIZEOF = 4  # le16 flags + le16 idx at the start of avail and used
VRING_EVENT_SIZEOF = 2  # used_event at the end of avail, avail_event at the end of used

# The ring alignment Linux's modern virtio-pci passes to vring_create_virtqueue (SMP_CACHE_BYTES on
# x86): the used ring starts on this boundary.
SMP_CACHE_BYTES = 64

# Split ring queue sizes are powers of two up to this (spec §2.7).
VIRTQUEUE_MAX_SIZE = 32768

# Field offsets inside avail and used (not in Linux's uapi under these names).
VRING_AVAIL_FLAGS = 0
VRING_AVAIL_IDX = 2
VRING_AVAIL_RING = 4
VRING_USED_FLAGS = 0
VRING_USED_IDX = 2
VRING_USED_RING = 4

# Field offsets inside struct vring_desc.
VRING_DESC_ADDR = 0
VRING_DESC_LEN = 8
VRING_DESC_FLAGS = 12
VRING_DESC_NEXT = 14

# Indices are free-running 16-bit counters.
VRING_IDX_MASK = 0xFFFF

# Linux kicks on its own after this many additions without a kick, so the device can tell how
# many entries are new (num_added must stay below 2**16).
VRING_MAX_NUM_ADDED = (1 << 16) - 1


def vring_desc_size(num):
    """Bytes of the descriptor table of a ``num``-entry split ring."""
    return VRING_DESC_SIZEOF * num


def vring_avail_size(num):
    """Bytes of the available ring, including used_event."""
    return VRING_HDR_SIZEOF + VRING_AVAIL_ELEM_SIZEOF * num + VRING_EVENT_SIZEOF


def vring_used_size(num):
    """Bytes of the used ring, including avail_event."""
    return VRING_HDR_SIZEOF + VRING_USED_ELEM_SIZEOF * num + VRING_EVENT_SIZEOF


def vring_used_event_offset(num):
    """Offset of used_event inside the available ring (Linux's vring_used_event())."""
    return VRING_AVAIL_RING + VRING_AVAIL_ELEM_SIZEOF * num


def vring_avail_event_offset(num):
    """Offset of avail_event inside the used ring (Linux's vring_avail_event())."""
    return VRING_USED_RING + VRING_USED_ELEM_SIZEOF * num


def _align_up(value, align):
    return (value + align - 1) & ~(align - 1)


def vring_size(num, align=SMP_CACHE_BYTES):
    """Bytes of a contiguous split ring: descriptors, avail, padding to ``align``, used."""
    return _align_up(vring_desc_size(num) + vring_avail_size(num), align) + vring_used_size(num)


def vring_init_offsets(num, align=SMP_CACHE_BYTES):
    """(desc, avail, used) offsets of a contiguous split ring starting at an ``align`` boundary."""
    desc = 0
    avail = desc + vring_desc_size(num)
    used = _align_up(avail + vring_avail_size(num), align)
    return desc, avail, used


def vring_desc_pack(addr, length, flags, next_):
    """The 16 little-endian bytes of one struct vring_desc."""
    return (addr.to_bytes(8, "little") + length.to_bytes(4, "little") + flags.to_bytes(2, "little")
            + next_.to_bytes(2, "little"))


def vring_desc_unpack(raw):
    """(addr, len, flags, next) of the 16 bytes of one struct vring_desc."""
    raw = bytes(raw)
    return (int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:12], "little"),
            int.from_bytes(raw[12:14], "little"), int.from_bytes(raw[14:16], "little"))


# ----------------------------------------------------------------------------------------------
# Host memory for buffers and indirect tables
# ----------------------------------------------------------------------------------------------

class HostBuffer:
    """A buffer in host memory: ``size`` bytes at bus address ``addr``.

    ``read``/``write`` are the driver's own (CPU) accesses: they go straight to the backing
    region, never through the root complex's address space, so a DMA checker does not see them.
    """

    __slots__ = ("addr", "size", "region", "offset", "block")

    def __init__(self, addr, size, region, offset, block=None):
        self.addr = addr
        self.size = size
        self.region = region
        self.offset = offset
        self.block = block  # (size class, block offset in region) for HostMemPool.free

    async def read(self, offset=0, length=None):
        if length is None:
            length = self.size - offset
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"read {length}@{offset} outside a {self.size}-byte host buffer")
        return bytes(await self.region.read(self.offset + offset, length))

    async def write(self, offset, data):
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(f"write {len(data)}@{offset} outside a {self.size}-byte host buffer")
        await self.region.write(self.offset + offset, bytes(data))

    @property
    def sg(self):
        """The (bus address, length) pair of the whole buffer."""
        return (self.addr, self.size)

    def __repr__(self):
        return f"HostBuffer(0x{self.addr:x}, {self.size})"


class HostMemPool:
    """A recycling allocator of host buffers on top of a cocotbext-axi ``Pool`` (``rc.mem_pool``).

    cocotbext pools cannot free a region, so long tests (70 000 requests) would run out of
    memory: this carves buffers out of ``chunk_size`` regions in power-of-two size classes and
    keeps freed blocks for reuse. ``alloc(size, align, misalign)`` returns a buffer whose
    address is ``misalign`` bytes past an ``align`` boundary (odd addresses for framing tests).
    Never returns bus address 0.
    """

    MIN_BLOCK = 64
    DEFAULT_CHUNK = 64 * 1024

    def __init__(self, mem_pool, chunk_size=DEFAULT_CHUNK):
        self.mem_pool = mem_pool
        self.chunk_size = chunk_size
        self._free = {}  # size class -> [(region, block offset)]
        self._region = None
        self._cursor = 0
        self.allocated = 0  # buffers handed out and not freed

    @classmethod
    def for_pool(cls, mem_pool):
        """The allocator shared by every user of ``mem_pool`` (created on first use)."""
        pool = getattr(mem_pool, "_virtio_host_mem_pool", None)
        if pool is None:
            pool = cls(mem_pool)
            mem_pool._virtio_host_mem_pool = pool
        return pool

    def _new_block(self, block_size):
        if block_size > self.chunk_size // 2:
            region = self.mem_pool.alloc_region(block_size + self.MIN_BLOCK)
            offset = self.MIN_BLOCK if region.get_absolute_address(0) == 0 else 0
            return region, offset
        if self._region is None or self._cursor + block_size > self.chunk_size:
            self._region = self.mem_pool.alloc_region(self.chunk_size)
            self._cursor = self.MIN_BLOCK if self._region.get_absolute_address(0) == 0 else 0
        offset = self._cursor
        self._cursor += block_size
        return self._region, offset

    def alloc(self, size, align=16, misalign=0):
        """A ``size``-byte buffer at an address ≡ ``misalign`` (mod ``align``)."""
        if size < 1:
            raise ValueError(f"host buffer of {size} bytes")
        if align < 1 or align & (align - 1):
            raise ValueError(f"alignment {align} is not a power of 2")
        misalign %= align
        need = size + align - 1 + misalign
        block_size = max(self.MIN_BLOCK, 1 << (need - 1).bit_length())
        free = self._free.setdefault(block_size, [])
        region, block_offset = free.pop() if free else self._new_block(block_size)
        base = region.get_absolute_address(block_offset)
        addr = _align_up(base, align) + misalign
        self.allocated += 1
        return HostBuffer(addr, size, region, addr - region.get_absolute_address(0),
                          (block_size, block_offset))

    async def alloc_with(self, data, align=16, misalign=0):
        """alloc() and fill with ``data``."""
        buf = self.alloc(len(data), align, misalign)
        await buf.write(0, data)
        return buf

    def free(self, buf):
        if buf.block is None:
            raise ValueError(f"{buf!r} was not allocated by this pool")
        block_size, block_offset = buf.block
        buf.block = None
        self._free.setdefault(block_size, []).append((buf.region, block_offset))
        self.allocated -= 1


# ----------------------------------------------------------------------------------------------
# The virtqueue
# ----------------------------------------------------------------------------------------------

class VirtqueueError(VirtioError):
    """A ring verb was used wrongly (driver side)."""


class VirtqueueFullError(VirtqueueError):
    """No room in the ring for the chain (Linux's -ENOSPC)."""


class VirtqueueBrokenError(VirtqueueError):
    """The queue is marked broken after a device error; reset the device."""


class VirtqueueBadRingError(VirtqueueError):
    """The device broke the ring protocol (Linux's BAD_RING): the queue is now broken."""


class VringDescExtra:
    """Driver-private copy of one descriptor (Linux's struct vring_desc_extra)."""

    __slots__ = ("addr", "len", "flags", "next")

    def __init__(self, next_):
        self.addr = 0
        self.len = 0
        self.flags = 0
        self.next = next_


class VringDescStateSplit:
    """Per-head state (Linux's struct vring_desc_state_split): the caller's token, the indirect
    table (a HostBuffer) if any, and the number of ring descriptors the chain took."""

    __slots__ = ("data", "indir_desc", "num_descs")

    def __init__(self, data, indir_desc, num_descs):
        self.data = data
        self.indir_desc = indir_desc
        self.num_descs = num_descs


def _as_sg(entry):
    if isinstance(entry, HostBuffer):
        return entry.addr, entry.size
    addr, length = entry
    return int(addr), int(length)


class Virtqueue:
    """A split virtqueue: its memory in the host, its identity on the device, and the driver's
    ring state.

    The descriptor table, available ring and used ring are windows (``desc``, ``avail``, ``used``)
    into one region of host memory laid out as ``vring_init`` lays it out, with bus addresses
    ``desc_addr``, ``avail_addr`` and ``used_addr``.

    ``callback`` is called with the virtqueue on each used-buffer interrupt that finds used
    buffers (a plain function or a coroutine function). ``interrupt_count`` and
    ``interrupt_event`` count every interrupt; ``spurious_interrupt_count`` those that found
    nothing new in the used ring (Linux returns IRQ_NONE for them and does not call back).

    Ring state, under Linux's names: ``free_head``, ``num_free``, ``num_added``,
    ``last_used_idx``, ``avail_idx_shadow``, ``avail_flags_shadow``, ``desc_state``,
    ``desc_extra``, ``event_triggered``, ``broken``; ``indirect``, ``event`` and
    ``notification_data`` say whether VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX and
    VIRTIO_F_NOTIFICATION_DATA were negotiated (tests may change them to send what a driver must
    not).

    Counters: ``kicks_sent``, ``kicks_suppressed``, ``bufs_added``, ``bufs_used``.

    Test knobs: indirect tables go ``indirect_misalign`` bytes past an ``indirect_align``
    boundary (SPL-08: misalign 8 for 8-byte alignment; align 4096 and misalign 4096 - 32 for a
    table that crosses a 4 KiB page); ``indirect_extra_flags`` is ORed into the flags of the
    descriptor that points to a table (VRING_DESC_F_WRITE: SPL-06).
    """

    def __init__(self, vdev, index, num, name, callback, region, region_offset, vring_align=SMP_CACHE_BYTES,
                 mem_pool=None):
        self.vdev = vdev
        self.index = index
        self.num = num
        self.num_max = num
        self.name = name
        self.callback = callback
        self.vector = None  # MSI-X vector read back from the device, or VIRTIO_MSI_NO_VECTOR
        self.notify_addr = None  # bus address of the doorbell, once mapped
        self.vring_align = vring_align

        self.region = region
        desc_off, avail_off, used_off = vring_init_offsets(num, vring_align)
        base = region_offset
        self.desc = region.create_window(base + desc_off, vring_desc_size(num))
        self.avail = region.create_window(base + avail_off, vring_avail_size(num))
        self.used = region.create_window(base + used_off, vring_used_size(num))
        self.desc_addr = self.desc.get_absolute_address(0)
        self.avail_addr = self.avail.get_absolute_address(0)
        self.used_addr = self.used.get_absolute_address(0)
        self._check_alignment()

        self.interrupt_count = 0
        self.spurious_interrupt_count = 0
        self.interrupt_event = Event()
        self.log = logging.getLogger("cocotb.virtio.ring")

        if mem_pool is None:
            mem_pool = getattr(getattr(vdev, "rc", None), "mem_pool", None)
        self.mem_pool = mem_pool
        self.host_mem = HostMemPool.for_pool(mem_pool) if mem_pool is not None else None

        # Ring state (__vring_new_virtqueue)
        features = getattr(vdev, "features", 0) or 0
        self.indirect = bool(features >> VIRTIO_RING_F_INDIRECT_DESC & 1)
        self.event = bool(features >> VIRTIO_RING_F_EVENT_IDX & 1)
        # the doorbell: vp_notify_with_data with VIRTIO_F_NOTIFICATION_DATA, else vp_notify
        # (Linux picks vq->notify the same way in setup_vq)
        self.notification_data = bool(features >> VIRTIO_F_NOTIFICATION_DATA & 1)
        self.broken = False
        self.free_head = 0
        self.num_free = num
        self.num_added = 0
        self.last_used_idx = 0
        self.event_triggered = False
        self.avail_flags_shadow = 0
        self.avail_idx_shadow = 0
        self.desc_state = [None] * num
        self.desc_extra = [VringDescExtra(i + 1) for i in range(num)]  # vring_alloc_desc_extra

        self.kicks_sent = 0
        self.kicks_suppressed = 0
        self.bufs_added = 0
        self.bufs_used = 0
        self.indirect_align = VRING_DESC_ALIGN_SIZE
        self.indirect_misalign = 0
        self.indirect_extra_flags = 0
        self._in_use = None
        self._dma_checker = None

    def _check_alignment(self):
        for name, addr, align in (("descriptor table", self.desc_addr, VRING_DESC_ALIGN_SIZE),
                                  ("available ring", self.avail_addr, VRING_AVAIL_ALIGN_SIZE),
                                  ("used ring", self.used_addr, VRING_USED_ALIGN_SIZE)):
            if addr % align:
                raise AssertionError(f"vq {self.index}: {name} at 0x{addr:x} is not {align}-byte aligned; "
                                     "the device may reject or mis-read it")

    @classmethod
    async def vring_create_virtqueue(cls, vdev, index, num, name, callback, mem_pool,
                                     vring_align=SMP_CACHE_BYTES):
        """Allocate a zeroed ``num``-entry split ring from ``mem_pool`` and wrap it.

        The region gets ``vring_align`` bytes of slack so the ring can start on an aligned bus
        address whatever alignment the pool gives, and never at bus address 0 (the pool starts
        there; a device may rightly treat DMA to address 0 as a driver bug).

        Without a callback, VRING_AVAIL_F_NO_INTERRUPT is set as Linux does ("tell the other side
        not to bother us"); with EVENT_IDX only the shadow is set (used_event stays 0).
        """
        if num < 1 or num > VIRTQUEUE_MAX_SIZE or num & (num - 1):
            raise ValueError(f"vq {index}: split ring size {num} is not a power of 2 in 1..{VIRTQUEUE_MAX_SIZE}")
        align = max(vring_align, VRING_DESC_ALIGN_SIZE)
        size = vring_size(num, vring_align)
        region = mem_pool.alloc_region(size + align)
        base = region.get_absolute_address(0)
        offset = _align_up(base, align) - base
        if base + offset == 0:
            offset = align
        # Zero the whole ring: avail->flags/idx, used->flags (the driver MUST initialise it to 0)
        # and used->idx all start at 0.
        await region.write(offset, bytes(size))
        vq = cls(vdev, index, num, name, callback, region, offset, vring_align, mem_pool=mem_pool)
        if callback is None:
            vq.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT
            if not vq.event:
                await vq.vring_write_avail_flags(vq.avail_flags_shadow)
        vq.dma_checker()  # register the rings now if a checker is installed
        return vq

    # ------------------------------------------------------------------------------------------
    # Linux's accessors
    # ------------------------------------------------------------------------------------------

    def virtqueue_get_vring_size(self):
        return self.num

    def virtqueue_get_desc_addr(self):
        return self.desc_addr

    def virtqueue_get_avail_addr(self):
        return self.avail_addr

    def virtqueue_get_used_addr(self):
        return self.used_addr

    def virtqueue_is_broken(self):
        return self.broken

    @property
    def used_event_addr(self):
        """Bus address of used_event (avail + 4 + 2*num)."""
        return self.avail_addr + vring_used_event_offset(self.num)

    @property
    def avail_event_addr(self):
        """Bus address of avail_event (used + 4 + 8*num)."""
        return self.used_addr + vring_avail_event_offset(self.num)

    def dma_checker(self):
        """The DMA checker installed on the root complex (``rc.dma_checker``), or None.

        The first time one is found the rings are registered with it.
        """
        checker = self._dma_checker
        if checker is None:
            checker = getattr(getattr(self.vdev, "rc", None), "dma_checker", None)
            if checker is not None:
                self._dma_checker = checker
                checker.register_vring(self)
        return checker

    # ------------------------------------------------------------------------------------------
    # Raw ring fields (driver-side CPU accesses; also test hooks)
    # ------------------------------------------------------------------------------------------

    async def vring_read_used_idx(self):
        return int.from_bytes(await self.used.read(VRING_USED_IDX, 2), "little")

    async def vring_read_used_flags(self):
        return int.from_bytes(await self.used.read(VRING_USED_FLAGS, 2), "little")

    async def vring_read_avail_event(self):
        return int.from_bytes(await self.used.read(vring_avail_event_offset(self.num), 2), "little")

    async def vring_read_used_elem(self, slot):
        raw = bytes(await self.used.read(VRING_USED_RING + VRING_USED_ELEM_SIZEOF * slot, VRING_USED_ELEM_SIZEOF))
        return int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little")

    async def vring_write_used_event(self, value):
        await self.avail.write(vring_used_event_offset(self.num), (value & VRING_IDX_MASK).to_bytes(2, "little"))

    async def vring_write_avail_flags(self, value):
        await self.avail.write(VRING_AVAIL_FLAGS, value.to_bytes(2, "little"))

    async def vring_write_avail_idx(self, value):
        await self.avail.write(VRING_AVAIL_IDX, (value & VRING_IDX_MASK).to_bytes(2, "little"))

    async def vring_read_desc(self, i):
        """(addr, len, flags, next) of descriptor ``i`` of the ring's table."""
        return vring_desc_unpack(await self.desc.read(VRING_DESC_SIZEOF * i, VRING_DESC_SIZEOF))

    # ------------------------------------------------------------------------------------------
    # Serialisation guard (Linux's START_USE / END_USE debug check)
    # ------------------------------------------------------------------------------------------

    def _start_use(self, verb):
        if self._in_use is not None:
            raise VirtqueueError(f"vq {self.index} ({self.name}): {verb} while {self._in_use} is still running; "
                                 "ring verbs other than virtqueue_notify must not overlap")
        self._in_use = verb

    def _end_use(self):
        self._in_use = None

    # ------------------------------------------------------------------------------------------
    # virtqueue_add_sgs
    # ------------------------------------------------------------------------------------------

    def virtqueue_use_indirect(self, total_sg):
        """Linux's heuristic: go indirect when negotiated, with more than one buffer, and a free
        descriptor is left (the table takes one)."""
        return self.indirect and total_sg > 1 and self.num_free > 0

    async def virtqueue_add_sgs(self, sgs_out, sgs_in, data, indirect=None, direct_prefix=0, indirect_order=None):
        """Expose a buffer (a chain) to the device; returns the head descriptor index.

        ``sgs_out``: device-readable (bus address, length) pairs (or HostBuffers), in order;
        ``sgs_in``: device-writable ones, after them. ``data``: the token virtqueue_get_buf
        returns for this chain (must not be None).

        ``indirect``: None = Linux's rule (virtqueue_use_indirect); True = through an indirect
        table (needs VIRTIO_RING_F_INDIRECT_DESC); False = direct descriptors.

        Test options, both need ``indirect``: ``direct_prefix`` = the first that many sgs as direct
        descriptors chained to one INDIRECT descriptor holding the rest (SPL-07; Linux never does
        this); ``indirect_order`` = a permutation of range(n) giving the table slot of each sg, so
        ``next`` fields are out of order (SPL-08); or "shuffle" for a random one.

        Raises VirtqueueFullError when fewer descriptors are free than the chain needs, and
        VirtqueueBrokenError on a broken queue. The new entry is visible to the device (avail idx
        moved) but the device is not notified: call virtqueue_kick.
        """
        sgs_out = [_as_sg(sg) for sg in sgs_out]
        sgs_in = [_as_sg(sg) for sg in sgs_in]
        self._start_use("virtqueue_add_sgs")
        try:
            head = await self._virtqueue_add_split(sgs_out, sgs_in, data, indirect, direct_prefix, indirect_order)
        finally:
            self._end_use()
        # Very unlikely but possible: the device could no longer tell how many entries are new.
        if self.num_added == VRING_MAX_NUM_ADDED:
            await self.virtqueue_kick()
        return head

    async def _virtqueue_add_split(self, sgs_out, sgs_in, data, indirect, direct_prefix, indirect_order):
        if self.broken:
            raise VirtqueueBrokenError(f"vq {self.index} ({self.name}) is broken: reset the device")
        if data is None:
            raise ValueError("virtqueue_add_sgs: data (the completion token) must not be None")
        sgs = [(addr, length, 0) for addr, length in sgs_out] + \
              [(addr, length, VRING_DESC_F_WRITE) for addr, length in sgs_in]
        total_sg = len(sgs)
        if total_sg == 0:
            raise ValueError("virtqueue_add_sgs: no buffers")
        for addr, length, _ in sgs:
            if length < 1 or length > 0xFFFFFFFF:
                raise ValueError(f"virtqueue_add_sgs: buffer at 0x{addr:x} has length {length} (1..2**32-1)")

        if indirect is None:
            use_indirect = self.virtqueue_use_indirect(total_sg)
        elif indirect:
            if not self.indirect:
                raise VirtqueueError(f"vq {self.index}: indirect table asked for, but VIRTIO_RING_F_INDIRECT_DESC "
                                     "was not negotiated")
            use_indirect = True
        else:
            use_indirect = False
        if (direct_prefix or indirect_order is not None) and not use_indirect:
            raise ValueError("direct_prefix and indirect_order only apply to an indirect chain")
        if not 0 <= direct_prefix < total_sg:
            raise ValueError(f"direct_prefix {direct_prefix} must leave at least one sg for the table")

        direct = sgs[:direct_prefix] if use_indirect else sgs
        table_sgs = sgs[direct_prefix:] if use_indirect else []
        descs_used = len(direct) + (1 if use_indirect else 0)
        if not use_indirect and total_sg > self.num:
            raise VirtqueueError(f"vq {self.index}: a chain of {total_sg} descriptors can never fit a ring of "
                                 f"{self.num} (negotiate INDIRECT_DESC or split the request)")
        if self.num_free < descs_used:
            raise VirtqueueFullError(f"vq {self.index} ({self.name}): no room for {descs_used} descriptor(s): "
                                     f"{self.num_free} of {self.num} free")

        # Indirect table first (the chain's last descriptor points to it).
        table = None
        if use_indirect:
            n = len(table_sgs)
            if indirect_order == "shuffle":
                order = list(range(n))
                random.shuffle(order)
                if n > 1 and order[0] != 0:
                    # the device starts at entry 0: keep sg 0 there, shuffle the rest
                    order[order.index(0)] = order[0]
                    order[0] = 0
            elif indirect_order is not None:
                order = list(indirect_order)
                if sorted(order) != list(range(n)) or order[0] != 0:
                    raise ValueError(f"indirect_order must be a permutation of range({n}) starting with 0")
            else:
                order = list(range(n))
            entries = [b""] * n
            for k, (addr, length, flags) in enumerate(table_sgs):
                nxt = order[k + 1] if k + 1 < n else 0
                if k + 1 < n:
                    flags |= VRING_DESC_F_NEXT
                entries[order[k]] = vring_desc_pack(addr, length, flags, nxt)
            table = self._alloc_indirect(n)
            await table.write(0, b"".join(entries))

        # Direct descriptors, following the free list (virtqueue_add_desc_split).
        head = self.free_head
        i = head
        ring_descs = list(direct)
        if use_indirect:
            ring_descs.append((table.addr, table.size, VRING_DESC_F_INDIRECT | self.indirect_extra_flags))
        for k, (addr, length, flags) in enumerate(ring_descs):
            last = k == len(ring_descs) - 1
            extra = self.desc_extra[i]
            if not last:
                flags |= VRING_DESC_F_NEXT
            nxt = extra.next
            extra.addr, extra.len, extra.flags = addr, length, flags
            # As Linux, .next is the free list's next even where NEXT is clear (the device ignores it).
            await self.desc.write(VRING_DESC_SIZEOF * i, vring_desc_pack(addr, length, flags, nxt & VRING_IDX_MASK))
            i = nxt
        self.num_free -= descs_used
        self.free_head = i

        self.desc_state[head] = VringDescStateSplit(data, table, descs_used)

        checker = self.dma_checker()
        if checker is not None:
            spans = [(addr, length, "in" if flags & VRING_DESC_F_WRITE else "out") for addr, length, flags in sgs]
            if table is not None:
                spans.append((table.addr, table.size, "indirect"))
            checker.own((self, head), spans, name=f"vq {self.index} head {head}")

        # Ring entry, then the index that exposes it (the order the device relies on).
        slot = self.avail_idx_shadow & (self.num - 1)
        await self.avail.write(VRING_AVAIL_RING + VRING_AVAIL_ELEM_SIZEOF * slot, head.to_bytes(2, "little"))
        self.avail_idx_shadow = (self.avail_idx_shadow + 1) & VRING_IDX_MASK
        await self.vring_write_avail_idx(self.avail_idx_shadow)
        self.num_added += 1
        self.bufs_added += 1
        return head

    def _alloc_indirect(self, n):
        if self.host_mem is None:
            raise VirtqueueError(f"vq {self.index}: no host memory pool for indirect tables")
        return self.host_mem.alloc(n * VRING_DESC_SIZEOF, self.indirect_align, self.indirect_misalign)

    # ------------------------------------------------------------------------------------------
    # virtqueue_kick
    # ------------------------------------------------------------------------------------------

    async def virtqueue_kick_prepare(self):
        """True if the device wants a doorbell for the entries added since the last kick.

        With EVENT_IDX: vring_need_event(used->avail_event, new, old); otherwise: used->flags has
        no VRING_USED_F_NO_NOTIFY. Read after the avail idx write (they are in order here).
        """
        self._start_use("virtqueue_kick_prepare")
        try:
            new = self.avail_idx_shadow
            old = (new - self.num_added) & VRING_IDX_MASK
            self.num_added = 0
            if self.event:
                needs_kick = vring_need_event(await self.vring_read_avail_event(), new, old)
            else:
                needs_kick = not await self.vring_read_used_flags() & VRING_USED_F_NO_NOTIFY
        finally:
            self._end_use()
        return needs_kick

    async def virtqueue_notify(self):
        """Ring the doorbell (may overlap other verbs). False if the queue is broken."""
        if self.broken:
            return False
        self.kicks_sent += 1
        await self.notify()
        return True

    async def virtqueue_kick(self):
        """kick_prepare, then notify if the device asked for it. Counts ``kicks_sent`` and
        ``kicks_suppressed``. Returns False only if the queue is broken."""
        if await self.virtqueue_kick_prepare():
            return await self.virtqueue_notify()
        self.kicks_suppressed += 1
        return True

    async def notify(self):
        """Ring this queue's doorbell through the transport (Linux's vq->notify): a 32-bit write
        of vring_notification_data with VIRTIO_F_NOTIFICATION_DATA, else a 16-bit write of the
        queue index."""
        if self.notification_data:
            await self.vdev.mdev.vp_notify_with_data(self.index, self.vring_notification_data())
        else:
            await self.vdev.mdev.vp_notify(self.index)

    def vring_notification_data(self, avail_idx=None):
        """The 32-bit value of a doorbell with VIRTIO_F_NOTIFICATION_DATA (Linux's
        vring_notification_data, split ring): bits 15:0 the queue index, bits 31:16 the avail idx
        the driver has published (next_off in bits 30:16, next_wrap in bit 31 are its bits 14:0
        and 15). ``avail_idx`` overrides the shadow idx (tests send stale or bogus values)."""
        idx = self.avail_idx_shadow if avail_idx is None else avail_idx & VRING_IDX_MASK
        return idx << 16 | self.index

    # ------------------------------------------------------------------------------------------
    # virtqueue_get_buf
    # ------------------------------------------------------------------------------------------

    async def more_used(self):
        """True if the device has used buffers the driver has not taken yet."""
        return self.last_used_idx != await self.vring_read_used_idx()

    def _bad_ring(self, message):
        self.broken = True
        self.log.error("vq %d (%s): %s", self.index, self.name, message)
        raise VirtqueueBadRingError(f"vq {self.index} ({self.name}): {message}")

    async def virtqueue_get_buf(self):
        """Take the next used buffer: returns (data, len) or None if there is none.

        ``len`` is what the device wrote in the used element (bytes written into the writable
        part). The chain's descriptors go back on the free list, its indirect table is freed and
        the DMA checker is told the device no longer owns its buffers. With callbacks enabled,
        used_event is moved to the new last_used_idx as Linux does.

        Raises VirtqueueBadRingError (and marks the queue broken) if the used id is out of range
        or not an outstanding head.
        """
        if self.broken:
            return None
        self._start_use("virtqueue_get_buf")
        try:
            if not await self.more_used():
                return None
            slot = self.last_used_idx & (self.num - 1)
            i, length = await self.vring_read_used_elem(slot)
            if i >= self.num:
                self._bad_ring(f"used id {i} out of range (used ring slot {slot}, idx {self.last_used_idx})")
            state = self.desc_state[i]
            if state is None:
                self._bad_ring(f"used id {i} is not a head (used ring slot {slot}, idx {self.last_used_idx})")
            data = state.data
            await self.detach_buf_split(i)
            self.last_used_idx = (self.last_used_idx + 1) & VRING_IDX_MASK
            self.bufs_used += 1
            if not self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
                await self.vring_write_used_event(self.last_used_idx)
        finally:
            self._end_use()
        return data, length

    async def detach_buf_split(self, head):
        """Put a chain back on the free list and free its indirect table."""
        state = self.desc_state[head]
        self.desc_state[head] = None
        i = head
        while self.desc_extra[i].flags & VRING_DESC_F_NEXT:
            i = self.desc_extra[i].next
            self.num_free += 1
        self.desc_extra[i].next = self.free_head
        self.free_head = head
        self.num_free += 1
        checker = self._dma_checker
        if checker is not None:
            checker.release((self, head))
        if state.indir_desc is not None:
            self.host_mem.free(state.indir_desc)

    async def virtqueue_detach_unused_buf(self):
        """Take back one buffer the device never used (only valid once the device is reset or
        the queue is stopped): returns its data token, or None when none is left."""
        for i in range(self.num):
            state = self.desc_state[i]
            if state is None:
                continue
            await self.detach_buf_split(i)
            self.avail_idx_shadow = (self.avail_idx_shadow - 1) & VRING_IDX_MASK
            await self.vring_write_avail_idx(self.avail_idx_shadow)
            return state.data
        if self.num_free != self.num:
            raise VirtqueueError(f"vq {self.index}: {self.num - self.num_free} descriptors lost from the free list")
        return None

    # ------------------------------------------------------------------------------------------
    # Callbacks (used-buffer notification suppression)
    # ------------------------------------------------------------------------------------------

    async def virtqueue_disable_cb(self):
        """Ask the device not to interrupt (a hint). Without EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT
        in avail->flags; with EVENT_IDX Linux writes used_event = 0 (its own "hack")."""
        if self.event_triggered:
            return
        if not self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            self.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT
            if self.event:
                await self.vring_write_used_event(0)
            else:
                await self.vring_write_avail_flags(self.avail_flags_shadow)

    async def virtqueue_enable_cb_prepare(self):
        """Turn callbacks back on (clear NO_INTERRUPT, used_event = last_used_idx); returns
        last_used_idx for virtqueue_poll."""
        self._start_use("virtqueue_enable_cb_prepare")
        try:
            self.event_triggered = False
            if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
                self.avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT
                if not self.event:
                    await self.vring_write_avail_flags(self.avail_flags_shadow)
            last_used_idx = self.last_used_idx
            await self.vring_write_used_event(last_used_idx)
        finally:
            self._end_use()
        return last_used_idx

    async def virtqueue_poll(self, last_used_idx):
        """True if used buffers are pending past ``last_used_idx``."""
        if self.broken:
            return False
        return (last_used_idx & VRING_IDX_MASK) != await self.vring_read_used_idx()

    async def virtqueue_enable_cb(self):
        """Re-enable callbacks; False if buffers are already pending (the caller must then
        poll again, or it may miss them: no interrupt will come for them)."""
        last_used_idx = await self.virtqueue_enable_cb_prepare()
        return not await self.virtqueue_poll(last_used_idx)

    async def virtqueue_enable_cb_delayed(self):
        """Re-enable callbacks but ask for the interrupt only after about 3/4 of the outstanding
        buffers are used; False if that many are already used."""
        self.event_triggered = False
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            self.avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT
            if not self.event:
                await self.vring_write_avail_flags(self.avail_flags_shadow)
        bufs = ((self.avail_idx_shadow - self.last_used_idx) & VRING_IDX_MASK) * 3 // 4
        await self.vring_write_used_event(self.last_used_idx + bufs)
        used_idx = await self.vring_read_used_idx()
        return not ((used_idx - self.last_used_idx) & VRING_IDX_MASK) > bufs

    # ------------------------------------------------------------------------------------------
    # Interrupt entry
    # ------------------------------------------------------------------------------------------

    async def vring_interrupt(self):
        """A used-buffer interrupt for this queue.

        Every interrupt is counted (``interrupt_count``, ``interrupt_event``). As in Linux, if
        nothing new is in the used ring the interrupt is not for us (``spurious_interrupt_count``)
        and the callback is not run; on a broken queue it is ignored.
        """
        self.interrupt_count += 1
        self.interrupt_event.set()
        if not await self.more_used():
            self.spurious_interrupt_count += 1
            return
        if self.broken:
            return
        if self.event:
            self.event_triggered = True
        if self.callback is not None:
            result = self.callback(self)
            if inspect.isawaitable(result):
                await result

    def vring_del_virtqueue(self):
        """The queue is gone (after a device or queue reset, before its memory could be reused):
        the DMA checker forgets its rings and chains, so any later device access to them is an
        error (RST-02, VQ-01). Outstanding chains stay in ``desc_state`` for
        virtqueue_detach_unused_buf. Idempotent."""
        checker = self._dma_checker
        self._dma_checker = None
        self.broken = True
        if checker is not None:
            checker.unregister_vring(self)

    # ------------------------------------------------------------------------------------------

    def outstanding(self):
        """Heads the device currently owns (added, not yet returned by get_buf)."""
        return [i for i, state in enumerate(self.desc_state) if state is not None]

    def check_free_list(self):
        """Walk the free list and check it holds exactly num_free distinct descriptors that no
        outstanding chain uses (a consistency check for tests)."""
        in_chains = set()
        for head, state in enumerate(self.desc_state):
            if state is None:
                continue
            i = head
            count = 1
            in_chains.add(i)
            while self.desc_extra[i].flags & VRING_DESC_F_NEXT:
                i = self.desc_extra[i].next
                in_chains.add(i)
                count += 1
            if count != state.num_descs:
                raise AssertionError(f"vq {self.index}: chain at head {head} has {count} descriptors, "
                                     f"expected {state.num_descs}")
        seen = set()
        i = self.free_head
        for _ in range(self.num_free):
            if i >= self.num or i in seen or i in in_chains:
                raise AssertionError(f"vq {self.index}: free list broken at descriptor {i}")
            seen.add(i)
            i = self.desc_extra[i].next
        if len(seen) + len(in_chains) != self.num:
            raise AssertionError(f"vq {self.index}: {len(seen)} free + {len(in_chains)} in chains != {self.num}")

    def __repr__(self):
        return (f"Virtqueue(index={self.index}, name={self.name!r}, num={self.num}, vector={self.vector}, "
                f"desc=0x{self.desc_addr:x}, avail=0x{self.avail_addr:x}, used=0x{self.used_addr:x})")
