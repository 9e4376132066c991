# SPDX-License-Identifier: Apache-2.0
"""Reference models: what the device should do, used as scoreboards and to prove the driver side.

  ramdisk       RamDisk: virtio-blk request semantics over a bytearray disk
  disk_image    load/save disk image files into the disk memory (AxiRam), default pattern
  vring_device  VringDeviceModel: the device side of a split ring, in Python
  loopback      LoopbackVirtioDevice: simulator-free transport (host memory, doorbells, IRQs)
"""

from .disk_image import DiskImageError, default_image, load_disk_image, save_disk_image
from .ramdisk import RamDisk
from .vring_device import VringChain, VringDeviceError, VringDeviceModel, ramdisk_handler

__all__ = [
    "DiskImageError", "default_image", "load_disk_image", "save_disk_image",
    "RamDisk",
    "VringChain", "VringDeviceError", "VringDeviceModel", "ramdisk_handler",
]
