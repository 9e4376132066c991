# SPDX-License-Identifier: Apache-2.0
"""Unit tests of rtl/virtio_imm_wr.v, the used ring's immediate writer (docs/ring-engine.md).

The DUT is the module itself. A per-cycle driver offers requests (1..8 bytes at any address,
many of them at the end of a 4 KiB page, half above 4 GiB) with random idle cycles; the TLP
stream is taken by ``TlpStreamSink`` (framing) with random backpressure, every TLP goes
through ``models.pcie.checker.TlpChecker`` (3-DW/4-DW rule, byte enables, 4 KiB, requester
id, nothing while Bus Master Enable is off), and a model predicts each request's TLPs: one
memory write, or two when the bytes cross a 4 KiB boundary, with the bytes at their addresses.
``done`` must pulse once per request, in order, never before the request's last TLP has left.

This file is both the pytest entry point (``test_*``) and the cocotb test module (``run_*``).
"""

import random
from pathlib import Path

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.pcie.core.tlp import TlpType

from models.pcie.checker import PCI_COMMAND_MASTER, TlpChecker
from models.pcie.tlp_stream import TlpStreamSink, beats_to_tlp, idle_pattern
from models.runner import run

BUS, DEVICE = 0x3C, 5
REQUESTER_ID = (BUS << 8) | (DEVICE << 3)
HERE = Path(__file__).resolve().parent
TOPLEVEL = "virtio_imm_wr"


def expected_tlps(addr, data):
    """The memory writes a request of ``data`` at ``addr`` must become: [(addr, bytes)]."""
    left = 0x1000 - (addr & 0xFFF)
    if len(data) > left:
        return [(addr, data[:left]), (addr + left, data[left:])]
    return [(addr, data)]


def written_bytes(tlp):
    """(first byte address, enabled bytes) of a memory write TLP."""
    data = bytes(tlp.get_data())
    enabled = []
    for dw in range(tlp.length):
        be = tlp.first_be if dw == 0 else (tlp.last_be if dw == tlp.length - 1 else 0xF)
        enabled += [dw * 4 + k for k in range(4) if be >> k & 1]
    assert enabled == list(range(enabled[0], enabled[-1] + 1)), f"byte enables not contiguous: {tlp!r}"
    return (tlp.address & ~3) + enabled[0], bytes(data[k] for k in enabled)


class Bench:
    def __init__(self, dut, seed):
        self.dut = dut
        self.rng = random.Random(seed)
        self.width = len(dut.tx_imm_tlp_data)
        self.checker = TlpChecker(raise_on_error=False)
        self.checker.command = PCI_COMMAND_MASTER
        self.checker.bus_dev = (BUS, DEVICE)
        self.checker.max_payload_size = 4096
        self.tlps = []            # (cycle, addr, bytes) in arrival order
        self.errors = []
        self.cycle = 0
        self.dones = []           # cycles of done pulses
        self.sink = TlpStreamSink(dut, "tx_imm_tlp", dut.clk, self.width, self._on_tlp, self.errors.append)

    def _on_tlp(self, hdr, payload):
        tlp = beats_to_tlp(hdr, payload)
        self.checker.check_request(tlp)
        if tlp.fmt_type not in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            self.errors.append(f"not a memory write: {tlp!r}")
            return
        if tlp.tag != 0 or int(tlp.requester_id) != REQUESTER_ID:
            self.errors.append(f"tag {tlp.tag} / requester id {tlp.requester_id}: {tlp!r}")
        addr, data = written_bytes(tlp)
        self.tlps.append((self.cycle, addr, data))

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 4, unit="ns", impl="gpi").start()
        dut.rst.value = 1
        dut.s_req_valid.value = 0
        dut.s_req_addr.value = 0
        dut.s_req_len.value = 1
        dut.s_req_data.value = 0
        dut.requester_id.value = REQUESTER_ID
        dut.bus_master_enable.value = 1
        await ClockCycles(dut.clk, 4)
        dut.rst.value = 0
        cocotb.start_soon(self._count())
        await ClockCycles(dut.clk, 2)

    async def _count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            if int(self.dut.done.value):
                self.dones.append(self.cycle)

    def random_request(self):
        rng = self.rng
        n = rng.randint(1, 8)
        page = rng.randrange(1 << 20) << 12
        if rng.random() < 0.5:
            page |= rng.randrange(1, 1 << 20) << 32          # above 4 GiB: 4-DW headers
        off = rng.choice((rng.randrange(0x1000 - 12, 0x1000), rng.randrange(0x1000)))
        return page | off, rng.randbytes(n)

    async def drain(self, limit=2000):
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            if int(self.dut.idle.value) and not int(self.dut.s_req_valid.value):
                await ClockCycles(self.dut.clk, 4)
                return
        raise AssertionError("virtio_imm_wr never went idle")


