# SPDX-License-Identifier: Apache-2.0
"""virtio-blk driver: configuration, request queues and the I/O path.

Mirrors Linux's ``drivers/block/virtio_blk.c``: the probe half (``virtblk_probe``, ``init_vq``,
``virtblk_read_limits``, ``virtblk_get_cache_mode``, ``virtblk_update_capacity``,
``virtblk_config_changed``, ``virtblk_remove``) in ``VirtioBlkDriver``, and the request half
(``virtblk_setup_cmd``, ``virtblk_add_req``, ``virtio_queue_rq``, ``virtio_commit_rqs``,
``virtblk_done``, ``virtblk_poll``, ``virtblk_setup_discard_write_zeroes``, ``virtblk_get_id``)
in ``VirtioBlk``.

``VirtioBlk`` adds what a test bench needs on top of Linux's behaviour: any number of requests
in flight (``submit_*`` returns a ``VirtblkReq`` to await), completion by interrupt or by
polling, raw requests that break the driver rules on purpose (``submit_request``), and
configurable chain layouts (framings A-E of conformance SPL-01, see ``BLK_LAYOUTS``).
"""

import random

from cocotb.triggers import Event

from .pci_modern import VirtioError
from .ring import HostMemPool, VirtqueueFullError
from .uapi import (
    VIRTIO_BLK_CFG_ALIGNMENT_OFFSET,
    VIRTIO_BLK_CFG_BLK_SIZE,
    VIRTIO_BLK_CFG_CAPACITY,
    VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT,
    VIRTIO_BLK_CFG_GEOMETRY_CYLINDERS,
    VIRTIO_BLK_CFG_GEOMETRY_HEADS,
    VIRTIO_BLK_CFG_GEOMETRY_SECTORS,
    VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
    VIRTIO_BLK_CFG_MAX_DISCARD_SEG,
    VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS,
    VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG,
    VIRTIO_BLK_CFG_MIN_IO_SIZE,
    VIRTIO_BLK_CFG_NUM_QUEUES,
    VIRTIO_BLK_CFG_OPT_IO_SIZE,
    VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP,
    VIRTIO_BLK_CFG_SEG_MAX,
    VIRTIO_BLK_CFG_SIZE_MAX,
    VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP,
    VIRTIO_BLK_CFG_WRITEBACK,
    VIRTIO_BLK_F_BLK_SIZE,
    VIRTIO_BLK_F_CONFIG_WCE,
    VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_GEOMETRY,
    VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_SIZE_MAX,
    VIRTIO_BLK_F_TOPOLOGY,
    VIRTIO_BLK_F_WRITE_ZEROES,
    VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
    VIRTIO_ID_BLOCK,
)
from .virtio import (
    VirtioDriver,
    virtio_cread,
    virtio_cread_feature,
    virtio_device_ready,
    virtio_has_feature,
    virtio_reset_device,
)

SECTOR_SIZE = 512  # capacity and request sectors are always 512 bytes
# Linux's blk_validate_block_size: a logical block is a power of 2 from 512 bytes to one page.
BLK_MIN_BLOCK_SIZE = SECTOR_SIZE
BLK_MAX_BLOCK_SIZE = 4096


