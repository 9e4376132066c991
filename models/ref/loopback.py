# SPDX-License-Identifier: Apache-2.0
"""A simulator-free stand-in for the PCI transport, for pure-Python tests of the driver side.

cocotbext-pcie's RootComplex needs the cocotb scheduler, but the host memory behind it is plain
cocotbext-axi: ``LoopbackRc`` lays host memory out the same way (``mem_address_space``, a
``mem_pool`` from 0 to 2 GiB, an MSI region at 0x8000_0000), so ``Virtqueue``, ``HostMemPool``,
``DmaChecker`` and ``VirtioBlk`` run unchanged on it, under ``asyncio.run``.

``LoopbackVirtioDevice`` stands in for ``VirtioDevice``: it has ``features``, ``rc``, an
``mdev`` whose ``vp_notify`` (and ``vp_notify_with_data``) is the doorbell, and creates queues with a ``VringDeviceModel``
behind each. With a ``handler`` the device serves a queue as soon as its doorbell rings and
sends the used-buffer interrupt straight to ``vq.vring_interrupt()`` (like MSI-X); without one,
tests drive ``device.service(...)`` themselves.
"""

from cocotbext.axi.address_space import AddressSpace, MemoryRegion

from models.virtio.ring import Virtqueue

from .vring_device import VringDeviceModel

HOST_MEM_BASE = 0x0000_0000
HOST_MEM_SIZE = 0x8000_0000
MSI_REGION_BASE = 0x8000_0000
MSI_REGION_SIZE = 16


class LoopbackRc:
    """Host memory laid out like cocotbext-pcie's RootComplex (no TLPs, no scheduler)."""

    def __init__(self):
        self.mem_address_space = AddressSpace(2**64)
        self.mem_pool = self.mem_address_space.create_pool(HOST_MEM_BASE, HOST_MEM_SIZE)
        self.msi_region = MemoryRegion(MSI_REGION_SIZE)
        self.mem_address_space.register_region(self.msi_region, MSI_REGION_BASE)
        self.dma_checker = None


class LoopbackMdev:
    """The doorbell half of VirtioPciModernDev."""

    def __init__(self, vdev):
        self.vdev = vdev
        self.notifies = []  # queue index of every doorbell, in order
        self.notify_data = []  # (queue index, 32-bit value) of every VIRTIO_F_NOTIFICATION_DATA doorbell

    async def vp_notify(self, index):
        self.notifies.append(index)
        await self.vdev.on_notify(index)

    async def vp_notify_with_data(self, index, data):
        self.notify_data.append((index, data))
        await self.vp_notify(index)


class LoopbackVirtioDevice:
    """Features, host memory, doorbells and a Python device per queue. See the module docstring.

    ``dma``: the devices' DMA port; by default the checker's port if a DmaChecker is given
    (installed on the loopback RC), else the RC's address space.
    """

    def __init__(self, features, checker=None, handler=None, reorder=False, batch=1, rng=None):
        self.features = features
        self.rc = LoopbackRc()
        self.mdev = LoopbackMdev(self)
        self.checker = checker
        if checker is not None:
            self.rc.dma_checker = checker
            checker.add_region(MSI_REGION_BASE, MSI_REGION_SIZE, "MSI message address", "loopback MSI region")
            self.dma = checker.device_port(self.rc.mem_address_space)
        else:
            self.dma = self.rc.mem_address_space
        self.handler = handler
        self.reorder = reorder
        self.batch = batch
        self.rng = rng
        self.vqs = []
        self.devices = {}
        self.poll_delay = None

    async def create_vq(self, index, num, callback=None, name=None):
        """A Virtqueue (as find_vqs would make it) and its device model."""
        vq = await Virtqueue.vring_create_virtqueue(self, index, num, name or f"vq{index}", callback, self.rc.mem_pool)
        self.vqs.append(vq)

        async def irq(vq=vq):
            await vq.vring_interrupt()

        self.devices[index] = VringDeviceModel.from_vq(vq, self.dma, irq=irq, rng=self.rng)
        return vq

    async def on_notify(self, index):
        device = self.devices.get(index)
        if self.handler is not None and device is not None:
            await device.service(self.handler, reorder=self.reorder, batch=self.batch)

    async def reset(self):
        """Device reset: the device models stop (doorbells are ignored until new queues)."""
        self.reset_count = getattr(self, "reset_count", 0) + 1
        self.stopped_devices = dict(self.devices)
        self.devices = {}

    async def del_vqs(self):
        self.vqs = []