async def drive(bench, requests, gaps):
    """Offer ``requests`` back to back or with idle cycles, one per handshake."""
    dut = bench.dut
    for (addr, data), gap in zip(requests, gaps):
        if gap:
            dut.s_req_valid.value = 0
            await ClockCycles(dut.clk, gap)
        dut.s_req_addr.value = addr
        dut.s_req_len.value = len(data)
        dut.s_req_data.value = int.from_bytes(data.ljust(8, b"\0"), "little")
        dut.s_req_valid.value = 1
        while True:
            await RisingEdge(dut.clk)
            if int(dut.s_req_ready.value):
                break
    dut.s_req_valid.value = 0


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def run_random(dut):
    """Random requests with random gaps and backpressure: every request becomes exactly the
    expected TLPs (split at 4 KiB, 3-DW below and 4-DW above 4 GiB, byte enables for the ends,
    two beats at 64 bits when the bytes span three dwords), in order, and one done pulse each,
    never before its last TLP was taken."""
    bench = Bench(dut, 1)
    await bench.start()
    for pattern in ("none", "random", "mostly_paused"):
        bench.sink.set_pause_generator(idle_pattern(pattern, seed=7))
        requests = [bench.random_request() for _ in range(400)]
        gaps = [bench.rng.choice((0, 0, 0, 1, 3)) for _ in requests]
        t0, d0 = len(bench.tlps), len(bench.dones)
        await drive(bench, requests, gaps)
        await bench.drain()
        want = [piece for addr, data in requests for piece in expected_tlps(addr, data)]
        got = [(addr, data) for _, addr, data in bench.tlps[t0:]]
        assert got == want, f"{pattern}: first difference at {next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}"
        dones = bench.dones[d0:]
        assert len(dones) == len(requests), f"{pattern}: {len(dones)} done pulses for {len(requests)} requests"
        # request k's done never before its last TLP (TLP times are the cycle the last beat left)
        ends = []
        k = t0
        for addr, data in requests:
            k += len(expected_tlps(addr, data))
            ends.append(bench.tlps[k - 1][0])
        late = [(j, d, e) for j, (d, e) in enumerate(zip(dones, ends)) if d < e]
        assert not late, f"{pattern}: done before the last TLP for requests {late[:4]}"
        splits = sum(len(expected_tlps(a, d)) == 2 for a, d in requests)
        assert splits > 20, splits
    assert not bench.errors and not bench.checker.errors, (bench.errors + bench.checker.errors)[:4]


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def run_bus_master_off(dut):
    """With Bus Master Enable off nothing goes out and every request still gets its done pulse;
    a TLP held when it goes off (the stream paused) is dropped with the rest of its request;
    with it on again requests are written as before."""
    bench = Bench(dut, 2)
    await bench.start()
    # off: requests are taken and dropped
    dut.bus_master_enable.value = 0
    bench.checker.command = 0
    requests = [bench.random_request() for _ in range(50)]
    d0, t0 = len(bench.dones), len(bench.tlps)
    await drive(bench, requests, [0] * len(requests))
    await bench.drain()
    assert len(bench.tlps) == t0, f"{len(bench.tlps) - t0} TLPs with Bus Master Enable off"
    assert len(bench.dones) - d0 == len(requests), (len(bench.dones) - d0, len(requests))
    # a request that crosses 4 KiB held by a paused stream, then bus mastering off: both halves
    # dropped, one done pulse
    dut.bus_master_enable.value = 1
    bench.checker.command = PCI_COMMAND_MASTER
    bench.sink.set_pause_generator(iter(lambda: 1, 0))
    d0, t0 = len(bench.dones), len(bench.tlps)
    await drive(bench, [(0x1_2345_6FFC, bytes(range(1, 9)))], [0])
    await ClockCycles(dut.clk, 5)
    assert len(bench.tlps) == t0 and len(bench.dones) == d0
    dut.bus_master_enable.value = 0
    bench.checker.command = 0
    await ClockCycles(dut.clk, 5)
    bench.sink.set_pause_generator(None)
    await bench.drain()
    assert len(bench.tlps) == t0, f"a TLP left after Bus Master Enable went off: {bench.tlps[t0:]}"
    assert len(bench.dones) - d0 == 1, len(bench.dones) - d0
    # on again
    dut.bus_master_enable.value = 1
    bench.checker.command = PCI_COMMAND_MASTER
    requests = [bench.random_request() for _ in range(50)]
    t0 = len(bench.tlps)
    await drive(bench, requests, [0] * len(requests))
    await bench.drain()
    want = [piece for addr, data in requests for piece in expected_tlps(addr, data)]
    assert [(a, d) for _, a, d in bench.tlps[t0:]] == want
    assert not bench.errors and not bench.checker.errors, (bench.errors + bench.checker.errors)[:4]


@pytest.mark.parametrize("data_width", [64, 128, 256])
def test_imm_wr(sim, data_width):
    """The cocotb tests above at each width."""
    run(sim, TOPLEVEL, "test_imm_wr", HERE, {"DATA_WIDTH": data_width}, results_name=f"test_imm_wr-w{data_width}")
