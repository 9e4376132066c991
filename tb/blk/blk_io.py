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

from blk_tb import (
    ID_STRING,
    PARAMS,
    SECTOR,
    BlkBench,
    TraceChecker,
    assert_trace,
    now_ns,
    pieces,
    poison_free,
    random_mix,
    submit_chain,
    submit_random,
)
from models.virtio import uapi
from models.virtio.ring import VRING_IDX_MASK

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


async def settle(bench, cycles=400):
    """Let the last interrupt (MSI-X write, or INTx and the ISR read) reach the driver."""
    await ClockCycles(bench.dut.clk, cycles)


# ----------------------------------------------------------------------------------------------
# 1. Random mix
# ----------------------------------------------------------------------------------------------

@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_random_mix(dut):
    """A random mix of reads, writes, flushes and GET_IDs of 512 B .. 64 KiB (mostly small) at
    random sectors, with a random reserved field, at queue depths 1 to 64, every result checked
    against the reference RAM disk whatever order the device completes them in (requests in
    flight never overlap a write), the used len of each (IN: data + 1, OUT/FLUSH: 1, GET_ID: 21),
    the data / used element / used idx / MSI-X order on the trace, and the disk memory at the
    end (BLK-19, BLK-20, BLK-21, BLK-22, BLK-24, SPL-09, SPL-10, SPL-11, VQ-05)."""
    bench = await BlkBench(dut, name="mix").start()
    layout = os.environ.get("BLK_MIX_LAYOUT", "linux")
    await bench.probe(layout=layout)
    total = env_int("BLK_MIX_COUNT", 1200)
    trace = TraceChecker(bench, bench.vq)
    for depth, share in ((1, 0.05), (4, 0.15), (16, 0.25), (32, 0.35), (64, 0.20)):
        n = max(4, int(total * share))
        done0 = bench.blk.completed
        sim = await random_mix(bench, n, depth)
        bench.log.info("mix depth %d: %d requests in %d ns: %.0f cycles per request", depth,
                       bench.blk.completed - done0, sim, sim / CLK_NS / max(1, bench.blk.completed - done0))
        bench.check_clean()
    await bench.finish()
    assert_trace(bench, trace, idx_writes=bench.blk.completed)
    sb = bench.sb
    bench.log.info("mix: %d requests (%s), %d data bytes, width %d", bench.blk.completed, sb.counts, sb.bytes,
                   PARAMS["DATA_WIDTH"])
    assert all(sb.counts.get(k, 0) > 0 for k in ("read", "write", "flush")), sb.counts
    assert bench.blk.completed >= total * 0.95


# ----------------------------------------------------------------------------------------------
# 2. Chain layouts
# ----------------------------------------------------------------------------------------------

LAYOUTS = ("separate", "merged", "merged+indirect", "split_header", "split_header+indirect", "split",
           "split+indirect", "indirect", "mixed", "linux")


