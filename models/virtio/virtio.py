# SPDX-License-Identifier: Apache-2.0
"""Virtio core: device status handshake, feature negotiation, queue and interrupt setup.

Mirrors Linux's ``drivers/virtio/virtio.c`` (``virtio_dev_probe``, ``virtio_features_ok``,
``virtio_device_ready``, ``virtio_add_status``, ``virtio_config_changed``), the config-read helpers
of ``include/linux/virtio_config.h`` (``virtio_cread``, ``virtio_cwrite``, ``virtio_cread_feature``),
and the queue and interrupt half of ``drivers/virtio/virtio_pci_common.c`` and
``virtio_pci_modern.c`` (``vp_find_vqs``, ``vp_setup_vq``, ``vp_del_vqs``, ``vp_interrupt``,
``vp_vring_interrupt``, ``vp_config_changed``, ``vp_reset``, ``vp_finalize_features``).

In Linux the config ops are a table of function pointers; here ``VirtioDevice`` implements them
directly on top of one transport, ``VirtioPciModernDev``.
"""

import inspect
import logging

from cocotb.triggers import Event

from .pci_modern import VirtioError, VirtioPciModernDev
from .ring import Virtqueue
from .uapi import (
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_ACCESS_PLATFORM,
    VIRTIO_F_NOTIFICATION_DATA,
    VIRTIO_F_ORDER_PLATFORM,
    VIRTIO_F_RING_RESET,
    VIRTIO_F_VERSION_1,
    VIRTIO_MSI_NO_VECTOR,
    VIRTIO_PCI_ISR_CONFIG,
    VIRTIO_PCI_ISR_QUEUE,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VIRTIO_TRANSPORT_F_END,
    VIRTIO_TRANSPORT_F_START,
)

# MSI-X vector numbers virtio-pci uses: config changes on the first; with one shared vector for
# all queues, the queues on the second (Linux's VP_MSIX_CONFIG_VECTOR / VP_MSIX_VQ_VECTOR).
VP_MSIX_CONFIG_VECTOR = 0
VP_MSIX_VQ_VECTOR = 1

# Interrupt layouts find_vqs tries, best first (Linux's enum vp_vq_vector_policy, plus INTx).
VP_VQ_VECTOR_POLICY_EACH = "msix-each"  # one vector for config changes, one per queue
VP_VQ_VECTOR_POLICY_SHARED = "msix-shared"  # one for config changes, one shared by every queue
VP_VQ_VECTOR_POLICY_INTX = "intx"  # the INTx line; the ISR says what happened
VP_VQ_VECTOR_POLICIES = (VP_VQ_VECTOR_POLICY_EACH, VP_VQ_VECTOR_POLICY_SHARED, VP_VQ_VECTOR_POLICY_INTX)

# Bounds on busy-wait loops, counted in register reads.
DEFAULT_RESET_MAX_POLLS = 1000
CONFIG_GENERATION_MAX_RETRIES = 100
INTX_MAX_ISR_READS = 16


class VirtioResetTimeout(VirtioError):
    """device_status did not read 0 after a reset."""


class VirtioFeaturesError(VirtioError):
    """Feature negotiation failed (the device cleared FEATURES_OK, or VERSION_1 is missing)."""


class VirtioQueueError(VirtioError):
    """A virtqueue could not be set up (absent, already enabled, bad size...)."""


class VirtioIrqError(VirtioError):
    """An interrupt layout could not be set up; find_vqs then tries the next one."""


async def _maybe_await(result):
    if inspect.isawaitable(result):
        return await result
    return result


class VirtioDriver:
    """Base class of a virtio device driver (Linux's struct virtio_driver).

    ``id_table``: virtio device ids (VIRTIO_ID_*) the driver binds to.
    ``feature_table``: device feature bit numbers the driver understands. Transport and ring bits
    (VIRTIO_TRANSPORT_F_START..END) are handled by the core and need not be listed.
    """

    id_table = []
    feature_table = []

    async def probe(self, vdev):
        """Read the config, create the queues (``vdev.find_vqs``), optionally set DRIVER_OK."""
        raise NotImplementedError

    async def remove(self, vdev):
        """Undo probe: reset the device and delete the queues."""
        await virtio_reset_device(vdev)
        await vdev.del_vqs()

    def config_changed(self, vdev):
        """Called on a configuration-change interrupt once the driver is bound (may be async)."""


