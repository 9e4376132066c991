# SPDX-License-Identifier: Apache-2.0
"""Bench of the system-level virtio-blk I/O tests (tb/blk/blk_io.py).

``BlkBench`` brings the whole device up the way a guest does (root complex, enumeration,
virtio_pci_probe, virtio_dev_probe with ``models.virtio.blk.VirtioBlk``) with the DMA ownership
checker and the TLP protocol checker installed for the whole test, and adds:

* ``probe(...)``: bind a fresh VirtioBlk with a chosen feature set (EVENT_IDX / INDIRECT_DESC
  on or off), interrupt mode (MSI-X, INTx, polling) and queue size; ``remove()`` unbinds it
  (device reset, rings forgotten by the DMA checker), so one simulation can try several.
* ``Scoreboard``: the reference RAM disk (models.ref.ramdisk.RamDisk). Requests in flight never
  touch overlapping sectors when one of them writes, so the expected result does not depend on
  the order in which the device serves them (VQ-05: completion order is free). Every request
  is checked at completion (status, data, used len) and the disk memory is compared at the end.
* ``random_mix``: reads, writes, flushes and GET_IDs of random sizes and sectors at a given
  queue depth.
* ``TraceChecker``: the device's requests on tx_req (``host.tx_req_log``) classified as ring,
  data and MSI-X accesses and checked for the publication order (data, used element, used
  idx, MSI-X) and for reads of the available ring beyond what was published.
* ``doorbells(vq)``: the available-buffer notifications the device received for a queue, counted
  on the host-to-device request stream (every MemWr to the queue's doorbell address);
  ``doorbell_log(vq)``: each of them as (time, bytes written, value);
* ``preload_indices``: the ring-index backdoor (free-running avail/used indices moved close to
  65535 in the RTL, the driver and the DMA checker at once). Every hierarchical name this bench
  uses inside the RTL is in ``engine_probe()``.

Each test ends with ``finish()``, which logs one ``blk_io summary`` line (requests, simulated
time, TLPs) that the sizes of tb/blk/test_blk.py are budgeted from.
"""

import bisect
import os
import random
import time
import zlib
from types import SimpleNamespace

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.pcie.core.tlp import TlpType

from models.pcie import attach_root_complex
from models.pcie.dma_checker import DmaChecker
from models.ref.ramdisk import RamDisk
from models.virtio import uapi
from models.virtio.blk import VirtblkReq, VirtioBlk
from models.virtio.ring import (
    VRING_AVAIL_ELEM_SIZEOF,
    VRING_AVAIL_RING,
    VRING_DESC_SIZEOF,
    VRING_IDX_MASK,
    VRING_USED_ELEM_SIZEOF,
    VRING_USED_IDX,
    VRING_USED_RING,
    vring_avail_event_offset,
    vring_used_event_offset,
)
from models.virtio.uapi import vring_need_event
from models.virtio.virtio import (
    VirtioDevice,
    virtio_dev_probe,
    virtio_dev_remove,
    virtio_pci_probe,
)

SECTOR = 512
ID_STRING = b"virtio-blk-fpga"
ENOSPC = 28  # errno of a refused MSI/MSI-X allocation (forces the INTx fallback)

# the RTL parameters of this build (the runner passes them as PARAM_*), defaults otherwise
PARAMS = {
    "DATA_WIDTH": 64,
    "NUM_QUEUES": 1,
    "QUEUE_SIZE_MAX": 256,
    "CAPACITY": 2048,
    "SEG_MAX": 64,
    "READ_ONLY": 0,
    "NOTIFICATION_DATA": 1,
}
for _name in PARAMS:
    if f"PARAM_{_name}" in os.environ:
        PARAMS[_name] = int(os.environ[f"PARAM_{_name}"], 0)


def now_ns():
    return cocotb.utils.get_sim_time("ns")


def engine_probe(dut):
    """The ONLY place where this bench names signals inside the RTL. rtl/virtio_vq_engine.v is
    being reworked: when its names change, change them here (and nowhere else). Read from the
    RTL as of this writing:

    * ``last_avail(q)``: the engine's free-running index of the next available-ring entry it
      will fetch for queue q (``last_avail_reg[q]``);
    * ``used_idx(q)``: its free-running index of the next used-ring entry (``used_idx_reg[q]``);
    * ``needs_reset``: the engine's request to set DEVICE_NEEDS_RESET (a chain it gave up on);
    * ``index_state(q)``: every per-queue index register a preload must set to the same value:
      the two above, and the used index last sent / last given an interrupt decision
      (``used_published_reg[q]``, ``used_checked_reg[q]``).
    """
    engine = dut.u_func.u_engine
    return SimpleNamespace(last_avail=lambda q: engine.last_avail_reg[q],
                           used_idx=lambda q: engine.used_idx_reg[q],
                           index_state=lambda q: [engine.last_avail_reg[q], engine.used_idx_reg[q],
                                                  engine.used_published_reg[q], engine.used_checked_reg[q]],
                           needs_reset=engine.needs_reset)


