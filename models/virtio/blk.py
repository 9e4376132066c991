# SPDX-License-Identifier: Apache-2.0
"""virtio-blk driver: configuration and request queues.

Mirrors the probe half of Linux's ``drivers/block/virtio_blk.c`` (``virtblk_probe``, ``init_vq``,
``virtblk_read_limits``, ``virtblk_get_cache_mode``, ``virtblk_update_capacity``,
``virtblk_config_changed``, ``virtblk_remove``). Requests (read, write, flush, get-id...) arrive
with the ring verbs.
"""

from .pci_modern import VirtioError
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
        self.vqs = await vdev.find_vqs(names, [self.virtblk_done] * num_vqs, [self.queue_size] * num_vqs)

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
        """Request-queue interrupt. The Virtqueue counts it; completions are reaped by
        virtqueue_get_buf, which does not exist yet, so there is nothing else to do."""

    async def config_changed(self, vdev):
        """Linux re-reads the capacity on a configuration change (virtblk_config_changed_work)."""
        self.config_change_count += 1
        await self.virtblk_update_capacity(vdev)

    async def remove(self, vdev):
        await virtio_reset_device(vdev)
        await vdev.del_vqs()
        self.vqs = []
        self.vdev = None
