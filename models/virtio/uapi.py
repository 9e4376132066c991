# SPDX-License-Identifier: Apache-2.0
"""Virtio and PCI constants under their Linux uapi names.

Mirrors (names and values, not text) Linux's ``include/uapi/linux/virtio_config.h``,
``virtio_pci.h``, ``virtio_ring.h``, ``virtio_ids.h``, ``virtio_blk.h`` and a subset of
``pci_regs.h``. Every constant is a module-level int so that a test can compare it with the RTL's
``localparam`` of the same name (``rtl/virtio_pci_defs.vh``).

A few names have no Linux counterpart; they are grouped at the end of their section under a
"not in Linux" comment that says where the name comes from.
"""

# --------------------------------------------------------------------------------------------
# virtio_config.h
# --------------------------------------------------------------------------------------------

# Device status bits (device_status, spec §2.1).
VIRTIO_CONFIG_S_ACKNOWLEDGE = 0x01  # the guest has found the device
VIRTIO_CONFIG_S_DRIVER = 0x02  # the guest has a driver for it
VIRTIO_CONFIG_S_DRIVER_OK = 0x04  # the driver is set up: the device is live
VIRTIO_CONFIG_S_FEATURES_OK = 0x08  # feature negotiation is complete (the device may refuse it)
VIRTIO_CONFIG_S_NEEDS_RESET = 0x40  # the device hit an error it cannot recover from
VIRTIO_CONFIG_S_FAILED = 0x80  # the driver gave up on the device

# Feature bits VIRTIO_TRANSPORT_F_START .. VIRTIO_TRANSPORT_F_END-1 belong to the transport and ring;
# all others are device specific.
VIRTIO_TRANSPORT_F_START = 28
VIRTIO_TRANSPORT_F_END = 42

# Legacy-only bits (Linux keeps them under #ifndef VIRTIO_CONFIG_NO_LEGACY).
VIRTIO_F_NOTIFY_ON_EMPTY = 24
VIRTIO_F_ANY_LAYOUT = 27

# Device-independent feature bits (bit numbers, not masks).
VIRTIO_F_VERSION_1 = 32  # virtio 1.0 or later; a modern device must offer it
VIRTIO_F_ACCESS_PLATFORM = 33  # DMA goes through the platform (IOMMU); Linux's old name IOMMU_PLATFORM
VIRTIO_F_IOMMU_PLATFORM = VIRTIO_F_ACCESS_PLATFORM
VIRTIO_F_RING_PACKED = 34  # packed virtqueue layout
VIRTIO_F_IN_ORDER = 35  # buffers are used in the order they were made available
VIRTIO_F_ORDER_PLATFORM = 36  # memory accesses are ordered as the platform orders them
VIRTIO_F_SR_IOV = 37  # single-root I/O virtualization
VIRTIO_F_NOTIFICATION_DATA = 38  # 32-bit doorbells that carry the next avail position
VIRTIO_F_NOTIF_CONFIG_DATA = 39  # doorbells carry queue_notif_config_data instead of the vq index
VIRTIO_F_RING_RESET = 40  # per-queue reset through queue_reset
VIRTIO_F_ADMIN_VQ = 41  # administration virtqueues

# --------------------------------------------------------------------------------------------
# virtio_ring.h
# --------------------------------------------------------------------------------------------

# struct vring_desc.flags
VRING_DESC_F_NEXT = 1  # the buffer continues in the descriptor named by .next
VRING_DESC_F_WRITE = 2  # the buffer is device write-only (otherwise device read-only)
VRING_DESC_F_INDIRECT = 4  # the buffer holds a table of descriptors

# Packed ring descriptor flags: these two are bit numbers (shifts), not masks, as in Linux.
VRING_PACKED_DESC_F_AVAIL = 7
VRING_PACKED_DESC_F_USED = 15