class VirtioDevice:
    """One virtio device bound to a ``VirtioPciModernDev`` transport (Linux's virtio_device plus
    the virtio_pci_device state that goes with it).

    ``features``: the negotiated bits (Linux's dev->features). ``vqs``: the virtqueues set up by
    find_vqs, in creation order. ``config_change_count``/``config_change_event``: every
    configuration-change interrupt, whether or not the driver is told.

    ``poll_delay``: optional zero-argument callable returning an awaitable (for example
    ``lambda: Timer(100, "ns")``) awaited between two polls of device_status during reset; by
    default each poll is only paced by the register read itself.
    """

    # Transport and ring bits the core accepts when offered (Linux's vring_transport_features and
    # vp_transport_features). INDIRECT_DESC and EVENT_IDX are ring features the ring verbs will
    # honour; ACCESS_PLATFORM costs nothing here since bus addresses are host addresses (no IOMMU);
    # ORDER_PLATFORM asks for the platform's barriers, which a simulated host always gives;
    # NOTIFICATION_DATA makes every doorbell a 32-bit write that carries the avail idx
    # (vp_notify_with_data), as Linux does when the device offers it.
    # Set an instance attribute to change the policy for one device (a test refuses a feature by
    # leaving it out).
    transport_features = frozenset({
        VIRTIO_F_VERSION_1,
        VIRTIO_RING_F_INDIRECT_DESC,
        VIRTIO_RING_F_EVENT_IDX,
        VIRTIO_F_ACCESS_PLATFORM,
        VIRTIO_F_ORDER_PLATFORM,
        VIRTIO_F_NOTIFICATION_DATA,
        VIRTIO_F_RING_RESET,
    })

    def __init__(self, mdev: VirtioPciModernDev, poll_delay=None, reset_max_polls=DEFAULT_RESET_MAX_POLLS):
        self.mdev = mdev
        self.pci_dev = mdev.pci_dev
        self.rc = mdev.rc
        self.id = mdev.id_device
        self.vendor = mdev.id_vendor
        self.log = logging.getLogger("cocotb.virtio")
        self.poll_delay = poll_delay
        self.reset_max_polls = reset_max_polls

        self.driver = None
        self.features = 0
        self.device_features = None  # last value read by get_features()
        self.vqs = []

        self.config_enabled = False
        self.config_change_pending = False
        self.config_change_count = 0
        self.config_change_event = Event()

        # Interrupt state (Linux's virtio_pci_device fields of the same names).
        self.msix_enabled = False
        self.msix_vectors = 0
        self.msix_used_vectors = 0
        self.per_vq_vectors = False
        self.intx_enabled = False
        self.vector_policy = None
        self.config_vector = VIRTIO_MSI_NO_VECTOR
        self.find_vqs_attempts = []  # [(policy, error message or None)] of the last find_vqs
        self.intx_count = 0
        self.last_isr = None
        self._vring_vqs = []  # queues with a callback, scanned on a shared or INTx interrupt
        self._irq_handlers = []  # (vector, handler) registered with pci_dev.request_irq
        self._intx_registered = False

    # ------------------------------------------------------------------------------------------
    # Config ops (struct virtio_config_ops)
    # ------------------------------------------------------------------------------------------

    async def get(self, offset, size):
        """Read a device-config field of 1, 2, 4 or 8 bytes (no generation check)."""
        return await self.mdev.vp_get(offset, size)

    async def set(self, offset, size, value):
        """Write a device-config field of 1, 2, 4 or 8 bytes."""
        await self.mdev.vp_set(offset, size, value)

    async def generation(self):
        return await self.mdev.vp_modern_generation()

    async def get_status(self):
        return await self.mdev.vp_modern_get_status()

    async def set_status(self, status):
        if status == 0:
            raise ValueError("writing 0 to device_status is a reset: use reset()")
        await self.mdev.vp_modern_set_status(status)

    async def reset(self):
        """Write 0 to device_status, then poll until it reads 0 (spec §2.4; conformance RST-01)."""
        await self.mdev.vp_modern_set_status(0)
        status = None
        for _ in range(self.reset_max_polls):
            status = await self.mdev.vp_modern_get_status()
            if status == 0:
                return
            if self.poll_delay is not None:
                await self.poll_delay()
        raise VirtioResetTimeout(f"device_status still reads 0x{status:02x} after {self.reset_max_polls} "
                                 "polls following a reset (write of 0)")

    async def get_features(self):
        self.device_features = await self.mdev.vp_modern_get_features()
        return self.device_features

    def vring_transport_features(self):
        """Drop transport/ring bits the core does not implement from ``features``."""
        for fbit in range(VIRTIO_TRANSPORT_F_START, VIRTIO_TRANSPORT_F_END):
            if fbit not in self.transport_features:
                self.features &= ~(1 << fbit)

    async def finalize_features(self):
        """Filter transport bits, check VERSION_1 and write ``features`` to the device."""
        self.vring_transport_features()
        if not virtio_has_feature(self, VIRTIO_F_VERSION_1):
            raise VirtioFeaturesError("device uses the modern interface but does not offer VIRTIO_F_VERSION_1 "
                                      f"(device features 0x{self.device_features or 0:016x})")
        self.mdev.vp_check_common_size(self.features)
        await self.mdev.vp_modern_set_features(self.features)

    async def negotiate(self, features, reset=True):
        """Try an explicit feature set, unfiltered, and report whether FEATURES_OK stuck.

        With ``reset``, first reset and set ACKNOWLEDGE | DRIVER. Nothing is raised and FAILED is not
        set, so tests can offer refused sets (bits not offered, VERSION_1 missing) and look.
        """
        if reset:
            await self.reset()
            await virtio_add_status(self, VIRTIO_CONFIG_S_ACKNOWLEDGE)
            await virtio_add_status(self, VIRTIO_CONFIG_S_DRIVER)
        self.features = features
        await self.mdev.vp_modern_set_features(features)
        await virtio_add_status(self, VIRTIO_CONFIG_S_FEATURES_OK)
        return bool(await self.get_status() & VIRTIO_CONFIG_S_FEATURES_OK)

    async def add_status(self, status):
        await virtio_add_status(self, status)

    # ------------------------------------------------------------------------------------------
    # Queues (vp_modern_find_vqs, vp_find_vqs, vp_setup_vq, setup_vq, vp_del_vqs)
    # ------------------------------------------------------------------------------------------

    async def find_vqs(self, names, callbacks=None, sizes=None, policy=None):
        """Create, map and enable one virtqueue per name; return them in order.

        ``names[i]`` None skips that entry (returns None there, uses no queue index), as in Linux;
        the other entries take queue indices 0, 1, ... in order. ``callbacks[i]`` (or None) is
        called with the queue on its interrupts. ``sizes[i]`` (or None for the device maximum)
        asks for a smaller ring; it must be a power of 2.

        ``policy`` forces one interrupt layout (one of VP_VQ_VECTOR_POLICIES); by default they are
        tried in order, as Linux does: an MSI-X vector per queue, one shared MSI-X vector, INTx.
        """
        nvqs = len(names)
        callbacks = list(callbacks) if callbacks is not None else [None] * nvqs
        sizes = list(sizes) if sizes is not None else [None] * nvqs
        if len(callbacks) != nvqs or len(sizes) != nvqs:
            raise ValueError("names, callbacks and sizes must have the same length")
        if self.vqs:
            raise VirtioError("find_vqs called while queues exist: call del_vqs first")
        if policy is not None and policy not in VP_VQ_VECTOR_POLICIES:
            raise ValueError(f"unknown interrupt policy {policy!r}: one of {VP_VQ_VECTOR_POLICIES}")

        policies = [policy] if policy is not None else list(VP_VQ_VECTOR_POLICIES)
        self.find_vqs_attempts = []
        vqs = None
        for attempt in policies:
            try:
                vqs = await self._vp_find_vqs(attempt, names, callbacks, sizes)
            except VirtioIrqError as exc:
                self.log.info("find_vqs: %s interrupts not possible: %s", attempt, exc)
                self.find_vqs_attempts.append((attempt, str(exc)))
                continue
            self.find_vqs_attempts.append((attempt, None))
            break
        if vqs is None:
            raise VirtioIrqError(f"no interrupt layout could be set up: {self.find_vqs_attempts}")

        # Enable every queue last: once enabled there is no way back but a reset.
        for vq in self.vqs:
            await self.mdev.vp_modern_set_queue_enable(vq.index, True)
        self.log.info("find_vqs: %s interrupts, queues %s", self.vector_policy, self.vqs)
        return vqs

    async def _vp_find_vqs(self, policy, names, callbacks, sizes):
        try:
            if policy == VP_VQ_VECTOR_POLICY_INTX:
                await self._vp_request_intx()
                per_vq_vectors = False
            else:
                per_vq_vectors = policy == VP_VQ_VECTOR_POLICY_EACH
                if per_vq_vectors:
                    nvectors = 1 + sum(1 for name, cb in zip(names, callbacks) if name is not None and cb is not None)
                else:
                    nvectors = 2
                await self._vp_request_msix_vectors(nvectors, per_vq_vectors)
            self.per_vq_vectors = per_vq_vectors
            self.vector_policy = policy

            allocated_vectors = self.msix_used_vectors
            vqs = []
            queue_idx = 0
            for name, callback, size in zip(names, callbacks, sizes):
                if name is None:
                    vqs.append(None)
                    continue
                if callback is None or not self.msix_enabled:
                    msix_vec = VIRTIO_MSI_NO_VECTOR
                elif per_vq_vectors:
                    msix_vec = allocated_vectors
                    allocated_vectors += 1
                else:
                    msix_vec = VP_MSIX_VQ_VECTOR
                vq = await self._vp_setup_vq(queue_idx, callback, name, size, msix_vec)
                queue_idx += 1
                vqs.append(vq)
                if per_vq_vectors and msix_vec != VIRTIO_MSI_NO_VECTOR:
                    self._request_irq(msix_vec, self._make_vring_handler(vq))
            return vqs
        except BaseException:
            try:
                await self.del_vqs()
            except Exception as cleanup_error:  # keep the original error
                self.log.error("find_vqs: cleanup after failure failed too: %s", cleanup_error)
            raise

    async def _vp_setup_vq(self, index, callback, name, size, msix_vec):
        mdev = self.mdev
        num_queues = await mdev.vp_modern_get_num_queues()
        if index >= num_queues:
            raise VirtioQueueError(f"queue {index} ({name}) does not exist: num_queues reads {num_queues}")
        num = await mdev.vp_modern_get_queue_size(index)
        if num == 0:
            raise VirtioQueueError(f"queue {index} ({name}) is not available: queue_size reads 0")
        if await mdev.vp_modern_get_queue_enable(index):
            raise VirtioQueueError(f"queue {index} ({name}) is already enabled before setup")
        if num & (num - 1):
            raise VirtioQueueError(f"queue {index} ({name}): maximum queue_size {num} is not a power of 2")
        if size is None:
            size = num
        elif size < 1 or size & (size - 1):
            raise ValueError(f"queue {index} ({name}): requested size {size} is not a power of 2")
        else:
            size = min(size, num)

        vq = await Virtqueue.vring_create_virtqueue(self, index, size, name, callback, self.rc.mem_pool)
        vq.num_max = num
        self.vqs.append(vq)
        if callback is not None:
            self._vring_vqs.append(vq)

        # vp_active_vq: size, addresses, vector; then the doorbell.
        await mdev.vp_modern_set_queue_size(index, vq.num)
        await mdev.vp_modern_queue_address(index, vq.desc_addr, vq.avail_addr, vq.used_addr)
        vq.vector = VIRTIO_MSI_NO_VECTOR
        if msix_vec != VIRTIO_MSI_NO_VECTOR:
            readback = await mdev.vp_modern_queue_vector(index, msix_vec)
            if readback == VIRTIO_MSI_NO_VECTOR:
                raise VirtioIrqError(f"queue {index} ({name}): the device refused MSI-X vector {msix_vec} "
                                     "(queue_msix_vector reads back NO_VECTOR)")
            if readback != msix_vec:
                raise VirtioQueueError(f"queue {index} ({name}): wrote MSI-X vector {msix_vec} to "
                                       f"queue_msix_vector, read back {readback}")
            vq.vector = readback
        vq.notify_addr = await mdev.vp_modern_map_vq_notify(index)
        return vq

    async def del_vqs(self):
        """Unmap every queue's vector, forget the queues and free the interrupts (vp_del_vqs).

        The ring memory stays allocated: cocotbext-axi pools cannot free a region.
        """
        for vq in self.vqs:
            if self.msix_enabled:
                await self.mdev.vp_modern_queue_vector(vq.index, VIRTIO_MSI_NO_VECTOR)
        self.vqs = []
        self._vring_vqs = []
        self.per_vq_vectors = False
        self.vector_policy = None
        await self._vp_free_vectors()

    # ------------------------------------------------------------------------------------------
    # Interrupts
    # ------------------------------------------------------------------------------------------

    def _request_irq(self, vector, handler):
        self.pci_dev.request_irq(vector, handler)
        self._irq_handlers.append((vector, handler))

    def _make_vring_handler(self, vq):
        async def vring_interrupt():
            await vq.vring_interrupt()
        return vring_interrupt

    async def _vp_request_msix_vectors(self, nvectors, per_vq_vectors):
        if self.mdev.msix_cap is None:
            raise VirtioIrqError("the function has no MSI-X capability")
        allocated = await self.pci_dev.alloc_irq_vectors(nvectors, nvectors)
        if getattr(self.pci_dev, "msi_enabled", False):
            # cocotbext-pcie falls back to plain MSI; virtio-pci needs MSI-X.
            await self.pci_dev.disable_msi()
            raise VirtioIrqError(f"could not get {nvectors} MSI-X vectors (only MSI was offered)")
        if allocated is None or allocated < nvectors or not self.pci_dev.msix_enabled:
            raise VirtioIrqError(f"could not get {nvectors} MSI-X vectors "
                                 f"(table size {self.mdev.msix_table_size}, alloc_irq_vectors returned {allocated})")
        self.msix_enabled = True
        self.msix_vectors = nvectors
        # With MSI-X on, Linux also sets PCI_COMMAND_INTX_DISABLE (pci_intx_for_msi).
        await self.mdev.pci_intx(False)

        self._request_irq(VP_MSIX_CONFIG_VECTOR, self._vp_config_changed)
        self.msix_used_vectors += 1
        readback = await self.mdev.vp_modern_config_vector(VP_MSIX_CONFIG_VECTOR)
        if readback == VIRTIO_MSI_NO_VECTOR:
            raise VirtioIrqError(f"the device refused MSI-X vector {VP_MSIX_CONFIG_VECTOR} for config changes "
                                 "(config_msix_vector reads back NO_VECTOR)")
        if readback != VP_MSIX_CONFIG_VECTOR:
            raise VirtioError(f"wrote {VP_MSIX_CONFIG_VECTOR} to config_msix_vector, read back {readback}")
        self.config_vector = readback

        if not per_vq_vectors:
            self._request_irq(VP_MSIX_VQ_VECTOR, self._vp_vring_interrupt)
            self.msix_used_vectors += 1

    async def _vp_request_intx(self):
        if self.mdev.intx is None:
            raise VirtioIrqError("no INTx adapter: pass intx= to VirtioPciModernDev")
        if not self._intx_registered:
            self.mdev.intx.register_handler(self._vp_interrupt)
            self._intx_registered = True
        await self.mdev.pci_intx(True)
        self.intx_enabled = True

    async def _vp_free_vectors(self):
        self.intx_enabled = False
        for vector, handler in self._irq_handlers:
            callbacks = self.pci_dev.msi_vectors[vector].cb
            if handler in callbacks:
                callbacks.remove(handler)
        self._irq_handlers = []
        if self.msix_enabled:
            await self.mdev.vp_modern_config_vector(VIRTIO_MSI_NO_VECTOR)
            await self.pci_dev.free_irq_vectors()
            # pci_disable_msix gives INTx back.
            await self.mdev.pci_intx(True)
            self.msix_enabled = False
        self.config_vector = VIRTIO_MSI_NO_VECTOR
        self.msix_vectors = 0
        self.msix_used_vectors = 0

    async def _vp_config_changed(self):
        """Configuration-change interrupt (its own MSI-X vector, or ISR bit 1 under INTx)."""
        self.config_change_count += 1
        self.config_change_event.set()
        await virtio_config_changed(self)

    async def _vp_vring_interrupt(self):
        """Run every queue's interrupt (shared MSI-X vector, or ISR bit 0 under INTx)."""
        for vq in list(self._vring_vqs):
            await vq.vring_interrupt()

    async def _vp_interrupt(self):
        """INTx handler: read (and so clear) the ISR, then dispatch on its bits.

        Linux scans every ring whenever the ISR is non-zero and lets vring_interrupt drop the ones
        with nothing used; until that check exists the queue bit decides.

        The INTx adapter calls this on a rising edge only, while INTx is a level: an event the
        device records as the ISR is being read keeps the line high without a new edge. So, as a
        level-triggered IRQ would fire again, the ISR is re-read until it reads 0.
        """
        if not self.intx_enabled:
            return
        self.intx_count += 1
        for _ in range(INTX_MAX_ISR_READS):
            isr = await self.mdev.vp_modern_read_isr()
            self.last_isr = isr
            if not isr:
                return
            if isr & VIRTIO_PCI_ISR_CONFIG:
                await self._vp_config_changed()
            if isr & VIRTIO_PCI_ISR_QUEUE:
                await self._vp_vring_interrupt()
        self.log.warning("INTx: ISR still non-zero after %d reads", INTX_MAX_ISR_READS)

    # ------------------------------------------------------------------------------------------

    def describe(self):
        """A short multi-line summary for logs and demos."""
        lines = [f"virtio device type {self.id} at {getattr(self.pci_dev, 'pcie_id', '?')}",
                 f"  device features 0x{self.device_features or 0:016x}, negotiated 0x{self.features:016x}"]
        for cfg_type, cap in sorted(self.mdev.caps.items()):
            lines.append(f"  cap type {cfg_type} @cfg 0x{cap['cap']:02x}: bar {cap['bar']} "
                         f"offset 0x{cap['offset']:x} length 0x{cap['length']:x}")
        lines.append(f"  interrupts: {self.vector_policy}")
        lines.extend(f"  {vq!r}" for vq in self.vqs)
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# virtio.c and linux/virtio_config.h helpers
# ----------------------------------------------------------------------------------------------