def test_seed(name):
    """A per-test random seed: COCOTB_RANDOM_SEED (cocotb sets it) mixed with the test name, so
    a failing run can be repeated exactly."""
    base = int(os.environ.get("COCOTB_RANDOM_SEED", "0") or 0)
    return zlib.crc32(f"{base}:{name}".encode())


class BlkBench:
    """The device, the guest and the checkers. See the module docstring."""

    def __init__(self, dut, seed=None, name="blk"):
        self.dut = dut
        self.log = dut._log
        self.seed = seed if seed is not None else test_seed(name)
        self.rng = random.Random(self.seed)
        self.log.info("%s: seed %d", name, self.seed)
        self.host = None
        self.checker = None
        self.vdev = None
        self.blk = None
        self.sb = None
        self.name = name
        self.params = dict(PARAMS)
        self.capacity = self.params["CAPACITY"]
        self.requests_done = 0  # completed by drivers already removed
        self._doorbells = {}  # bus address -> MemWr TLPs the device received there
        self._doorbell_log = {}  # bus address -> [(time ns, bytes, value)] of those MemWr TLPs
        self._t0 = (time.time(), time.process_time(), now_ns())

    # ------------------------------------------------------------------------------------------
    # Bring-up
    # ------------------------------------------------------------------------------------------

    async def start(self):
        """Root complex + both checkers, enumeration, the PCI function enabled."""
        self.host = await attach_root_complex(self.dut)
        self.probe_rtl = engine_probe(self.dut)
        host_request = self.host.checker.host_request

        def count_doorbells(tlp):
            if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
                first = tlp.get_first_be_offset()
                addr = (tlp.address & ~3) + first
                self._doorbells[addr] = self._doorbells.get(addr, 0) + 1
                n = tlp.get_be_byte_count()
                value = int.from_bytes(bytes(tlp.get_data())[first:first + n], "little")
                self._doorbell_log.setdefault(addr, []).append((now_ns(), n, value))
            return host_request(tlp)
        self.host.checker.host_request = count_doorbells
        self.checker = DmaChecker()
        self.checker.install(self.host.rc)
        pci_dev = await self.host.enumerate()
        self.vdev = await virtio_pci_probe(pci_dev, self.host.rc, intx=self.host.intx)
        self.vdev.dma_checker = self.checker
        self.ref = RamDisk(self.capacity, read_only=bool(self.params["READ_ONLY"]), id_string=ID_STRING)
        self.sb = Scoreboard(self)
        self.reqlog = RequestLog()
        self.expect_needs_reset = False
        cocotb.start_soon(self._watch_needs_reset())
        return self

    async def _watch_needs_reset(self):
        """Fail at once when the engine gives up on a chain (DEVICE_NEEDS_RESET, no used entry)
        instead of waiting for the request until the test times out."""
        signal = self.probe_rtl.needs_reset
        while True:
            await RisingEdge(signal)
            if not self.expect_needs_reset:
                raise AssertionError(f"the ring engine raised DEVICE_NEEDS_RESET at {now_ns()} ns "
                                     f"(requests in flight: {sorted(self.blk.inflight, key=id)[:4] if self.blk else []})")

    async def probe(self, event_idx=True, indirect=True, intx=False, notification_data=True, **blk_kwargs):
        """Bind a new VirtioBlk. ``event_idx`` / ``indirect`` / ``notification_data``: accept
        VIRTIO_RING_F_EVENT_IDX / INDIRECT_DESC / VIRTIO_F_NOTIFICATION_DATA in the negotiation
        or not (the last only matters if the device offers it, parameter NOTIFICATION_DATA);
        ``intx``: refuse every MSI-X vector as a platform without MSI does (Linux's pci=nomsi),
        so the driver falls back to INTx; the rest goes to VirtioBlk (queue_size, layout,
        use_irq, ...)."""
        if self.blk is not None:
            await self.remove()
        feats = set(VirtioDevice.transport_features)
        if not event_idx:
            feats.discard(uapi.VIRTIO_RING_F_EVENT_IDX)
        if not indirect:
            feats.discard(uapi.VIRTIO_RING_F_INDIRECT_DESC)
        if not notification_data:
            feats.discard(uapi.VIRTIO_F_NOTIFICATION_DATA)
        self.vdev.transport_features = frozenset(feats)
        pci_dev = self.vdev.pci_dev
        if intx:
            async def no_msi(min_vecs, max_vecs, flags=0):
                return -ENOSPC
            pci_dev.alloc_irq_vectors = no_msi
        elif "alloc_irq_vectors" in vars(pci_dev):
            del pci_dev.alloc_irq_vectors
        blk_kwargs.setdefault("rng", self.rng.randrange(1 << 30))
        self.blk = VirtioBlk(**blk_kwargs)
        await virtio_dev_probe(self.vdev, self.blk)
        assert self.blk.capacity == self.capacity, (self.blk.capacity, self.capacity)
        assert bool(self.vdev.features >> uapi.VIRTIO_RING_F_EVENT_IDX & 1) == event_idx
        assert bool(self.vdev.features >> uapi.VIRTIO_RING_F_INDIRECT_DESC & 1) == indirect
        assert bool(self.vdev.features >> uapi.VIRTIO_F_NOTIFICATION_DATA & 1) == \
            (notification_data and bool(self.params["NOTIFICATION_DATA"]))
        if intx:
            assert self.vdev.vector_policy == "intx", self.vdev.find_vqs_attempts
        return self.blk

    async def remove(self):
        """Unbind the driver: device reset, the rings forgotten (DMA checker included)."""
        await self.blk.wait_all()
        self.requests_done += self.blk.completed
        await virtio_dev_remove(self.vdev)
        self.blk = None

    @property
    def vq(self):
        return self.blk.vqs[0]

    @property
    def requests(self):
        """Requests completed in this test so far (every driver instance)."""
        return self.requests_done + (self.blk.completed if self.blk is not None else 0)

    def doorbells(self, vq):
        """Doorbell writes (available-buffer notifications) the device has received for ``vq``."""
        return self._doorbells.get(vq.notify_addr, 0)

    def doorbell_log(self, vq):
        """Every doorbell write for ``vq`` as (time ns it left the host, bytes written, value)."""
        return list(self._doorbell_log.get(vq.notify_addr, ()))

    # ------------------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------------------

    def check_clean(self):
        """No DMA, protocol or used-len problem so far."""
        assert not self.checker.errors, self.checker.errors[:5]
        assert not self.host.checker.errors, self.host.checker.errors[:5]
        if self.blk is not None:
            assert not self.blk.used_len_mismatches, self.blk.used_len_mismatches[:5]
        assert not self.sb.errors, self.sb.errors[:5]

    async def finish(self):
        """Wait for everything in flight, let the link drain, then check the checkers, the
        free lists, and the whole disk against the reference."""
        if self.blk is not None:
            await self.blk.wait_all()
            for vq in self.blk.vqs:
                vq.check_free_list()
                assert await vq.vring_read_used_idx() == vq.last_used_idx
        await self.host.quiesce()
        await ClockCycles(self.dut.clk, 50)
        self.check_clean()
        self.compare_disk()
        assert not self.checker.owned_tokens(), f"chains still owned by the device: {self.checker.owned_tokens()[:5]}"
        status = await self.vdev.get_status()
        assert not status & uapi.VIRTIO_CONFIG_S_NEEDS_RESET, f"device_status 0x{status:02x}"
        wall, cpu = time.time() - self._t0[0], time.process_time() - self._t0[1]
        self.log.info("blk_io summary: %s: %d requests, %.1f us simulated, %d TLPs from the device on tx_req, "
                      "%d requests to it, %.1f s wall, %.1f s CPU (this process)", self.name, self.requests,
                      (now_ns() - self._t0[2]) / 1000, len(self.host.tx_req_log), self.host.requests_sent, wall,
                      cpu)

    def compare_disk(self):
        disk = bytes(self.host.disk.read(0, self.capacity * SECTOR))
        if disk != bytes(self.ref.data):
            bad = next(i for i in range(len(disk)) if disk[i] != self.ref.data[i])
            raise AssertionError(f"disk memory differs from the reference from byte 0x{bad:x} "
                                 f"(sector {bad // SECTOR})")

    async def wait_used(self, vq, count, timeout_us=20_000):
        """Poll the used idx (no reaping) until ``count`` entries past last_used_idx are used."""
        deadline = now_ns() + timeout_us * 1000
        while ((await vq.vring_read_used_idx() - vq.last_used_idx) & VRING_IDX_MASK) < count:
            if now_ns() > deadline:
                raise AssertionError(f"vq {vq.index}: only {(await vq.vring_read_used_idx() - vq.last_used_idx) & 0xFFFF}"
                                     f" of {count} used after {timeout_us} us")
            await Timer(1, "us")

    def msi_data(self, vector):
        return self.vdev.pci_dev.msi_vectors[vector].data

    # ------------------------------------------------------------------------------------------
    # Index backdoor (SPL-24)
    # ------------------------------------------------------------------------------------------

    async def preload_indices(self, vq, value):
        """Start the ring at free-running index ``value`` instead of 0, as if ``value`` requests
        had already gone through it: the engine's per-queue indices (``engine_probe``) are
        deposited through the simulator, and the driver side agrees (avail
        idx, used idx, used_event and avail_event in host memory, the Virtqueue's shadow
        indices, the DMA checker's published used idx). Only before the first kick of a fresh
        queue (nothing in flight)."""
        assert vq.num_free == vq.num and vq.avail_idx_shadow == vq.last_used_idx, "queue not fresh"
        value &= VRING_IDX_MASK
        q = vq.index
        rtl = self.probe_rtl
        for reg in rtl.index_state(q):
            reg.value = value
        await ClockCycles(self.dut.clk, 2)
        got = self.rtl_indices(q)
        assert got == (value, value), f"backdoor deposit did not stick: {got} != {value}"
        vq.avail_idx_shadow = value
        vq.last_used_idx = value
        await vq.vring_write_avail_idx(value)
        await vq.used.write(VRING_USED_IDX, value.to_bytes(2, "little"))
        if vq.event:
            await vq.vring_write_used_event(value)
            await vq.used.write(vring_avail_event_offset(vq.num), value.to_bytes(2, "little"))
        # the DMA checker follows the used idx the device publishes from here
        self.checker._vrings[vq].published_idx = value

    def rtl_indices(self, q=0):
        """(last_avail, used_idx) of queue ``q`` inside the engine (backdoor read)."""
        rtl = self.probe_rtl
        return int(rtl.last_avail(q).value), int(rtl.used_idx(q).value)


