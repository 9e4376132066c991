# SPDX-License-Identifier: Apache-2.0
"""Bench of the virtio-blk robustness tests (tb/blk/blk_err_*.py, run by test_blk_errors.py).

``ErrBench`` brings the device up as a guest does (root complex, enumeration,
virtio_pci_probe, virtio_dev_probe with a ``VirtioBlk``) with the DMA ownership checker and
the TLP protocol checker installed, and adds what the error tests need:

* raw chains: descriptors written straight into a ring's descriptor table (indices taken from
  the top of the table, which the driver's free list reaches last) and published in the
  available ring, their buffers registered with the DMA checker under a token of their own,
  so that a legal device access is not flagged and a used entry for them is;
* host addresses that answer a device read with UR (no memory region), CA (a region whose
  read raises) or nothing at all (a completion dropped by a wrapper of the root complex's
  read handler);
* ``wait_needs_reset()``: DEVICE_NEEDS_RESET and the configuration interrupt that must follow
  it (STS-02, STS-03), as the driver sees them;
* ``reset_device()`` / ``reinit()``: a device reset timed from the write of 0 to the first
  read of 0, the rings forgotten by the DMA checker at that moment, and a fresh driver on new
  rings; ``quiet_since()`` checks that nothing left the device after a given time;
* a reference RAM disk (``ref``) kept equal to the disk memory, ``run_io()`` (writes and reads
  checked against it, then the whole disk memory compared).
"""

import os
import random

from cocotb.triggers import ClockCycles, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi.address_space import Region
from cocotbext.pcie.core.tlp import PcieId, Tlp, TlpType

from models.pcie import attach_root_complex
from models.pcie.dma_checker import DmaChecker
from models.pcie.tlp_stream import beats_to_tlp
from models.ref.ramdisk import RamDisk, blk_outhdr_pack
from models.virtio import uapi
from models.virtio.blk import VIRTIO_BLK_POISON, VirtioBlk
from models.virtio.ring import (
    VRING_AVAIL_ELEM_SIZEOF,
    VRING_AVAIL_RING,
    VRING_DESC_SIZEOF,
    VRING_IDX_MASK,
    vring_desc_pack,
)
from models.virtio.virtio import VirtioDevice, virtio_dev_probe, virtio_pci_probe

SECTOR = 512
NEEDS_RESET = uapi.VIRTIO_CONFIG_S_NEEDS_RESET
F_NEXT = uapi.VRING_DESC_F_NEXT
F_WRITE = uapi.VRING_DESC_F_WRITE
F_INDIRECT = uapi.VRING_DESC_F_INDIRECT

# host addresses no memory region covers: the root complex answers a read there with UR
UNMAPPED_32 = 0x9000_0000          # between the MSI region (0x8000_0000) and the BAR window (0xC000_0000)
UNMAPPED_64 = 0x0000_0040_0000_0000  # above 4 GiB (4-DW header), below the prefetchable window (2^63)
# where the CA region, the dropped-completion window and the poisoned window go
CA_BASE = 0x0000_0050_0000_0000
NO_CPL_BASE = 0x0000_0060_0000_0000
POISON_BASE = 0x0000_0070_0000_0000

MEM_READS = (TlpType.MEM_READ, TlpType.MEM_READ_64)
MEM_WRITES = (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)

PARAMS = {
    "DATA_WIDTH": 64,
    "CAPACITY": 2048,
    "SEG_MAX": 64,
    "READ_ONLY": 0,
    "CPL_TIMEOUT": 65536,
    "QUEUE_SIZE_MAX": 256,
}


def param(name):
    """An RTL parameter of this build (the runner exports PARAM_<name>), or its RTL default."""
    return int(os.environ.get(f"PARAM_{name}", PARAMS[name]))


def now_ns():
    return get_sim_time("ns")


