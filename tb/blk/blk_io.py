# SPDX-License-Identifier: Apache-2.0
"""System-level virtio-blk I/O tests: the guest driver (models.virtio.blk.VirtioBlk, modelled
on Linux) reads and writes the disk through the whole RTL (transport, ring engine, DMA, back
end) with the DMA ownership checker and the TLP protocol checker installed in every test, every
request checked byte for byte against the reference RAM disk and the disk memory compared at
the end of each test.

cocotb tests, run by tb/blk/test_blk.py (which picks the RTL parameters and the sizes through
``BLK_*`` environment variables); the bench is tb/blk/blk_tb.py.
"""

import os

import cocotb
from cocotb.triggers import ClockCycles, Timer
from cocotb.utils import get_sim_time

from blk_tb import (
    ID_STRING,
    PARAMS,
    SECTOR,
    BlkBench,
    TraceChecker,
    assert_trace,
    interrupt_problems,
    pieces,
    poison_free,
    random_mix,
    random_mix_while,
    submit_chain,
    submit_random,
)
from models.virtio import uapi
from models.virtio.ring import VRING_IDX_MASK, VirtqueueFullError

CLK_NS = 4
# simulated time limit of each test (a request takes a few microseconds)
TIMEOUT_MS = int(os.environ.get("BLK_TIMEOUT_MS", 100))


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_list(name, default):
    return [item for item in os.environ.get(name, default).replace(" ", "").split(",") if item]


def noop_callback(vq):
    """A queue callback that only lets the interrupt be counted (nothing reaped, nothing
    re-enabled), so interrupt counts show the device's decisions alone."""


async def settle(bench, cycles=400, limit_us=500):
    """Let the last interrupt (MSI-X write, or INTx and the ISR read) reach the driver: the
    device decides on an interrupt one host read after its last used idx write, and a decision
    in flight delays the next by one more read, so wait until the device has sent nothing on
    tx_req for two host read latencies plus ``cycles`` (at most ``limit_us``; a device that
    never goes quiet fails the test's own checks)."""
    host = bench.host
    quiet = 2 * host.dma.model.read_latency_ns + cycles * host.clock_period_ns
    deadline = get_sim_time("ns") + limit_us * 1000
    await ClockCycles(bench.dut.clk, cycles)
    while get_sim_time("ns") < deadline:
        last = host.tx_req_log[-1][0] if host.tx_req_log else 0
        wait = last + quiet - get_sim_time("ns")
        if wait <= 0:
            return
        await Timer(int(wait) + 1, "ns")


# ----------------------------------------------------------------------------------------------
# 1. Random mix
# ----------------------------------------------------------------------------------------------

@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_random_mix(dut):
    """A random mix of reads, writes, flushes and GET_IDs of 512 B .. 64 KiB (mostly small) at
    random sectors, with a random reserved field, at queue depths 1 to 64, every result checked
    against the reference RAM disk whatever order the device completes them in (requests in
    flight never overlap a write), the used len of each (IN: data + 1, OUT/FLUSH: 1, GET_ID: 21),
    the data / used element / used idx / MSI-X order on the trace, the doorbells the device
    received (the kicks the driver sent), and the disk memory at the end (BLK-19, BLK-20,
    BLK-21, BLK-22, BLK-24, SPL-09, SPL-10, SPL-11, VQ-05)."""
    bench = await BlkBench(dut, name="mix").start()
    layout = os.environ.get("BLK_MIX_LAYOUT", "linux")
    await bench.probe(layout=layout)
    total = env_int("BLK_MIX_COUNT", 400)
    vq = bench.vq
    trace = TraceChecker(bench, vq)
    plan = ((1, 0.05), (4, 0.15), (16, 0.25), (32, 0.35), (64, 0.20))
    for k, (depth, share) in enumerate(plan):
        n = total - bench.blk.completed if k == len(plan) - 1 else max(1, int(total * share))
        done0 = bench.blk.completed
        sim = await random_mix(bench, n, depth, max_sectors=env_int("BLK_MIX_MAX_SECTORS", 128))
        bench.log.info("mix depth %d: %d requests in %d ns: %.0f cycles per request", depth,
                       bench.blk.completed - done0, sim, sim / CLK_NS / max(1, bench.blk.completed - done0))
        bench.check_clean()
    await bench.finish()
    assert_trace(bench, trace, elems=bench.blk.completed)
    assert bench.doorbells(vq) == vq.kicks_sent, (bench.doorbells(vq), vq.kicks_sent)
    sb = bench.sb
    bench.log.info("mix: %d requests (%s), %d data bytes, width %d", bench.blk.completed, sb.counts, sb.bytes,
                   PARAMS["DATA_WIDTH"])
    assert all(sb.counts.get(k, 0) > 0 for k in ("read", "write", "flush")), sb.counts
    assert bench.blk.completed == total, (bench.blk.completed, total)


# ----------------------------------------------------------------------------------------------
# 2. Chain layouts
# ----------------------------------------------------------------------------------------------

LAYOUTS = ("separate", "merged", "merged+indirect", "split_header", "split_header+indirect", "split",
           "split+indirect", "indirect", "mixed", "linux")


# sectors written and read back by each framing round
PATTERN_SECTORS = 2


async def layout_round(bench, tag, sector, ref_sector, ref_count, **how):
    """One framing: read the reference range, write a fresh pattern and read it back, FLUSH,
    GET_ID. Returns what the reads and GET_ID returned."""
    sb, blk = bench.sb, bench.blk
    n = PATTERN_SECTORS
    pattern = bench.rng.randbytes(n * SECTOR)
    reqs = []
    if "layout" in how:
        kw = dict(layout=how["layout"])
        r = await blk.submit_read(ref_sector, ref_count, **kw)
        sb.expect(r, "read", ref_sector, ref_count)
        w = await blk.submit_write(sector, pattern, **kw)
        sb.expect(w, "write", sector, n, pattern)
        await blk.wait_req(w)
        rb = await blk.submit_read(sector, n, **kw)
        sb.expect(rb, "read", sector, n)
        f = await blk.submit_flush(**kw)
        sb.expect(f, "flush")
        g = await blk.submit_get_id(**kw)
        sb.expect(g, "get_id")
        reqs = [r, w, rb, f, g]
    else:
        r = await chain_request(bench, uapi.VIRTIO_BLK_T_IN, ref_sector, in_data_len=ref_count * SECTOR, **how)
        sb.expect(r, "read", ref_sector, ref_count)
        w = await chain_request(bench, uapi.VIRTIO_BLK_T_OUT, sector, out_data=pattern, **how)
        sb.expect(w, "write", sector, n, pattern)
        await bench.blk.wait_req(w)
        rb = await chain_request(bench, uapi.VIRTIO_BLK_T_IN, sector, in_data_len=n * SECTOR, **how)
        sb.expect(rb, "read", sector, n)
        f = await chain_request(bench, uapi.VIRTIO_BLK_T_FLUSH, 0, **how)
        sb.expect(f, "flush")
        g = await chain_request(bench, uapi.VIRTIO_BLK_T_GET_ID, 0, in_data_len=uapi.VIRTIO_BLK_ID_BYTES, **how)
        sb.expect(g, "get_id")
        reqs = [r, w, rb, f, g]
    for req in reqs:
        await blk.wait_req(req)
    bench.check_clean()
    assert rb.data == pattern, f"{tag}: read back differs"
    return r.data, g.data