# ----------------------------------------------------------------------------------------------
# Scoreboard and random mix
# ----------------------------------------------------------------------------------------------

class Scoreboard:
    """Expected results from the reference disk; see the module docstring."""

    def __init__(self, bench):
        self.bench = bench
        self.ref = bench.ref
        self.inflight = {}  # id(req) -> (first sector, end sector, writes)
        self.errors = []
        self.counts = {}
        self.bytes = 0

    def free_range(self, sector, count, write):
        end = sector + count
        for lo, hi, w in self.inflight.values():
            if lo < end and sector < hi and (write or w):
                return False
        return True

    def pick_range(self, rng, count, write, tries=20):
        """A random sector range of ``count`` sectors that does not conflict with a request in
        flight, or None."""
        for _ in range(tries):
            sector = rng.randrange(0, self.ref.capacity - count + 1)
            if self.free_range(sector, count, write):
                return sector
        return None

    def expect(self, req, kind, sector=0, count=0, data=None):
        """Record what ``req`` must return. Call right after submission."""
        if kind == "write":
            status = self.ref.write(sector, data)
            expected = (status, None)
        elif kind == "read":
            expected = self.ref.read(sector, count)
        elif kind == "flush":
            expected = (self.ref.flush(), None)
        elif kind == "get_id":
            expected = self.ref.get_id()
        else:
            expected = (uapi.VIRTIO_BLK_S_UNSUPP, bytes(req.in_data_len) if req.in_data_len else None)
        key = id(req)
        if kind in ("read", "write"):
            self.inflight[key] = (sector, sector + count, kind == "write")
            self.bytes += count * SECTOR
        self.counts[kind] = self.counts.get(kind, 0) + 1
        req.callbacks.append(lambda r: self._check(r, kind, expected, key))
        if req.done:
            self._check(req, kind, expected, key)

    def _check(self, req, kind, expected, key):
        self.inflight.pop(key, None)
        status, data = expected
        problems = []
        if req.status != status:
            problems.append(f"status {req.status}, expected {status}")
        if data is not None and req.data != data:
            diff = next((i for i in range(min(len(req.data or b""), len(data))) if req.data[i] != data[i]), None)
            problems.append(f"data differs (first at byte {diff})")
        if req.used_len != req.expected_used_len:
            problems.append(f"used len {req.used_len}, expected {req.expected_used_len}")
        if problems:
            self.errors.append(f"{kind} {req!r}: " + "; ".join(problems))
            self.bench.log.error("%s %r: %s", kind, req, "; ".join(problems))