# used->flags: the device asks the driver not to kick it (advisory).
VRING_USED_F_NO_NOTIFY = 1
# avail->flags: the driver asks the device not to interrupt it (advisory, ignored with EVENT_IDX).
VRING_AVAIL_F_NO_INTERRUPT = 1

# Packed ring event suppression (struct vring_packed_desc_event.flags and .off_warp).
VRING_PACKED_EVENT_FLAG_ENABLE = 0x0
VRING_PACKED_EVENT_FLAG_DISABLE = 0x1
VRING_PACKED_EVENT_FLAG_DESC = 0x2
VRING_PACKED_EVENT_F_WRAP_CTR = 15  # bit number of the wrap counter in off_warp

# Ring feature bits.
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29

# Alignment of the three split-ring areas, in bytes.
VRING_AVAIL_ALIGN_SIZE = 2
VRING_USED_ALIGN_SIZE = 4
VRING_DESC_ALIGN_SIZE = 16


def vring_need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """True if moving an index from ``old_idx`` to ``new_idx`` passed ``event_idx``.

    Used with VIRTIO_RING_F_EVENT_IDX in both directions: the device decides whether to interrupt
    (``event_idx`` = avail->used_event), the driver whether to kick (``event_idx`` = used->avail_event).
    All three are 16-bit free-running indices, so the comparison is done modulo 2**16.
    """
    return ((new_idx - event_idx - 1) & 0xFFFF) < ((new_idx - old_idx) & 0xFFFF)


# --------------------------------------------------------------------------------------------
# virtio_pci.h
# --------------------------------------------------------------------------------------------

# ISR status bits (one byte, clear on read).
VIRTIO_PCI_ISR_CONFIG = 0x2  # device configuration changed
# Not in Linux (Linux tests only the config bit and then scans every ring): bit 0 of the ISR,
# "queue interrupt" in the spec (§4.1.4.5); the RTL uses the same name.
VIRTIO_PCI_ISR_QUEUE = 0x1

# Vector value that unmaps an event from MSI-X.
VIRTIO_MSI_NO_VECTOR = 0xFFFF

# virtio_pci_cap.cfg_type: which structure a vendor capability describes.
VIRTIO_PCI_CAP_COMMON_CFG = 1
VIRTIO_PCI_CAP_NOTIFY_CFG = 2
VIRTIO_PCI_CAP_ISR_CFG = 3
VIRTIO_PCI_CAP_DEVICE_CFG = 4
VIRTIO_PCI_CAP_PCI_CFG = 5
VIRTIO_PCI_CAP_SHARED_MEMORY_CFG = 8
VIRTIO_PCI_CAP_VENDOR_CFG = 9

# Byte offsets inside struct virtio_pci_cap (config space, relative to the capability).
VIRTIO_PCI_CAP_VNDR = 0  # u8 cap_vndr = PCI_CAP_ID_VNDR
VIRTIO_PCI_CAP_NEXT = 1  # u8 cap_next
VIRTIO_PCI_CAP_LEN = 2  # u8 cap_len, including the type-specific tail
VIRTIO_PCI_CAP_CFG_TYPE = 3  # u8 cfg_type
VIRTIO_PCI_CAP_BAR = 4  # u8 bar
VIRTIO_PCI_CAP_ID = 5  # u8 id (not in Linux, which never reads it)
VIRTIO_PCI_CAP_OFFSET = 8  # le32 offset within the BAR
VIRTIO_PCI_CAP_LENGTH = 12  # le32 length of the structure
# struct virtio_pci_notify_cap: cap, then le32 notify_off_multiplier.
VIRTIO_PCI_NOTIFY_CAP_MULT = 16

