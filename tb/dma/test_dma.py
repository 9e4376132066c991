# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the DMA layer: virtio_dma_rd, virtio_dma_wr and virtio_tx_arb (tb/dma).

The DUT is ``dma_tb_top.v`` next to this file: both engines share ``tx_req`` through the
arbiter, whose MSI-X input the bench drives. A Python host sits on the TLP port:

* host memory (sparse pages, a pseudo-random pattern until written);
* every TLP on ``tx_req`` goes through ``models.pcie.checker.TlpChecker`` (MRd/MWr only,
  3-DW/4-DW rule, byte enables, MPS, MRRS, 4 KiB, requester id, unique read tags, nothing
  while Bus Master Enable is off), then MWr land in memory and MRd are answered;
* completions are split at the 64-byte read completion boundary into pieces of random size
  (at most the host's Max_Payload_Size), queued after a configurable latency and interleaved
  across tags; a read may be answered with UR/CA (possibly after some data), poisoned in one
  piece, malformed, or never answered (timeout; sometimes answered late).

The request ports and byte streams are driven by one per-cycle bus-functional model
(``DmaBfm``) that also checks the response stream's framing (packed beats, tdest constant,
tuser only on tlast) and counts ``rd_error`` / ``wr_done`` pulses; idle cycles and
backpressure can be inserted on every stream.

