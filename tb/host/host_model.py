# SPDX-License-Identifier: Apache-2.0
"""The host read model and the direct DMA path with the RTL (tb/host/test_host.py).

* ``direct_requests``: requests handed straight to the direct path (not from the RTL) are
  answered exactly as rc.py answers them (UR, CA, nothing across 4 KiB, data), writes honour
  byte enables, a handler that waits keeps later requests behind it, and the DMA checker sees
  every request.
* ``read_timing``: device reads of virtio-blk traffic: the first completion of every read is
  queued exactly ``read_latency_ns`` after the MRd left tx_req and reaches the RTL in the next
  cycle when the stream is free, reads overlap, completions follow the PCIe splitting rules
  (protocol checker), for RCB 64 and 128; with interleaving on, completions of different tags
  mix; with a link rate they are spaced accordingly. Data always arrives intact.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import Region
from cocotbext.pcie.core.tlp import Tlp, TlpType, CplStatus
from cocotbext.pcie.core.utils import PcieId

from models.pcie import attach_root_complex
from models.pcie.checker import TlpChecker
from models.pcie.dma_checker import DmaChecker
from models.virtio import uapi
from models.virtio.bringup import virtio_blk_bring_up

SECTOR = 512


def _mrd(addr, nbytes, tag, requester=PcieId(0, 1, 0)):
    tlp = Tlp()
    tlp.fmt_type = TlpType.MEM_READ_64 if addr >= 1 << 32 else TlpType.MEM_READ
    tlp.requester_id = requester
    tlp.tag = tag
    tlp.set_addr_be(addr, nbytes)
    return tlp


def _mwr(addr, data, requester=PcieId(0, 1, 0)):
    tlp = Tlp()
    tlp.fmt_type = TlpType.MEM_WRITE_64 if addr >= 1 << 32 else TlpType.MEM_WRITE
    tlp.requester_id = requester
    tlp.set_addr_be_data(addr, data)
    return tlp


class _Broken(Region):
    """A region whose reads fail (the RC answers CA)."""

    async def _read(self, address, length, **kwargs):
        raise OSError("broken region")

    async def _write(self, address, data, **kwargs):
        raise OSError("broken region")


class _Slow(Region):
    """A region that takes 100 ns to read (its handler waits on a timer)."""

    def __init__(self, size):
        super().__init__(size)
        self.mem = bytearray(size)

    async def _read(self, address, length, **kwargs):
        await Timer(100, "ns")
        return bytes(self.mem[address:address + length])

    async def _write(self, address, data, **kwargs):
        self.mem[address:address + len(data)] = data


def _shape(cpls):
    return [(c.fmt_type, c.status, c.completer_id, c.tag, c.byte_count, c.lower_address, bytes(c.get_data()))
            for c in cpls]


@cocotb.test()
async def direct_requests(dut):
    """UR / CA / 4 KiB crossing / data exactly as rc.py; byte enables; order behind a
    waiting handler; the DMA checker sees all of it."""
    host = await attach_root_complex(dut, read_latency_ns=40)
    rc = host.rc
    model = host.read_model
    got = []
    model.deliver = lambda cpl, on_sent: (got.append((get_sim_time("ns"), cpl)), on_sent())

    checker = DmaChecker(raise_on_error=False)
    checker.install(rc)

    # what rc.py answers for a request (its completions, captured instead of sent)
    async def rc_answer(tlp):
        sent = []
        orig_send = rc.send

        async def capture(cpl):
            sent.append(cpl)
        rc.send = capture
        try:
            await rc.handle_mem_read_tlp(tlp)
        finally:
            rc.send = orig_send
        return sent

    async def fast_answer(tlp):
        got.clear()
        host.dma.submit(tlp)
        await Timer(200, "ns")
        return [cpl for _, cpl in got]

    base, mem = rc.alloc_region(0x4000)
    mem[:] = bytes(random.Random(7).randrange(256) for _ in range(0x4000))
    broken = _Broken(0x1000)
    rc.mem_address_space.register_region(broken, 0x6000_0000_0000)
    for addr, n, what in ((0x1_0000_0000, 64, "unmapped: UR"), (0x7000_0000, 16, "pool hole: CA"),
                          (0x6000_0000_0000, 8, "failing region: CA"), (base + 0xFC0, 128, "4 KiB crossing")):
        want = await rc_answer(_mrd(addr, n, 3))
        have = await fast_answer(_mrd(addr, n, 3))
        assert _shape(have) == _shape(want), (what, have, want)
        if what.endswith("UR"):
            assert [c.status for c in have] == [CplStatus.UR]
        elif what.endswith("CA"):
            assert [c.status for c in have] == [CplStatus.CA]
        else:
            assert have == []
    # data: the same bytes, byte counts and completer as rc.py (split differently)
    for addr, n in ((base + 0x13, 200), (base + 0x1000, 512), (base + 0x2FFD, 3)):
        want = await rc_answer(_mrd(addr, n, 9))
        have = await fast_answer(_mrd(addr, n, 9))
        assert b"".join(c.get_data() for c in have) == b"".join(c.get_data() for c in want)
        assert have[0].byte_count == want[0].byte_count and have[0].lower_address == want[0].lower_address
        assert all(c.completer_id == PcieId(0, 0, 0) and c.status == CplStatus.SC for c in have)
    # latency of the direct path: submitted now, delivered 40 ns later
    got.clear()
    t0 = get_sim_time("ns")
    host.dma.submit(_mrd(base, 64, 4))
    await Timer(100, "ns")
    assert got and round((got[0][0] - t0) * 1000) == 40_000, got

    # writes: byte enables as rc.handle_mem_write_tlp (one partial dword at each end)
    mem[0x200:0x210] = bytes(16)
    host.dma.submit(_mwr(base + 0x201, b"\x11" * 13))
    assert bytes(mem[0x200:0x210]) == b"\x00" + b"\x11" * 13 + b"\x00\x00"

    # a handler that waits (slow region): later requests stay behind it, in order
    slow = _Slow(0x1000)
    rc.mem_address_space.register_region(slow, 0x6100_0000_0000)
    slow.mem[0:8] = b"SLOWSLOW"
    mem[0x300:0x304] = bytes(4)
    got.clear()
    seq = checker.seq
    host.dma.submit(_mrd(0x6100_0000_0000, 8, 10))
    host.dma.submit(_mwr(base + 0x300, b"\x22" * 4))
    host.dma.submit(_mrd(base + 0x300, 4, 11))
    assert bytes(mem[0x300:0x304]) == bytes(4), "a write overtook a waiting read"
    await Timer(300, "ns")
    assert [c.tag for _, c in got] == [10, 11], got
    assert bytes(got[0][1].get_data()) == b"SLOWSLOW"
    assert bytes(got[1][1].get_data()) == b"\x22" * 4
    assert [(a.op, a.addr) for a in checker.accesses_since(seq)] == [
        ("R", 0x6100_0000_0000), ("W", base + 0x300), ("R", base + 0x300)]
    assert host.dma.idle()


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def read_timing(dut):
    """Latency, overlap, splitting (RCB 64 and 128), interleaving and link rate with the RTL."""
    latency = 1000
    host, vdev, blk, checker = await virtio_blk_bring_up(dut, layout="split", rng=5)
    model = host.read_model
    assert host.fast_dma and model.read_latency_ns == latency
    period = host.clock_period_ns
    rng = random.Random(11)

    # every device read with its completions: [mrd, start ns, [(queued ns, cpl)]]
    outstanding = {}
    done = []
    accepted = {}       # id(cpl) -> time (ns) its last beat was accepted by the RTL
    deliveries = []
    orig_submit = host.dma.submit
    orig_deliver = model.deliver

    def spy_submit(tlp):
        orig_submit(tlp)
        if tlp.fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64):
            outstanding[tlp.tag] = [tlp, tlp.fast_dma_start / 1000, []]

    def spy_deliver(cpl, on_sent):
        now = get_sim_time("ns")
        rec = outstanding[cpl.tag]
        rec[2].append((now, cpl))
        deliveries.append((now, cpl))
        if cpl.byte_count <= cpl.length * 4 - (cpl.lower_address & 3):
            del outstanding[cpl.tag]
            done.append(rec)

        def sent():
            accepted[id(cpl)] = get_sim_time("ns")
            on_sent()
        orig_deliver(cpl, sent)
    host.dma.submit = spy_submit
    model.deliver = spy_deliver

    async def writes(n):
        """n blk writes of 4 KiB (the device reads them from host memory); returns the reads."""
        while outstanding or not host.dma.idle():
            await ClockCycles(dut.clk, 1)
        done.clear()
        deliveries.clear()
        for _ in range(n):
            data = rng.randbytes(4096)
            sector = rng.randrange(0, blk.capacity - 8)
            status, _ = await blk.write(sector, data)
            assert status == uapi.VIRTIO_BLK_S_OK
            assert bytes(host.disk.read(sector * SECTOR, 4096)) == data
        while outstanding or not host.dma.idle():
            await ClockCycles(dut.clk, 1)
        return list(done)

    def check_rules(reads, rcb, size):
        """Protocol checker + explicit boundaries for each read's completions."""
        mps = host._completion_mps()
        for mrd, _, cpls in reads:
            chk = TlpChecker()
            chk.max_payload_size = mps
            chk.host_request(mrd)
            pos = mrd.address & ~3
            for k, (_, cpl) in enumerate(cpls):
                chk.check_completion(cpl)
                start, end = pos, pos + cpl.length * 4
                pos = end
                assert cpl.length * 4 <= mps
                if k == len(cpls) - 1:
                    break
                if k == 0 and start % rcb:
                    assert end == (start | (rcb - 1)) + 1, (hex(start), hex(end), rcb)
                else:
                    assert start % rcb == 0 and end - start == size, (k, hex(start), hex(end), size)
            assert not chk.outstanding and not chk.errors, chk.errors

    def check_latency(reads, lat):
        for mrd, t0, cpls in reads:
            assert round((cpls[0][0] - t0) * 1000) == lat * 1000, (mrd, t0, cpls[0][0])

    # ---- defaults: latency, overlap, RCB 64 splitting at MPS
    reads = await writes(6)
    assert len(reads) >= 6 * 8
    check_latency(reads, latency)
    check_rules(reads, 64, host._completion_mps())
    assert any((mrd.address + mrd.get_first_be_offset()) % 64 and len(c) > 1 for mrd, _, c in reads), \
        "no multi-completion read started off an RCB boundary"
    # overlap: many reads outstanding at once (each has its own latency)
    spans = [(t0, cpls[-1][0]) for _, t0, cpls in reads]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most >= 4, most
    # a completion queued while rx_cpl is free reaches the RTL at once (next clock edge)
    busy_until = 0
    free_checked = 0
    for t, cpl in deliveries:
        beats = max(1, -(-cpl.length * 32 // host.data_width)) if cpl.fmt_type == TlpType.CPL_DATA else 1
        if t >= busy_until:
            assert accepted[id(cpl)] - t <= period * (beats + 1), (t, accepted[id(cpl)], beats)
            free_checked += 1
        busy_until = max(busy_until, accepted[id(cpl)])
    assert free_checked >= 6
    dut._log.info("defaults: %d reads, up to %d outstanding at once, %d completions, %d queued on a free "
                  "stream", len(reads), most, len(deliveries), free_checked)

    # ---- RCB 128, 128-byte completions, lower latency
    model.rcb = 128
    model.completion_size = 128
    model.read_latency_ns = 300
    reads = await writes(4)
    check_latency(reads, 300)
    check_rules(reads, 128, 128)

    # ---- interleaving: completions of different tags mix, data still intact
    model.rcb = 64
    model.completion_size = 64
    model.interleave = True
    reads = await writes(4)
    check_rules(reads, 64, 64)
    tags = [cpl.tag for _, cpl in deliveries]
    positions = {}
    for k, tag in enumerate(tags):
        positions.setdefault(tag, []).append(k)
    mixed = sum(1 for idx in positions.values() if idx[-1] - idx[0] + 1 > len(idx))
    assert mixed >= 4, tags[:60]
    dut._log.info("interleaving: %d reads, %d completions, %d reads whose completions were interleaved "
                  "with another tag's", len(reads), len(tags), mixed)

    # ---- link rate 1 byte/ns: completions spaced by their size
    model.interleave = False
    model.completion_size = None
    model.link_bytes_per_ns = 1.0
    reads = await writes(2)
    check_rules(reads, 64, host._completion_mps())
    for (t1, c1), (t2, c2) in zip(deliveries, deliveries[1:]):
        assert t2 - t1 >= 12 + c1.length * 4, (t1, t2, c1.length)
    model.link_bytes_per_ns = None
    model.read_latency_ns = latency

    await ClockCycles(dut.clk, 10)
    assert not checker.errors, checker.errors[:3]
    assert not host.checker.errors