class VirtioBlkDriver(VirtioDriver):
    """virtio-blk: reads the configuration and creates the request queues.

    After probe: ``capacity`` (512-byte sectors), ``blk_size``, ``seg_max``, ``size_max``
    (None = no limit), ``read_only``, ``writeback``, ``num_queues``, ``geometry``
    ((cylinders, heads, sectors) or None), the topology, discard and write-zeroes limits (None when
    not negotiated), and ``vqs`` (request queues req.0 ... req.N-1).

    ``num_request_queues`` caps the number of request queues (Linux's module parameter);
    ``queue_size`` asks for rings smaller than the device maximum.
    """

    id_table = [VIRTIO_ID_BLOCK]
    feature_table = [
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_SIZE_MAX,
        VIRTIO_BLK_F_GEOMETRY,
        VIRTIO_BLK_F_RO,
        VIRTIO_BLK_F_BLK_SIZE,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_TOPOLOGY,
        VIRTIO_BLK_F_CONFIG_WCE,
        VIRTIO_BLK_F_MQ,
        VIRTIO_BLK_F_DISCARD,
        VIRTIO_BLK_F_WRITE_ZEROES,
    ]

    def __init__(self, num_request_queues=None, queue_size=None):
        self.num_request_queues = num_request_queues
        self.queue_size = queue_size
        self.vdev = None
        self.vqs = []

        self.capacity = 0
        self.blk_size = SECTOR_SIZE
        self.seg_max = 1
        self.size_max = None
        self.read_only = False
        self.writeback = False
        self.num_queues = 1
        self.geometry = None
        self.physical_block_exp = 0
        self.alignment_offset = 0
        self.min_io_size = None
        self.opt_io_size = None
        self.max_discard_sectors = None
        self.max_discard_seg = None
        self.discard_sector_alignment = None
        self.max_write_zeroes_sectors = None
        self.max_write_zeroes_seg = None
        self.write_zeroes_may_unmap = None
        self.config_change_count = 0

    async def probe(self, vdev):
        if vdev.mdev.device is None:
            raise VirtioError("virtio-blk: no VIRTIO_PCI_CAP_DEVICE_CFG capability, so no config access")
        self.vdev = vdev
        await self.init_vq(vdev)
        await self.virtblk_read_limits(vdev)
        self.read_only = virtio_has_feature(vdev, VIRTIO_BLK_F_RO)
        self.writeback = await self.virtblk_get_cache_mode(vdev)
        await self.virtblk_update_capacity(vdev)
        await virtio_device_ready(vdev)

    async def init_vq(self, vdev):
        """One request queue, or num_queues of them with VIRTIO_BLK_F_MQ."""
        num_vqs = await virtio_cread_feature(vdev, VIRTIO_BLK_F_MQ, VIRTIO_BLK_CFG_NUM_QUEUES, 2)
        if num_vqs is None:
            num_vqs = 1
        elif num_vqs == 0:
            raise VirtioError("virtio-blk: VIRTIO_BLK_F_MQ negotiated but num_queues reads 0")
        if self.num_request_queues:
            num_vqs = min(num_vqs, self.num_request_queues)
        self.num_queues = num_vqs
        names = [f"req.{i}" for i in range(num_vqs)]
        # Polled queues get no callback: find_vqs maps no vector and the ring asks for no interrupts.
        callback = self.virtblk_done if getattr(self, "use_irq", True) else None
        self.vqs = await vdev.find_vqs(names, [callback] * num_vqs, [self.queue_size] * num_vqs)

    async def virtblk_read_limits(self, vdev):
        """The request limits, each read only if its feature was negotiated."""
        seg_max = await virtio_cread_feature(vdev, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_CFG_SEG_MAX, 4)
        self.seg_max = seg_max or 1  # absent or 0: one segment per request
        self.size_max = await virtio_cread_feature(vdev, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_CFG_SIZE_MAX, 4)

        blk_size = await virtio_cread_feature(vdev, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_CFG_BLK_SIZE, 4)
        if blk_size is None:
            blk_size = SECTOR_SIZE
        elif not BLK_MIN_BLOCK_SIZE <= blk_size <= BLK_MAX_BLOCK_SIZE or blk_size & (blk_size - 1):
            raise VirtioError(f"virtio-blk: invalid block size {blk_size} (a power of 2 from "
                              f"{BLK_MIN_BLOCK_SIZE} to {BLK_MAX_BLOCK_SIZE})")
        self.blk_size = blk_size

        if virtio_has_feature(vdev, VIRTIO_BLK_F_TOPOLOGY):
            self.physical_block_exp = await virtio_cread(vdev, VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP, 1)
            self.alignment_offset = await virtio_cread(vdev, VIRTIO_BLK_CFG_ALIGNMENT_OFFSET, 1)
            self.min_io_size = await virtio_cread(vdev, VIRTIO_BLK_CFG_MIN_IO_SIZE, 2)
            self.opt_io_size = await virtio_cread(vdev, VIRTIO_BLK_CFG_OPT_IO_SIZE, 4)

        if virtio_has_feature(vdev, VIRTIO_BLK_F_DISCARD):
            self.max_discard_sectors = await virtio_cread(vdev, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4)
            self.discard_sector_alignment = await virtio_cread(vdev, VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 4)
            self.max_discard_seg = await virtio_cread(vdev, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4)

        if virtio_has_feature(vdev, VIRTIO_BLK_F_WRITE_ZEROES):
            self.max_write_zeroes_sectors = await virtio_cread(vdev, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4)
            self.max_write_zeroes_seg = await virtio_cread(vdev, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4)
            self.write_zeroes_may_unmap = await virtio_cread(vdev, VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1)

        # Linux reads the geometry only when asked (virtblk_getgeo); read it once here.
        if virtio_has_feature(vdev, VIRTIO_BLK_F_GEOMETRY):
            self.geometry = (await virtio_cread(vdev, VIRTIO_BLK_CFG_GEOMETRY_CYLINDERS, 2),
                             await virtio_cread(vdev, VIRTIO_BLK_CFG_GEOMETRY_HEADS, 1),
                             await virtio_cread(vdev, VIRTIO_BLK_CFG_GEOMETRY_SECTORS, 1))

    async def virtblk_get_cache_mode(self, vdev):
        """Writeback cache on? From the writeback field with CONFIG_WCE, else FLUSH offered."""
        writeback = await virtio_cread_feature(vdev, VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_CFG_WRITEBACK, 1)
        if writeback is None:
            return virtio_has_feature(vdev, VIRTIO_BLK_F_FLUSH)
        return bool(writeback)

    async def virtblk_update_capacity(self, vdev):
        """capacity is a 64-bit field: read inside the config_generation loop."""
        self.capacity = await virtio_cread(vdev, VIRTIO_BLK_CFG_CAPACITY, 8)
        return self.capacity

    def virtblk_done(self, vq):
        """Request-queue interrupt. The Virtqueue counts it; this probe-only driver sends no
        requests, so there is nothing to reap (VirtioBlk reaps with virtqueue_get_buf)."""

    async def config_changed(self, vdev):
        """Linux re-reads the capacity on a configuration change (virtblk_config_changed_work)."""
        self.config_change_count += 1
        await self.virtblk_update_capacity(vdev)

    async def remove(self, vdev):
        await virtio_reset_device(vdev)
        await vdev.del_vqs()
        self.vqs = []
        self.vdev = None