# Byte offsets inside struct virtio_pci_common_cfg (spec names in comments where they differ).
VIRTIO_PCI_COMMON_DFSELECT = 0  # le32 device_feature_select
VIRTIO_PCI_COMMON_DF = 4  # le32 device_feature
VIRTIO_PCI_COMMON_GFSELECT = 8  # le32 driver_feature_select (Linux: guest_feature_select)
VIRTIO_PCI_COMMON_GF = 12  # le32 driver_feature (Linux: guest_feature)
VIRTIO_PCI_COMMON_MSIX = 16  # le16 config_msix_vector (Linux: msix_config)
VIRTIO_PCI_COMMON_NUMQ = 18  # le16 num_queues
VIRTIO_PCI_COMMON_STATUS = 20  # u8 device_status
VIRTIO_PCI_COMMON_CFGGENERATION = 21  # u8 config_generation
VIRTIO_PCI_COMMON_Q_SELECT = 22  # le16 queue_select
VIRTIO_PCI_COMMON_Q_SIZE = 24  # le16 queue_size
VIRTIO_PCI_COMMON_Q_MSIX = 26  # le16 queue_msix_vector
VIRTIO_PCI_COMMON_Q_ENABLE = 28  # le16 queue_enable
VIRTIO_PCI_COMMON_Q_NOFF = 30  # le16 queue_notify_off
VIRTIO_PCI_COMMON_Q_DESCLO = 32  # le32 queue_desc low half
VIRTIO_PCI_COMMON_Q_DESCHI = 36  # le32 queue_desc high half
VIRTIO_PCI_COMMON_Q_AVAILLO = 40  # le32 queue_driver low half (Linux: queue_avail)
VIRTIO_PCI_COMMON_Q_AVAILHI = 44  # le32 queue_driver high half
VIRTIO_PCI_COMMON_Q_USEDLO = 48  # le32 queue_device low half (Linux: queue_used)
VIRTIO_PCI_COMMON_Q_USEDHI = 52  # le32 queue_device high half
VIRTIO_PCI_COMMON_Q_NDATA = 56  # le16 queue_notif_config_data (Linux: queue_notify_data)
VIRTIO_PCI_COMMON_Q_RESET = 58  # le16 queue_reset
VIRTIO_PCI_COMMON_ADM_Q_IDX = 60  # le16 admin_queue_index
VIRTIO_PCI_COMMON_ADM_Q_NUM = 62  # le16 admin_queue_num

# Not in Linux (it never uses the PCI_CFG window): offsets inside struct virtio_pci_cfg_cap.
# cap.bar, cap.offset and cap.length are driver-writable there and select the BAR access that a
# config access to pci_cfg_data performs.
VIRTIO_PCI_CFG_BAR = VIRTIO_PCI_CAP_BAR
VIRTIO_PCI_CFG_OFFSET = VIRTIO_PCI_CAP_OFFSET
VIRTIO_PCI_CFG_LENGTH = VIRTIO_PCI_CAP_LENGTH
VIRTIO_PCI_CFG_DATA = 16  # u8 pci_cfg_data[4]

# Not in Linux: sizeof() of the capability structures, which cap_len must cover (spec §4.1.4).
VIRTIO_PCI_CAP_SIZEOF = 16  # struct virtio_pci_cap
VIRTIO_PCI_NOTIFY_CAP_SIZEOF = 20  # struct virtio_pci_notify_cap
VIRTIO_PCI_CFG_CAP_SIZEOF = 20  # struct virtio_pci_cfg_cap
# Not in Linux: the ends of the common configuration layouts (Linux uses offsetofend()).
VIRTIO_PCI_COMMON_CFG_V1_0_SIZEOF = 0x38  # struct virtio_pci_common_cfg (v1.0)
VIRTIO_PCI_MODERN_COMMON_CFG_SIZEOF = 0x40  # struct virtio_pci_modern_common_cfg (v1.3)

# Not in Linux: PCI identity of a virtio function (spec §4.1.2).
VIRTIO_PCI_VENDOR_ID = 0x1AF4
VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040  # Device ID = 0x1040 + virtio device id

# --------------------------------------------------------------------------------------------
# virtio_ids.h
# --------------------------------------------------------------------------------------------