This file is both the pytest entry point (``test_*``) and the cocotb test module (``run_*``).
"""

import collections
import itertools
import os
import random
from pathlib import Path

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from models.pcie.checker import PCI_COMMAND_MASTER, TlpChecker, request_byte_count
from models.pcie.tlp_stream import TlpStreamSink, TlpStreamSource, beats_to_tlp, idle_pattern
from models.runner import run

RCB = 64
PAGE = 4096
MASK64 = (1 << 64) - 1
BUS, DEVICE = 0x5A, 3
REQUESTER_ID = (BUS << 8) | (DEVICE << 3)
MSG_BASE = 0xFEE0_0000           # where the MSI-X stand-in writes (never a DMA target)


def _param(name, default):
    return int(os.environ.get(f"PARAM_{name}", default))


def _scaled(n):
    """Length of a random test, scaled by DMA_TB_SCALE (the corner configurations run shorter)."""
    return max(1, int(n * float(os.environ.get("DMA_TB_SCALE", "1"))))


def _first_be_offset(be):
    for k in range(4):
        if be & (1 << k):
            return k
    return 0


# --------------------------------------------------------------------------- host model


class HostMemory:
    """Sparse host memory: a page reads as a slice of a random pattern until written."""

    def __init__(self, seed):
        self.pattern = random.Random(seed).randbytes(65536)
        self.pages = {}

    def page(self, p):
        if p in self.pages:
            return self.pages[p]
        off = (((p * 0x9E3779B97F4A7C15) & MASK64) >> 40) % (65536 - PAGE)
        return self.pattern[off:off + PAGE]

    def read(self, addr, n):
        out = bytearray()
        while n:
            p, o = divmod(addr, PAGE)
            k = min(n, PAGE - o)
            out += self.page(p)[o:o + k]
            addr += k
            n -= k
        return bytes(out)

    def write(self, addr, data):
        data = memoryview(bytes(data))
        while data:
            p, o = divmod(addr, PAGE)
            k = min(len(data), PAGE - o)
            if p not in self.pages:
                self.pages[p] = bytearray(self.page(p))
            self.pages[p][o:o + k] = data[:k]
            addr += k
            data = data[k:]


class CplSource(TlpStreamSource):
    """TlpStreamSource with a non-blocking send (used from callbacks)."""

    def send_nowait(self, tlp, on_sent=None):
        self.idle_event.clear()
        self.queue.put_nowait((tlp, on_sent))


class RdReq:
    __slots__ = ("index", "addr", "len", "dest", "last", "data", "zero", "err", "no_mrd")

    def __init__(self, index, addr, length, dest, last, no_mrd):
        self.index = index
        self.addr = addr
        self.len = length
        self.dest = dest
        self.last = last
        self.data = bytearray(length)   # host memory as each MRd found it
        self.zero = []            # (offset, length) of failed TLPs
        self.err = no_mrd
        self.no_mrd = no_mrd      # submitted with bus mastering off: no MRd, all zeros


class WrReq:
    __slots__ = ("addr", "data", "imm", "sent")

    def __init__(self, addr, data, imm, sent):
        self.addr = addr
        self.data = data
        self.imm = imm
        self.sent = sent          # expected in host memory (not dropped)


class DmaTB:
    """Clock, reset, host model, stream models and the scoreboards."""

    FATES = ("ok", "ur", "ca", "poison", "bad", "drop")

    def __init__(self, dut, seed=0):
        self.dut = dut
        self.rng = random.Random(cocotb.RANDOM_SEED + seed)
        self.log = dut._log
        self.width = _param("DATA_WIDTH", 64)
        self.beat_bytes = self.width // 8
        self.num_tags = _param("NUM_TAGS", 16)
        self.max_read_tlp = _param("MAX_READ_TLP", 512)
        self.cpl_timeout = _param("CPL_TIMEOUT", 65536)
        self.gens = 256 // self.num_tags    # tag values per buffer slot

        Clock(dut.clk, 4, unit="ns", impl="gpi").start()

        self.mem = HostMemory(seed)
        self.exp_mem = HostMemory(seed)
        self.checker = TlpChecker()
        self.checker.bus_dev = (BUS, DEVICE)
        self.checker.command = PCI_COMMAND_MASTER

        # host behaviour
        self.latency = (0, 0)               # cycles from MRd to its first completion
        self.fate_weights = {"ok": 1}
        self.late_answer = 0.5              # chance that a dropped read is answered late
        self.late_delay = 2 * self.cpl_timeout
        self.given_up = set()               # tags the host never answers (and has forgotten)
        self.host_mps = 256                 # largest completion the host sends
        self.interleave = True              # mix completions of different tags (else request order)

        # scoreboards
        self.rd_reqs = []
        self.rd_issue = collections.deque()   # [request, next address, bytes left] awaiting MRds
        self.rd_open = {}                     # dest -> requests of its open packet
        self.rd_packets = collections.deque() # expected packets, in the order they end
        self.rd_packets_seen = 0
        self.rd_errors_expected = 0
        self.wr_reqs = []
        self.wr_done_seen = 0
        self.wr_done_pending = collections.deque()   # (request, tx_req beat count by which it must be in memory)
        self.msgs_sent = []
        self.msgs_seen = []
        self.tx_log = []                      # (cycle, kind, tlp) of every TLP on tx_req
        self.mrd_sizes = []
        self.mwr_sizes = []

        self.cpl_sched = []                   # [due cycle, deque of completion TLPs]
        self.rx_cpl = CplSource(dut, "rx_cpl_tlp", dut.clk, self.width)
        self.tx_msg = TlpStreamSource(dut, "tx_msg_tlp", dut.clk, self.width)
        self.tx_req = TlpStreamSink(dut, "tx_req_tlp", dut.clk, self.width, self._on_tx_tlp, self._fail)
        self.bfm = DmaBfm(self)

        dut.requester_id.value = REQUESTER_ID
        dut.bus_master_enable.value = 1
        dut.max_read_request_size.value = 2
        dut.max_payload_size.value = 1
        self.checker.max_read_request_size = 512
        self.checker.max_payload_size = 256
        dut.flush.value = 0
        dut.rst.value = 1
        self.bus_master = True
        self.flushing = False

    def set_flush(self, on):
        self.flushing = on
        self.dut.flush.value = int(on)

    def _fail(self, msg):
        raise AssertionError(msg)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    # ---- configuration
    def set_bus_master(self, on):
        self.bus_master = on
        self.dut.bus_master_enable.value = int(on)
        self.checker.command = PCI_COMMAND_MASTER if on else 0

    def set_sizes(self, mps_code, mrrs_code):
        self.dut.max_payload_size.value = mps_code
        self.dut.max_read_request_size.value = mrrs_code
        self.checker.max_payload_size = 128 << mps_code
        self.checker.max_read_request_size = 128 << mrrs_code
        self.host_mps = 128 << mps_code

    def set_pauses(self, name, seed=1):
        """The same pause pattern (different phases) on every stream, or none."""
        self.rx_cpl.set_pause_generator(idle_pattern(name, seed))
        self.tx_req.set_pause_generator(idle_pattern(name, seed + 1))
        self.tx_msg.set_pause_generator(idle_pattern(name, seed + 2))
        self.bfm.set_pauses(name, seed + 3)

    # ---- reads
    def read(self, addr, length, dest=0, last=True):
        on = self.bus_master
        req = RdReq(len(self.rd_reqs), addr, length, dest, last, not on)
        self.rd_reqs.append(req)
        if on:
            self.rd_issue.append([req, addr, length])
        else:
            self.rd_errors_expected += 1
        self.rd_open.setdefault(dest, []).append(req)
        if last:
            self.rd_packets.append(self.rd_open.pop(dest))
        self.bfm.rd_req_q.append((addr, length, dest, int(last)))
        return req

    def close_packets(self):
        """End every open response packet with a short last read."""
        for dest in list(self.rd_open):
            self.read(0x7000 + 16 * dest, 5, dest, last=True)

    def rd_packet_expected(self, packet):
        data = bytearray()
        for req in packet:
            chunk = bytearray(req.data)
            for off, n in req.zero:
                chunk[off:off + n] = bytes(n)
            data += chunk
        return bytes(data), packet[0].dest, any(r.err for r in packet)

    def on_rd_packet(self, data, dest, user):
        assert self.rd_packets, f"unexpected response packet of {len(data)} bytes"
        packet = self.rd_packets.popleft()
        exp, exp_dest, exp_err = self.rd_packet_expected(packet)
        first = packet[0]
        what = f"response packet {self.rd_packets_seen} (requests {first.index}..{packet[-1].index}, first at 0x{first.addr:x})"
        if len(data) != len(exp):
            raise AssertionError(f"{what}: {len(data)} bytes, expected {len(exp)}")
        if data != exp:
            bad = next(i for i in range(len(exp)) if data[i] != exp[i])
            raise AssertionError(f"{what}: first difference at byte {bad}: "
                                 f"got {data[bad:bad + 16].hex()} expected {exp[bad:bad + 16].hex()}")
        assert dest == exp_dest, f"{what}: tdest {dest}, expected {exp_dest}"
        assert user == exp_err, f"{what}: tuser {user}, expected {exp_err}"
        self.rd_packets_seen += 1

    # ---- writes
    def write(self, addr, data, imm=False):
        on = self.bus_master and not self.flushing
        req = WrReq(addr, bytes(data), imm, on)
        self.wr_reqs.append(req)
        if on:
            self.exp_mem.write(addr, data)
        self.bfm.wr_req_q.append((addr, len(data), int(imm), int.from_bytes(data, "little") if imm else 0))
        return req

    def write_unchecked(self, addr, length):
        """A streamed write whose effect the test checks by hand (flush cases)."""
        self.wr_reqs.append(WrReq(addr, b"", False, False))
        self.bfm.wr_req_q.append((addr, length, 0, 0))

    def stream(self, data):
        """Queue a packet on the write data stream."""
        self.bfm.wr_data_q.append(bytes(data))

    def on_wr_done(self):
        """wr_done means the arbiter took the request's last beat: that beat may still wait in
        the arbiter's output register, so the data must be in host memory at the latest once
        tx_req has moved one more beat."""
        k = self.wr_done_seen
        assert k < len(self.wr_reqs), "wr_done pulse without a request"
        if self.wr_reqs[k].sent:
            self.wr_done_pending.append((k, self.tx_req.beats + 1))
        self.wr_done_seen += 1

    def check_wr_done(self, final=False):
        while self.wr_done_pending:
            k, beats = self.wr_done_pending[0]
            req = self.wr_reqs[k]
            if self.mem.read(req.addr, len(req.data)) != req.data:
                if self.tx_req.beats <= beats and not final:
                    return
                raise AssertionError(f"wr_done for request {k} (0x{req.addr:x}, {len(req.data)} bytes) "
                                     f"but its data is not in host memory")
            self.wr_done_pending.popleft()

    def msg(self, index):
        """Send one MSI-X-like message through the arbiter's third input."""
        tlp = Tlp()
        tlp.fmt_type = TlpType.MEM_WRITE
        tlp.requester_id = PcieId(BUS, DEVICE, 0)
        tlp.address = MSG_BASE + 4 * (index % 1024)
        tlp.first_be = 0xF
        tlp.length = 1
        tlp.data = bytearray(index.to_bytes(4, "little"))
        self.msgs_sent.append((tlp.address, bytes(tlp.data)))
        cocotb.start_soon(self.tx_msg.send(tlp))

    # ---- the host side of tx_req
    def _on_tx_tlp(self, hdr, payload):
        tlp = beats_to_tlp(hdr, payload)
        if tlp.tag in self.given_up and tlp.fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64):
            # one tag value per slot (NUM_TAGS = 256): a timed-out tag is reused at once, as
            # PCIe allows after a completion timeout
            self.given_up.discard(tlp.tag)
            self.checker.dma_reads.pop(tlp.tag, None)
        self.checker.check_request(tlp)
        cycle = self.bfm.cycle
        if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            if MSG_BASE <= tlp.address < MSG_BASE + PAGE:
                self.tx_log.append((cycle, "msg", tlp))
                self.msgs_seen.append((tlp.address, bytes(tlp.data)))
                return
            self.tx_log.append((cycle, "mwr", tlp))
            self.mwr_sizes.append(tlp.length * 4)
            self._host_write(tlp)
        else:
            self.tx_log.append((cycle, "mrd", tlp))
            self._host_read(tlp)

    def _host_write(self, tlp):
        """Store the enabled bytes (contiguous: the checker has verified the byte enables)."""
        start = _first_be_offset(tlp.first_be)
        last_be = tlp.first_be if tlp.length == 1 else tlp.last_be
        end = 4 * (tlp.length - 1) + last_be.bit_length()
        self.mem.write(tlp.address + start, tlp.data[start:end])

    def _host_read(self, tlp):
        addr = tlp.address + _first_be_offset(tlp.first_be)
        n = request_byte_count(tlp)
        self.mrd_sizes.append((addr, n))
        # which request these bytes belong to: MRds must walk the requests in order
        assert self.rd_issue, f"MRd at 0x{addr:x} for no outstanding request"
        entry = self.rd_issue[0]
        req, next_addr, left = entry
        assert addr == next_addr and n <= left, (
            f"MRd at 0x{addr:x} of {n} bytes; request {req.index} expects its next bytes at "
            f"0x{next_addr:x} ({left} left)")
        assert n <= min(self.max_read_tlp, self.checker.max_read_request_size)
        offset = addr - req.addr
        req.data[offset:offset + n] = self.mem.read(addr, n)   # what the host returns
        entry[1] += n
        entry[2] -= n
        if entry[2] == 0:
            self.rd_issue.popleft()

        fate = self.rng.choices(list(self.fate_weights), list(self.fate_weights.values()))[0]
        pieces = self._completions(tlp, addr, n)
        due = self.bfm.cycle + self.rng.randint(*self.latency)
        if fate != "ok":
            req.zero.append((offset, n))
            req.err = True
            self.rd_errors_expected += 1
        if fate in ("ur", "ca"):
            keep = self.rng.randrange(len(pieces))
            status = CplStatus.UR if fate == "ur" else CplStatus.CA
            err = Tlp.create_completion_for_tlp(tlp, PcieId(0, 0, 0), False, status)
            err.byte_count = pieces[keep].byte_count
            pieces = pieces[:keep] + [err]
        elif fate == "poison":
            # with one tag value per slot (256 tags) the tag is free again at once, so pieces
            # after a poisoned one could meet its next user: poison only the last one there
            k = self.rng.randrange(len(pieces)) if self.gens > 1 else len(pieces) - 1
            pieces[k].ep = True
            self.rd_errors_expected += len(pieces) - 1 - k   # the rest are unexpected
        elif fate == "poison_late" and len(pieces) > 1:
            # the first piece poisoned, the rest long after: the tag must stay unused meanwhile
            pieces[0].ep = True
            self.rd_errors_expected += len(pieces) - 1
            self.cpl_sched.append([due + self.late_delay, collections.deque(pieces[1:])])
            pieces = pieces[:1]
        elif fate == "bad":
            k = self.rng.randrange(len(pieces))
            pieces[k].byte_count += 4 if pieces[k].byte_count < PAGE - 4 else -4
            pieces[k].terminal = True       # the host gives up on the tag after it
            pieces = pieces[:k + 1]
        elif fate == "drop":
            if self.rng.random() < self.late_answer and self.gens > 1:
                # answered long after the timeout: each piece is an unexpected completion
                self.rd_errors_expected += len(pieces)
                due += self.late_delay
            else:
                pieces = []
                if self.gens == 1:
                    self.given_up.add(tlp.tag)
        if pieces:
            self.cpl_sched.append([due, collections.deque(pieces)])

    def _completions(self, req, addr, n):
        end = addr + n
        pieces = []
        pos = addr
        blocks = max(1, self.host_mps // RCB)
        while pos < end:
            k = self.rng.choice((1, 1, 2, blocks, self.rng.randint(1, blocks)))
            nxt = min(end, (pos // RCB + k) * RCB)
            start = pos & ~3
            stop = (nxt + 3) & ~3
            cpl = Tlp.create_completion_data_for_tlp(req, PcieId(0, 0, 0))
            cpl.byte_count = end - pos
            cpl.lower_address = pos & 0x7F
            cpl.length = (stop - start) // 4
            cpl.data = bytearray(self.mem.read(start, stop - start))
            pieces.append(cpl)
            pos = nxt
        return pieces

    def feed_completions(self, cycle):
        """Keep up to two completions queued on rx_cpl, picked at random among the due tags."""
        while self.cpl_sched and self.rx_cpl.queue.qsize() < 2:
            due = [e for e in self.cpl_sched if e[0] <= cycle]
            if not due:
                return
            entry = self.rng.choice(due) if self.interleave else due[0]
            cpl = entry[1].popleft()
            if not entry[1]:
                self.cpl_sched.remove(entry)
            self.checker.host_completion(cpl)
            if getattr(cpl, "terminal", False):
                self.checker.dma_reads.pop(cpl.tag, None)
            self.rx_cpl.send_nowait(cpl)

    def stray_completion(self):
        """A completion that matches nothing: a 10-bit tag the device never uses."""
        cpl = Tlp()
        cpl.fmt_type = TlpType.CPL_DATA
        cpl.requester_id = PcieId(BUS, DEVICE, 0)
        cpl.tag = 0x100 | self.rng.randrange(256)
        cpl.byte_count = 4
        cpl.length = 1
        cpl.data = bytearray(4)
        self.rd_errors_expected += 1
        self.cpl_sched.append([self.bfm.cycle, collections.deque([cpl])])

    # ---- waiting
    def idle(self, stream=True):
        # tx_req_tlp_valid: a TLP's last beat may still wait in the arbiter's output register
        # while the host side pauses tx_req (the engines are idle by then)
        d = self.dut
        return (d.rd_idle.value == 1 and d.wr_idle.value == 1 and not self.cpl_sched
                and self.rx_cpl.idle() and not self.bfm.busy(stream) and self.tx_msg.idle()
                and d.tx_req_tlp_valid.value == 0)

    async def wait_idle(self, limit=200000, stream=True):
        """Wait until nothing moves (with stream=False, data may be left in the write stream)."""
        start = self.bfm.cycle
        quiet = 0
        while quiet < 8:
            await RisingEdge(self.dut.clk)
            quiet = quiet + 1 if self.idle(stream) else 0
            if self.bfm.cycle - start > limit:
                raise AssertionError(
                    f"not idle after {limit} cycles: rd_idle={self.dut.rd_idle.value} "
                    f"wr_idle={self.dut.wr_idle.value} packets left {len(self.rd_packets)} "
                    f"scheduled completions {len(self.cpl_sched)} {self.bfm.state()}")

    def check_end(self):
        self.check_wr_done(final=True)
        assert not self.rd_packets, f"{len(self.rd_packets)} response packets never came"
        assert not self.rd_issue, f"{len(self.rd_issue)} requests never fully read"
        assert self.bfm.rd_errors == self.rd_errors_expected, (
            f"rd_error pulsed {self.bfm.rd_errors} times, expected {self.rd_errors_expected}")
        assert self.wr_done_seen == len(self.wr_reqs), (
            f"{self.wr_done_seen} wr_done pulses for {len(self.wr_reqs)} write requests")
        assert self.msgs_seen == self.msgs_sent, "MSI-X messages lost, changed or reordered"
        for p in set(self.mem.pages) | set(self.exp_mem.pages):
            if self.mem.page(p) != self.exp_mem.page(p):
                got, exp = self.mem.page(p), self.exp_mem.page(p)
                bad = next(i for i in range(PAGE) if got[i] != exp[i])
                raise AssertionError(f"host memory differs at 0x{p * PAGE + bad:x}: "
                                     f"got {bytes(got[bad:bad + 16]).hex()} expected {bytes(exp[bad:bad + 16]).hex()}")


class DmaBfm:
    """One coroutine per clock for the request ports, the byte streams and the status pulses."""

    def __init__(self, tb):
        self.tb = tb
        self.dut = tb.dut
        self.w = tb.beat_bytes
        self.cycle = 0
        self.rd_req_q = collections.deque()
        self.wr_req_q = collections.deque()
        self.wr_data_q = collections.deque()
        self._rd_req = None
        self._wr_req = None
        self._wr_beats = collections.deque()
        self._wr_beat = None
        self._rd_valid = self._wr_valid = self._wd_valid = self._rsp_ready = False
        self._rsp_data = {}          # dest -> bytes of its open packet
        self.rd_errors = 0
        self.rsp_beats = []          # cycle of every response beat (throughput)
        self.wr_data_beats = 0
        self._pause = {}
        d = self.dut
        for sig in (d.s_rd_req_valid, d.s_wr_req_valid, d.s_wr_data_tvalid, d.m_rd_rsp_tready):
            sig.value = 0
        self._task = cocotb.start_soon(self._run())

    def set_pauses(self, name, seed):
        self._pause = {k: idle_pattern(name, seed + i) for i, k in enumerate(("rd_req", "wr_req", "wr_data", "rsp"))}
        self._pause = {k: v for k, v in self._pause.items() if v is not None}

    def _paused(self, name):
        gen = self._pause.get(name)
        return gen is not None and bool(next(gen))

    def abandon_stream(self):
        """Drop the rest of the write data stream at once, as the back end does on abort."""
        self.wr_data_q.clear()
        self._wr_beats.clear()
        self._wr_beat = None
        self._wd_valid = False
        self.dut.s_wr_data_tvalid.value = 0

    def busy(self, stream=True):
        return bool(self.rd_req_q or self.wr_req_q or self._rd_req or self._wr_req
                    or (stream and (self.wr_data_q or self._wr_beats or self._wr_beat)))

    def state(self):
        return (f"rd_req queued {len(self.rd_req_q)} wr_req queued {len(self.wr_req_q)} "
                f"wr data packets {len(self.wr_data_q)} beats {len(self._wr_beats)}")

    async def _run(self):
        d = self.dut
        edge = RisingEdge(d.clk)
        w = self.w
        while True:
            await edge
            self.cycle += 1

            # ---- status pulses
            if d.rd_error.value == 1:
                self.rd_errors += 1
            if d.wr_done.value == 1:
                self.tb.on_wr_done()
            if self.tb.wr_done_pending:
                self.tb.check_wr_done()

            # ---- read requests
            if self._rd_valid and d.s_rd_req_ready.value == 1:
                self._rd_req = None
            if self._rd_req is None and self.rd_req_q:
                self._rd_req = self.rd_req_q.popleft()
                addr, length, dest, last = self._rd_req
                d.s_rd_req_addr.value = addr
                d.s_rd_req_len.value = length
                d.s_rd_req_dest.value = dest
                d.s_rd_req_last.value = last
            self._rd_valid = self._rd_req is not None and not self._paused("rd_req")
            d.s_rd_req_valid.value = int(self._rd_valid)

            # ---- write requests
            if self._wr_valid and d.s_wr_req_ready.value == 1:
                self._wr_req = None
            if self._wr_req is None and self.wr_req_q:
                self._wr_req = self.wr_req_q.popleft()
                addr, length, imm, imm_data = self._wr_req
                d.s_wr_req_addr.value = addr
                d.s_wr_req_len.value = length
                d.s_wr_req_imm.value = imm
                d.s_wr_req_imm_data.value = imm_data
            self._wr_valid = self._wr_req is not None and not self._paused("wr_req")
            d.s_wr_req_valid.value = int(self._wr_valid)

            # ---- write data stream
            if self._wd_valid and d.s_wr_data_tready.value == 1:
                self._wr_beat = None
                self.wr_data_beats += 1
            if self._wr_beat is None:
                if not self._wr_beats and self.wr_data_q:
                    pkt = self.wr_data_q.popleft()
                    for k in range(0, len(pkt), w):
                        chunk = pkt[k:k + w]
                        self._wr_beats.append((int.from_bytes(chunk, "little"), (1 << len(chunk)) - 1,
                                               int(k + w >= len(pkt))))
                if self._wr_beats:
                    self._wr_beat = self._wr_beats.popleft()
                    data, keep, last = self._wr_beat
                    d.s_wr_data_tdata.value = data
                    d.s_wr_data_tkeep.value = keep
                    d.s_wr_data_tlast.value = last
            self._wd_valid = self._wr_beat is not None and not self._paused("wr_data")
            d.s_wr_data_tvalid.value = int(self._wd_valid)

            # ---- read response stream
            if self._rsp_ready and d.m_rd_rsp_tvalid.value == 1:
                self._rsp_beat()
            self._rsp_ready = not self._paused("rsp")
            d.m_rd_rsp_tready.value = int(self._rsp_ready)

            # ---- completions
            if self.tb.cpl_sched:
                self.tb.feed_completions(self.cycle)

    def _rsp_beat(self):
        d = self.dut
        self.rsp_beats.append(self.cycle)
        keep = d.m_rd_rsp_tkeep.value.to_unsigned()
        last = d.m_rd_rsp_tlast.value == 1
        dest = d.m_rd_rsp_tdest.value.to_unsigned()
        user = d.m_rd_rsp_tuser.value == 1
        n = keep.bit_length()
        if keep != (1 << n) - 1 or n == 0:
            raise AssertionError(f"m_rd_rsp: tkeep 0x{keep:x} is not contiguous from byte 0")
        if not last and n != self.w:
            raise AssertionError(f"m_rd_rsp: beat before tlast is not full (tkeep 0x{keep:x})")
        if user and not last:
            raise AssertionError("m_rd_rsp: tuser set on a beat without tlast")
        data = d.m_rd_rsp_tdata.value.to_unsigned()
        buf = self._rsp_data.setdefault(dest, bytearray())
        buf += data.to_bytes(self.w, "little")[:n]
        if last:
            self.tb.on_rd_packet(bytes(self._rsp_data.pop(dest)), dest, user)


# --------------------------------------------------------------------------- stimulus helpers


def random_read_addr(rng, length):
    band = rng.random()
    if band < 0.45:
        addr = rng.randrange(0, 1 << 32)
    elif band < 0.55:
        addr = (1 << 32) - rng.randrange(1, 2 * PAGE)      # just below 4 GiB: crosses into 4-DW space
    else:
        addr = rng.randrange(1 << 32, 1 << 64)
    return min(addr, (1 << 64) - length)


def random_length(rng, max_len=4096):
    r = rng.random()
    if r < 0.6:
        n = rng.randint(1, 64)
    elif r < 0.88:
        n = rng.randint(65, 512)
    else:
        n = rng.randint(513, 4096)
    return min(n, max_len)


class WriteRegions:
    """Non-overlapping 8 KiB windows for write targets, below and above 4 GiB; the fourth
    write of a test straddles the 4 GiB line (3-DW then 4-DW headers)."""

    def __init__(self, rng):
        self.rng = rng
        self.count = itertools.count()

    def addr(self, length):
        i = next(self.count)
        if i == 3:
            return (1 << 32) - self.rng.randint(1, max(1, length - 1))
        base = 0x1000_0000 if self.rng.random() < 0.5 else 0x7F00_0000_0000
        return base + i * 0x2000 + self.rng.randrange(0, 0x2000 - length + 1)


async def start(dut, seed=0, pauses=None):
    tb = DmaTB(dut, seed)
    if pauses:
        tb.set_pauses(pauses, seed + 11)
    await tb.reset()
    return tb


# --------------------------------------------------------------------------- cocotb tests


@cocotb.test(timeout_time=400, timeout_unit="ms")
@cocotb.parametrize(pauses=["none", "random"])
async def run_rd_random(dut, pauses):
    """Random reads: any address (below and above 4 GiB, across 4 KiB), 1..4096 bytes, packets
    of one or more requests per destination with the packets of different destinations
    interleaved request by request (as the ring engine's fetch and data machines do),
    completions split at the RCB and interleaved across tags after a random latency; every
    packet is compared byte for byte with host memory.
    PCI-01: each MRd is checked for MRRS, 4 KiB, byte enables and 3-DW/4-DW headers."""
    tb = await start(dut, 1, pauses)
    tb.latency = (0, 60)
    rng = tb.rng
    total = 0
    budget = _scaled(130_000 // (1 if pauses == "none" else 2) * tb.width // 64)
    n = 0
    while total < budget:
        dest = rng.randrange(4)
        length = random_length(rng)
        tb.read(random_read_addr(rng, length), length, dest, last=rng.random() < 0.4)
        total += length
        n += 1
    tb.close_packets()
    await tb.wait_idle()
    tb.check_end()
    tb.log.info("%d reads, %d bytes, %d packets, %d MRd", n, total, tb.rd_packets_seen, len(tb.mrd_sizes))


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def run_rd_errors(dut):
    """Failed reads: UR and CA completions (possibly after some data), a poisoned piece,
    malformed completions, reads never answered (completion timeout) and answered late, and
    completions that match no tag. Every byte still arrives (zeros for a failed TLP), the
    packet has tuser on its last beat, rd_error pulses once per failure and once per
    unexpected completion, and nothing hangs. PCI-01: MRds checked as in run_rd_random."""
    tb = await start(dut, 2, "random")
    tb.latency = (0, 40)
    tb.fate_weights = {"ok": 12, "ur": 1, "ca": 1, "poison": 1, "bad": 1, "drop": 0.25}
    rng = tb.rng
    for i in range(_scaled(300)):
        length = random_length(rng)
        tb.read(random_read_addr(rng, length), length, rng.randrange(4), last=rng.random() < 0.5)
        if rng.random() < 0.03:
            tb.stray_completion()
        if i % 100 == 99:
            tb.close_packets()
            await tb.wait_idle(limit=40 * tb.cpl_timeout)
    tb.close_packets()
    await tb.wait_idle(limit=40 * tb.cpl_timeout)
    tb.check_end()
    assert tb.bfm.rd_errors > 0


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def run_rd_timeout_reuse(dut):
    """Completion timeout: an unanswered read is released CPL_TIMEOUT..1.25 x CPL_TIMEOUT cycles
    after its MRd (its bytes zero, tuser set, rd_error); its tag is not issued again while its
    slot is reused many times (more than the tag's generations), the late completion is dropped
    (rd_error) and corrupts nothing."""
    tb = await start(dut, 3)
    tb.fate_weights = {"drop": 1}
    tb.late_answer = 1.0
    tb.late_delay = 8 * tb.cpl_timeout
    tb.read(0x1000, 16)
    t0 = tb.bfm.cycle
    while tb.rd_packets_seen < 1:
        await RisingEdge(dut.clk)
    elapsed = tb.bfm.cycle - t0
    assert tb.cpl_timeout <= elapsed <= tb.cpl_timeout * 5 // 4 + tb.num_tags + 32, f"timeout after {elapsed} cycles"
    dropped_tag = next(t for _, k, t in tb.tx_log if k == "mrd").tag
    tb.fate_weights = {"ok": 1}
    # use the slot more often than it has tag values (with 256 tags: one value, reused at once)
    reads = tb.num_tags * (tb.gens + 4) if tb.gens > 1 else 64
    for i in range(reads):
        tb.read(0x20000 + 64 * i, 64, last=True)
    while tb.rd_packets_seen < 1 + reads:
        await RisingEdge(dut.clk)
    if tb.gens > 1:
        assert tb.cpl_sched, "the late completion came back too early for this test"
        tags = [t.tag for _, k, t in tb.tx_log if k == "mrd"]
        assert tags.count(dropped_tag) == 1, f"tag {dropped_tag} reused before its late completion came back"
    await tb.wait_idle(limit=20 * tb.cpl_timeout)

    # the same for a TLP failed by a poisoned first piece whose other pieces come late
    if tb.gens > 1:
        tb.fate_weights = {"poison_late": 1}
        tb.read(0x3000, 512)
        while not any(k == "mrd" and t.address == 0x3000 for _, k, t in tb.tx_log):
            await RisingEdge(dut.clk)
        poisoned_tag = next(t for _, k, t in tb.tx_log if k == "mrd" and t.address == 0x3000).tag
        mrds_before = sum(1 for _, k, _ in tb.tx_log if k == "mrd")
        tb.fate_weights = {"ok": 1}
        for i in range(reads):
            tb.read(0x40000 + 64 * i, 64, last=True)
        while tb.rd_packets_seen < 2 + 2 * reads:
            await RisingEdge(dut.clk)
        assert tb.cpl_sched, "the late pieces came back too early for this test"
        later = [t.tag for _, k, t in tb.tx_log[mrds_before:] if k == "mrd"]
        assert poisoned_tag not in later, f"tag {poisoned_tag} reused while its pieces are still coming"
        await tb.wait_idle(limit=20 * tb.cpl_timeout)
    tb.check_end()


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def run_rd_bus_master_off(dut):
    """Bus Master Enable off: read requests send no MRd (the checker fails any TLP), still
    yield all their bytes as zeros with tuser, and pulse rd_error once per request; reads work
    again once it is back on."""
    tb = await start(dut, 4)
    rng = tb.rng
    tb.read(0x4000, 100)
    await tb.wait_idle()
    tb.set_bus_master(False)
    for i in range(20):
        length = random_length(rng)
        tb.read(random_read_addr(rng, length), length, i % 4, last=rng.random() < 0.5)
    tb.close_packets()
    await tb.wait_idle()
    mrds = sum(1 for _, k, _ in tb.tx_log if k == "mrd")
    tb.set_bus_master(True)
    for i in range(10):
        length = random_length(rng)
        tb.read(random_read_addr(rng, length), length, 1)
    await tb.wait_idle()
    tb.check_end()
    assert mrds == 1


@cocotb.test(timeout_time=400, timeout_unit="ms")
@cocotb.parametrize(pauses=["none", "random"])
async def run_wr_random(dut, pauses):
    """Random writes: immediate (1..8 bytes) and streamed, any address below and above 4 GiB,
    streamed packets split into requests that end mid-beat (one request may continue into the
    next packet), compared byte for byte with host memory; each wr_done pulse comes in request
    order after all of its request's data is in host memory. PCI-01: every MWr is checked for
    MPS, 4 KiB, byte enables and 3-DW/4-DW headers."""
    tb = await start(dut, 5, pauses)
    rng = tb.rng
    regions = WriteRegions(rng)
    total = 0
    budget = _scaled(100_000 // (1 if pauses == "none" else 2) * tb.width // 64)
    n = 0
    while total < budget:
        pkt_len = random_length(rng, 4096) + rng.choice((0, 0, random_length(rng, 2048)))
        data = rng.randbytes(pkt_len)
        tb.stream(data)
        off = 0
        while off < pkt_len:
            length = min(pkt_len - off, random_length(rng))
            if rng.random() < 0.3:
                imm_len = rng.randint(1, 8)
                tb.write(regions.addr(imm_len), rng.randbytes(imm_len), imm=True)
            tb.write(regions.addr(length), data[off:off + length])
            off += length
            n += 1
        total += pkt_len
    await tb.wait_idle()
    tb.check_end()
    tb.log.info("%d writes, %d bytes, %d MWr", n, total, len(tb.mwr_sizes))


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def run_wr_bus_master_off_flush(dut):
    """Bus Master Enable off: writes send nothing but consume their data and pulse wr_done.
    flush: requests that have not started are dropped without consuming data (and still pulse
    wr_done, in order); a write already sending finishes its current TLP and drops the rest,
    leaving the rest of its data in the stream for the next request; a TLP that started but
    whose data stops (the back end aborts too) is finished with zeros instead of hanging; a
    beat partly taken when the producer abandons it is forgotten (the next packet starts at
    byte 0). PCI-01: the TLPs that are sent are checked for MPS, 4 KiB and byte enables."""
    tb = await start(dut, 6)
    rng = tb.rng
    regions = WriteRegions(rng)
    # bus mastering off: data consumed, nothing sent
    tb.set_bus_master(False)
    skipped = rng.randbytes(300)
    tb.stream(skipped)
    tb.write(regions.addr(100), skipped[:100])
    tb.write(regions.addr(8), b"\x11" * 8, imm=True)
    tb.write(regions.addr(200), skipped[100:])
    await tb.wait_idle()
    tb.set_bus_master(True)
    assert not tb.tx_log
    data = rng.randbytes(77)
    tb.stream(data)
    tb.write(regions.addr(77), data)
    await tb.wait_idle()

    # flush: dropped, data left in the stream
    tb.set_flush(True)
    kept = rng.randbytes(50)
    for _ in range(3):
        tb.write(regions.addr(50), kept)
        tb.write(regions.addr(4), b"\x22" * 4, imm=True)
    await ClockCycles(tb.dut.clk, 30)
    tb.set_flush(False)
    await tb.wait_idle(stream=False)
    assert tb.wr_done_seen == len(tb.wr_reqs)
    tb.stream(kept)
    tb.write(regions.addr(50), kept)        # takes the bytes nobody consumed
    await tb.wait_idle()

    # flush in the middle of a long write: whole TLPs of a prefix are sent
    tb.set_sizes(0, 2)
    data = rng.randbytes(4096)
    tb.stream(data)
    addr = 0x3000_0000
    tb.wr_reqs.append(WrReq(addr, data, False, False))     # checked by hand below
    tb.bfm.wr_req_q.append((addr, 4096, 0, 0))
    sent_before = len(tb.mwr_sizes)
    while len(tb.mwr_sizes) < sent_before + 5:
        await RisingEdge(tb.dut.clk)
    tb.set_flush(True)
    await tb.wait_idle(stream=False)
    tb.set_flush(False)
    written = 0
    while written < 4096 and tb.mem.read(addr + written, 128) == data[written:written + 128]:
        written += 128
    assert 5 * 128 <= written < 4096, f"{written} bytes written before the flush took effect"
    tb.exp_mem.write(addr, data[:written])
    rest = data[written:]
    tb.write(regions.addr(len(rest)), rest)  # the unconsumed rest is still in the stream
    await tb.wait_idle()

    # the data stops inside a started TLP: flush finishes it with zeros
    short = rng.randbytes(300)
    tb.stream(short)
    addr = 0x3100_0000
    tb.write_unchecked(addr, 1000)
    sent_before = len(tb.mwr_sizes)
    while len(tb.mwr_sizes) < sent_before + 2:
        await RisingEdge(tb.dut.clk)
    await ClockCycles(tb.dut.clk, 50)
    assert tb.dut.wr_idle.value == 0, "the write should be waiting for data"
    tb.set_flush(True)
    await tb.wait_idle(stream=False)
    tb.set_flush(False)
    assert tb.mem.read(addr, 384) == short + bytes(84), "TLP in progress not finished with zeros"
    tb.exp_mem.write(addr, short + bytes(84))

    # a beat partly taken, then abandoned by the producer under flush
    first = rng.randbytes(200)
    tb.stream(first)
    tb.write(regions.addr(100), first[:100])          # ends inside a beat at every width
    await tb.wait_idle(stream=False)
    tb.set_flush(True)
    tb.bfm.abandon_stream()
    await ClockCycles(tb.dut.clk, 10)
    tb.set_flush(False)
    fresh = rng.randbytes(150)
    tb.stream(fresh)
    tb.write(regions.addr(150), fresh)
    await tb.wait_idle()
    tb.check_end()


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def run_sizes(dut):
    """Max_Payload_Size and Max_Read_Request_Size 128..4096 (codes 0..5): every MWr fits MPS,
    every MRd fits min(MRRS, MAX_READ_TLP), none crosses 4 KiB, and long aligned transfers use
    the largest size allowed. PCI-01: 4 KiB, MPS, MRRS and byte-enable rules."""
    tb = await start(dut, 7)
    rng = tb.rng
    regions = WriteRegions(rng)
    for code in range(6):
        tb.set_sizes(code, 5 - code)
        tb.mrd_sizes.clear()
        tb.mwr_sizes.clear()
        for _ in range(4):
            length = random_length(rng)
            tb.read(random_read_addr(rng, length), length)
            data = rng.randbytes(length)
            tb.stream(data)
            tb.write(regions.addr(length), data)
        tb.read(0x10_0000, 4096)
        data = rng.randbytes(4096)
        tb.stream(data)
        tb.write(0x2000_0000 + code * 0x1000, data)
        await tb.wait_idle()
        assert max(n for _, n in tb.mrd_sizes) == min(tb.max_read_tlp, 128 << (5 - code))
        assert max(tb.mwr_sizes) == 128 << code
    tb.check_end()


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def run_arbiter(dut):
    """Reads, writes and MSI-X messages at once with backpressure: tx_req carries whole TLPs
    only (the sink fails a sop inside a TLP), each source keeps its order (MRds walk the
    requests in order, messages arrive in order), no source starves, and all data is right.
    PCI-01: every TLP checked as above."""
    tb = await start(dut, 8, "random")
    tb.latency = (0, 30)
    rng = tb.rng
    regions = WriteRegions(rng)
    for i in range(60):
        length = random_length(rng)
        tb.read(random_read_addr(rng, length), length, i % 3, last=rng.random() < 0.7)
        tb.read(0x8000 + 8 * i, 8, 3, last=True)     # a short packet between the others' requests
        data = rng.randbytes(length)
        tb.stream(data)
        tb.write(regions.addr(length), data)
        if rng.random() < 0.5:
            tb.write(regions.addr(4), rng.randbytes(4), imm=True)
        tb.msg(i)
    tb.close_packets()
    await tb.wait_idle()
    tb.check_end()
    kinds = collections.Counter(k for _, k, _ in tb.tx_log)
    tb.log.info("tx_req TLPs: %s", dict(kinds))
    assert kinds["msg"] == len(tb.msgs_sent) and kinds["mrd"] and kinds["mwr"]


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def run_throughput(dut):
    """Throughput of 4 KiB transfers with zero host latency and no backpressure: response
    bytes per cycle of reads, MWr payload bytes per cycle of writes, aligned and unaligned."""
    tb = await start(dut, 9)
    tb.set_sizes(1, 2)             # MPS 256, MRRS 512 (typical)
    tb.interleave = False          # completions in request order, as a root complex returns them
    w = tb.beat_bytes
    results = {}
    count = 8
    for label, offset in (("aligned", 0), ("unaligned", 3)):
        tb.bfm.rsp_beats.clear()
        for i in range(count):
            tb.read(0x100_0000 + i * 0x1000 + offset, 4096, last=True)
        await tb.wait_idle()
        beats = tb.bfm.rsp_beats
        results[f"read {label}"] = count * 4096 / (beats[-1] - beats[0] + 1)
        gaps = collections.Counter(b - a for a, b in zip(beats, beats[1:]))
        tb.log.info("read %s: beat spacing histogram %s", label, dict(gaps))

        start_log = len(tb.tx_log)
        data = tb.rng.randbytes(count * 4096)
        tb.stream(data)
        for i in range(count):
            tb.write(0x4000_0000 + i * 0x1000 + offset, data[i * 4096:(i + 1) * 4096])
        await tb.wait_idle()
        mwr = [(c, t) for c, k, t in tb.tx_log[start_log:] if k == "mwr"]
        payload = sum(t.length * 4 for _, t in mwr[1:])
        results[f"write {label}"] = payload / (mwr[-1][0] - mwr[0][0])
    tb.check_end()
    for k, v in results.items():
        tb.log.info("THROUGHPUT DATA_WIDTH=%d %s: %.2f bytes/cycle (%.0f%% of %d)", tb.width, k, v, 100 * v / w, w)
    Path("throughput.txt").write_text("".join(f"{tb.width} {k}: {v:.3f}\n" for k, v in results.items()))
    assert results["read aligned"] >= 0.9 * w
    assert results["write aligned"] >= 0.9 * w


# --------------------------------------------------------------------------- pytest entry points

HERE = Path(__file__).resolve().parent
TOPLEVEL = "dma_tb_top"
CPL_TIMEOUT = 4096


@pytest.mark.parametrize("data_width", [64, 128, 256])
def test_dma(sim, data_width):
    """Every cocotb test at each width with the default tags and TLP size."""
    params = {"DATA_WIDTH": data_width, "NUM_TAGS": 16, "MAX_READ_TLP": 512, "CPL_TIMEOUT": CPL_TIMEOUT}
    run(sim, TOPLEVEL, "test_dma", HERE, params, results_name=f"test_dma-w{data_width}",
        extra_sources=[HERE / "dma_tb_top.v"])


# read-side parameter corners: few tags with 4 KiB TLPs (32 tag values per slot), and 256 tags
# of 128 bytes (one tag value per slot, 4 RAM words per slot at 256 bits)
CORNERS = {
    "tags8-tlp4096-w128": {"DATA_WIDTH": 128, "NUM_TAGS": 8, "MAX_READ_TLP": 4096, "CPL_TIMEOUT": 2 * CPL_TIMEOUT},
    "tags256-tlp128-w256": {"DATA_WIDTH": 256, "NUM_TAGS": 256, "MAX_READ_TLP": 128, "CPL_TIMEOUT": CPL_TIMEOUT},
}


@pytest.mark.parametrize("config", list(CORNERS))
def test_dma_read_corners(sim, config):
    """The read tests at the NUM_TAGS / MAX_READ_TLP corners."""
    run(sim, TOPLEVEL, "test_dma", HERE, CORNERS[config], results_name=f"test_dma-{config}",
        testcase=["run_rd_random", "run_rd_errors", "run_rd_timeout_reuse", "run_sizes"],
        extra_env={"DMA_TB_SCALE": "0.25"}, extra_sources=[HERE / "dma_tb_top.v"])