def virtio_has_feature(vdev, fbit):
    """True if feature bit ``fbit`` was negotiated (is set in vdev.features)."""
    return bool(vdev.features >> fbit & 1)


async def virtio_add_status(vdev, status):
    """Read device_status and write it back with ``status`` ORed in."""
    await vdev.set_status(await vdev.get_status() | status)


async def virtio_reset_device(vdev):
    await vdev.reset()


async def virtio_features_ok(vdev):
    """Set FEATURES_OK and check that the device kept it (spec §3.1.1 step 5-6)."""
    if not virtio_has_feature(vdev, VIRTIO_F_VERSION_1):
        return
    await virtio_add_status(vdev, VIRTIO_CONFIG_S_FEATURES_OK)
    status = await vdev.get_status()
    if not status & VIRTIO_CONFIG_S_FEATURES_OK:
        raise VirtioFeaturesError(f"the device refuses features 0x{vdev.features:016x}: "
                                  f"device_status reads 0x{status:02x} without FEATURES_OK")


async def virtio_device_ready(vdev):
    """Set DRIVER_OK: from now on the device may use the queues."""
    status = await vdev.get_status()
    if status & VIRTIO_CONFIG_S_DRIVER_OK:
        vdev.log.warning("virtio_device_ready: DRIVER_OK already set (status 0x%02x)", status)
    await vdev.set_status(status | VIRTIO_CONFIG_S_DRIVER_OK)