def random_size(rng, max_sectors=128):
    """Sectors of one request: mostly small (70 %: 512 B .. 2 KiB; 22 %: up to 8 KiB), some up
    to 32 KiB (6 %), a few up to 64 KiB (2 %); at most ``max_sectors``. (Simulation time grows
    with the bytes moved, so the big ones are kept rare.)"""
    r = rng.random()
    if r < 0.70:
        n = rng.randint(1, 4)
    elif r < 0.92:
        n = rng.randint(5, 16)
    elif r < 0.98:
        n = rng.randint(17, 64)
    else:
        n = rng.randint(65, 128)
    return min(n, max_sectors)


async def submit_random(bench, layout=None, vq_index=None, weights=(45, 45, 6, 4), max_sectors=128,
                        kick=False, wait_for_space=False):
    """Submit one random request (read / write / flush / get_id by ``weights``) with a random
    reserved field (BLK-24); returns the VirtblkReq, scoreboard attached."""
    blk, rng, sb = bench.blk, bench.rng, bench.sb
    kw = dict(layout=layout, vq_index=vq_index, kick=kick, wait_for_space=wait_for_space,
              reserved=rng.choice((0, 0, rng.randrange(1 << 32))))
    kind = rng.choices(("read", "write", "flush", "get_id"), weights)[0]
    if kind in ("read", "write"):
        count = random_size(rng, max_sectors)
        sector = sb.pick_range(rng, count, kind == "write")
        if sector is None:
            kind = "flush"
    t_add = now_ns()
    if kind == "read":
        req = await blk.submit_read(sector, count, **kw)
        sb.expect(req, "read", sector, count)
    elif kind == "write":
        data = rng.randbytes(count * SECTOR)
        req = await blk.submit_write(sector, data, **kw)
        sb.expect(req, "write", sector, count, data)
    elif kind == "flush":
        req = await blk.submit_flush(**kw)
        sb.expect(req, "flush")
    else:
        req = await blk.submit_get_id(**kw)
        sb.expect(req, "get_id")
    bench.reqlog.track(req, t_add)
    return req