# ----------------------------------------------------------------------------------------------
# The request path
# ----------------------------------------------------------------------------------------------

VIRTIO_BLK_OUTHDR_SIZE = 16  # struct virtio_blk_outhdr: le32 type, le32 reserved (ioprio), le64 sector
VIRTIO_BLK_INHDR_SIZE = 1  # the status byte
VIRTIO_BLK_DWZ_SEG_SIZE = 16  # struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags
# Bytes the driver puts in writable buffers before the device answers, so that bytes the device
# did not write are visible.
VIRTIO_BLK_POISON = 0xA5
# Maximum misalignment (bytes past a 16-byte boundary) of buffers in the "split" layout.
SPLIT_MAX_MISALIGN = 15

# Chain layouts (conformance SPL-01 framings):
#   linux         header | data | status in their own buffers; indirect by Linux's rule
#   separate      A: header (16) | data | status (1), direct
#   merged        B: header+data one readable buffer (OUT); data+status one writable buffer (IN)
#   split_header  C: header as 4+4+8, then as separate
#   split         D: data in 1..seg_max pieces of random sizes at odd addresses
#   indirect      E: separate, everything behind one indirect descriptor
#   mixed         SPL-07: header as a direct descriptor, data and status in an indirect table
# A base layout may take "+indirect" or "+direct" (e.g. "split+indirect"); "random" picks one per
# request (only indirect ones if VIRTIO_RING_F_INDIRECT_DESC was negotiated).
BLK_LAYOUTS = ("linux", "separate", "merged", "split_header", "split", "indirect", "mixed", "random")
_BASE_LAYOUTS = ("separate", "merged", "split_header", "split")