async def chain_request(bench, req_type, sector, out_data=b"", in_data_len=0, data_segs=1, header="one",
                        status="own", odd=False, indirect=False, direct_prefix=0, shuffle=False):
    """A request framed by hand: the data in ``data_segs`` random pieces, the header as one
    buffer, 4+4+8 ("split") or merged with the data ("merged"); the status in its own buffer or
    sharing the last writable one ("merged"); ``shuffle`` scrambles the indirect table order
    (entry 0 stays first, as the device starts there)."""
    rng = bench.rng
    data_len = len(out_data) or in_data_len
    data_sizes = pieces(rng, data_len, data_segs) if data_len else []
    hdr_sizes = [4, 4, 8] if header == "split" else [16]
    if out_data:
        if header == "merged":
            out_sizes = [16 + data_sizes[0]] + data_sizes[1:]
        else:
            out_sizes = hdr_sizes + data_sizes
        in_sizes = [1]
    else:
        out_sizes = hdr_sizes
        if status == "merged" and data_sizes:
            in_sizes = data_sizes[:-1] + [data_sizes[-1] + 1]
        else:
            in_sizes = data_sizes + [1]
    order = None
    if shuffle and indirect:
        n = len(out_sizes) + len(in_sizes) - direct_prefix
        rest = list(range(1, n))
        rng.shuffle(rest)
        order = [0] + rest
    return await submit_chain(bench, req_type, sector, out_data=out_data, in_data_len=in_data_len, out_sizes=out_sizes,
                              in_sizes=in_sizes, odd=odd, indirect=indirect, direct_prefix=direct_prefix,
                              indirect_order=order)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_layouts(dut):
    """The same requests (read of a fixed range, write of a pattern and its read-back, FLUSH,
    GET_ID) under every framing: header, data and status separate (A); header+data merged and
    data+status merged (B); header split 4+4+8 (C); data in random pieces at odd addresses (D);
    exactly seg_max data segments, direct and indirect, some of 1..15 bytes (SPL-02); all behind
    one indirect descriptor (E); direct descriptors followed by an indirect one (SPL-07);
    indirect tables in shuffled order, 8-byte aligned and crossing a 4 KiB page (SPL-08); the
    WRITE flag on the descriptor that points to a table (SPL-06). Reads and GET_ID return
    identical bytes under every framing, used lens are exact, and then a random layout per
    request in one queue at depth 16 (SPL-01, BLK-19, SPL-11). BLK_LAYOUT_ROUNDS=short (used
    at the other data widths) keeps seven of the framings and skips the table placements."""
    bench = await BlkBench(dut, name="layouts").start()
    await bench.probe()
    blk, sb, rng = bench.blk, bench.sb, bench.rng
    seg_max = blk.seg_max
    assert seg_max == PARAMS["SEG_MAX"], (seg_max, PARAMS["SEG_MAX"])
    ref_sector, ref_count = 64, 4
    data = rng.randbytes(ref_count * SECTOR)
    w = await blk.submit_write(ref_sector, data)
    sb.expect(w, "write", ref_sector, ref_count, data)
    await blk.wait_req(w)

    framings = [(name, dict(layout=name)) for name in LAYOUTS]
    framings += [
        ("A odd", dict(odd=True)),
        ("B hdr+data / data+status", dict(header="merged", status="merged", data_segs=3)),
        ("C split header, 5 data", dict(header="split", data_segs=5, odd=True)),
        ("D seg_max direct", dict(data_segs=seg_max, odd=True)),
        ("D seg_max indirect", dict(data_segs=seg_max, odd=True, indirect=True)),
        # the device takes seg_max + 2 data-carrying descriptors (Linux's seg_max data segments
        # plus header and status): with the header in three, two fewer data segments
        ("D seg_max split header", dict(data_segs=seg_max - 2, header="split", status="merged", indirect=True)),
        ("E indirect shuffled", dict(data_segs=6, header="split", indirect=True, shuffle=True)),
        ("E indirect shuffled odd", dict(data_segs=seg_max, indirect=True, shuffle=True, odd=True)),
        ("SPL-07 prefix 1", dict(data_segs=4, indirect=True, direct_prefix=1)),
        ("SPL-07 prefix 3", dict(data_segs=4, header="split", indirect=True, direct_prefix=3)),
        ("SPL-07 prefix 3 shuffled", dict(data_segs=9, header="split", indirect=True, direct_prefix=3,
                                          shuffle=True, odd=True)),
    ]
    # BLK_LAYOUT_ROUNDS=short (the other data widths): a subset of the framings, no table placement
    short = os.environ.get("BLK_LAYOUT_ROUNDS", "all") == "short"
    if short:
        keep = ("split", "mixed", "A odd", "B hdr+data / data+status", "C split header, 5 data",
                "E indirect shuffled odd", "SPL-07 prefix 3 shuffled")
        framings = [(tag, how) for tag, how in framings if tag in keep]
        assert len(framings) == len(keep)
    results = {}
    sector = 256
    for tag, how in framings:
        bench.log.info("framing %s", tag)
        results[tag] = await layout_round(bench, tag, sector, ref_sector, ref_count, **how)
        sector += PATTERN_SECTORS
    vq = bench.vq
    # SPL-08: table placement; SPL-06: WRITE on the pointer descriptor
    placements = (("table 8-aligned", 16, 8, 0), ("table across 4 KiB", 4096, 4096 - 32, 0),
                  ("WRITE on pointer", 16, 0, uapi.VRING_DESC_F_WRITE),
                  ("WRITE on pointer, prefix", 16, 0, uapi.VRING_DESC_F_WRITE))
    for tag, align, misalign, extra in placements if not short else ():
        vq.indirect_align, vq.indirect_misalign, vq.indirect_extra_flags = align, misalign, extra
        how = dict(data_segs=5, header="split", indirect=True, shuffle=True, odd=True)
        if tag.endswith("prefix"):
            how["direct_prefix"] = 2
        bench.log.info("framing %s", tag)
        results[tag] = await layout_round(bench, tag, sector, ref_sector, ref_count, **how)
        results[tag + " linux"] = await layout_round(bench, tag, sector + PATTERN_SECTORS, ref_sector, ref_count,
                                                     layout="indirect")
        sector += 2 * PATTERN_SECTORS
    vq.indirect_align, vq.indirect_misalign, vq.indirect_extra_flags = 16, 0, 0
    want_id = ID_STRING.ljust(uapi.VIRTIO_BLK_ID_BYTES, b"\0")
    for tag, (ref_data, id_data) in results.items():
        assert ref_data == data, f"{tag}: the reference range read differently"
        assert id_data == want_id, f"{tag}: GET_ID {id_data!r}"
    bench.log.info("layouts: %d framings identical", len(results))
    bench.check_clean()

    # all layouts at once in one queue
    count = env_int("BLK_LAYOUT_MIX_COUNT", 60)
    await random_mix(bench, count, 16, layout="random", max_sectors=8)
    await bench.finish()
    bench.log.info("layouts: %d requests", bench.blk.completed)