async def virtio_cread(vdev, offset, size):
    """Read a device-config field. 8-byte fields are read inside a config_generation loop so
    the two 32-bit halves come from one configuration (Linux's virtio_cread64)."""
    if size != 8:
        return await vdev.get(offset, size)
    return await _cread_stable(vdev, lambda: vdev.get(offset, 8))


async def virtio_cread_bytes(vdev, offset, length):
    """Read ``length`` bytes one at a time inside a config_generation loop."""
    async def read_all():
        return bytes([await vdev.get(offset + i, 1) for i in range(length)])
    return await _cread_stable(vdev, read_all)


async def _cread_stable(vdev, read):
    gen = await vdev.generation()
    for _ in range(CONFIG_GENERATION_MAX_RETRIES):
        old = gen
        value = await read()
        gen = await vdev.generation()
        if gen == old:
            return value
    raise VirtioError(f"config_generation still changing after {CONFIG_GENERATION_MAX_RETRIES} re-reads")


async def virtio_cwrite(vdev, offset, size, value):
    await vdev.set(offset, size, value)


async def virtio_cread_feature(vdev, fbit, offset, size):
    """Read a config field guarded by feature ``fbit``; None if the feature was not negotiated
    (Linux returns -ENOENT and leaves the caller's default)."""
    if not virtio_has_feature(vdev, fbit):
        return None
    return await virtio_cread(vdev, offset, size)