async def random_mix(bench, count, depth, layout=None, max_sectors=128, weights=(45, 45, 6, 4)):
    """``count`` random requests keeping up to ``depth`` in flight, one doorbell per refill
    (VirtioBlk.stream); returns the simulated time taken in ns."""
    start = now_ns()

    def submit(n):
        return submit_random(bench, layout=layout, max_sectors=max_sectors, weights=weights)
    await bench.blk.stream(count, submit, depth=depth)
    return now_ns() - start


async def random_mix_while(bench, count, depth, poke, gap_ns, limit=None, max_sectors=8):
    """``random_mix`` while ``await poke()`` runs again and again in the background (at most
    ``limit`` times), each time followed by a pause of ``bench.rng.randint(*gap_ns)`` ns, until
    the mix is done; returns how many times it ran."""
    stop = False
    acted = 0

    async def loop():
        nonlocal acted
        while not stop and (limit is None or acted < limit):
            await poke()
            acted += 1
            await Timer(bench.rng.randint(*gap_ns), "ns")

    task = cocotb.start_soon(loop())
    await random_mix(bench, count, depth, max_sectors=max_sectors)
    stop = True
    await task
    return acted


# ----------------------------------------------------------------------------------------------
# Hand-built chains (framings the driver model does not produce by itself)
# ----------------------------------------------------------------------------------------------

def pieces(rng, total, count):
    """``count`` random sizes >= 1 summing to ``total``."""
    if count >= total:
        return [1] * total
    cuts = sorted(rng.sample(range(1, total), count - 1))
    return [b - a for a, b in zip([0] + cuts, cuts + [total])]


async def submit_chain(bench, req_type, sector=0, out_data=b"", in_data_len=0, out_sizes=None, in_sizes=None,
                       odd=False, indirect=False, direct_prefix=0, indirect_order=None, reserved=0, kick=True,
                       expected_used_len=None):
    """Queue one request as an explicit chain: ``out_sizes`` cut the readable bytes (16-byte
    header + ``out_data``), ``in_sizes`` the writable ones (``in_data_len`` + status byte);
    ``odd`` puts every buffer at a random odd address. The request is reaped by the driver
    like any other (VirtioBlk's completion path), so it ends in a normal VirtblkReq."""
    blk = bench.blk
    vq = blk.vqs[0]
    rng = bench.rng
    header = req_type.to_bytes(4, "little") + reserved.to_bytes(4, "little") + sector.to_bytes(8, "little")
    readable = header + bytes(out_data)
    out_sizes = list(out_sizes) if out_sizes is not None else [n for n in (16, len(out_data)) if n]
    in_sizes = list(in_sizes) if in_sizes is not None else [n for n in (in_data_len, 1) if n]
    assert sum(out_sizes) == len(readable) and sum(in_sizes) == in_data_len + 1, (out_sizes, in_sizes)
    req = VirtblkReq(req_type, sector, out_data, in_data_len, reserved, "custom")
    if expected_used_len is not None:
        req.expected_used_len = expected_used_len

    def misalign():
        return rng.randrange(1, 16, 2) if odd else 0
    pos = 0
    for size in out_sizes:
        req.out_bufs.append(await blk.host_mem.alloc_with(readable[pos:pos + size], misalign=misalign()))
        pos += size
    for size in in_sizes:
        buf = blk.host_mem.alloc(size, misalign=misalign())
        await buf.write(0, bytes([0xA5]) * size)
        req.in_bufs.append(buf)
    t_add = now_ns()
    req.head = await vq.virtqueue_add_sgs(req.sgs_out, req.sgs_in, req, indirect=indirect,
                                          direct_prefix=direct_prefix, indirect_order=indirect_order)
    req.vq = vq
    req.indirect = indirect
    blk.inflight.add(req)
    blk.submitted += 1
    bench.reqlog.track(req, t_add)
    if kick:
        await vq.virtqueue_kick()
    return req


# ----------------------------------------------------------------------------------------------
# Trace checks on tx_req (ordering, avail reads)
# ----------------------------------------------------------------------------------------------

