# SPDX-License-Identifier: Apache-2.0
"""Reference device side of a split virtqueue, in Python.

``VringDeviceModel`` does what the RTL ring engine does, through a DMA port (any object with
async ``read(addr, length)`` and ``write(addr, data)``: the root complex's
``mem_address_space``, or a ``DmaChecker.device_port`` so that every access is checked): reads
the available index and ring, walks each descriptor chain (NEXT, WRITE, INDIRECT, with the
malformed-chain checks of spec §2.7.5), hands the readable bytes to a request handler, writes
the answer into the writable buffers, then the used element, then the used index, then decides
whether to interrupt (EVENT_IDX ``used_event`` or VRING_AVAIL_F_NO_INTERRUPT).

It exists to prove the driver side without RTL, and as an executable statement of what the
device must do. It is deliberately simple: one chain at a time, no prefetch.

Options: ``reorder`` completes the fetched chains in a random order (VQ-05: completion order is
free); ``batch`` publishes that many used elements per used idx write; ``no_notify`` asks the
driver for no doorbells (VRING_USED_F_NO_NOTIFY, or avail_event left behind with EVENT_IDX).
"""

import random

from models.virtio.ring import (
    VRING_AVAIL_FLAGS,
    VRING_AVAIL_IDX,
    VRING_AVAIL_RING,
    VRING_DESC_SIZEOF,
    VRING_USED_FLAGS,
    VRING_USED_IDX,
    VRING_USED_RING,
    VRING_USED_ELEM_SIZEOF,
    vring_avail_event_offset,
    vring_desc_unpack,
    vring_used_event_offset,
)
from models.virtio.uapi import (
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    VRING_USED_F_NO_NOTIFY,
    vring_need_event,
)


class VringDeviceError(Exception):
    """The driver broke the ring protocol (a real device would set DEVICE_NEEDS_RESET)."""


class VringChain:
    """One descriptor chain as the device found it."""

    __slots__ = ("head", "avail_idx", "out_spans", "in_spans", "indirect")

    def __init__(self, head, avail_idx):
        self.head = head
        self.avail_idx = avail_idx
        self.out_spans = []  # [(addr, len)] device-readable, in order
        self.in_spans = []  # [(addr, len)] device-writable, in order
        self.indirect = False

    @property
    def out_len(self):
        return sum(length for _, length in self.out_spans)

    @property
    def in_len(self):
        return sum(length for _, length in self.in_spans)

    def __repr__(self):
        return f"VringChain(head={self.head}, out={self.out_spans}, in={self.in_spans}, indirect={self.indirect})"


def _u16(raw):
    return int.from_bytes(raw, "little")


