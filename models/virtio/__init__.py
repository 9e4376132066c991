# SPDX-License-Identifier: Apache-2.0
"""Guest-side virtio driver stack, modelled on Linux's.

Layers, each mirroring a Linux file:
  uapi        include/uapi/linux/virtio_*.h, pci_regs.h   constants under their Linux names
  pci_modern  drivers/virtio/virtio_pci_modern_dev.c       VirtioPciModernDev: capabilities, registers
  virtio      drivers/virtio/virtio.c, virtio_pci_common.c VirtioDevice, VirtioDriver, virtio_dev_probe
  ring        drivers/virtio/virtio_ring.c                 Virtqueue: split ring layout in host memory
  blk         drivers/block/virtio_blk.c                   VirtioBlkDriver

Typical use after ``await rc.enumerate()``::

    vdev = await virtio_pci_probe(pci_dev, rc, intx=intx)
    blk = VirtioBlkDriver()
    await virtio_dev_probe(vdev, blk)
"""

from . import uapi
from .blk import VirtioBlkDriver
from .pci_modern import VirtioError, VirtioPciCapabilityError, VirtioPciModernDev
from .ring import Virtqueue, vring_size
from .uapi import vring_need_event
from .virtio import (
    VP_VQ_VECTOR_POLICIES,
    VP_VQ_VECTOR_POLICY_EACH,
    VP_VQ_VECTOR_POLICY_INTX,
    VP_VQ_VECTOR_POLICY_SHARED,
    VirtioDevice,
    VirtioDriver,
    VirtioFeaturesError,
    VirtioIrqError,
    VirtioQueueError,
    VirtioResetTimeout,
    register_virtio_device,
    virtio_add_status,
    virtio_config_changed,
    virtio_cread,
    virtio_cread_bytes,
    virtio_cread_feature,
    virtio_cwrite,
    virtio_dev_probe,
    virtio_dev_remove,
    virtio_device_ready,
    virtio_features_ok,
    virtio_has_feature,
    virtio_pci_probe,
    virtio_reset_device,
)

__all__ = [
    "uapi",
    "VirtioBlkDriver",
    "VirtioError",
    "VirtioPciCapabilityError",
    "VirtioPciModernDev",
    "Virtqueue",
    "vring_size",
    "vring_need_event",
    "VP_VQ_VECTOR_POLICIES",
    "VP_VQ_VECTOR_POLICY_EACH",
    "VP_VQ_VECTOR_POLICY_INTX",
    "VP_VQ_VECTOR_POLICY_SHARED",
    "VirtioDevice",
    "VirtioDriver",
    "VirtioFeaturesError",
    "VirtioIrqError",
    "VirtioQueueError",
    "VirtioResetTimeout",
    "register_virtio_device",
    "virtio_add_status",
    "virtio_config_changed",
    "virtio_cread",
    "virtio_cread_bytes",
    "virtio_cread_feature",
    "virtio_cwrite",
    "virtio_dev_probe",
    "virtio_dev_remove",
    "virtio_device_ready",
    "virtio_features_ok",
    "virtio_has_feature",
    "virtio_pci_probe",
    "virtio_reset_device",
]