class RequestLog:
    """Per request: when the driver made it available (``t_add``) and took it back
    (``t_done``), its writable buffers; and every avail idx publication. For TraceChecker."""

    def __init__(self):
        self.reqs = []
        self.publish_t = {}  # vq -> times of its avail idx publications
        self.publish_idx = {}  # vq -> the idx published then

    def track(self, req, t_add):
        req.t_add = t_add
        req.t_done = None
        req.in_spans = list(req.sgs_in)
        self.reqs.append(req)
        self.publish_t.setdefault(req.vq, []).append(t_add)
        self.publish_idx.setdefault(req.vq, []).append(req.vq.avail_idx_shadow)

        def done(r):
            r.t_done = now_ns()
        req.callbacks.append(done)

    def published(self, vq, t, initial):
        """The avail idx the driver had published on ``vq`` at time ``t``."""
        k = bisect.bisect_right(self.publish_t.get(vq, []), t)
        return self.publish_idx[vq][k - 1] if k else initial


class TraceChecker:
    """The device's requests on tx_req (``host.tx_req_log`` from ``start``) for one virtqueue,
    classified and checked.

    ``check()`` returns a dict with ``problems`` (empty when all is well) and counters:

    * for every tracked request, each write into its writable buffers comes before the write
      of the used element naming its head, which comes before the used idx write that
      publishes it (SPL-09, SPL-10, independently of the DMA checker);
    * the used ring is written only at idx, the elements (8 bytes at once) and avail_event at
      exactly used + 4 + 8 x qsz (SPL-22); flags are never written (SPL-19, SPL-20);
    * interrupt decisions: the device decides on an interrupt after reading used_event (with
      EVENT_IDX) or the available ring's flags, for everything it had published before that
      read; the n-th MSI-X message of the queue's vector since ``start`` follows at least n
      such reads, and the first of those reads follows a used idx write (no interrupt before a
      buffer is visible, none without a decision). A decision may cover several used idx
      writes, and its message may come after the next decision's read, so messages are not
      tied to single writes here; ``interrupt_problems`` checks them against a used_event;
    * every read of the available ring covers only entries the driver had published (the avail
      idx at that time) and the device had not yet used (SPL-23);
    * ``steps``: for each used idx write, ``(k, old, new)``: its position in ``tx_req_log``
      and the idx it moved from and to; ``decisions``: for each used_event / avail flags read,
      ``(k, used)``: its position and the used idx the driver could see when it went out;
      ``msi_at``: the position of each MSI-X message of the queue's vector.
    """

    def __init__(self, bench, vq, start=None):
        self.bench = bench
        self.vq = vq
        self.start = len(bench.host.tx_req_log) if start is None else start
        self.start_avail = vq.avail_idx_shadow
        self.start_used = vq.last_used_idx
        self.start_irqs = vq.interrupt_count
        rc = bench.host.rc
        self.msi_lo = rc.msi_region.get_absolute_address(0)
        self.msi_hi = self.msi_lo + rc.msi_region.size
        self.vector_data = None
        if vq.vector is not None and vq.vector != uapi.VIRTIO_MSI_NO_VECTOR:
            self.vector_data = bench.msi_data(vq.vector)

    def events(self):
        vq = self.vq
        num = vq.num
        used_lo = vq.used_addr
        used_hi = used_lo + vring_avail_event_offset(num) + 2
        avail_lo = vq.avail_addr
        avail_hi = avail_lo + vring_used_event_offset(num) + 2
        out = []
        partial = {}
        for k, (t, tlp) in enumerate(self.bench.host.tx_req_log[self.start:], self.start):
            base = tlp.address & ~3
            first = base + tlp.get_first_be_offset()
            n = tlp.get_be_byte_count()
            if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
                data = bytes(tlp.get_data())[first - base:first - base + n]
                if self.msi_lo <= first < self.msi_hi:
                    out.append((k, t, "msi", int.from_bytes(data[:4], "little")))
                elif used_lo <= first < used_hi:
                    off = first - used_lo
                    if off == VRING_USED_IDX and n == 2:
                        out.append((k, t, "idx", int.from_bytes(data, "little")))
                    elif off == 0 and n == 2:
                        out.append((k, t, "used_flags", int.from_bytes(data, "little")))
                    elif VRING_USED_RING <= off and off + n <= vring_avail_event_offset(num):
                        # an element may come in two writes when the ring crosses a 4 KiB page:
                        # it counts as written when its last byte is
                        for j in range(n):
                            slot, byte = divmod(off + j - VRING_USED_RING, VRING_USED_ELEM_SIZEOF)
                            mask, raw = partial.setdefault(slot, [0, bytearray(VRING_USED_ELEM_SIZEOF)])
                            raw[byte] = data[j]
                            partial[slot][0] = mask | 1 << byte
                            if partial[slot][0] == 0xFF:
                                del partial[slot]
                                out.append((k, t, "elem", (slot, int.from_bytes(raw[:4], "little"),
                                                           int.from_bytes(raw[4:8], "little"))))
                    elif off == vring_avail_event_offset(num) and n == 2:
                        out.append((k, t, "avail_event", int.from_bytes(data, "little")))
                    else:
                        out.append((k, t, "used_other", (off, n)))
                else:
                    out.append((k, t, "data", (first, n)))
            elif tlp.fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64):
                if avail_lo <= first < avail_hi:
                    off = first - avail_lo
                    if off == 0 and n == 2:
                        out.append((k, t, "avail_flags_read", None))
                    elif off == 2 and n == 2:
                        out.append((k, t, "avail_idx_read", None))
                    elif off == vring_used_event_offset(num) and n == 2:
                        out.append((k, t, "used_event_read", None))
                    elif VRING_AVAIL_RING <= off and off + n <= vring_used_event_offset(num) and off % 2 == 0 \
                            and n % 2 == 0:
                        out.append((k, t, "avail_ring_read", ((off - VRING_AVAIL_RING) // 2, n // 2)))
                    else:
                        out.append((k, t, "avail_other_read", (off, n)))
                else:
                    out.append((k, t, "read", (first, n)))
        return out

    def check(self, reqs=None):
        vq = self.vq
        num = vq.num
        log = self.bench.reqlog
        reqs = log.reqs if reqs is None else reqs
        reqs = [r for r in reqs if getattr(r, "vq", None) is vq and r.t_add is not None]
        by_page = {}
        for req in reqs:
            for addr, length in req.in_spans:
                for page in range(addr >> 12, ((addr + length - 1) >> 12) + 1):
                    by_page.setdefault(page, []).append(req)
        by_head = {}
        for req in reqs:
            by_head.setdefault(req.head, []).append(req)
        last_data = {}
        elem_at = {}
        used_written = self.start_used
        problems = []
        counts = dict(idx_writes=0, msis=0, elems=0, data_writes=0, avail_event_writes=0, ring_reads=0,
                      used_event_reads=0, avail_flags_reads=0)
        steps = []  # (k, old, new) per used idx write
        decisions = []  # (k, used idx written before it) per used_event / avail flags read
        msi_at = []
        events = self.events()
        for k, t, kind, info in events:
            if kind == "data":
                addr, n = info
                counts["data_writes"] += 1
                for req in by_page.get(addr >> 12, ()):
                    if req.t_add < t and (req.t_done is None or t <= req.t_done) and \
                            any(a <= addr and addr + n <= a + ln for a, ln in req.in_spans):
                        last_data[id(req)] = k
                        break
            elif kind == "elem":
                counts["elems"] += 1
                slot, head, used_len = info
                elem_at[slot] = (k, head, t)
            elif kind == "idx":
                counts["idx_writes"] += 1
                count = (info - used_written) & VRING_IDX_MASK
                if count == 0 or count > num:
                    problems.append(f"#{k}: used idx written {used_written} -> {info}")
                for j in range(min(count, num)):
                    slot = (used_written + j) & (num - 1)
                    if slot not in elem_at:
                        problems.append(f"#{k}: used idx {used_written}->{info} publishes slot {slot} not written")
                        continue
                    ek, head, et = elem_at.pop(slot)
                    owner = next((r for r in by_head.get(head, ()) if r.t_add < et
                                  and (r.t_done is None or et <= r.t_done)), None)
                    if owner is None:
                        continue
                    dk = last_data.pop(id(owner), None)
                    if owner.type == uapi.VIRTIO_BLK_T_IN and owner.in_data_len and dk is None:
                        problems.append(f"{owner!r}: no data write seen before its used element #{ek}")
                    if dk is not None and dk > ek:
                        problems.append(f"{owner!r}: data write #{dk} after its used element #{ek}")
                steps.append((k, used_written, info))
                used_written = info
            elif kind == "msi":
                if self.vector_data is not None and info == self.vector_data:
                    counts["msis"] += 1
                    msi_at.append(k)
                    if len(decisions) < len(msi_at):
                        problems.append(f"#{k}: MSI-X number {len(msi_at)} at {t} ns after only {len(decisions)} "
                                        "used_event / avail flags reads (an interrupt without a decision)")
                    elif not steps or steps[0][0] > decisions[0][0]:
                        problems.append(f"#{k}: MSI-X at {t} ns, but no used idx write came before the first "
                                        "interrupt decision read")
            elif kind == "avail_event":
                counts["avail_event_writes"] += 1
                if not vq.event:
                    problems.append(f"#{k}: avail_event written without EVENT_IDX")
            elif kind == "used_flags":
                problems.append(f"#{k}: used flags written (0x{info:x}); this device never suppresses by flags")
            elif kind == "used_other":
                problems.append(f"#{k}: used ring written at offset {info[0]}, {info[1]} bytes (not idx, an "
                                f"element or avail_event at {vring_avail_event_offset(num)})")
            elif kind == "avail_other_read":
                problems.append(f"#{k}: avail ring read at offset {info[0]}, {info[1]} bytes")
            elif kind == "used_event_read":
                counts["used_event_reads"] += 1
                if vq.event:
                    decisions.append((k, used_written))
            elif kind == "avail_flags_read":
                counts["avail_flags_reads"] += 1
                if not vq.event:
                    decisions.append((k, used_written))
            elif kind == "avail_ring_read":
                counts["ring_reads"] += 1
                slot0, nslots = info
                published = log.published(vq, t, self.start_avail)
                window = (published - used_written) & VRING_IDX_MASK
                legal = {(used_written + j) & (num - 1) for j in range(min(window, num))}
                for s in range(slot0, slot0 + nslots):
                    if s not in legal:
                        problems.append(f"#{k}: avail ring slot {s} read at {t} ns; published avail idx {published}, "
                                        f"used idx {used_written}: not a published, unused entry (SPL-23)")
        return dict(problems=problems, steps=steps, decisions=decisions, msi_at=msi_at, **counts)


def interrupt_problems(result, used_event):
    """With EVENT_IDX and ``used_event`` constant over a trace (SPL-16, SPL-17): the used idx
    writes of ``result`` (from ``TraceChecker.check``) cross used_event at most once here; if
    one does (vring_need_event(used_event, new, old)), exactly one MSI-X message of the queue
    comes, after that write and after an interrupt decision read that follows it; if none
    does, no message comes. However the device groups writes into decisions, the decision that
    covers the crossing write is the one, and the only one, that must interrupt. Returns a list
    of problems (empty when all is well)."""
    cross = [k for k, old, new in result["steps"] if vring_need_event(used_event, new, old)]
    msi_at = result["msi_at"]
    if len(cross) > 1:
        return [f"the used idx writes cross used_event {used_event} {len(cross)} times; the test expects one"]
    if not cross:
        return [] if not msi_at else [f"{len(msi_at)} MSI-X messages, but no used idx write passed used_event "
                                      f"{used_event}: steps {result['steps']}"]
    if len(msi_at) != 1:
        return [f"{len(msi_at)} MSI-X messages for one crossing of used_event {used_event}: steps "
                f"{result['steps']}, decisions {result['decisions']}, messages at {msi_at}"]
    after = [k for k, _ in result["decisions"] if cross[0] < k < msi_at[0]]
    if not after:
        return [f"MSI-X #{msi_at[0]} without an interrupt decision read between it and the used idx write "
                f"#{cross[0]} that passed used_event {used_event}"]
    return []


def assert_trace(bench, trace, reqs=None, **expect):
    """Run ``trace.check`` and fail on any problem; ``expect`` = counters to compare. Also:
    the MSI-X messages of the queue's vector on the trace are exactly the interrupts the driver
    took for the queue since the trace started (none lost or invented on the way), and
    ``elems``, when given, bounds ``idx_writes`` (one idx write may publish several elements)."""
    result = trace.check(reqs)
    assert not result["problems"], f"{len(result['problems'])} trace problems: {result['problems'][:8]}"
    for key, value in expect.items():
        assert result[key] == value, f"trace {key} = {result[key]}, expected {value}"
    if "elems" in expect:
        assert 0 < result["idx_writes"] <= expect["elems"], (result["idx_writes"], expect["elems"])
    if trace.vector_data is not None:
        taken = trace.vq.interrupt_count - trace.start_irqs
        assert result["msis"] == taken, f"{result['msis']} MSI-X messages on the trace, the driver took {taken}"
    bench.log.info("trace: %s", {k: v for k, v in result.items()
                                 if k not in ("problems", "steps", "decisions", "msi_at")})
    return result


async def poison_free(vq, rng, poison_desc=True):
    """SPL-23: fill every avail ring slot the driver has not published (positions avail idx ..
    last_used_idx + qsz - 1) with poison: half out-of-range heads (0xFFFF), half heads of chains
    the device owns right now (a device that read one would use a chain twice); and every
    descriptor on the free list with one pointing at memory nobody owns. The driver's own copy
    (desc_extra) keeps the free list, and every add rewrites its descriptors and ring slot."""
    num = vq.num
    outstanding = vq.outstanding() if num <= 4096 else []
    first = vq.avail_idx_shadow
    free_slots = min((vq.last_used_idx + num - first) & VRING_IDX_MASK, num)
    for j in range(free_slots):
        slot = (first + j) & (num - 1)
        value = 0xFFFF if not outstanding or rng.random() < 0.5 else rng.choice(outstanding)
        await vq.avail.write(VRING_AVAIL_RING + VRING_AVAIL_ELEM_SIZEOF * slot, value.to_bytes(2, "little"))
    if poison_desc:
        i = vq.free_head
        for _ in range(vq.num_free):
            raw = ((0x7FF0_0000 + rng.randrange(0, 0x1000, 16)).to_bytes(8, "little") + (512).to_bytes(4, "little")
                   + rng.choice((0, 2)).to_bytes(2, "little") + rng.randrange(num).to_bytes(2, "little"))
            await vq.desc.write(VRING_DESC_SIZEOF * i, raw)
            i = vq.desc_extra[i].next