async def layout_round(bench, tag, sector, ref_sector, ref_count, **how):
    """One framing: read the reference range, write a fresh pattern and read it back, FLUSH,
    GET_ID. Returns what the reads and GET_ID returned."""
    sb, blk = bench.sb, bench.blk
    pattern = bench.rng.randbytes(8 * SECTOR)
    reqs = []
    if "layout" in how:
        kw = dict(layout=how["layout"])
        r = await blk.submit_read(ref_sector, ref_count, **kw)
        sb.expect(r, "read", ref_sector, ref_count)
        w = await blk.submit_write(sector, pattern, **kw)
        sb.expect(w, "write", sector, 8, pattern)
        await blk.wait_req(w)
        rb = await blk.submit_read(sector, 8, **kw)
        sb.expect(rb, "read", sector, 8)
        f = await blk.submit_flush(**kw)
        sb.expect(f, "flush")
        g = await blk.submit_get_id(**kw)
        sb.expect(g, "get_id")
        reqs = [r, w, rb, f, g]
    else:
        r = await chain_request(bench, uapi.VIRTIO_BLK_T_IN, ref_sector, in_data_len=ref_count * SECTOR, **how)
        sb.expect(r, "read", ref_sector, ref_count)
        w = await chain_request(bench, uapi.VIRTIO_BLK_T_OUT, sector, out_data=pattern, **how)
        sb.expect(w, "write", sector, 8, pattern)
        await bench.blk.wait_req(w)
        rb = await chain_request(bench, uapi.VIRTIO_BLK_T_IN, sector, in_data_len=8 * SECTOR, **how)
        sb.expect(rb, "read", sector, 8)
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
    request in one queue at depth 16 (SPL-01, BLK-19, SPL-11)."""
    bench = await BlkBench(dut, name="layouts").start()
    await bench.probe()
    blk, sb, rng = bench.blk, bench.sb, bench.rng
    seg_max = blk.seg_max
    assert seg_max == PARAMS["SEG_MAX"], (seg_max, PARAMS["SEG_MAX"])
    ref_sector, ref_count = 64, 16
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
    results = {}
    sector = 256
    for tag, how in framings:
        bench.log.info("framing %s", tag)
        results[tag] = await layout_round(bench, tag, sector, ref_sector, ref_count, **how)
        sector += 8
    vq = bench.vq
    # SPL-08: table placement; SPL-06: WRITE on the pointer descriptor
    for tag, align, misalign, extra in (("table 8-aligned", 16, 8, 0), ("table across 4 KiB", 4096, 4096 - 32, 0),
                                        ("WRITE on pointer", 16, 0, uapi.VRING_DESC_F_WRITE),
                                        ("WRITE on pointer, prefix", 16, 0, uapi.VRING_DESC_F_WRITE)):
        vq.indirect_align, vq.indirect_misalign, vq.indirect_extra_flags = align, misalign, extra
        how = dict(data_segs=5, header="split", indirect=True, shuffle=True, odd=True)
        if tag.endswith("prefix"):
            how["direct_prefix"] = 2
        bench.log.info("framing %s", tag)
        results[tag] = await layout_round(bench, tag, sector, ref_sector, ref_count, **how)
        results[tag + " linux"] = await layout_round(bench, tag, sector + 8, ref_sector, ref_count, layout="indirect")
        sector += 16
    vq.indirect_align, vq.indirect_misalign, vq.indirect_extra_flags = 16, 0, 0
    want_id = ID_STRING.ljust(uapi.VIRTIO_BLK_ID_BYTES, b"\0")
    for tag, (ref_data, id_data) in results.items():
        assert ref_data == data, f"{tag}: the reference range read differently"
        assert id_data == want_id, f"{tag}: GET_ID {id_data!r}"
    bench.log.info("layouts: %d framings identical", len(results))
    bench.check_clean()

    # all layouts at once in one queue
    count = env_int("BLK_LAYOUT_MIX_COUNT", 200)
    await random_mix(bench, count, 16, layout="random", max_sectors=16)
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
    maximum; size 1 with indirect chains): each runs enough requests to use every slot of its
    rings at least once (rings larger than 256 start near their end, so the slots wrap), with
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
        n = min(max(2 * size + 8, 24), 300) if size <= 256 else env_int("BLK_QSIZE_BIG_COUNT", 120)
        if size > 256:
            await bench.preload_indices(vq, size - n // 2)
        trace = TraceChecker(bench, vq)
        sim = await random_mix(bench, n, min(size, 32), max_sectors=4, weights=(40, 40, 15, 5))
        await bench.blk.wait_all()
        await settle(bench)
        result = assert_trace(bench, trace, idx_writes=n, elems=n)
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
    per-queue indices (last_avail_reg, used_idx_reg) and the driver's are preloaded through the
    simulator to just below 65536 on a fresh queue, then a few hundred requests run across the
    wrap for each size of BLK_WRAP (size:count, default 1, 2, 8 and 256), with EVENT_IDX (so
    used_event / avail_event and vring_need_event wrap too, SPL-16) and without it. Every request
    completes by interrupt (a lost wake-up hangs the test), slots and results are exact."""
    bench = await BlkBench(dut, name="wrap").start()
    spec = env_list("BLK_WRAP", "1:16:1,2:60:1,8:80:0,8:40:1,256:300:1")
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
        engine = bench.engine
        assert int(engine.used_idx_reg[0].value) == vq.last_used_idx
        assert int(engine.last_avail_reg[0].value) == vq.avail_idx_shadow
        result = assert_trace(bench, trace, idx_writes=count, elems=count)
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

