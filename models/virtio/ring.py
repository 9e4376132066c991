# SPDX-License-Identifier: Apache-2.0
"""Split virtqueue memory layout in host memory.

Mirrors the layout half of Linux's ``drivers/virtio/virtio_ring.c`` (``vring_create_virtqueue``,
``vring_alloc_queue_split``, ``virtqueue_get_*_addr``, ``vring_interrupt``) and the layout helpers
of ``include/uapi/linux/virtio_ring.h`` (``vring_init``, ``vring_size``).

Only the memory layout and the interrupt entry point are here; the ring verbs
(``virtqueue_add_sgs``, ``virtqueue_kick``, ``virtqueue_get_buf``, ...) come later.
"""

import inspect
import logging

from cocotb.triggers import Event

from .uapi import VRING_AVAIL_ALIGN_SIZE, VRING_DESC_ALIGN_SIZE, VRING_USED_ALIGN_SIZE

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


class Virtqueue:
    """A split virtqueue: its memory in the host and its identity on the device.

    The descriptor table, available ring and used ring are windows (``desc``, ``avail``, ``used``)
    into one region of host memory laid out as ``vring_init`` lays it out, with bus addresses
    ``desc_addr``, ``avail_addr`` and ``used_addr``.

    ``callback`` is called with the virtqueue on each used-buffer interrupt (a plain function or a
    coroutine function). ``interrupt_count`` and ``interrupt_event`` let tests observe the
    interrupts.
    """

    def __init__(self, vdev, index, num, name, callback, region, region_offset, vring_align=SMP_CACHE_BYTES):
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
        self.interrupt_event = Event()
        self.log = logging.getLogger("cocotb.virtio.ring")

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
        return cls(vdev, index, num, name, callback, region, offset, vring_align)

    # Linux's accessors
    def virtqueue_get_vring_size(self):
        return self.num

    def virtqueue_get_desc_addr(self):
        return self.desc_addr

    def virtqueue_get_avail_addr(self):
        return self.avail_addr

    def virtqueue_get_used_addr(self):
        return self.used_addr

    async def notify(self):
        """Ring this queue's doorbell through the transport (Linux's vq->notify)."""
        await self.vdev.mdev.vp_notify(self.index)

    async def vring_interrupt(self):
        """A used-buffer interrupt for this queue: count it and run the callback.

        Linux first checks more_used() and drops the interrupt if nothing was used; that check
        needs the driver's last_used_idx, which arrives with virtqueue_get_buf.
        """
        self.interrupt_count += 1
        self.interrupt_event.set()
        if self.callback is not None:
            result = self.callback(self)
            if inspect.isawaitable(result):
                await result

    def __repr__(self):
        return (f"Virtqueue(index={self.index}, name={self.name!r}, num={self.num}, vector={self.vector}, "
                f"desc=0x{self.desc_addr:x}, avail=0x{self.avail_addr:x}, used=0x{self.used_addr:x})")