class VirtblkReq:
    """One request in flight (Linux's struct virtblk_req). Await ``wait()`` for (status, data).

    After completion: ``status`` (the last writable byte, or None if the request was aborted by
    a reset), ``data`` (the writable bytes before the status: read data, GET_ID bytes), and
    ``used_len`` (what the device reported). ``expected_used_len`` is what spec §5.2.6 says it
    should be. ``sgs_out``/``sgs_in`` are the (address, length) pairs of the chain, ``head``
    its head descriptor, ``layout`` and ``indirect`` how it was framed.
    """

    def __init__(self, req_type, sector, out_data, in_data_len, reserved, layout):
        self.type = req_type
        self.sector = sector
        self.reserved = reserved
        self.out_data = bytes(out_data)
        self.in_data_len = in_data_len
        self.layout = layout
        self.indirect = None
        self.vq = None
        self.head = None
        self.out_bufs = []
        self.in_bufs = []
        self.status = None
        self.data = None
        self.used_len = None
        self.expected_used_len = (in_data_len + 1 if req_type in (VIRTIO_BLK_T_IN, VIRTIO_BLK_T_GET_ID)
                                  else VIRTIO_BLK_INHDR_SIZE)
        self.done = False
        self.aborted = False
        self.event = Event()
        self.callbacks = []

    @property
    def sgs_out(self):
        return [buf.sg for buf in self.out_bufs]

    @property
    def sgs_in(self):
        return [buf.sg for buf in self.in_bufs]

    @property
    def result(self):
        return self.status, self.data

    async def wait(self):
        """Wait for completion; returns (status, data)."""
        if not self.done:
            await self.event.wait()
        return self.result

    def __repr__(self):
        return (f"VirtblkReq(type={self.type}, sector={self.sector}, out={len(self.out_data)}, "
                f"in={self.in_data_len}, layout={self.layout!r}, head={self.head}, status={self.status})")


def _random_pieces(rng, total, count, size_max):
    """``count`` sizes >= 1 and <= size_max summing to ``total``."""
    cap = size_max or total
    pieces = [1] * count
    remaining = total - count
    while remaining:
        i = rng.randrange(count)
        room = cap - pieces[i]
        if room <= 0:
            continue
        add = min(room, rng.randint(1, remaining))
        pieces[i] += add
        remaining -= add
    return pieces


def _chunks(total, size_max):
    """Sizes of ``total`` bytes cut into pieces of at most size_max."""
    if not size_max or total <= size_max:
        return [total] if total else []
    return [min(size_max, total - off) for off in range(0, total, size_max)]