VIRTIO_ID_NET = 1
VIRTIO_ID_BLOCK = 2
VIRTIO_ID_CONSOLE = 3
VIRTIO_ID_RNG = 4
VIRTIO_ID_BALLOON = 5
VIRTIO_ID_IOMEM = 6
VIRTIO_ID_RPMSG = 7
VIRTIO_ID_SCSI = 8
VIRTIO_ID_9P = 9
VIRTIO_ID_MAC80211_WLAN = 10
VIRTIO_ID_RPROC_SERIAL = 11
VIRTIO_ID_CAIF = 12
VIRTIO_ID_MEMORY_BALLOON = 13
VIRTIO_ID_GPU = 16
VIRTIO_ID_CLOCK = 17
VIRTIO_ID_INPUT = 18
VIRTIO_ID_VSOCK = 19
VIRTIO_ID_CRYPTO = 20
VIRTIO_ID_SIGNAL_DIST = 21
VIRTIO_ID_PSTORE = 22
VIRTIO_ID_IOMMU = 23
VIRTIO_ID_MEM = 24
VIRTIO_ID_SOUND = 25
VIRTIO_ID_FS = 26
VIRTIO_ID_PMEM = 27
VIRTIO_ID_RPMB = 28
VIRTIO_ID_MAC80211_HWSIM = 29
VIRTIO_ID_VIDEO_ENCODER = 30
VIRTIO_ID_VIDEO_DECODER = 31
VIRTIO_ID_SCMI = 32
VIRTIO_ID_NITRO_SEC_MOD = 33
VIRTIO_ID_I2C_ADAPTER = 34
VIRTIO_ID_WATCHDOG = 35
VIRTIO_ID_CAN = 36
VIRTIO_ID_DMABUF = 37
VIRTIO_ID_PARAM_SERV = 38
VIRTIO_ID_AUDIO_POLICY = 39
VIRTIO_ID_BT = 40
VIRTIO_ID_GPIO = 41
# Linux's VIRTIO_TRANS_ID_* are left out on purpose: they are written in decimal there (1000, 1001,
# ...) although the PCI transitional device IDs they stand for are 0x1000, 0x1001, ...; we are a
# non-transitional device and never need them.

# --------------------------------------------------------------------------------------------
# virtio_blk.h
# --------------------------------------------------------------------------------------------

# Feature bits.
VIRTIO_BLK_F_SIZE_MAX = 1  # size_max is valid: largest segment
VIRTIO_BLK_F_SEG_MAX = 2  # seg_max is valid: most segments per request
VIRTIO_BLK_F_GEOMETRY = 4  # geometry is valid
VIRTIO_BLK_F_RO = 5  # the disk is read-only
VIRTIO_BLK_F_BLK_SIZE = 6  # blk_size is valid
VIRTIO_BLK_F_TOPOLOGY = 10  # topology fields are valid
VIRTIO_BLK_F_MQ = 12  # num_queues is valid: more than one request queue
VIRTIO_BLK_F_DISCARD = 13  # DISCARD requests
VIRTIO_BLK_F_WRITE_ZEROES = 14  # WRITE_ZEROES requests
VIRTIO_BLK_F_LIFETIME = 15  # GET_LIFETIME requests
VIRTIO_BLK_F_SECURE_ERASE = 16  # SECURE_ERASE requests
VIRTIO_BLK_F_ZONED = 17  # zoned block device
# Linux files these under "legacy" (#ifndef VIRTIO_BLK_NO_LEGACY); FLUSH and CONFIG_WCE are still
# valid virtio 1.x features (spec §5.2.3).
VIRTIO_BLK_F_BARRIER = 0
VIRTIO_BLK_F_SCSI = 7
VIRTIO_BLK_F_FLUSH = 9  # FLUSH requests (the old name VIRTIO_BLK_F_WCE)
VIRTIO_BLK_F_CONFIG_WCE = 11  # writeback is readable and writable in the config
VIRTIO_BLK_F_WCE = VIRTIO_BLK_F_FLUSH

VIRTIO_BLK_ID_BYTES = 20  # GET_ID returns this many bytes