# ----------------------------------------------------------------------------------------------
# 3. GET_ID, FLUSH, unsupported types
# ----------------------------------------------------------------------------------------------

@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_get_id_flush_unsupported(dut):
    """GET_ID returns "virtio-blk-fpga" NUL-padded to 20 bytes with status OK and used len 21
    under three framings (BLK-21, SPL-11); FLUSH gives OK with used len 1 (BLK-22); types the
    device does not implement give UNSUPP and leave the disk untouched, with zeros before the
    status and used len = the writable bytes: 0xFF, 0xFFFFFFFF, the legacy SCSI/FLUSH_OUT types,
    OUT with the legacy BARRIER flag, GET_LIFETIME, DISCARD / WRITE_ZEROES / SECURE_ERASE (not
    offered) and every zone type (BLK-22, BLK-17)."""
    bench = await BlkBench(dut, name="types").start()
    await bench.probe()
    blk, sb, rng = bench.blk, bench.sb, bench.rng
    want_id = ID_STRING.ljust(uapi.VIRTIO_BLK_ID_BYTES, b"\0")
    for layout in ("linux", "separate", "merged", "split"):
        status, id_bytes = await blk.get_id(layout=layout)
        assert status == uapi.VIRTIO_BLK_S_OK and id_bytes == want_id, (layout, status, id_bytes)
        status, _ = await blk.flush(layout=layout)
        assert status == uapi.VIRTIO_BLK_S_OK, (layout, status)
    assert not blk.used_len_mismatches, blk.used_len_mismatches

    # a pattern where the unsupported requests point
    target = 40
    data = rng.randbytes(16 * SECTOR)
    w = await blk.submit_write(target, data)
    sb.expect(w, "write", target, 16, data)
    await blk.wait_req(w)
    seg = target.to_bytes(8, "little") + (8).to_bytes(4, "little") + (0).to_bytes(4, "little")
    seg_unmap = target.to_bytes(8, "little") + (8).to_bytes(4, "little") + (1).to_bytes(4, "little")
    cases = [
        ("0xFF", 0xFF, 0, b"", 0),
        ("0xFFFFFFFF", 0xFFFFFFFF, target, b"", 0),
        ("0xFF with data in", 0xFF, target, b"", 512),
        ("SCSI_CMD", uapi.VIRTIO_BLK_T_SCSI_CMD, 0, b"\x00" * 32, 96),
        ("SCSI_CMD_OUT", 3, target, rng.randbytes(512), 0),
        ("FLUSH_OUT", 5, 0, b"", 0),
        ("OUT|BARRIER", uapi.VIRTIO_BLK_T_OUT | uapi.VIRTIO_BLK_T_BARRIER, target, rng.randbytes(1024), 0),
        ("IN|BARRIER", uapi.VIRTIO_BLK_T_IN | uapi.VIRTIO_BLK_T_BARRIER, target, b"", 1024),
        ("GET_LIFETIME", uapi.VIRTIO_BLK_T_GET_LIFETIME, 0, b"", 6),
        ("DISCARD", uapi.VIRTIO_BLK_T_DISCARD, 0, seg, 0),
        ("WRITE_ZEROES", uapi.VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 0),
        ("WRITE_ZEROES unmap", uapi.VIRTIO_BLK_T_WRITE_ZEROES, 0, seg_unmap, 0),
        ("SECURE_ERASE", uapi.VIRTIO_BLK_T_SECURE_ERASE, 0, seg, 0),
        ("ZONE_APPEND", uapi.VIRTIO_BLK_T_ZONE_APPEND, target, rng.randbytes(512), 8),
        ("ZONE_REPORT", uapi.VIRTIO_BLK_T_ZONE_REPORT, target, b"", 4096),
        ("ZONE_OPEN", uapi.VIRTIO_BLK_T_ZONE_OPEN, target, b"", 0),
        ("ZONE_CLOSE", uapi.VIRTIO_BLK_T_ZONE_CLOSE, target, b"", 0),
        ("ZONE_FINISH", uapi.VIRTIO_BLK_T_ZONE_FINISH, target, b"", 0),
        ("ZONE_RESET", uapi.VIRTIO_BLK_T_ZONE_RESET, target, b"", 0),
        ("ZONE_RESET_ALL", uapi.VIRTIO_BLK_T_ZONE_RESET_ALL, 0, b"", 0),
        ("type 7", 7, target, b"", 0),
        ("type 12", 12, target, b"", 512),
    ]
    reqs = []
    for tag, req_type, sector, out_data, in_len in cases:
        for indirect in (False, True):
            req = await submit_chain(bench, req_type, sector, out_data=out_data, in_data_len=in_len, indirect=indirect,
                                     reserved=rng.randrange(1 << 32), expected_used_len=in_len + 1)
            sb.expect(req, "unsupported")
            reqs.append((tag, req))
    for tag, req in reqs:
        await blk.wait_req(req)
        assert req.status == uapi.VIRTIO_BLK_S_UNSUPP, f"{tag}: status {req.status}"
    assert bytes(bench.host.disk.read(target * SECTOR, len(data))) == data, "an unsupported request wrote the disk"
    await bench.finish()