class VringDeviceModel:
    """The device side of one split ring. See the module docstring."""

    def __init__(self, dma, num, desc_addr, avail_addr, used_addr, event_idx=False, indirect=True,
                 irq=None, rng=None, max_chain=None):
        self.dma = dma
        self.num = num
        self.desc_addr = desc_addr
        self.avail_addr = avail_addr
        self.used_addr = used_addr
        self.event_idx = event_idx
        self.indirect = indirect
        self.irq = irq  # async or plain callable, called for each used-buffer notification
        self.rng = rng or random.Random(0)
        self.max_chain = max_chain or num

        self.last_avail_idx = 0
        self.used_idx = 0
        self.pending = []  # fetched chains not yet completed
        self.interrupts = 0
        self.interrupts_suppressed = 0
        self.chains_served = 0
        self.no_notify = False

    @classmethod
    def from_vq(cls, vq, dma, **kwargs):
        """A device for the driver's Virtqueue ``vq`` (same size, addresses and features)."""
        kwargs.setdefault("event_idx", vq.event)
        kwargs.setdefault("indirect", vq.indirect)
        return cls(dma, vq.num, vq.desc_addr, vq.avail_addr, vq.used_addr, **kwargs)

    # ------------------------------------------------------------------------------------------
    # Reading the available ring and the chains
    # ------------------------------------------------------------------------------------------

    async def read_avail_idx(self):
        return _u16(await self.dma.read(self.avail_addr + VRING_AVAIL_IDX, 2))

    async def _read_desc(self, table_addr, i):
        return vring_desc_unpack(await self.dma.read(table_addr + VRING_DESC_SIZEOF * i, VRING_DESC_SIZEOF))

    async def walk_chain(self, head, avail_idx=None):
        """Follow the chain starting at descriptor ``head``; raises VringDeviceError on a
        malformed chain (SPL-26)."""
        if head >= self.num:
            raise VringDeviceError(f"avail ring entry {head} >= queue size {self.num}")
        chain = VringChain(head, avail_idx)
        table, table_size, i = self.desc_addr, self.num, head
        in_table = False
        seen = 0
        while True:
            seen += 1
            if seen > max(self.max_chain, table_size):
                raise VringDeviceError(f"chain at head {head} is longer than {max(self.max_chain, table_size)} "
                                       "descriptors (a loop?)")
            addr, length, flags, nxt = await self._read_desc(table, i)
            if flags & VRING_DESC_F_INDIRECT:
                if in_table:
                    raise VringDeviceError(f"chain at head {head}: nested INDIRECT descriptor")
                if not self.indirect:
                    raise VringDeviceError(f"chain at head {head}: INDIRECT without VIRTIO_RING_F_INDIRECT_DESC")
                if flags & VRING_DESC_F_NEXT:
                    raise VringDeviceError(f"chain at head {head}: INDIRECT together with NEXT")
                if length == 0 or length % VRING_DESC_SIZEOF:
                    raise VringDeviceError(f"chain at head {head}: indirect table length {length} is not a "
                                           "non-zero multiple of 16")
                # The WRITE flag of the pointing descriptor is ignored (SPL-06).
                table, table_size, i = addr, length // VRING_DESC_SIZEOF, 0
                in_table = True
                chain.indirect = True
                seen = 0
                continue
            if flags & VRING_DESC_F_WRITE:
                chain.in_spans.append((addr, length))
            else:
                if chain.in_spans:
                    raise VringDeviceError(f"chain at head {head}: device-readable descriptor after a "
                                           "device-writable one")
                chain.out_spans.append((addr, length))
            if not flags & VRING_DESC_F_NEXT:
                return chain
            if nxt >= table_size:
                raise VringDeviceError(f"chain at head {head}: next {nxt} >= table size {table_size}")
            i = nxt

    async def fetch(self, limit=None):
        """Read the new available entries (at most ``limit``) and walk their chains; they join
        ``pending``. Returns the new chains."""
        avail_idx = await self.read_avail_idx()
        count = (avail_idx - self.last_avail_idx) & 0xFFFF
        if count > self.num:
            raise VringDeviceError(f"avail idx {avail_idx} is {count} entries past {self.last_avail_idx}, "
                                   f"more than the queue size {self.num}")
        if limit is not None:
            count = min(count, limit)
        chains = []
        for _ in range(count):
            idx = self.last_avail_idx
            slot = idx % self.num
            head = _u16(await self.dma.read(self.avail_addr + VRING_AVAIL_RING + 2 * slot, 2))
            chains.append(await self.walk_chain(head, idx))
            self.last_avail_idx = (idx + 1) & 0xFFFF
        self.pending.extend(chains)
        await self._update_avail_event()
        return chains

    async def _update_avail_event(self):
        if self.event_idx:
            # Ask for a doorbell for the next entry, unless no_notify (then leave it behind
            # by half the index space so vring_need_event stays false).
            value = self.last_avail_idx if not self.no_notify else (self.last_avail_idx + 0x8000) & 0xFFFF
            await self.dma.write(self.used_addr + vring_avail_event_offset(self.num), value.to_bytes(2, "little"))

    async def set_no_notify(self, on):
        """Ask the driver for no doorbells (without EVENT_IDX: used->flags; with it: avail_event)."""
        self.no_notify = on
        if self.event_idx:
            await self._update_avail_event()
        else:
            flags = VRING_USED_F_NO_NOTIFY if on else 0
            await self.dma.write(self.used_addr + VRING_USED_FLAGS, flags.to_bytes(2, "little"))

    # ------------------------------------------------------------------------------------------
    # Data and completion
    # ------------------------------------------------------------------------------------------

    async def read_out(self, chain):
        """All device-readable bytes of a chain, in order."""
        parts = [await self.dma.read(addr, length) for addr, length in chain.out_spans]
        return b"".join(bytes(p) for p in parts)

    async def write_in(self, chain, data):
        """Write ``data`` into the chain's writable buffers, in order; returns the bytes written."""
        if len(data) > chain.in_len:
            raise ValueError(f"{len(data)} bytes do not fit the {chain.in_len} writable bytes of head {chain.head}")
        pos = 0
        for addr, length in chain.in_spans:
            if pos >= len(data):
                break
            part = data[pos:pos + length]
            await self.dma.write(addr, part)
            pos += len(part)
        return pos

    async def push_used(self, chain, used_len):
        """Write the used element of ``chain`` at the next used slot (not yet published)."""
        slot = self.used_idx % self.num
        elem = chain.head.to_bytes(4, "little") + used_len.to_bytes(4, "little")
        await self.dma.write(self.used_addr + VRING_USED_RING + VRING_USED_ELEM_SIZEOF * slot, elem)
        self.used_idx = (self.used_idx + 1) & 0xFFFF

    async def publish(self, old_idx):
        """Write used idx (moving it from ``old_idx`` to the current count), then notify the
        driver if it asked. Returns True if an interrupt was sent."""
        new = self.used_idx
        await self.dma.write(self.used_addr + VRING_USED_IDX, new.to_bytes(2, "little"))
        # Read the suppression fields only after the idx write (SPL-18).
        if self.event_idx:
            used_event = _u16(await self.dma.read(self.avail_addr + vring_used_event_offset(self.num), 2))
            need = vring_need_event(used_event, new, old_idx)
        else:
            flags = _u16(await self.dma.read(self.avail_addr + VRING_AVAIL_FLAGS, 2))
            need = not flags & VRING_AVAIL_F_NO_INTERRUPT
        if need:
            self.interrupts += 1
            if self.irq is not None:
                result = self.irq()
                if hasattr(result, "__await__"):
                    await result
        else:
            self.interrupts_suppressed += 1
        return need

    async def complete(self, chain, handler):
        """Serve one chain: handler(out_bytes, in_len) -> (in_bytes, used_len); write the bytes
        and the used element (not published)."""
        out_bytes = await self.read_out(chain)
        in_bytes, used_len = handler(out_bytes, chain.in_len)
        if in_bytes:
            await self.write_in(chain, in_bytes)
        await self.push_used(chain, used_len)
        self.chains_served += 1

    async def service(self, handler, reorder=False, batch=1, limit=None):
        """Fetch every available chain and complete them all (in a random order with
        ``reorder``), publishing ``batch`` used elements per used idx write. Returns the number
        of chains completed."""
        await self.fetch(limit)
        chains, self.pending = self.pending, []
        if reorder:
            self.rng.shuffle(chains)
        done = 0
        while done < len(chains):
            old = self.used_idx
            for chain in chains[done:done + batch]:
                await self.complete(chain, handler)
            done += len(chains[done:done + batch])
            await self.publish(old)
        return done


def ramdisk_handler(disk):
    """A VringDeviceModel handler serving virtio-blk requests from a RamDisk."""
    def handler(out_bytes, in_len):
        in_bytes, _status, used_len = disk.handle_request(out_bytes, in_len)
        return in_bytes, used_len
    return handler