# Request types (struct virtio_blk_outhdr.type).
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_SCSI_CMD = 2  # legacy
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_T_GET_LIFETIME = 10
VIRTIO_BLK_T_DISCARD = 11
VIRTIO_BLK_T_WRITE_ZEROES = 13
VIRTIO_BLK_T_SECURE_ERASE = 14
VIRTIO_BLK_T_ZONE_APPEND = 15
VIRTIO_BLK_T_ZONE_REPORT = 16
VIRTIO_BLK_T_ZONE_OPEN = 18
VIRTIO_BLK_T_ZONE_CLOSE = 20
VIRTIO_BLK_T_ZONE_FINISH = 22
VIRTIO_BLK_T_ZONE_RESET = 24
VIRTIO_BLK_T_ZONE_RESET_ALL = 26
VIRTIO_BLK_T_BARRIER = 0x80000000  # legacy flag ORed into type

# Zoned models (zoned.model), zone types and zone states.
VIRTIO_BLK_Z_NONE = 0
VIRTIO_BLK_Z_HM = 1
VIRTIO_BLK_Z_HA = 2
VIRTIO_BLK_ZT_CONV = 1
VIRTIO_BLK_ZT_SWR = 2
VIRTIO_BLK_ZT_SWP = 3
VIRTIO_BLK_ZS_NOT_WP = 0
VIRTIO_BLK_ZS_EMPTY = 1
VIRTIO_BLK_ZS_IOPEN = 2
VIRTIO_BLK_ZS_EOPEN = 3
VIRTIO_BLK_ZS_CLOSED = 4
VIRTIO_BLK_ZS_RDONLY = 13
VIRTIO_BLK_ZS_FULL = 14
VIRTIO_BLK_ZS_OFFLINE = 15

# struct virtio_blk_discard_write_zeroes.flags
VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 0x00000001

# Status byte, the last device-writable byte of a request.
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2
VIRTIO_BLK_S_ZONE_INVALID_CMD = 3
VIRTIO_BLK_S_ZONE_UNALIGNED_WP = 4
VIRTIO_BLK_S_ZONE_OPEN_RESOURCE = 5
VIRTIO_BLK_S_ZONE_ACTIVE_RESOURCE = 6

# Not in Linux (Linux uses offsetof(struct virtio_blk_config, field)): byte offsets of the
# struct virtio_blk_config fields in the device configuration structure.
VIRTIO_BLK_CFG_CAPACITY = 0  # le64, 512-byte sectors
VIRTIO_BLK_CFG_SIZE_MAX = 8  # le32
VIRTIO_BLK_CFG_SEG_MAX = 12  # le32
VIRTIO_BLK_CFG_GEOMETRY_CYLINDERS = 16  # le16
VIRTIO_BLK_CFG_GEOMETRY_HEADS = 18  # u8
VIRTIO_BLK_CFG_GEOMETRY_SECTORS = 19  # u8
VIRTIO_BLK_CFG_BLK_SIZE = 20  # le32
VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP = 24  # u8, topology
VIRTIO_BLK_CFG_ALIGNMENT_OFFSET = 25  # u8, topology
VIRTIO_BLK_CFG_MIN_IO_SIZE = 26  # le16, topology
VIRTIO_BLK_CFG_OPT_IO_SIZE = 28  # le32, topology
VIRTIO_BLK_CFG_WRITEBACK = 32  # u8, driver-writable with CONFIG_WCE (Linux: wce)
VIRTIO_BLK_CFG_UNUSED0 = 33  # u8
VIRTIO_BLK_CFG_NUM_QUEUES = 34  # le16
VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS = 36  # le32
VIRTIO_BLK_CFG_MAX_DISCARD_SEG = 40  # le32
VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT = 44  # le32
VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS = 48  # le32
VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG = 52  # le32
VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP = 56  # u8
VIRTIO_BLK_CFG_UNUSED1 = 57  # u8[3]
VIRTIO_BLK_CFG_MAX_SECURE_ERASE_SECTORS = 60  # le32
VIRTIO_BLK_CFG_MAX_SECURE_ERASE_SEG = 64  # le32
VIRTIO_BLK_CFG_SECURE_ERASE_SECTOR_ALIGNMENT = 68  # le32
VIRTIO_BLK_CFG_ZONED_ZONE_SECTORS = 72  # le32
VIRTIO_BLK_CFG_ZONED_MAX_OPEN_ZONES = 76  # le32
VIRTIO_BLK_CFG_ZONED_MAX_ACTIVE_ZONES = 80  # le32
VIRTIO_BLK_CFG_ZONED_MAX_APPEND_SECTORS = 84  # le32
VIRTIO_BLK_CFG_ZONED_WRITE_GRANULARITY = 88  # le32
VIRTIO_BLK_CFG_ZONED_MODEL = 92  # u8
VIRTIO_BLK_CFG_ZONED_UNUSED2 = 93  # u8[3]
VIRTIO_BLK_CONFIG_SIZEOF = 96  # sizeof(struct virtio_blk_config)