class ErrBlk(VirtioBlk):
    """VirtioBlk that can force the interrupt layout (``policy``), decline VIRTIO_BLK_F_RO
    (``accept_ro=False``), and records each configuration-change interrupt with the
    device_status the driver reads in its handler."""

    def __init__(self, policy=None, accept_ro=True, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        if not accept_ro:
            self.feature_table = [f for f in VirtioBlk.feature_table if f != uapi.VIRTIO_BLK_F_RO]
        self.config_events = []  # (time ns, device_status read in the handler)

    async def init_vq(self, vdev):
        if self.policy is None:
            return await super().init_vq(vdev)
        find_vqs = vdev.find_vqs

        async def forced(names, callbacks=None, sizes=None, policy=None):
            return await find_vqs(names, callbacks, sizes, policy=self.policy)
        vdev.find_vqs = forced
        try:
            return await super().init_vq(vdev)
        finally:
            del vdev.find_vqs

    async def config_changed(self, vdev):
        status = await vdev.get_status()
        self.config_events.append((now_ns(), status))
        await super().config_changed(vdev)


class RawChain:
    """A chain the test wrote into the rings itself: its head, its buffers ([(addr, len,
    kind)], kind "out", "in" or "indirect") and the time it was published."""

    def __init__(self, vq, head, spans, completes=False):
        self.vq = vq
        self.head = head
        self.spans = list(spans)
        # a chain expected to be used goes under the token of the driver's own chains, so the
        # DMA checker accepts its used entry; any other raw chain has a token of its own, so a
        # used entry for it is a violation
        self.token = (vq, head) if completes else ("raw", id(vq), head)
        self.time = None

    def touched(self, accesses, op="W"):
        """Accesses (DmaAccess) of kind ``op`` that overlap one of the chain's buffers."""
        hits = []
        for a in accesses:
            if a.op != op or not a.length:
                continue
            for addr, length, _ in self.spans:
                if a.addr < addr + length and addr < a.addr + a.length:
                    hits.append(a)
                    break
        return hits


class RaisingRegion(Region):
    """Host memory whose reads fail: the root complex answers them with Completer Abort."""

    def __init__(self, size):
        super().__init__(size)
        self.reads = 0

    async def read(self, address, length, **kwargs):
        self.reads += 1
        raise IOError(f"read of {length} bytes at offset 0x{address:x} of a failing region")

    async def write(self, address, data, **kwargs):
        raise IOError("write to a failing region")


class ErrBench:
    """See the module docstring. ``await ErrBench.create(dut, ...)`` returns a bench with the
    driver bound; ``blk``, ``vdev``, ``vq``, ``host``, ``checker`` and ``ref`` are then set."""

    def __init__(self, dut, seed):
        self.dut = dut
        self.rng = random.Random(seed)
        self.log = dut._log
        self.host = None
        self.checker = None
        self.vdev = None
        self.blk = None
        self.ref = None
        self.isr_reads = []  # (time ns, value) of every ISR read by the driver
        self.dropped_reads = []  # MRd TLPs left unanswered (completion timeout tests)
        self.poisoned_reads = []  # MRd TLPs answered with a poisoned completion
        self.stop_config_events = []  # the config interrupts of the last expect_stop()
        self.tx_cpl_log = []  # (time ns, hdr, payload) of every completion the device sent
        self._raw_next = {}  # id(vq) -> next free descriptor index from the top

    @classmethod
    async def create(cls, dut, seed=1, prefill=True, transport_features=None, host_kwargs=None, **blk_kwargs):
        """``host_kwargs``: settings of the host model (PcieHost arguments, e.g. read_latency_ns)."""
        bench = cls(dut, seed)
        await bench.start(prefill, transport_features, host_kwargs)
        await bench.probe(**blk_kwargs)
        return bench

    async def start(self, prefill=True, transport_features=None, host_kwargs=None):
        self.host = await attach_root_complex(self.dut, **(host_kwargs or {}))
        on_cpl = self.host.tx_cpl.callback

        def logged_cpl(hdr, payload):
            self.tx_cpl_log.append((now_ns(), hdr, payload))
            on_cpl(hdr, payload)
        self.host.tx_cpl.callback = logged_cpl
        self.checker = DmaChecker()
        self.checker.install(self.host.rc)
        pci_dev = await self.host.enumerate()
        self.vdev = await virtio_pci_probe(pci_dev, self.host.rc, intx=self.host.intx)
        self.vdev.dma_checker = self.checker
        if transport_features is not None:
            self.vdev.transport_features = frozenset(transport_features)
        mdev = self.vdev.mdev
        read_isr = mdev.vp_modern_read_isr

        async def recorded_isr_read():
            value = await read_isr()
            self.isr_reads.append((now_ns(), value))
            return value
        mdev.vp_modern_read_isr = recorded_isr_read
        capacity = param("CAPACITY")
        self.ref = RamDisk(capacity, read_only=bool(param("READ_ONLY")))
        if prefill:
            data = self.rng.randbytes(capacity * SECTOR)
            self.host.disk.write(0, data)
            self.ref.data[:] = data

    async def probe(self, **blk_kwargs):
        """Bind a fresh ErrBlk (reset, features, new rings, DRIVER_OK)."""
        self.blk = ErrBlk(rng=self.rng.randrange(1 << 30), **blk_kwargs)
        await virtio_dev_probe(self.vdev, self.blk)
        self._raw_next = {}
        return self.blk

    @property
    def vq(self):
        return self.blk.vqs[0]

    @property
    def disk_size(self):
        return param("CAPACITY") * SECTOR

    def disk_image(self):
        return bytes(self.host.disk.read(0, self.disk_size))

    async def cycles(self, n):
        await ClockCycles(self.dut.clk, n)

    # ------------------------------------------------------------------------------------------
    # Raw chains
    # ------------------------------------------------------------------------------------------

    def raw_index(self, vq=None, count=1):
        """``count`` descriptor indices from the top of the table, never used twice."""
        vq = vq or self.vq
        top = self._raw_next.get(id(vq), vq.num - 1)
        picked = list(range(top, top - count, -1))
        if picked[-1] < vq.num // 2:
            raise AssertionError("raw descriptors would collide with the driver's")
        self._raw_next[id(vq)] = top - count
        return picked

    async def alloc(self, size, fill=None):
        """A host buffer (zeros, ``fill`` bytes, or poison for writable ones)."""
        buf = self.blk.host_mem.alloc(size)
        await buf.write(0, bytes(fill) if fill is not None else bytes([VIRTIO_BLK_POISON]) * size)
        return buf

    async def write_descs(self, vq, descs):
        """descs: {index: (addr, len, flags, next)} into the ring's descriptor table."""
        for i, (addr, length, flags, nxt) in descs.items():
            await vq.desc.write(VRING_DESC_SIZEOF * i, vring_desc_pack(addr, length, flags, nxt))

    async def write_table(self, buf, entries):
        """entries: [(addr, len, flags, next)] into an indirect table (a host buffer)."""
        await buf.write(0, b"".join(vring_desc_pack(*e) for e in entries))

    async def publish(self, vq, head, chain=None, avail_idx=None):
        """Put ``head`` in the next available-ring slot and move avail->idx (to ``avail_idx`` if
        given: a driver bug on purpose). Registers ``chain``'s buffers with the DMA checker."""
        if chain is not None:
            self.checker.own(chain.token, [s for s in chain.spans if s[1]], name=f"raw chain head {head}")
        slot = vq.avail_idx_shadow & (vq.num - 1)
        await vq.avail.write(VRING_AVAIL_RING + VRING_AVAIL_ELEM_SIZEOF * slot, head.to_bytes(2, "little"))
        vq.avail_idx_shadow = (vq.avail_idx_shadow + 1) & VRING_IDX_MASK
        await vq.vring_write_avail_idx(vq.avail_idx_shadow if avail_idx is None else avail_idx)
        if chain is not None:
            chain.time = now_ns()
        return chain

    async def raw_request(self, req_type, sector, data_spans, write_data=False, status=True, vq=None,
                          completes=False):
        """A request chain with data buffers at given addresses: header | data | status, direct.

        ``data_spans`` = [(addr, len)]: readable unless ``write_data`` (an IN). Returns the
        published RawChain (not kicked) and the status buffer."""
        vq = vq or self.vq
        hdr = await self.alloc(16, blk_outhdr_pack(req_type, sector))
        st = await self.alloc(1) if status else None
        bufs = [(hdr.addr, 16, 0)] + [(a, n, F_WRITE if write_data else 0) for a, n in data_spans]
        if st is not None:
            bufs.append((st.addr, 1, F_WRITE))
        idx = self.raw_index(vq, len(bufs))
        descs = {}
        for k, (addr, length, flags) in enumerate(bufs):
            last = k == len(bufs) - 1
            descs[idx[k]] = (addr, length, flags | (0 if last else F_NEXT), 0 if last else idx[k + 1])
        await self.write_descs(vq, descs)
        chain = RawChain(vq, idx[0], [(a, n, "in" if f & F_WRITE else "out") for a, n, f in bufs], completes)
        await self.publish(vq, idx[0], chain)
        return chain, st

    async def notify(self, vq=None):
        await (vq or self.vq).virtqueue_notify()

    async def complete_raw(self, chain, timeout_us=100):
        """Kick a published raw chain that the device must serve, and wait for its used entry
        with the driver's reaping held off (the chain is not one of the driver's); the driver's
        used index and used_event then move past it. Returns (id, len) of the used element.
        Only for a ring with nothing else in flight."""
        vq = chain.vq
        callback, vq.callback = vq.callback, None
        try:
            expect = (vq.last_used_idx + 1) & VRING_IDX_MASK
            await self.notify(vq)
            deadline = now_ns() + timeout_us * 1000
            while await vq.vring_read_used_idx() != expect:
                assert now_ns() < deadline, (f"raw chain head {chain.head} not used after {timeout_us} us "
                                             f"(device_status 0x{await self.status():02x})")
                await Timer(200, "ns")
            elem = await vq.vring_read_used_elem(vq.last_used_idx & (vq.num - 1))
            vq.last_used_idx = expect
            await vq.vring_write_used_event(expect)
        finally:
            vq.callback = callback
        return elem

    # ------------------------------------------------------------------------------------------
    # Host memory that fails
    # ------------------------------------------------------------------------------------------

    def add_ca_region(self, size=0x1000, base=CA_BASE):
        region = RaisingRegion(size)
        self.host.rc.mem_address_space.register_region(region, base)
        return region

    def drop_completions(self, base=NO_CPL_BASE, size=0x1000):
        """Leave every device read of [base, base+size) unanswered (the device must time out).
        The wrapper sits outside the DMA checker, so dropped reads are logged by neither: they
        are kept in ``dropped_reads``."""
        rc = self.host.rc
        for fmt_type in MEM_READS:
            inner = rc.rx_tlp_handler[fmt_type]

            def make(inner):
                async def handler(tlp):
                    if base <= tlp.address < base + size:
                        self.dropped_reads.append((now_ns(), tlp))
                        return
                    await inner(tlp)
                return handler
            rc.register_rx_tlp_handler(fmt_type, make(inner))

    async def complete_late(self, tlp, data=None):
        """Answer a read the host held back (``dropped_reads``) now, as the root complex would
        have: completions of at most Max_Payload_Size bytes carrying ``data`` (zeros by
        default)."""
        rc = self.host.rc
        nbytes = tlp.get_be_byte_count()
        data = bytes(tlp.length * 4) if data is None else data
        addr = tlp.address + tlp.get_first_be_offset()
        mps = 128 << rc.max_payload_size
        dw_done = 0
        sent = 0
        while dw_done < tlp.length:
            cpl = Tlp.create_completion_data_for_tlp(tlp, PcieId(0, 0, 0))
            dws = min(tlp.length - dw_done, (mps - (addr & 0x7F if dw_done else 0)) // 4)
            cpl.byte_count = nbytes - sent
            cpl.lower_address = addr & 0x7F
            cpl.set_data(data[dw_done * 4:(dw_done + dws) * 4])
            await rc.send(cpl)
            step = dws * 4 - (addr & 3)
            sent += step
            addr += step
            dw_done += dws

    def poison_completions(self, base=POISON_BASE, size=0x1000):
        """Answer every device read of [base, base+size) with one poisoned (EP) completion of
        zeros (reads there must be at most one max-payload long)."""
        rc = self.host.rc
        for fmt_type in MEM_READS:
            inner = rc.rx_tlp_handler[fmt_type]

            def make(inner):
                async def handler(tlp):
                    if not base <= tlp.address < base + size:
                        await inner(tlp)
                        return
                    self.poisoned_reads.append((now_ns(), tlp))
                    cpl = Tlp.create_completion_data_for_tlp(tlp, PcieId(0, 0, 0))
                    cpl.byte_count = tlp.get_be_byte_count()
                    cpl.lower_address = (tlp.address + tlp.get_first_be_offset()) & 0x7F
                    cpl.set_data(bytes(tlp.length * 4))
                    cpl.ep = True
                    await rc.send(cpl)
                return handler
            rc.register_rx_tlp_handler(fmt_type, make(inner))

    # ------------------------------------------------------------------------------------------
    # Queue reset and re-enable
    # ------------------------------------------------------------------------------------------

    async def queue_reset_start(self, index=0):
        """Write 1 to queue_reset of queue ``index`` (VQ-04); returns the time."""
        mdev = self.vdev.mdev
        await mdev.vp_iowrite16(index, uapi.VIRTIO_PCI_COMMON_Q_SELECT)
        await mdev.vp_iowrite16(1, uapi.VIRTIO_PCI_COMMON_Q_RESET)
        return now_ns()

    async def queue_reset_wait(self, index=0, max_polls=2000):
        """Poll queue_reset until it reads 0; returns (time the completion carrying the first 0
        left the device, reads of 1)."""
        mdev = self.vdev.mdev
        ones = 0
        while True:
            await mdev.vp_iowrite16(index, uapi.VIRTIO_PCI_COMMON_Q_SELECT)
            value = await mdev.vp_ioread16(uapi.VIRTIO_PCI_COMMON_Q_RESET)
            if value == 0:
                return self.completion_time(now_ns(), uapi.VIRTIO_PCI_COMMON_Q_RESET, 2), ones
            assert value == 1, f"queue_reset reads {value}"
            ones += 1
            assert ones < max_polls, f"VQ-04: queue_reset still 1 after {max_polls} polls"

    async def reenable_queue(self, index=0, size=None, desc_addr=None):
        """After a queue reset: a fresh zeroed ring for queue ``index``, its vector, interrupt
        handler and doorbell, then queue_enable (VQ-02, VQ-03). ``desc_addr`` programs another
        descriptor-table address than the ring's own (registered with the DMA checker as a
        descriptor table). The old ring must be gone from the DMA checker already."""
        vdev = self.vdev
        old = self.blk.vqs[index]
        old.vring_del_virtqueue()
        vdev.vqs.remove(old)
        if old in vdev._vring_vqs:
            vdev._vring_vqs.remove(old)
        msix_vec = old.vector if old.vector is not None else uapi.VIRTIO_MSI_NO_VECTOR
        if vdev.per_vq_vectors and msix_vec != uapi.VIRTIO_MSI_NO_VECTOR:
            for vector, handler in [h for h in vdev._irq_handlers if h[0] == msix_vec]:
                self.host.pci_dev.msi_vectors[vector].cb.remove(handler)
                vdev._irq_handlers.remove((vector, handler))
        vq = await vdev._vp_setup_vq(index, old.callback, old.name, size, msix_vec)
        if vdev.per_vq_vectors and msix_vec != uapi.VIRTIO_MSI_NO_VECTOR:
            vdev._request_irq(msix_vec, vdev._make_vring_handler(vq))
        if desc_addr is not None:
            await vdev.mdev.vp_modern_queue_address(index, desc_addr, vq.avail_addr, vq.used_addr)
            self.checker.add_region(desc_addr, 16 * vq.num, "descriptor table", f"vq {index} moved table",
                                    token=("vring", id(vq)))
        await vdev.mdev.vp_modern_set_queue_enable(index, True)
        self.blk.vqs[index] = vq
        self._raw_next.pop(id(old), None)
        return vq

    # ------------------------------------------------------------------------------------------
    # Observation
    # ------------------------------------------------------------------------------------------

    def msix_addr_data(self, vector):
        vec = self.host.pci_dev.msi_vectors[vector]
        return vec.addr, vec.data

    def msix_messages(self, since_ns=0):
        """[(time, vector)] of the MSI-X writes in the device's request log."""
        out = []
        vectors = {}
        for k, vec in enumerate(getattr(self.host.pci_dev, "msi_vectors", None) or []):
            vectors[(vec.addr, vec.data)] = k
        for t, tlp in self.host.tx_req_log:
            if t < since_ns or tlp.fmt_type not in MEM_WRITES:
                continue
            if tlp.length != 1:
                continue
            key = (tlp.address, int.from_bytes(bytes(tlp.get_data())[:4], "little"))
            if key in vectors:
                out.append((t, vectors[key]))
        return out

    def tlps_since(self, t_ns):
        return [(t, tlp) for t, tlp in self.host.tx_req_log if t > t_ns]

    async def status(self):
        return await self.vdev.get_status()

    async def used_entries(self, vq=None):
        """[(id, len)] of every used element the device published (used->idx of them)."""
        vq = vq or self.vq
        idx = await vq.vring_read_used_idx()
        count = min(idx, vq.num)  # the error tests never wrap the ring
        return idx, [await vq.vring_read_used_elem(slot) for slot in range(count)]

    async def wait_needs_reset(self, since_ns, timeout_us=200, intx=False):
        """Poll device_status until DEVICE_NEEDS_RESET (STS-02), then wait for the driver's
        configuration interrupt handler (MSI-X on the config vector, or INTx with ISR bit 1)
        and check that it found NEEDS_RESET set (STS-03). Returns the status read."""
        deadline = now_ns() + timeout_us * 1000
        status = await self.status()
        while not status & NEEDS_RESET:
            assert now_ns() < deadline, \
                f"STS-02: DEVICE_NEEDS_RESET not set {timeout_us} us after the error (status 0x{status:02x})"
            await Timer(500, "ns")
            status = await self.status()
        assert status & uapi.VIRTIO_CONFIG_S_DRIVER_OK, f"status 0x{status:02x} lost DRIVER_OK"
        while not [e for e in self.blk.config_events if e[0] >= since_ns]:
            assert now_ns() < deadline, \
                f"STS-03: no configuration interrupt {timeout_us} us after DEVICE_NEEDS_RESET"
            await Timer(200, "ns")
        events = [e for e in self.blk.config_events if e[0] >= since_ns]
        assert len(events) == 1, f"STS-03: {len(events)} configuration interrupts for one error: {events}"
        assert events[0][1] & NEEDS_RESET, \
            f"STS-03: the config interrupt handler read status 0x{events[0][1]:02x} without NEEDS_RESET"
        if intx:
            isr = [v for t, v in self.isr_reads if t >= since_ns]
            assert any(v & uapi.VIRTIO_PCI_ISR_CONFIG for v in isr), \
                f"STS-03: the INTx handler read ISR values {isr}, none with the configuration bit"
            assert not self.msix_messages(since_ns), "MSI-X message in INTx mode"
        else:
            msgs = self.msix_messages(since_ns)
            config = [t for t, v in msgs if v == self.vdev.config_vector]
            assert len(config) == 1, f"STS-03: MSI-X messages since the error: {msgs} (config vector " \
                                     f"{self.vdev.config_vector})"
        return status

    async def quiet_since(self, t0, window_ns=10_000):
        """RST-02 / VQ-01: nothing on tx_req (no DMA, no MSI-X) after ``t0``, for ``window_ns``
        more; INTx not asserted and not raised again; then the DMA checker must be clean."""
        rises = self.host.intx.rises
        end = max(now_ns(), t0) + window_ns
        while now_ns() < end:
            assert self.host.intx.level == 0, "RST-02: INTx asserted after the reset completed"
            await Timer(1000, "ns")
        late = self.tlps_since(t0)
        msix = dict(self.msix_messages(t0))
        assert not late, (f"RST-02: {len(late)} TLP(s) reached the host after the completion that reported "
                          f"the reset done left the device at {t0} ns: "
                          + "; ".join(f"{t} ns {tlp.fmt_type.name} 0x{tlp.address:x} ({tlp.length} DW)"
                                      + (f" = MSI-X vector {msix[t]}" if t in msix else "")
                                      for t, tlp in late[:5]))
        assert self.host.intx.rises == rises, "RST-02: INTx raised after the reset completed"
        self.checker.raise_on_error = True
        self.checker.assert_clean()

    # ------------------------------------------------------------------------------------------
    # Reset and recovery
    # ------------------------------------------------------------------------------------------

    async def reset_device(self, max_polls=2000):
        """Write 0 to device_status and poll it until it reads 0 (RST-01). At the first 0 the old
        rings are forgotten by the DMA checker (any later access is a violation). Returns
        (time of the write, time the completion carrying the first 0 left the device, reads
        that were not 0)."""
        t_write = now_ns()
        mdev = self.vdev.mdev
        await mdev.vp_modern_set_status(0)
        busy = 0
        while True:
            status = await mdev.vp_modern_get_status()
            if status == 0:
                break
            busy += 1
            assert busy < max_polls, f"RST-01: device_status still 0x{status:02x} after {max_polls} polls"
        t0 = now_ns()
        for vq in self.blk.vqs:
            vq.vring_del_virtqueue()
        # from now on any access to the old rings is recorded (not raised from inside the root
        # complex) so that quiet_since() can report it as what it is; reinit() checks the record
        self.checker.raise_on_error = False
        return t_write, self.status_completion_time(t0), busy

    def status_completion_time(self, t0):
        """When the completion of the device_status read that returned 0 (at ``t0``) left the
        device."""
        return self.completion_time(t0, uapi.VIRTIO_PCI_COMMON_STATUS, 1)

    def completion_time(self, t0, offset, size, value=0):
        """When the completion of a ``size``-byte read of common-config ``offset`` that returned
        ``value`` (to the driver at ``t0``) left the device: the last such completion sent by
        then."""
        lower = (self.vdev.mdev.caps[uapi.VIRTIO_PCI_CAP_COMMON_CFG]["offset"] + offset) & 0x7F
        for t, hdr, payload in reversed(self.tx_cpl_log):
            if t > t0:
                continue
            cpl = beats_to_tlp(hdr, payload)
            if cpl.fmt_type != TlpType.CPL_DATA or cpl.byte_count != size or cpl.lower_address != lower:
                continue
            data = bytes(cpl.get_data())[lower & 3:(lower & 3) + size]
            if int.from_bytes(data, "little") == value:
                return t
        raise AssertionError(f"no completion of common config 0x{offset:x} = {value} among the device's")

    async def check_reset_values(self):
        """RST-03, RST-04, RST-05: queue registers, vectors and ISR at their reset values."""
        mdev = self.vdev.mdev
        assert await mdev.vp_ioread16(uapi.VIRTIO_PCI_COMMON_MSIX) == uapi.VIRTIO_MSI_NO_VECTOR, "RST-04"
        for q in range(await mdev.vp_modern_get_num_queues()):
            assert await mdev.vp_modern_get_queue_enable(q) == 0, f"RST-03: queue {q} enabled after reset"
            assert await mdev.vp_ioread16(uapi.VIRTIO_PCI_COMMON_Q_MSIX) == uapi.VIRTIO_MSI_NO_VECTOR, \
                f"RST-04: queue {q} vector after reset"
            assert await mdev.vp_ioread16(uapi.VIRTIO_PCI_COMMON_Q_RESET) == 0, f"RST-05: queue {q}"
            assert await mdev.vp_modern_get_queue_size(q) == param("QUEUE_SIZE_MAX"), f"RST-06: queue {q} size"
            for lo in (uapi.VIRTIO_PCI_COMMON_Q_DESCLO, uapi.VIRTIO_PCI_COMMON_Q_AVAILLO,
                       uapi.VIRTIO_PCI_COMMON_Q_USEDLO):
                assert await mdev.vp_ioread32(lo) == 0 and await mdev.vp_ioread32(lo + 4) == 0, \
                    f"queue {q} address 0x{lo:x} after reset"

    async def drop_driver(self):
        """After a reset: fail what the device never used, free the vectors, unbind."""
        for vq in self.blk.vqs:
            vq.vring_del_virtqueue()
        await self.blk.abort_all()
        await self.vdev.del_vqs()
        self.vdev.driver = None

    async def reinit(self, io=True, **blk_kwargs):
        """Forget the old driver (the device must already be reset), re-read the disk into the
        reference, probe again on new rings and (``io``) run checked I/O."""
        await self.drop_driver()
        self.checker.raise_on_error = True
        self.checker.assert_clean()
        self.ref.data[:] = self.disk_image()
        await self.probe(**blk_kwargs)
        if io:
            await self.run_io()

    async def recover(self, **blk_kwargs):
        """Device reset, re-initialisation and checked I/O: the device is usable again."""
        await self.reset_device()
        await self.reinit(**blk_kwargs)

    # ------------------------------------------------------------------------------------------
    # Checked I/O
    # ------------------------------------------------------------------------------------------

    async def run_io(self, count=2, max_sectors=8):
        """``count`` writes of random data, each read back, checked against the reference RAM
        disk; then the whole disk memory is compared with it and the DMA checker must be clean."""
        capacity = param("CAPACITY")
        writable = not self.blk.read_only and not param("READ_ONLY")
        for _ in range(count):
            n = self.rng.randint(1, max_sectors)
            sector = self.rng.randrange(capacity - n + 1)
            if writable:
                data = self.rng.randbytes(n * SECTOR)
                status, _ = await self.blk.write(sector, data)
                assert status == uapi.VIRTIO_BLK_S_OK, f"write of {n} sectors at {sector}: status {status}"
                self.ref.write(sector, data)
            status, back = await self.blk.read(sector, n)
            assert status == uapi.VIRTIO_BLK_S_OK, f"read of {n} sectors at {sector}: status {status}"
            exp = self.ref.read(sector, n)[1]
            assert back == exp, f"read of {n} sectors at {sector} differs from the reference disk"
        assert self.disk_image() == bytes(self.ref.data), "disk memory differs from the reference disk"
        assert not self.blk.used_len_mismatches, self.blk.used_len_mismatches
        self.checker.assert_clean()

    async def good_requests(self):
        """Two writes and a read of distinct sectors, queued without a doorbell."""
        return [await self.blk.submit_write(64, self.rng.randbytes(8 * SECTOR), kick=False),
                await self.blk.submit_write(128, self.rng.randbytes(4 * SECTOR), kick=False),
                await self.blk.submit_read(256, 8, kick=False)]

    async def expect_stop(self, build, goods=True, intx=False, strict=True, **recover_kwargs):
        """The error sequence: (``goods``) three good requests queued, the bad chain written by
        ``await build(bench)`` (a RawChain), one doorbell; then DEVICE_NEEDS_RESET and the
        config interrupt (STS-02, STS-03), no used entry but for good requests, the good requests
        that completed are right, the DMA checker clean (``strict``: and no write at all to the
        bad chain's buffers), and recovery by a reset (RST-01) with checked I/O."""
        reqs = await self.good_requests() if goods else []
        seq = self.checker.seq
        bad = await build(self)
        t_kick = now_ns()
        await self.notify()
        await self.wait_needs_reset(t_kick, intx=intx)
        # the device has stopped: let anything already on its way land (and be reaped), then look
        await Timer(2, "us")
        used_idx, elems = await self.used_entries()
        heads = {r.head for r in reqs}
        assert used_idx <= len(reqs), f"used idx {used_idx} after {len(reqs)} good requests and a bad one"
        for head, _ in elems:
            assert head in heads, f"used entry for id {head} (the bad chain's head is {bad.head})"
        self.check_done_requests(reqs)
        if strict:
            touched = bad.touched(self.checker.accesses_since(seq))
            assert not touched, f"the device wrote buffers of the bad chain: {touched[:4]}"
        self.checker.assert_clean()
        self.log.info("%d of %d good requests completed before the device stopped", sum(r.done for r in reqs),
                      len(reqs))
        self.stop_config_events = list(self.blk.config_events)
        await self.recover(**recover_kwargs)
        return bad

    def check_done_requests(self, reqs):
        """Requests that completed: status OK, right data (the reference is updated with the
        writes that completed). Requests that did not complete are fine (the device stopped)."""
        done = 0
        for req in reqs:
            if not req.done or req.aborted:
                continue
            done += 1
            assert req.status == uapi.VIRTIO_BLK_S_OK, f"{req}: status {req.status}"
            assert req.used_len == req.expected_used_len, f"{req}: used len {req.used_len}"
            if req.type == uapi.VIRTIO_BLK_T_OUT:
                start = req.sector * SECTOR
                assert self.disk_image()[start:start + len(req.out_data)] == req.out_data, \
                    f"{req}: completed write not in the disk"
                self.ref.write(req.sector, req.out_data)
            elif req.type == uapi.VIRTIO_BLK_T_IN:
                assert req.data == self.ref.read(req.sector, req.in_data_len // SECTOR)[1], \
                    f"{req}: read data differs from the reference disk"
        return done