async def submit_batch(bench, n, max_sectors=2):
    reqs = [await submit_random(bench, max_sectors=max_sectors, weights=(40, 40, 20, 0)) for _ in range(n)]
    await bench.blk.kick()
    return reqs


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_event_idx(dut):
    """With VIRTIO_RING_F_EVENT_IDX: under a deep queue the device's avail_event suppresses
    doorbells while it is busy (kicks_suppressed > 0) and every request still completes
    (SPL-22); used_event suppresses interrupts: after virtqueue_disable_cb and
    enable_cb_delayed one interrupt comes for 32 completions, exactly when used idx passes
    used_event (SPL-16, SPL-17); a sweep of used_event over old, old+1, within and past a batch
    of 8, far ahead and behind gives an interrupt iff vring_need_event (SPL-16, SPL-17); avail
    flags = NO_INTERRUPT is ignored (SPL-15); used flags stay 0 (SPL-20)."""
    bench = await BlkBench(dut, name="event_idx").start()
    blk = await bench.probe(event_idx=True)
    vq = bench.vq
    assert vq.event

    # doorbell suppression under a deep queue
    trace = TraceChecker(bench, vq)
    await random_mix(bench, env_int("BLK_EVENT_COUNT", 240), 64, max_sectors=4)
    assert vq.kicks_suppressed > 0, (vq.kicks_sent, vq.kicks_suppressed)
    bench.log.info("deep queue: %d kicks sent, %d suppressed, %d interrupts for %d requests", vq.kicks_sent,
                   vq.kicks_suppressed, vq.interrupt_count, blk.completed)
    await settle(bench)
    assert_trace(bench, trace, idx_writes=blk.completed)

    saved = vq.callback
    vq.callback = noop_callback

    # enable_cb_delayed: one interrupt for a batch of 32
    await vq.virtqueue_disable_cb()
    base, irq0 = vq.last_used_idx, vq.interrupt_count
    trace = TraceChecker(bench, vq)
    await submit_batch(bench, 32)
    assert await vq.virtqueue_enable_cb_delayed(), "32 requests completed before enable_cb_delayed"
    event = (base + 24) & VRING_IDX_MASK
    await bench.wait_used(vq, 32)
    await settle(bench)
    result = assert_trace(bench, trace, idx_writes=32)
    assert vq.interrupt_count - irq0 == 1, f"{vq.interrupt_count - irq0} interrupts for 32 completions"
    assert result["msi_after_idx"] == [k == 24 for k in range(32)], (event, result["msi_after_idx"])
    await blk.poll()

    # sweep used_event around a batch of 8 (one used idx step per completion)
    for d in (0, 1, 3, 7, 8, 12, 1000, -1, -3, 40000):
        base, irq0 = vq.last_used_idx, vq.interrupt_count
        await vq.vring_write_used_event((base + d) & VRING_IDX_MASK)
        trace = TraceChecker(bench, vq)
        await submit_batch(bench, 8)
        await bench.wait_used(vq, 8)
        await settle(bench)
        result = assert_trace(bench, trace, idx_writes=8)
        want = [k == d for k in range(8)]
        assert result["msi_after_idx"] == want, f"used_event = used + {d}: interrupts after {result['msi_after_idx']}"
        assert vq.interrupt_count - irq0 == sum(want), (d, vq.interrupt_count - irq0)
        await blk.poll()

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
    assert int.from_bytes(await vq.used.read(0, 2), "little") == 0, "used flags not 0 with EVENT_IDX"
    await vq.virtqueue_enable_cb()
    vq.callback = saved
    await random_mix(bench, 40, 8, max_sectors=4)
    await bench.finish()
    bench.log.info("event_idx: %d requests", blk.completed)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_no_event_idx(dut):
    """Without EVENT_IDX: with avail flags 0 an interrupt follows every used idx write (SPL-13),
    whatever garbage sits in used_event (SPL-12); with VRING_AVAIL_F_NO_INTERRUPT (set by
    virtqueue_disable_cb) 150 completions found by polling give no interrupt at all (SPL-14);
    the device never asks for doorbell suppression, so no kick is suppressed, and the used flags
    stay 0 (SPL-19)."""
    bench = await BlkBench(dut, name="no_event_idx").start()
    blk = await bench.probe(event_idx=False)
    vq = bench.vq
    assert not vq.event
    rng = bench.rng
    saved = vq.callback
    vq.callback = noop_callback
    total = 0
    trace = TraceChecker(bench, vq)
    for _ in range(env_int("BLK_NOEVENT_BATCHES", 12)):
        n = rng.randint(1, 8)
        await vq.vring_write_used_event(rng.randrange(1 << 16))
        irq0 = vq.interrupt_count
        await submit_batch(bench, n)
        await bench.wait_used(vq, n)
        await settle(bench)
        assert vq.interrupt_count - irq0 == n, f"{vq.interrupt_count - irq0} interrupts for {n} used idx writes"
        await blk.poll()
        total += n
    result = assert_trace(bench, trace, idx_writes=total, msis=total)
    assert all(result["msi_after_idx"]), result["msi_after_idx"]
    # flags = NO_INTERRUPT: none at all
    await vq.virtqueue_disable_cb()
    irq0 = vq.interrupt_count
    trace = TraceChecker(bench, vq)
    blk.use_irq = False
    await random_mix(bench, env_int("BLK_NOIRQ_COUNT", 150), 16, max_sectors=4)
    await settle(bench)
    blk.use_irq = True
    assert vq.interrupt_count == irq0, f"{vq.interrupt_count - irq0} interrupts with NO_INTERRUPT set"
    assert_trace(bench, trace, msis=0)
    assert await vq.virtqueue_enable_cb()
    vq.callback = saved
    # the normal driver: no doorbell is ever suppressed
    await random_mix(bench, 60, 16, max_sectors=4)
    assert vq.kicks_suppressed == 0, vq.kicks_suppressed
    assert int.from_bytes(await vq.used.read(0, 2), "little") == 0
    await bench.finish()
    bench.log.info("no event_idx: %d requests", blk.completed)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_interrupt_modes(dut):
    """Requests complete with every interrupt scheme: INTx (MSI-X refused by the platform, the
    driver reads the ISR) with and without EVENT_IDX, and polling without interrupts with and
    without EVENT_IDX (no MSI-X message for the queue, no INTx); MSI-X is the default of the
    other tests (SPL-13, SPL-14, SPL-16)."""
    bench = await BlkBench(dut, name="irq_modes").start()
    count = env_int("BLK_MODE_COUNT", 60)
    total = 0
    for intx, use_irq, event_idx in ((True, True, True), (True, True, False), (False, False, True),
                                     (False, False, False)):
        rises0 = bench.host.intx.rises
        blk = await bench.probe(intx=intx, use_irq=use_irq, event_idx=event_idx)
        vq = bench.vq
        trace = TraceChecker(bench, vq)
        await random_mix(bench, count, 8, max_sectors=8)
        await settle(bench)
        result = assert_trace(bench, trace, idx_writes=count)
        msis = [e for e in trace.events() if e[2] == "msi"]
        assert not msis, f"MSI-X messages with intx={intx} use_irq={use_irq}: {msis[:4]}"
        if intx:
            assert bench.host.intx.rises > rises0 and bench.vdev.intx_count > 0
            assert vq.interrupt_count > 0
            assert bench.host.intx.level == 0, "INTx still asserted"
        else:
            assert vq.vector == uapi.VIRTIO_MSI_NO_VECTOR and vq.interrupt_count == 0
            assert bench.host.intx.rises == rises0
        bench.log.info("intx=%s use_irq=%s event_idx=%s: %d requests, %d interrupts, %s", intx, use_irq, event_idx,
                       count, vq.interrupt_count, {k: result[k] for k in ("idx_writes", "avail_event_writes")})
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
    with and without EVENT_IDX."""
    bench = await BlkBench(dut, name="order").start()
    total = 0
    for event_idx in (True, False):
        blk = await bench.probe(event_idx=event_idx, layout="random")
        vq, rng = bench.vq, bench.rng
        trace = TraceChecker(bench, vq)
        await poison_free(vq, rng)
        count = env_int("BLK_ORDER_COUNT", 150)
        n = 0
        while n < count:
            for _ in range(min(rng.randint(1, 12), count - n)):
                if len(blk.inflight) >= 24:
                    break
                await submit_random(bench, max_sectors=8)
                await poison_free(vq, rng, poison_desc=False)
                n += 1
            await blk.kick()
            before = blk.completed
            while blk.completed == before and blk.inflight:
                await Timer(200, "ns")
            await poison_free(vq, rng)
        await blk.wait_all()
        await settle(bench)
        result = assert_trace(bench, trace, idx_writes=count, elems=count)
        assert result["msis"] > 0 and result["ring_reads"] > 0
        bench.check_clean()
        total += count
    await bench.finish()
    bench.log.info("order/poison: %d requests", total)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_spurious_kicks(dut):
    """Doorbells with nothing new (SPL-21): 100 while idle, 100 while 150 requests are being
    served at depth 16, 100 idle again: no used entry appears that was not asked for, no
    duplicate, every request completes once, nothing but avail reads (and avail_event writes)
    answers an idle kick."""
    bench = await BlkBench(dut, name="spurious").start()
    blk = await bench.probe()
    vq, rng = bench.vq, bench.rng
    trace = TraceChecker(bench, vq)

    async def idle_kicks(n=100):
        used = await vq.vring_read_used_idx()
        for _ in range(n):
            await vq.virtqueue_notify()
        await ClockCycles(bench.dut.clk, 2000)
        assert await vq.vring_read_used_idx() == used, "used idx moved after doorbells with nothing new"

    await idle_kicks()
    stop = False
    extra = [0]

    async def kicker():
        while not stop and extra[0] < 100:
            await vq.virtqueue_notify()
            extra[0] += 1
            await Timer(rng.randint(20, 1500), "ns")

    task = cocotb.start_soon(kicker())
    count = env_int("BLK_SPURIOUS_COUNT", 150)
    await random_mix(bench, count, 16, max_sectors=8)
    stop = True
    await task
    await idle_kicks()
    await settle(bench)
    result = assert_trace(bench, trace, idx_writes=count, elems=count)
    writes = [e for e in trace.events() if e[2] in ("elem", "idx", "data")]
    assert blk.completed == count and vq.last_used_idx == count & VRING_IDX_MASK
    bench.log.info("spurious: %d extra kicks while busy, %d requests, %d trace writes, %s", extra[0], count,
                   len(writes), {k: result[k] for k in ("avail_event_writes", "ring_reads")})
    await bench.finish()