# The same layout as a table: field name -> (offset, size in bytes). Names are Linux's struct
# members (geometry.* and zoned.* as nested there), except "writeback", the spec's name for wce.
VIRTIO_BLK_CONFIG_LAYOUT = {
    "capacity": (VIRTIO_BLK_CFG_CAPACITY, 8),
    "size_max": (VIRTIO_BLK_CFG_SIZE_MAX, 4),
    "seg_max": (VIRTIO_BLK_CFG_SEG_MAX, 4),
    "geometry.cylinders": (VIRTIO_BLK_CFG_GEOMETRY_CYLINDERS, 2),
    "geometry.heads": (VIRTIO_BLK_CFG_GEOMETRY_HEADS, 1),
    "geometry.sectors": (VIRTIO_BLK_CFG_GEOMETRY_SECTORS, 1),
    "blk_size": (VIRTIO_BLK_CFG_BLK_SIZE, 4),
    "physical_block_exp": (VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP, 1),
    "alignment_offset": (VIRTIO_BLK_CFG_ALIGNMENT_OFFSET, 1),
    "min_io_size": (VIRTIO_BLK_CFG_MIN_IO_SIZE, 2),
    "opt_io_size": (VIRTIO_BLK_CFG_OPT_IO_SIZE, 4),
    "writeback": (VIRTIO_BLK_CFG_WRITEBACK, 1),
    "unused0": (VIRTIO_BLK_CFG_UNUSED0, 1),
    "num_queues": (VIRTIO_BLK_CFG_NUM_QUEUES, 2),
    "max_discard_sectors": (VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4),
    "max_discard_seg": (VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4),
    "discard_sector_alignment": (VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 4),
    "max_write_zeroes_sectors": (VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4),
    "max_write_zeroes_seg": (VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4),
    "write_zeroes_may_unmap": (VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1),
    "unused1": (VIRTIO_BLK_CFG_UNUSED1, 3),
    "max_secure_erase_sectors": (VIRTIO_BLK_CFG_MAX_SECURE_ERASE_SECTORS, 4),
    "max_secure_erase_seg": (VIRTIO_BLK_CFG_MAX_SECURE_ERASE_SEG, 4),
    "secure_erase_sector_alignment": (VIRTIO_BLK_CFG_SECURE_ERASE_SECTOR_ALIGNMENT, 4),
    "zoned.zone_sectors": (VIRTIO_BLK_CFG_ZONED_ZONE_SECTORS, 4),
    "zoned.max_open_zones": (VIRTIO_BLK_CFG_ZONED_MAX_OPEN_ZONES, 4),
    "zoned.max_active_zones": (VIRTIO_BLK_CFG_ZONED_MAX_ACTIVE_ZONES, 4),
    "zoned.max_append_sectors": (VIRTIO_BLK_CFG_ZONED_MAX_APPEND_SECTORS, 4),
    "zoned.write_granularity": (VIRTIO_BLK_CFG_ZONED_WRITE_GRANULARITY, 4),
    "zoned.model": (VIRTIO_BLK_CFG_ZONED_MODEL, 1),
    "zoned.unused2": (VIRTIO_BLK_CFG_ZONED_UNUSED2, 3),
}