async def virtio_config_changed(vdev):
    """Tell the driver about a configuration change, or remember it until the driver is ready."""
    if not vdev.config_enabled or vdev.driver is None:
        vdev.config_change_pending = True
        return
    await _maybe_await(vdev.driver.config_changed(vdev))


async def virtio_config_enable(vdev):
    vdev.config_enabled = True
    if vdev.config_change_pending and vdev.driver is not None:
        vdev.config_change_pending = False
        await _maybe_await(vdev.driver.config_changed(vdev))
    vdev.config_change_pending = False


def virtio_config_disable(vdev):
    vdev.config_enabled = False


async def register_virtio_device(vdev):
    """Reset the device and ACKNOWLEDGE it (the part of Linux's registration that touches it)."""
    await virtio_reset_device(vdev)
    await virtio_add_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE)


async def virtio_dev_probe(vdev, driver):
    """Bind ``driver`` to ``vdev`` the way Linux does, from reset to DRIVER_OK.

    reset; ACKNOWLEDGE; DRIVER; read device features; accept device & driver features, plus the
    transport bits the core supports; write them; FEATURES_OK and re-read it; driver.probe (which
    calls find_vqs); DRIVER_OK unless the driver set it. On failure FAILED is set and the error
    re-raised.
    """
    if vdev.id not in driver.id_table:
        raise VirtioError(f"{type(driver).__name__} does not handle virtio device type {vdev.id}")
    await register_virtio_device(vdev)
    vdev.driver = driver
    try:
        await virtio_add_status(vdev, VIRTIO_CONFIG_S_DRIVER)
        device_features = await vdev.get_features()
        driver_features = 0
        for fbit in driver.feature_table:
            if not 0 <= fbit < 64:
                raise ValueError(f"{type(driver).__name__}.feature_table has bit {fbit}, outside 0..63")
            driver_features |= 1 << fbit
        vdev.features = driver_features & device_features
        # Transport bits always go to finalize_features, which keeps those the core supports.
        for fbit in range(VIRTIO_TRANSPORT_F_START, VIRTIO_TRANSPORT_F_END):
            if device_features >> fbit & 1:
                vdev.features |= 1 << fbit
        await vdev.finalize_features()
        await virtio_features_ok(vdev)
        await driver.probe(vdev)
        if not await vdev.get_status() & VIRTIO_CONFIG_S_DRIVER_OK:
            await virtio_device_ready(vdev)
        await virtio_config_enable(vdev)
    except BaseException:
        vdev.driver = None
        try:
            if vdev.vqs:
                await vdev.del_vqs()
            await virtio_add_status(vdev, VIRTIO_CONFIG_S_FAILED)
        except Exception as cleanup_error:  # keep the original error
            vdev.log.error("virtio_dev_probe: cleanup after failure failed too: %s", cleanup_error)
        raise


async def virtio_dev_remove(vdev):
    """Unbind the driver: it resets the device and deletes its queues; then ACKNOWLEDGE again."""
    driver = vdev.driver
    virtio_config_disable(vdev)
    if driver is not None:
        await driver.remove(vdev)
    vdev.driver = None
    status = await vdev.get_status()
    if status:
        vdev.log.warning("virtio_dev_remove: driver left device_status 0x%02x, not reset", status)
    vdev.features = 0
    await virtio_add_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE)


async def virtio_pci_probe(pci_dev, rc, intx=None, **kwargs):
    """Enable the PCI function, map its virtio structures and return an unbound VirtioDevice.

    Linux's virtio_pci_probe: pci_enable_device, virtio_pci_modern_probe, pci_set_master. Bind a
    driver with ``virtio_dev_probe(vdev, driver)``. ``kwargs`` go to VirtioDevice.
    """
    await pci_dev.enable_device()
    mdev = VirtioPciModernDev(pci_dev, rc, intx)
    await mdev.vp_modern_probe()
    await pci_dev.set_master()
    return VirtioDevice(mdev, **kwargs)