class VirtioBlk(VirtioBlkDriver):
    """virtio-blk with the I/O path (Linux's virtio_blk.c request half).

    High-level requests (each returns ``(status, data)``; ``data`` is None when there is none):
    ``read(sector, count)``, ``write(sector, data)``, ``flush()``, ``get_id()``,
    ``discard(segments)``, ``write_zeroes(segments, unmap=False)``. Each has a ``submit_*``
    twin that returns a ``VirtblkReq`` at once; ``wait_all()`` waits for every request in
    flight. They keep the driver rules (512-byte multiples, inside capacity, features
    negotiated, segment limits) and raise ValueError / VirtioError otherwise;
    ``submit_request`` sends anything.

    Completion: with ``use_irq`` (default) each request queue's interrupt runs ``virtblk_done``
    (disable_cb, get_buf loop, enable_cb); otherwise the queues have no callback and ``poll()``
    (or ``wait_all``, which polls) reaps them, waiting ``poll_delay()`` between empty polls.

    ``layout`` (default "linux", see BLK_LAYOUTS) frames the chains; per call ``layout=``
    overrides it. ``rng`` (a random.Random, or a seed) drives "split" and "random".

    Statistics: ``submitted``, ``completed``, ``inflight`` (set of requests),
    ``used_len_mismatches`` (requests whose used len differs from the spec's expectation:
    a warning, conformance §15.6).
    """

    def __init__(self, num_request_queues=None, queue_size=None, layout="linux", use_irq=True, rng=None,
                 poll_delay=None):
        super().__init__(num_request_queues, queue_size)
        self.check_layout(layout)
        self.layout = layout
        self.use_irq = use_irq
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.poll_delay = poll_delay
        self.host_mem = None
        self.inflight = set()
        self.submitted = 0
        self.completed = 0
        self.used_len_mismatches = []
        self._next_vq = 0
        self._space_event = Event()

    # ------------------------------------------------------------------------------------------
    # Setup
    # ------------------------------------------------------------------------------------------

    async def probe(self, vdev):
        await super().probe(vdev)
        self.virtblk_init_request_path(vdev, self.vqs)

    def virtblk_init_request_path(self, vdev, vqs):
        """Prepare the request path over ``vqs`` (probe does it; tests without a transport call
        it directly after setting capacity and the limits)."""
        self.vdev = vdev
        self.vqs = list(vqs)
        mem_pool = getattr(getattr(vdev, "rc", None), "mem_pool", None)
        if mem_pool is None:
            mem_pool = self.vqs[0].mem_pool
        self.host_mem = HostMemPool.for_pool(mem_pool)

    @staticmethod
    def check_layout(layout):
        parts = layout.split("+")
        if parts[0] not in BLK_LAYOUTS or any(p not in ("indirect", "direct") for p in parts[1:]):
            raise ValueError(f"unknown layout {layout!r}: one of {BLK_LAYOUTS}, optionally +indirect or +direct")

    @property
    def indirect_negotiated(self):
        return bool(self.vqs) and self.vqs[0].indirect

    # ------------------------------------------------------------------------------------------
    # Building a chain (virtblk_setup_cmd + virtblk_add_req)
    # ------------------------------------------------------------------------------------------

    def _resolve_layout(self, layout):
        """(base layout, indirect: True/False/None, direct_prefix)."""
        layout = layout or self.layout
        self.check_layout(layout)
        parts = layout.split("+")
        base, mods = parts[0], parts[1:]
        if base == "random":
            base = self.rng.choice(_BASE_LAYOUTS)
            if self.indirect_negotiated:
                pick = self.rng.random()
                if pick < 1 / 3:
                    mods = ["indirect"]
                elif pick < 1 / 2:
                    return base, True, 1
            mods = mods or ["direct"]
        if base == "linux":
            return "separate", ("indirect" in mods) or (False if "direct" in mods else None), 0
        if base == "indirect":
            return "separate", True, 0
        if base == "mixed":
            return "separate", True, 1
        return base, "indirect" in mods, 0

    def _frame(self, base, header, out_data, in_data_len, room):
        """Readable piece sizes and writable piece sizes of one request."""
        size_max = self.size_max
        hdr = [4, 4, 8] if base == "split_header" else [VIRTIO_BLK_OUTHDR_SIZE]
        if base == "merged":
            out_sizes = _chunks(len(header) + len(out_data), size_max)
            in_sizes = _chunks(in_data_len + VIRTIO_BLK_INHDR_SIZE, size_max)
            return out_sizes, in_sizes
        data_len = len(out_data) or in_data_len
        if base == "split" and data_len:
            lowest = len(_chunks(data_len, size_max))
            highest = max(lowest, min(self.seg_max, data_len, max(1, room - len(hdr) - 1)))
            data_sizes = _random_pieces(self.rng, data_len, self.rng.randint(lowest, highest), size_max)
        else:
            data_sizes = _chunks(data_len, size_max)
        if out_data:
            return hdr + data_sizes, [VIRTIO_BLK_INHDR_SIZE]
        return hdr, data_sizes + [VIRTIO_BLK_INHDR_SIZE]

    async def _build(self, req, vq):
        base, indirect, direct_prefix = self._resolve_layout(req.layout)
        header = (req.type.to_bytes(4, "little") + req.reserved.to_bytes(4, "little")
                  + req.sector.to_bytes(8, "little"))
        room = vq.num if not indirect else 1 << 16
        out_sizes, in_sizes = self._frame(base, header, req.out_data, req.in_data_len, room)
        misalign = (lambda: self.rng.randint(0, SPLIT_MAX_MISALIGN)) if base == "split" else (lambda: 0)
        readable = header + req.out_data
        pos = 0
        for size in out_sizes:
            req.out_bufs.append(await self.host_mem.alloc_with(readable[pos:pos + size], misalign=misalign()))
            pos += size
        for size in in_sizes:
            buf = self.host_mem.alloc(size, misalign=misalign())
            await buf.write(0, bytes([VIRTIO_BLK_POISON]) * size)
            req.in_bufs.append(buf)
        req.indirect = indirect
        return indirect, direct_prefix

    def _free_bufs(self, req):
        for buf in req.out_bufs + req.in_bufs:
            if buf.block is not None:
                self.host_mem.free(buf)

    def _pick_vq(self, vq_index):
        if not self.vqs:
            raise VirtioError("virtio-blk: no request queues (probe first)")
        if vq_index is None:
            vq_index = self._next_vq
            self._next_vq = (self._next_vq + 1) % len(self.vqs)
        return self.vqs[vq_index]

    # ------------------------------------------------------------------------------------------
    # Submission (virtio_queue_rq)
    # ------------------------------------------------------------------------------------------

    async def submit_request(self, req_type, sector=0, out_data=b"", in_data_len=0, reserved=0, layout=None,
                             vq_index=None, kick=True, wait_for_space=True, indirect_order=None):
        """Queue any request, checking nothing: ``out_data`` follows the header in the readable
        part, ``in_data_len`` writable bytes come before the status byte. Returns the
        VirtblkReq.

        When the ring is full: with ``wait_for_space`` wait for completions (kicking first),
        otherwise raise VirtqueueFullError. ``kick=False`` leaves the doorbell to a later
        ``kick()`` (Linux's bd->last / commit_rqs batching). ``indirect_order`` is passed to
        virtqueue_add_sgs (SPL-08).
        """
        vq = self._pick_vq(vq_index)
        req = VirtblkReq(req_type, sector, out_data, in_data_len, reserved, layout or self.layout)
        indirect, direct_prefix = await self._build(req, vq)
        while True:
            try:
                req.head = await vq.virtqueue_add_sgs(req.sgs_out, req.sgs_in, req, indirect=indirect,
                                                      direct_prefix=direct_prefix, indirect_order=indirect_order)
                break
            except VirtqueueFullError:
                if not wait_for_space:
                    self._free_bufs(req)
                    raise
                await vq.virtqueue_kick()
                await self._wait_for_space(vq)
            except BaseException:
                self._free_bufs(req)
                raise
        req.vq = vq
        self.inflight.add(req)
        self.submitted += 1
        if kick:
            await vq.virtqueue_kick()
        return req

    async def kick(self):
        """Kick every queue with entries added since its last kick (Linux's virtio_commit_rqs)."""
        for vq in self.vqs:
            if vq.num_added:
                await vq.virtqueue_kick()

    async def _wait_for_space(self, vq):
        if self.use_irq:
            self._space_event.clear()
            await self._space_event.wait()
        elif not await self.poll():
            await self._poll_delay()

    async def _poll_delay(self):
        delay = self.poll_delay or getattr(self.vdev, "poll_delay", None)
        if delay is None:
            from cocotb.triggers import Timer
            await Timer(1, "us")
        else:
            await delay()

    # ---- checked requests

    def _check_range(self, sector, nbytes, what):
        if nbytes % SECTOR_SIZE:
            raise ValueError(f"virtio-blk {what}: {nbytes} bytes is not a multiple of {SECTOR_SIZE}")
        if sector < 0 or sector * SECTOR_SIZE + nbytes > self.capacity * SECTOR_SIZE:
            raise ValueError(f"virtio-blk {what}: sectors {sector}..{sector + nbytes // SECTOR_SIZE - 1} are past "
                             f"the capacity of {self.capacity} sectors")
        max_bytes = self.seg_max * self.size_max if self.size_max else None
        if max_bytes is not None and nbytes > max_bytes:
            raise ValueError(f"virtio-blk {what}: {nbytes} bytes exceed seg_max x size_max = {max_bytes}")

    async def submit_read(self, sector, count, **kwargs):
        """VIRTIO_BLK_T_IN of ``count`` sectors."""
        if count < 1:
            raise ValueError(f"virtio-blk read of {count} sectors")
        self._check_range(sector, count * SECTOR_SIZE, "read")
        return await self.submit_request(VIRTIO_BLK_T_IN, sector, in_data_len=count * SECTOR_SIZE, **kwargs)

    async def submit_write(self, sector, data, **kwargs):
        """VIRTIO_BLK_T_OUT of ``data`` (a non-empty multiple of 512 bytes)."""
        if not data:
            raise ValueError("virtio-blk write of no data")
        self._check_range(sector, len(data), "write")
        if self.read_only:
            raise VirtioError("virtio-blk: write to a read-only device (VIRTIO_BLK_F_RO)")
        return await self.submit_request(VIRTIO_BLK_T_OUT, sector, out_data=data, **kwargs)

    async def submit_flush(self, **kwargs):
        """VIRTIO_BLK_T_FLUSH (sector 0, no data)."""
        return await self.submit_request(VIRTIO_BLK_T_FLUSH, 0, **kwargs)

    async def submit_get_id(self, **kwargs):
        """VIRTIO_BLK_T_GET_ID: 20 writable data bytes."""
        return await self.submit_request(VIRTIO_BLK_T_GET_ID, 0, in_data_len=VIRTIO_BLK_ID_BYTES, **kwargs)

    def _dwz_payload(self, req_type, segments, unmap):
        if req_type == VIRTIO_BLK_T_DISCARD:
            fbit, max_sectors, max_seg, what = (VIRTIO_BLK_F_DISCARD, self.max_discard_sectors, self.max_discard_seg,
                                                "discard")
            if unmap:
                raise ValueError("virtio-blk discard: the unmap flag must be 0 for DISCARD")
        else:
            fbit, max_sectors, max_seg, what = (VIRTIO_BLK_F_WRITE_ZEROES, self.max_write_zeroes_sectors,
                                                self.max_write_zeroes_seg, "write-zeroes")
        if not virtio_has_feature(self.vdev, fbit):
            raise VirtioError(f"virtio-blk {what}: the feature was not negotiated")
        if self.read_only:
            raise VirtioError(f"virtio-blk {what} on a read-only device")
        segments = [tuple(seg) for seg in segments]
        if not segments or (max_seg and len(segments) > max_seg):
            raise ValueError(f"virtio-blk {what}: {len(segments)} segments (1..{max_seg or 'any'})")
        payload = b""
        flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP if unmap else 0
        for sector, num_sectors in segments:
            if max_sectors and num_sectors > max_sectors:
                raise ValueError(f"virtio-blk {what}: {num_sectors} sectors > the maximum {max_sectors}")
            self._check_range(sector, num_sectors * SECTOR_SIZE, what)
            payload += (sector.to_bytes(8, "little") + num_sectors.to_bytes(4, "little")
                        + flags.to_bytes(4, "little"))
        return payload

    async def submit_discard(self, segments, **kwargs):
        """VIRTIO_BLK_T_DISCARD of [(sector, num_sectors)] (needs VIRTIO_BLK_F_DISCARD)."""
        payload = self._dwz_payload(VIRTIO_BLK_T_DISCARD, segments, False)
        return await self.submit_request(VIRTIO_BLK_T_DISCARD, 0, out_data=payload, **kwargs)

    async def submit_write_zeroes(self, segments, unmap=False, **kwargs):
        """VIRTIO_BLK_T_WRITE_ZEROES of [(sector, num_sectors)] (needs VIRTIO_BLK_F_WRITE_ZEROES)."""
        payload = self._dwz_payload(VIRTIO_BLK_T_WRITE_ZEROES, segments, unmap)
        return await self.submit_request(VIRTIO_BLK_T_WRITE_ZEROES, 0, out_data=payload, **kwargs)

    async def _complete_one(self, submit):
        req = await submit
        return await self.wait_req(req)

    async def read(self, sector, count, **kwargs):
        """(status, data) of reading ``count`` sectors from ``sector``."""
        return await self._complete_one(self.submit_read(sector, count, **kwargs))

    async def write(self, sector, data, **kwargs):
        """(status, None) of writing ``data`` at ``sector``."""
        return await self._complete_one(self.submit_write(sector, data, **kwargs))

    async def flush(self, **kwargs):
        return await self._complete_one(self.submit_flush(**kwargs))

    async def get_id(self, **kwargs):
        """(status, the 20 id bytes)."""
        return await self._complete_one(self.submit_get_id(**kwargs))

    async def discard(self, segments, **kwargs):
        return await self._complete_one(self.submit_discard(segments, **kwargs))

    async def write_zeroes(self, segments, unmap=False, **kwargs):
        return await self._complete_one(self.submit_write_zeroes(segments, unmap, **kwargs))

    # ------------------------------------------------------------------------------------------
    # Completion (virtblk_done, virtblk_poll)
    # ------------------------------------------------------------------------------------------

    async def virtblk_done(self, vq):
        """Request-queue interrupt: reap with callbacks off, then re-enable and re-check so a
        completion that raced the re-enable is not lost (Linux's loop)."""
        while True:
            await vq.virtqueue_disable_cb()
            while True:
                used = await vq.virtqueue_get_buf()
                if used is None:
                    break
                await self._virtblk_request_done(*used)
            if vq.virtqueue_is_broken():
                break
            if await vq.virtqueue_enable_cb():
                break

    async def poll(self):
        """Reap every used request on every queue; returns how many completed."""
        count = 0
        for vq in self.vqs:
            while True:
                used = await vq.virtqueue_get_buf()
                if used is None:
                    break
                await self._virtblk_request_done(*used)
                count += 1
        return count

    async def _virtblk_request_done(self, req, used_len):
        in_bytes = b"".join([await buf.read() for buf in req.in_bufs])
        req.status = in_bytes[-1] if in_bytes else None
        req.data = in_bytes[:-1] if req.in_data_len else None
        req.used_len = used_len
        if used_len != req.expected_used_len:
            self.used_len_mismatches.append((req, used_len))
        self._finish(req)

    def _finish(self, req):
        self._free_bufs(req)
        req.done = True
        self.inflight.discard(req)
        self.completed += 1
        req.event.set()
        self._space_event.set()
        for callback in req.callbacks:
            callback(req)

    async def wait_req(self, req):
        """Wait for one request (polling when there are no interrupts); (status, data)."""
        while not req.done:
            if self.use_irq:
                await req.event.wait()
            elif not await self.poll():
                await self._poll_delay()
        return req.result

    async def wait_all(self):
        """Wait until no request is in flight."""
        while self.inflight:
            await self.wait_req(next(iter(self.inflight)))

    async def stream(self, count, submit=None, depth=None):
        """Run ``count`` requests keeping up to ``depth`` in flight (default: every ring full),
        one doorbell per refill; returns the requests whose status was not OK.

        ``submit(n)`` queues request number ``n`` and returns its VirtblkReq; it must pass
        ``kick=False, wait_for_space=False`` (a full ring ends the refill). The default sends
        FLUSH, the cheapest request: the way to push the free-running ring indices past 65535
        (SPL-24), since a device starts them at 0 after every reset.
        """
        if submit is None:
            def submit(n):
                return self.submit_flush(kick=False, wait_for_space=False)
        depth = depth or sum(vq.num for vq in self.vqs)
        failures = []

        def check(req):
            if req.status != VIRTIO_BLK_S_OK:
                failures.append(req)
        n = 0
        while n < count:
            before = self.completed
            while n < count and len(self.inflight) < depth:
                try:
                    req = await submit(n)
                except VirtqueueFullError:
                    break
                req.callbacks.append(check)
                if req.done:
                    check(req)
                n += 1
            await self.kick()
            await self._wait_any(before)
        await self.wait_all()
        return failures

    async def _wait_any(self, since):
        """Wait until ``completed`` moves past ``since`` (or nothing is in flight)."""
        while self.completed == since and self.inflight:
            if self.use_irq:
                self._space_event.clear()
                await self._space_event.wait()
            elif not await self.poll():
                await self._poll_delay()

    async def abort_all(self):
        """After a device reset: take back every buffer the device never used; their requests
        complete with status None and ``aborted`` set."""
        for vq in self.vqs:
            while True:
                req = await vq.virtqueue_detach_unused_buf()
                if req is None:
                    break
                req.aborted = True
                self._finish(req)

    async def remove(self, vdev):
        """Reset, fail what the device never used, and forget the rings (virtblk_remove). From
        the reset on, a DMA checker treats any device access to the old rings as an error."""
        await virtio_reset_device(vdev)
        for vq in self.vqs:
            vq.vring_del_virtqueue()
        await self.abort_all()
        await vdev.del_vqs()
        self.vqs = []
        self.vdev = None