# --------------------------------------------------------------------------------------------
# pci_regs.h (the subset a virtio driver and its bench touch)
# --------------------------------------------------------------------------------------------

PCI_STD_HEADER_SIZEOF = 64
PCI_STD_NUM_BARS = 6

# Type-0 configuration header.
PCI_VENDOR_ID = 0x00  # 16 bits
PCI_DEVICE_ID = 0x02  # 16 bits
PCI_COMMAND = 0x04  # 16 bits
PCI_COMMAND_IO = 0x1  # respond in I/O space
PCI_COMMAND_MEMORY = 0x2  # respond in memory space
PCI_COMMAND_MASTER = 0x4  # bus mastering (DMA and MSI-X writes)
PCI_COMMAND_SPECIAL = 0x8
PCI_COMMAND_INVALIDATE = 0x10
PCI_COMMAND_VGA_PALETTE = 0x20
PCI_COMMAND_PARITY = 0x40
PCI_COMMAND_WAIT = 0x80
PCI_COMMAND_SERR = 0x100
PCI_COMMAND_FAST_BACK = 0x200
PCI_COMMAND_INTX_DISABLE = 0x400  # the function must not assert INTx
PCI_STATUS = 0x06  # 16 bits
PCI_STATUS_IMM_READY = 0x01
PCI_STATUS_INTERRUPT = 0x08  # INTx is pending inside the function (even if disabled)
PCI_STATUS_CAP_LIST = 0x10  # PCI_CAPABILITY_LIST is valid
PCI_STATUS_PARITY = 0x100
PCI_STATUS_SIG_TARGET_ABORT = 0x800
PCI_STATUS_REC_TARGET_ABORT = 0x1000
PCI_STATUS_REC_MASTER_ABORT = 0x2000
PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000
PCI_STATUS_DETECTED_PARITY = 0x8000
PCI_CLASS_REVISION = 0x08  # 32 bits: class code in 31:8, revision in 7:0
PCI_REVISION_ID = 0x08  # 8 bits
PCI_CLASS_PROG = 0x09  # 8 bits, programming interface
PCI_CLASS_DEVICE = 0x0A  # 16 bits, base class and subclass
PCI_CACHE_LINE_SIZE = 0x0C
PCI_LATENCY_TIMER = 0x0D
PCI_HEADER_TYPE = 0x0E  # 8 bits
PCI_HEADER_TYPE_MASK = 0x7F
PCI_HEADER_TYPE_NORMAL = 0
PCI_BIST = 0x0F
PCI_BASE_ADDRESS_0 = 0x10
PCI_BASE_ADDRESS_1 = 0x14
PCI_BASE_ADDRESS_2 = 0x18
PCI_BASE_ADDRESS_3 = 0x1C
PCI_BASE_ADDRESS_4 = 0x20
PCI_BASE_ADDRESS_5 = 0x24
PCI_BASE_ADDRESS_SPACE = 0x01  # 0 = memory, 1 = I/O
PCI_BASE_ADDRESS_SPACE_IO = 0x01
PCI_BASE_ADDRESS_SPACE_MEMORY = 0x00
PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06
PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08
PCI_SUBSYSTEM_VENDOR_ID = 0x2C  # 16 bits
PCI_SUBSYSTEM_ID = 0x2E  # 16 bits
PCI_ROM_ADDRESS = 0x30
PCI_CAPABILITY_LIST = 0x34  # 8 bits, offset of the first capability
PCI_INTERRUPT_LINE = 0x3C  # 8 bits
PCI_INTERRUPT_PIN = 0x3D  # 8 bits, 1 = INTA#