# ----------------------------------------------------------------------------------------------
# 4. Queue sizes, 5. index wrap
# ----------------------------------------------------------------------------------------------

@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_sizes(dut):
    """Rings of every driver-chosen size from BLK_QSIZES (default 1, 2, 4 ... the device
    maximum QUEUE_SIZE_MAX; size 1 with indirect chains): rings up to 256 entries run enough
    requests to use every slot of their rings at least once and wrap (size + 8, twice round for
    the small ones); larger rings start just below the 16-bit index wrap through the index
    backdoor and run BLK_QSIZE_BIG_COUNT requests across it (65536 is a multiple of every size:
    the slot wraps at the same moment), with
    the slot = idx mod size used by the device for the available and used rings, avail_event
    written exactly at used + 4 + 8 x size and used_event read at avail + 4 + 2 x size, and no
    avail read beyond the published entries (SPL-24, SPL-22, SPL-23, SPL-11)."""
    bench = await BlkBench(dut, name="qsizes").start()
    qmax = PARAMS["QUEUE_SIZE_MAX"]
    default = ",".join(str(1 << k) for k in range(qmax.bit_length()) if (1 << k) <= qmax)
    sizes = [int(s) for s in env_list("BLK_QSIZES", default)]
    total = 0
    for size in sizes:
        layout = "indirect" if size < 4 else "linux"
        await bench.probe(queue_size=size, layout=layout)
        vq = bench.vq
        assert vq.num == size, (vq.num, size)
        if size <= 32:
            n = max(2 * size + 8, 24)
        elif size <= 256:
            n = size + 8
        else:
            n = env_int("BLK_QSIZE_BIG_COUNT", 100)
            await bench.preload_indices(vq, -(n // 2))
        trace = TraceChecker(bench, vq)
        sim = await random_mix(bench, n, min(size, 32), max_sectors=2, weights=(35, 35, 25, 5))
        await bench.blk.wait_all()
        await settle(bench)
        result = assert_trace(bench, trace, elems=n)
        slots = {info[0] for _, _, kind, info in trace.events() if kind == "elem"}
        if n >= size:
            assert slots == set(range(size)), f"size {size}: used slots {sorted(set(range(size)) - slots)} never written"
        assert result["avail_event_writes"] > 0 and result["used_event_reads"] > 0, result
        bench.log.info("queue size %d: %d requests, %.0f cycles per request", size, n, sim / CLK_NS / n)
        bench.check_clean()
        total += n
    await bench.finish()
    bench.log.info("queue sizes %s: %d requests", sizes, total)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_index_wrap(dut):
    """The free-running avail and used indices wrap at 65536 (SPL-24): the ring engine's
    per-queue indices and the driver's are preloaded through the simulator (the backdoor of
    blk_tb.engine_probe) to just below 65536 on a fresh queue, then requests run across the
    wrap for each size:count:event_idx of BLK_WRAP (default sizes 1, 2, 8 and 256), with
    EVENT_IDX (so used_event / avail_event and vring_need_event wrap too, SPL-16) and without
    it. Every request completes by interrupt (a lost wake-up hangs the test), results are exact,
    and the engine's indices end equal to the driver's."""
    bench = await BlkBench(dut, name="wrap").start()
    spec = env_list("BLK_WRAP", "1:16:1,2:40:1,8:48:0,8:32:1,256:64:1")
    total = 0
    for item in spec:
        size, count, event_idx = (int(x) for x in item.split(":"))
        await bench.probe(queue_size=size, event_idx=bool(event_idx), layout="indirect" if size < 4 else "linux")
        vq = bench.vq
        start = (65536 - count // 2) & VRING_IDX_MASK
        await bench.preload_indices(vq, start)
        trace = TraceChecker(bench, vq)
        await random_mix(bench, count, min(size, 16), max_sectors=8, weights=(40, 40, 15, 5))
        await bench.blk.wait_all()
        await settle(bench)
        assert vq.last_used_idx == (start + count) & VRING_IDX_MASK, (vq.last_used_idx, start, count)
        assert vq.avail_idx_shadow == vq.last_used_idx
        assert await vq.vring_read_used_idx() == vq.last_used_idx
        assert bench.rtl_indices(vq.index) == (vq.avail_idx_shadow, vq.last_used_idx), bench.rtl_indices(vq.index)
        result = assert_trace(bench, trace, elems=count)
        assert result["msis"] > 0
        bench.log.info("wrap size %d event_idx %d: %d..%d, %d interrupts", size, event_idx, start,
                       vq.last_used_idx, vq.interrupt_count)
        bench.check_clean()
        total += count
    await bench.finish()
    bench.log.info("index wrap: %d requests", total)


# ----------------------------------------------------------------------------------------------
# 6. Notification suppression, interrupt modes
# ----------------------------------------------------------------------------------------------

async def submit_batch(bench, n, max_sectors=2, kick=True):
    """``n`` small random requests (reads, writes, flushes) made available at once, then one
    kick_prepare / notify for all of them unless ``kick`` is False."""
    reqs = [await submit_random(bench, max_sectors=max_sectors, weights=(40, 40, 20, 0)) for _ in range(n)]
    if kick:
        await bench.blk.kick()
    return reqs


class KickCount:
    """Kick decisions of the driver on one queue since creation: ``prepared`` (calls of
    virtqueue_kick_prepare), ``sent`` / ``suppressed`` (what it decided), ``received`` (the
    doorbells the device got)."""

    def __init__(self, bench, vq):
        self.bench, self.vq = bench, vq
        self.sent0, self.suppressed0, self.received0 = vq.kicks_sent, vq.kicks_suppressed, bench.doorbells(vq)

    @property
    def sent(self):
        return self.vq.kicks_sent - self.sent0

    @property
    def suppressed(self):
        return self.vq.kicks_suppressed - self.suppressed0

    @property
    def received(self):
        return self.bench.doorbells(self.vq) - self.received0

    def __repr__(self):
        return f"kicks: {self.sent} sent, {self.suppressed} suppressed, {self.received} received by the device"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_event_idx(dut):
    """With VIRTIO_RING_F_EVENT_IDX, notifications suppressed both ways and counted. Device to
    driver: under a deep queue the device's avail_event suppresses doorbells while it is busy
    (kicks suppressed > 0, the device receives exactly the kicks sent; NOTIFICATION_DATA refused,
    as with it the device asks for every batch) and every request still
    completes (SPL-22). Driver to device: after virtqueue_disable_cb and enable_cb_delayed one
    interrupt comes for 32 completions, after the used idx write that passes used_event
    (SPL-16, SPL-17); a sweep of used_event over old, old+1, inside and just past a batch of 8,
    far ahead and behind gives an interrupt after a used idx write iff vring_need_event(used_event,
    new, old), so exactly one per crossing (SPL-16, SPL-17); the indices start below 65536 so
    that the sweep crosses the 16-bit wrap; avail flags = NO_INTERRUPT is ignored (SPL-15);
    used flags stay 0 (SPL-20). Every MSI-X message on the trace is an interrupt the driver
    took."""
    bench = await BlkBench(dut, name="event_idx").start()
    # without doorbell data: the device polls avail->idx while busy and suppresses doorbells
    # through avail_event meanwhile; with NOTIFICATION_DATA it asks for a doorbell per batch
    # instead (run_notification_data, run_event_idx_ndata)
    blk = await bench.probe(event_idx=True, notification_data=False)
    vq = bench.vq
    assert vq.event
    deep = env_int("BLK_EVENT_COUNT", 120)
    sweep = (0, 1, 3, 7, 8, 12, 1000, -1, -3, 40000)
    # the fourth batch of the sweep starts 4 entries below 65536
    await bench.preload_indices(vq, -(deep + 32 + 3 * 8 + 4))

    # doorbell suppression under a deep queue
    kicks = KickCount(bench, vq)
    trace = TraceChecker(bench, vq)
    await random_mix(bench, deep, 64, max_sectors=4)
    await settle(bench)
    bench.log.info("deep queue: %r, %d interrupts for %d requests", kicks, vq.interrupt_count, blk.completed)
    assert kicks.suppressed > 0, kicks
    assert kicks.received == kicks.sent, kicks
    assert_trace(bench, trace, elems=deep)

    saved = vq.callback
    vq.callback = noop_callback

    # enable_cb_delayed: one interrupt for a batch of 32, when 3/4 of it is used
    await vq.virtqueue_disable_cb()
    base, irq0 = vq.last_used_idx, vq.interrupt_count
    trace = TraceChecker(bench, vq)
    await submit_batch(bench, 32, kick=False)
    assert await vq.virtqueue_enable_cb_delayed(), "requests used before the kick"
    event = (base + 24) & VRING_IDX_MASK
    await bench.blk.kick()
    await bench.wait_used(vq, 32)
    await settle(bench)
    result = assert_trace(bench, trace, elems=32)
    problems = interrupt_problems(result, event)
    assert not problems and result["msis"] == 1, (event, problems)
    assert vq.interrupt_count - irq0 == 1, f"{vq.interrupt_count - irq0} interrupts for 32 completions"
    await blk.poll()

    # sweep used_event around a batch of 8
    sweep_start = vq.last_used_idx
    for d in sweep:
        base, irq0 = vq.last_used_idx, vq.interrupt_count
        event = (base + d) & VRING_IDX_MASK
        await vq.vring_write_used_event(event)
        trace = TraceChecker(bench, vq)
        await submit_batch(bench, 8)
        await bench.wait_used(vq, 8)
        await settle(bench)
        result = assert_trace(bench, trace, elems=8)
        problems = interrupt_problems(result, event)
        assert not problems, f"used_event {event} (used {base} + {d}): {problems}"
        want = 1 if 0 <= d < 8 else 0
        assert result["msis"] == want, (d, result["steps"], result["msi_at"])
        assert vq.interrupt_count - irq0 == want, (d, vq.interrupt_count - irq0)
        await blk.poll()
    assert vq.last_used_idx < sweep_start, f"the sweep from {sweep_start} did not cross the 16-bit wrap"

    # SPL-15: NO_INTERRUPT in avail flags means nothing with EVENT_IDX
    await vq.vring_write_avail_flags(uapi.VRING_AVAIL_F_NO_INTERRUPT)
    for d, want in ((0, 1), (5, 0)):
        base, irq0 = vq.last_used_idx, vq.interrupt_count
        await vq.vring_write_used_event((base + d) & VRING_IDX_MASK)
        await submit_batch(bench, 1)
        await bench.wait_used(vq, 1)
        await settle(bench)
        assert vq.interrupt_count - irq0 == want, f"flags=NO_INTERRUPT, used_event +{d}: {vq.interrupt_count - irq0}"
        await blk.poll()
    await vq.vring_write_avail_flags(0)
    assert await vq.vring_read_used_flags() == 0, "used flags not 0 with EVENT_IDX"
    await vq.virtqueue_enable_cb()
    vq.callback = saved
    await random_mix(bench, 40, 8, max_sectors=4)
    await bench.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_no_event_idx(dut):
    """Without EVENT_IDX, notifications counted both ways. Device to driver: with avail flags 0
    an MSI-X message follows every interrupt decision (a flags read after used idx writes; two
    decisions answered before the first message leaves may share it) and the driver takes each
    (SPL-13), whatever
    garbage sits in used_event (SPL-12); with VRING_AVAIL_F_NO_INTERRUPT (set by
    virtqueue_disable_cb) BLK_NOIRQ_COUNT completions found by polling give no interrupt at all
    (SPL-14). Driver to device: this device never sets VRING_USED_F_NO_NOTIFY (allowed), so no
    kick is suppressed and the device receives exactly one doorbell per kick the driver issues;
    the used flags stay 0 (SPL-19)."""
    bench = await BlkBench(dut, name="no_event_idx").start()
    blk = await bench.probe(event_idx=False)
    vq = bench.vq
    assert not vq.event
    rng = bench.rng
    kicks = KickCount(bench, vq)
    saved = vq.callback
    vq.callback = noop_callback
    total = 0
    trace = TraceChecker(bench, vq)
    for _ in range(env_int("BLK_NOEVENT_BATCHES", 12)):
        n = rng.randint(1, 8)
        await vq.vring_write_used_event(rng.randrange(1 << 16))
        await submit_batch(bench, n)
        await bench.wait_used(vq, n)
        await settle(bench)
        await blk.poll()
        total += n
    result = assert_trace(bench, trace, elems=total)
    # avail flags 0 throughout: every decision (a flags read after used idx writes) interrupts,
    # so a message follows every decision read and every used idx write; two decisions answered
    # before the first one's message left may share it (the MSI-X request bit merges them)
    decisions, msi_at = result["decisions"], result["msi_at"]
    assert decisions and msi_at, result
    late = [k for k, _ in decisions if k > msi_at[-1]]
    assert not late and result["steps"][-1][0] < decisions[-1][0], \
        f"decision reads at {late} (or the last used idx write) with no MSI-X message after them: " \
        f"steps {result['steps']}, decisions {decisions}, messages at {msi_at}"
    # flags = NO_INTERRUPT: none at all
    await vq.virtqueue_disable_cb()
    irq0 = vq.interrupt_count
    trace = TraceChecker(bench, vq)
    blk.use_irq = False
    await random_mix(bench, env_int("BLK_NOIRQ_COUNT", 100), 16, max_sectors=4)
    await settle(bench)
    blk.use_irq = True
    assert vq.interrupt_count == irq0, f"{vq.interrupt_count - irq0} interrupts with NO_INTERRUPT set"
    assert_trace(bench, trace, msis=0)
    assert await vq.virtqueue_enable_cb()
    vq.callback = saved
    # the normal driver
    await random_mix(bench, 60, 16, max_sectors=4)
    await settle(bench)
    bench.log.info("no event_idx: %r", kicks)
    assert kicks.suppressed == 0 and kicks.sent > 0, kicks
    assert kicks.received == kicks.sent, kicks
    assert await vq.vring_read_used_flags() == 0
    await bench.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_interrupt_modes(dut):
    """Requests complete with every interrupt scheme: INTx (MSI-X refused by the platform, the
    driver reads the ISR) with and without EVENT_IDX, and polling without interrupts with and
    without EVENT_IDX (no MSI-X message for the queue, no INTx); MSI-X is the default of the
    other tests (SPL-13, SPL-14, SPL-16). Half of the modes refuse VIRTIO_F_NOTIFICATION_DATA
    (16-bit doorbells, DNOT-01), the others use it (DNOT-02). In each mode the device receives
    exactly the doorbells the driver sends."""
    bench = await BlkBench(dut, name="irq_modes").start()
    count = env_int("BLK_MODE_COUNT", 40)
    total = 0
    for intx, use_irq, event_idx, ndata in ((True, True, True, True), (True, True, False, False),
                                            (False, False, True, False), (False, False, False, True)):
        rises0 = bench.host.intx.rises
        blk = await bench.probe(intx=intx, use_irq=use_irq, event_idx=event_idx, notification_data=ndata)
        vq = bench.vq
        kicks = KickCount(bench, vq)
        trace = TraceChecker(bench, vq)
        await random_mix(bench, count, 8, max_sectors=8)
        await settle(bench)
        result = assert_trace(bench, trace, elems=count)
        assert kicks.received == kicks.sent > 0, kicks
        msis = [e for e in trace.events() if e[2] == "msi"]
        assert not msis, f"MSI-X messages with intx={intx} use_irq={use_irq}: {msis[:4]}"
        if intx:
            assert bench.host.intx.rises > rises0 and bench.vdev.intx_count > 0
            assert vq.interrupt_count > 0
            assert bench.host.intx.level == 0, "INTx still asserted"
        else:
            assert vq.vector == uapi.VIRTIO_MSI_NO_VECTOR and vq.interrupt_count == 0
            assert bench.host.intx.rises == rises0
        bench.log.info("intx=%s use_irq=%s event_idx=%s notification_data=%s: %d requests, %d interrupts, %s", intx,
                       use_irq, event_idx, ndata, count, vq.interrupt_count,
                       {k: result[k] for k in ("idx_writes", "avail_event_writes")})
        bench.check_clean()
        total += count
    await bench.finish()
    bench.log.info("interrupt modes: %d requests", total)


# ----------------------------------------------------------------------------------------------
# 7. Ordering on the trace, poisoned avail slots, spurious doorbells
# ----------------------------------------------------------------------------------------------

@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_order_poison(dut):
    """The trace of every request shows its data writes, then its used element, then the used
    idx that publishes it, then the MSI-X message (SPL-09, SPL-10); every avail slot the driver
    has not published and every free descriptor holds poison until the add that fills it, and
    the device never reads an unpublished avail slot nor uses stale descriptor contents (SPL-23);
    with EVENT_IDX and doorbells that carry the avail idx (NOTIFICATION_DATA), and with neither."""
    bench = await BlkBench(dut, name="order").start()
    total = 0
    for event_idx in (True, False):
        blk = await bench.probe(event_idx=event_idx, layout="random", notification_data=event_idx)
        vq, rng = bench.vq, bench.rng
        trace = TraceChecker(bench, vq)
        await poison_free(vq, rng)
        count = env_int("BLK_ORDER_COUNT", 64)
        n = 0
        while n < count:
            for _ in range(min(rng.randint(1, 12), count - n)):
                if len(blk.inflight) >= 24:
                    break
                try:
                    await submit_random(bench, max_sectors=8)
                except VirtqueueFullError:
                    break
                await poison_free(vq, rng, poison_desc=False)
                n += 1
            await blk.kick()
            before = blk.completed
            while blk.completed == before and blk.inflight:
                await Timer(200, "ns")
            await poison_free(vq, rng)
        await blk.wait_all()
        await settle(bench)
        result = assert_trace(bench, trace, elems=count)
        assert result["msis"] > 0 and result["ring_reads"] > 0
        bench.check_clean()
        total += count
    await bench.finish()
    bench.log.info("order/poison: %d requests", total)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_spurious_kicks(dut):
    """Doorbells with nothing new (SPL-21): BLK_SPURIOUS_KICKS (default 100) while idle, as many
    at random moments while BLK_SPURIOUS_COUNT requests are served at depth 16, and again idle
    at the end: the device receives every one of them, answers an idle doorbell with nothing
    but reads of the available ring's idx (and avail_event / used_event accesses), writes no
    used entry that was not asked for and no duplicate, sends no interrupt for them, and every
    request completes exactly once."""
    bench = await BlkBench(dut, name="spurious").start()
    blk = await bench.probe()
    vq = bench.vq
    nkicks = env_int("BLK_SPURIOUS_KICKS", 100)
    kicks = KickCount(bench, vq)
    trace = TraceChecker(bench, vq)
    quiet_kinds = {"avail_idx_read", "avail_flags_read", "avail_event", "used_event_read"}

    async def idle_kicks():
        used = await vq.vring_read_used_idx()
        idle = TraceChecker(bench, vq)
        for _ in range(nkicks):
            await vq.virtqueue_notify()
        await ClockCycles(bench.dut.clk, 2000)
        assert await vq.vring_read_used_idx() == used, "used idx moved after doorbells with nothing new"
        busy = [e for e in idle.events() if e[2] not in quiet_kinds]
        assert not busy, f"idle doorbells answered with more than avail idx reads: {busy[:6]}"

    await idle_kicks()
    count = env_int("BLK_SPURIOUS_COUNT", 100)
    extra = await random_mix_while(bench, count, 16, vq.virtqueue_notify, (20, 1500), limit=nkicks)
    await idle_kicks()
    await settle(bench)
    result = assert_trace(bench, trace, elems=count)
    assert blk.completed == count and vq.last_used_idx == count & VRING_IDX_MASK
    assert kicks.received == kicks.sent >= 2 * nkicks + extra, (kicks, extra)
    bench.log.info("spurious: %d extra kicks while busy, %d requests, %r, %s", extra, count, kicks,
                   {k: result[k] for k in ("idx_writes", "avail_event_writes", "ring_reads")})
    await bench.finish()


# ----------------------------------------------------------------------------------------------
# 8. Doorbells that carry the avail idx (VIRTIO_F_NOTIFICATION_DATA)
# ----------------------------------------------------------------------------------------------

AVAIL_READS = ("avail_idx_read", "avail_ring_read")


def after_doorbells(bench, trace, vq, since):
    """For each doorbell of ``vq`` sent at or after ``since``: (time, bytes, value, first, used_at)
    with ``first`` the device's first read of the avail idx or ring after it, as (kind, info) or
    None, and ``used_at`` the time of its first used idx write after it (or None)."""
    events = trace.events()
    avail = [(t, kind, info) for _, t, kind, info in events if kind in AVAIL_READS]
    idx_writes = [t for _, t, kind, _ in events if kind == "idx"]
    rows = []
    for t, n, value in bench.doorbell_log(vq):
        if t < since:
            continue
        first = next(((kind, info) for ta, kind, info in avail if ta > t), None)
        used_at = next((tu for tu in idx_writes if tu > t), None)
        rows.append((t, n, value, first, used_at))
    return rows


async def wait_done(bench, what, timeout_us=500):
    """Wait (bounded) until the driver has every request back."""
    try:
        await cocotb.triggers.with_timeout(bench.blk.wait_all(), timeout_us, "us")
    except cocotb.triggers.SimTimeoutError:
        raise AssertionError(f"{what}: {len(bench.blk.inflight)} requests still in flight after "
                             f"{timeout_us} us") from None


async def read_4k(bench, rng):
    """One 4 KiB read, kicked by the driver (virtqueue_kick), scoreboard and request log attached."""
    sector = rng.randrange(0, bench.capacity - 8 + 1)
    t_add = get_sim_time("ns")
    req = await bench.blk.submit_read(sector, 8, kick=True)
    bench.sb.expect(req, "read", sector, 8)
    bench.reqlog.track(req, t_add)
    return req


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_notification_data(dut):
    """VIRTIO_F_NOTIFICATION_DATA at queue depth 1 (DNOT-02, RFB-07), then refused (DNOT-01).
    Negotiated: every doorbell is one 32-bit write of avail idx << 16 | vq index with the idx the
    driver has just published, and the device's first access to the available ring after it is
    the read of the new ring entry, with no avail->idx read before it (the doorbell's idx stands
    in for it); the ring read covers only the published entry (SPL-23). Refused: every doorbell
    is a 16-bit write of the vq index and the device reads avail->idx first, as without the
    feature. Requests complete with the right data either way, and the doorbell-to-used-idx time
    is at least half a host read latency shorter with the feature (one round trip fewer)."""
    bench = await BlkBench(dut, name="notification_data").start()
    rng = bench.rng
    count = env_int("BLK_NDATA_QD1", 12)
    latency = {}
    for ndata in (True, False):
        await bench.probe(notification_data=ndata)
        vq = bench.vq
        assert vq.notification_data == ndata
        trace = TraceChecker(bench, vq)
        since = get_sim_time("ns")
        start = vq.avail_idx_shadow
        for _ in range(count):
            await read_4k(bench, rng)
            await wait_done(bench, "QD1 read")
        await settle(bench)
        assert_trace(bench, trace, elems=count)
        rows = after_doorbells(bench, trace, vq, since)
        assert len(rows) == count, f"{len(rows)} doorbells for {count} requests at QD1"
        for i, (t, n, value, first, used_at) in enumerate(rows):
            what = f"notification_data={ndata}, request {i}, doorbell at {t} ns"
            if ndata:
                want = ((start + i + 1) & VRING_IDX_MASK) << 16 | vq.index
                assert (n, value) == (4, want), f"{what}: {n}-byte doorbell 0x{value:x}, expected 4 bytes 0x{want:x}"
                assert first is not None and first[0] == "avail_ring_read", \
                    f"{what}: the device's first avail access after it was {first}, not the ring entry"
                assert first[1][1] == 1, f"{what}: ring read {first} for one new entry"
            else:
                assert (n, value) == (2, vq.index), f"{what}: {n}-byte doorbell 0x{value:x}"
                assert first is not None and first[0] == "avail_idx_read", \
                    f"{what}: the device's first avail access after it was {first}, not avail->idx"
            assert used_at is not None, f"{what}: no used idx write after it"
        latency[ndata] = sum(used_at - t for t, _, _, _, used_at in rows) / count
        bench.log.info("notification_data=%s: %d QD1 reads, doorbell to used idx %.0f ns on average",
                       ndata, count, latency[ndata])
        bench.check_clean()
    host_latency = bench.host.dma.model.read_latency_ns
    assert latency[True] <= latency[False] - host_latency / 2, \
        f"doorbell to used idx: {latency[True]:.0f} ns with the doorbell's idx, {latency[False]:.0f} ns without " \
        f"(host read latency {host_latency} ns)"
    await bench.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_notification_data_stale(dut):
    """Doorbell values the device must not trust blindly (DNOT-02: repeated values, no
    increase assumed). Every avail slot the driver has not published and every free descriptor
    hold poison (a device that read one would fail the checks), and per round the driver makes
    1-8 requests available and sends hand-made 32-bit doorbells instead of its kick: the right idx
    2-4 times (repeated), an idx that announces only part of the new entries (stale, still ahead
    of the device: used, the rest found by the device's re-read of avail->idx), an idx at or
    behind the device's position (stale: ignored), an idx more than the queue size ahead or
    0x8000 ahead (bogus: ignored). The first avail access after the doorbells is the ring read
    (of no more entries than announced) when the value announces new entries, avail->idx
    otherwise; every request completes; no unpublished ring slot is read (SPL-23). Then the same
    kinds of doorbells while idle (only avail idx accesses, no used entry) and at random moments
    during a random mix at depth 8."""
    bench = await BlkBench(dut, name="ndata_stale").start()
    blk = await bench.probe(layout="random")
    vq, rng = bench.vq, bench.rng
    assert vq.notification_data
    mdev = bench.vdev.mdev
    num = vq.num

    async def doorbell(value):
        await mdev.vp_notify_with_data(vq.index, vq.vring_notification_data(value & VRING_IDX_MASK))

    trace = TraceChecker(bench, vq)
    await poison_free(vq, rng)
    rounds = env_int("BLK_NDATA_ROUNDS", 40)
    kinds = {}
    total = 0
    for r in range(rounds):
        n = rng.randint(1, 8)
        before = vq.avail_idx_shadow
        await submit_batch(bench, n, kick=False)
        await poison_free(vq, rng, poison_desc=False)
        await vq.virtqueue_kick_prepare()      # the kick decision is replaced by the doorbells below
        idx = vq.avail_idx_shadow
        kind = rng.choice(("repeat", "partial", "behind", "ahead", "far") if n > 1 else
                          ("repeat", "behind", "ahead", "far"))
        if kind == "repeat":
            values = [idx] * rng.randint(2, 4)
        elif kind == "partial":
            values = [idx - rng.randint(1, n - 1)]
        elif kind == "behind":
            values = [before - rng.randint(0, 40)]
        elif kind == "ahead":
            values = [idx + num + rng.randint(1, 300)]
        else:
            values = [idx + 0x8000 + rng.randint(0, 255)]
        if rng.random() < 0.3:
            values.append(values[-1])           # the same stale / bogus value again
        since = get_sim_time("ns")
        for v in values:
            await doorbell(v)
        await wait_done(bench, f"round {r} ({kind}, values {values}, avail idx {idx})")
        await settle(bench)
        rows = after_doorbells(bench, trace, vq, since)
        assert len(rows) == len(values)
        first = rows[0][3]
        announced = (values[0] - before) & VRING_IDX_MASK
        what = f"round {r}: {n} new entries {before}..{idx}, {kind} doorbell(s) {values}: first avail access {first}"
        if kind in ("repeat", "partial"):
            assert first is not None and first[0] == "avail_ring_read" and first[1][1] <= announced, what
        else:
            assert first is not None and first[0] == "avail_idx_read", what
        kinds[kind] = kinds.get(kind, 0) + 1
        total += n
        await poison_free(vq, rng)
    assert_trace(bench, trace, elems=total)
    bench.log.info("stale doorbells: %d rounds %s, %d requests", rounds, kinds, total)
    assert all(kinds.get(k) for k in ("repeat", "partial", "behind", "ahead", "far")), kinds

    # idle: nothing new, so nothing but avail idx accesses
    quiet_kinds = {"avail_idx_read", "avail_flags_read", "avail_event", "used_event_read"}
    used = await vq.vring_read_used_idx()
    idle = TraceChecker(bench, vq)
    idx = vq.avail_idx_shadow
    for _ in range(env_int("BLK_NDATA_IDLE", 24)):
        await doorbell(rng.choice((idx, idx, idx - rng.randint(1, 50), idx + num + rng.randint(1, 1000),
                                   idx + 0x8000)))
    await ClockCycles(bench.dut.clk, 2000)
    assert await vq.vring_read_used_idx() == used, "used idx moved after doorbells announcing nothing new"
    busy = [e for e in idle.events() if e[2] not in quiet_kinds]
    assert not busy, f"idle stale/bogus doorbells answered with more than avail idx accesses: {busy[:6]}"

    # busy: such doorbells at random moments while requests flow (the driver's own kicks too)
    trace = TraceChecker(bench, vq)
    async def stale_doorbell():
        now = vq.avail_idx_shadow
        await doorbell(rng.choice((now, now - rng.randint(1, 8), now - rng.randint(9, 300),
                                   now + num + rng.randint(1, 1000), now + 0x8000)))

    count = env_int("BLK_NDATA_COUNT", 100)
    sent = await random_mix_while(bench, count, 8, stale_doorbell, (20, 1500))
    await settle(bench)
    assert_trace(bench, trace, elems=count)
    bench.log.info("stale doorbells while busy: %d extra doorbells, %d requests", sent, count)
    await bench.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_notification_data_mq(dut):
    """Several request queues (VIRTIO_BLK_F_MQ) with doorbells that carry the avail idx (DNOT-02):
    each queue's doorbells are 32-bit writes of its own avail idx and vq index; a random mix runs
    over all queues at once (round robin, one doorbell per queue and refill) while repeated,
    stale and bogus doorbells go to random queues at random moments, so the ring stage often
    starts a queue from its doorbell's idx while another queue waits (it then takes what the
    doorbell announced and leaves the queue to the next). Every request completes with the right
    data, and every queue's trace is clean: no unpublished ring slot read (SPL-23), publication
    order (SPL-09, SPL-10), and its MSI-X messages are exactly the interrupts the driver took for
    it (completions come by MSI-X, one vector per queue)."""
    bench = await BlkBench(dut, name="ndata_mq").start()
    blk = await bench.probe()
    vqs, rng = blk.vqs, bench.rng
    assert len(vqs) == PARAMS["NUM_QUEUES"] > 1, (len(vqs), PARAMS["NUM_QUEUES"])
    assert all(vq.notification_data for vq in vqs)
    mdev = bench.vdev.mdev
    since = get_sim_time("ns")
    traces = [TraceChecker(bench, vq) for vq in vqs]
    async def stray_doorbell():
        vq = rng.choice(vqs)
        now = vq.avail_idx_shadow
        value = rng.choice((now, now, now - rng.randint(1, 8), now + vq.num + rng.randint(1, 1000)))
        await mdev.vp_notify_with_data(vq.index, vq.vring_notification_data(value & VRING_IDX_MASK))

    count = env_int("BLK_NDATA_MQ_COUNT", 160)
    sent = await random_mix_while(bench, count, 8 * len(vqs), stray_doorbell, (100, 3000))
    await settle(bench)
    for vq, trace in zip(vqs, traces):
        result = assert_trace(bench, trace)
        assert result["elems"] > 0 and result["msis"] > 0, f"vq {vq.index}: {result['elems']} used elements, " \
            f"{result['msis']} interrupts"
        log = [(n, value) for t, n, value in bench.doorbell_log(vq) if t >= since]
        assert log and all(n == 4 and value & 0xFFFF == vq.index for n, value in log), \
            f"vq {vq.index}: doorbells {log[:6]}"
    bench.log.info("notification data, %d queues: %d requests, %d extra doorbells, doorbells per queue %s", len(vqs),
                   count, sent, [bench.doorbells(vq) for vq in vqs])
    await bench.finish()