# Capability list.
PCI_CAP_LIST_ID = 0  # 8 bits, capability ID
PCI_CAP_LIST_NEXT = 1  # 8 bits, next capability
PCI_CAP_FLAGS = 2  # 16 bits, capability-defined flags
PCI_CAP_ID_PM = 0x01
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_VNDR = 0x09
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11

# MSI-X capability.
PCI_MSIX_FLAGS = 2  # 16 bits, Message Control
PCI_MSIX_FLAGS_QSIZE = 0x07FF  # table size - 1
PCI_MSIX_FLAGS_MASKALL = 0x4000  # function mask
PCI_MSIX_FLAGS_ENABLE = 0x8000
PCI_MSIX_TABLE = 4  # 32 bits, table offset and BIR
PCI_MSIX_TABLE_BIR = 0x00000007
PCI_MSIX_TABLE_OFFSET = 0xFFFFFFF8
PCI_MSIX_PBA = 8  # 32 bits, PBA offset and BIR
PCI_MSIX_PBA_BIR = 0x00000007
PCI_MSIX_PBA_OFFSET = 0xFFFFFFF8
PCI_CAP_MSIX_SIZEOF = 12

# MSI-X table entry.
PCI_MSIX_ENTRY_SIZE = 16
PCI_MSIX_ENTRY_LOWER_ADDR = 0x0
PCI_MSIX_ENTRY_UPPER_ADDR = 0x4
PCI_MSIX_ENTRY_DATA = 0x8
PCI_MSIX_ENTRY_VECTOR_CTRL = 0xC
PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x00000001

# PCI Express capability.
PCI_EXP_FLAGS = 0x02  # 16 bits, capabilities register
PCI_EXP_DEVCAP = 0x04  # 32 bits, device capabilities
PCI_EXP_DEVCAP_PAYLOAD = 0x00000007  # Max_Payload_Size Supported
PCI_EXP_DEVCAP_EXT_TAG = 0x00000020
PCI_EXP_DEVCAP_FLR = 0x10000000
PCI_EXP_DEVCTL = 0x08  # 16 bits, device control
PCI_EXP_DEVCTL_CERE = 0x0001
PCI_EXP_DEVCTL_NFERE = 0x0002
PCI_EXP_DEVCTL_FERE = 0x0004
PCI_EXP_DEVCTL_URRE = 0x0008
PCI_EXP_DEVCTL_RELAX_EN = 0x0010
PCI_EXP_DEVCTL_PAYLOAD = 0x00E0  # Max_Payload_Size
PCI_EXP_DEVCTL_PAYLOAD_128B = 0x0000
PCI_EXP_DEVCTL_PAYLOAD_256B = 0x0020
PCI_EXP_DEVCTL_PAYLOAD_512B = 0x0040
PCI_EXP_DEVCTL_PAYLOAD_1024B = 0x0060
PCI_EXP_DEVCTL_PAYLOAD_2048B = 0x0080
PCI_EXP_DEVCTL_PAYLOAD_4096B = 0x00A0
PCI_EXP_DEVCTL_EXT_TAG = 0x0100
PCI_EXP_DEVCTL_PHANTOM = 0x0200
PCI_EXP_DEVCTL_AUX_PME = 0x0400
PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800
PCI_EXP_DEVCTL_READRQ = 0x7000  # Max_Read_Request_Size
PCI_EXP_DEVCTL_READRQ_128B = 0x0000
PCI_EXP_DEVCTL_READRQ_256B = 0x1000
PCI_EXP_DEVCTL_READRQ_512B = 0x2000
PCI_EXP_DEVCTL_READRQ_1024B = 0x3000
PCI_EXP_DEVCTL_READRQ_2048B = 0x4000
PCI_EXP_DEVCTL_READRQ_4096B = 0x5000
PCI_EXP_DEVCTL_BCR_FLR = 0x8000  # initiate Function Level Reset
PCI_EXP_DEVSTA = 0x0A  # 16 bits, device status
