# SPDX-License-Identifier: Apache-2.0
"""Tests of the PCIe host model (models/pcie/host.py, models/pcie/fast_host.py).

* ``test_split_rules``: the read completion splitting against the PCIe rules, checked by the
  protocol checker (models/pcie/checker.py) and by explicit expectations (no simulator).
* ``test_read_model``: latency, overlap, interleaving and link rate of the host read model
  with the RTL (cocotb module host_model.py).
* ``test_equivalence``: the same virtio-blk workload with the direct DMA path off and on
  (cocotb module host_equiv.py, one simulation each) gives the same results, disk, DMA access
  sequences and MSI-X messages; wall time and TLPs per second of both are printed.
* ``test_perf``: 4 KiB reads at queue depth 16 at DATA_WIDTH 256 (host_perf.py) over the
  direct path and over the link: TLPs and simulated cycles per wall second, printed (run with
  ``-s``; HOST_PERF_REQUESTS sets the length), and the idle simulator's cycles per second.

The cocotb modules are kept out of ``test_*.py`` (pytest imports this file in importlib mode;
the simulator imports them with this folder on its path).
"""

import json
import random
from pathlib import Path

import pytest
from cocotbext.pcie.core.tlp import Tlp, TlpType, CplStatus
from cocotbext.pcie.core.utils import PcieId

from models.pcie.checker import TlpChecker
from models.pcie.fast_host import completion_with_data, split_read_completions
from models.pcie.tlp_stream import beats_to_tlp, tlp_to_beats
from models.runner import build_dir, run

TOPLEVEL = "virtio_blk_pci"
HERE = Path(__file__).parent
REQUESTER = PcieId(1, 0, 0)


def _results(sim, name, params, module, env, testcase=None):
    """Run ``module`` with ``env``; return its JSON results."""
    path = build_dir(sim, TOPLEVEL, params) / "runs" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    run(sim, TOPLEVEL, module, HERE, params, testcase=testcase, results_name=name,
        extra_env={**env, "HOST_RESULTS": str(path)})
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# completion splitting, no simulator
# --------------------------------------------------------------------------------------------

def _read(addr, nbytes, tag=5):
    """An MRd as the device would send it (byte address, byte count >= 0)."""
    tlp = Tlp()
    tlp.fmt_type = TlpType.MEM_READ_64 if addr >= 1 << 32 else TlpType.MEM_READ
    tlp.requester_id = REQUESTER
    tlp.tag = tag
    tlp.set_addr_be(addr, nbytes)
    return tlp


def _check_split(addr, nbytes, rcb, size, mps):
    req = _read(addr, nbytes)
    data = bytes(random.Random(addr).randrange(256) for _ in range(req.length * 4))
    cpls = split_read_completions(req, data, rcb, size)
    # the protocol checker as if the device had sent these completions for a host request
    checker = TlpChecker()
    checker.max_payload_size = mps
    checker.host_request(req)
    for cpl in cpls:
        assert cpl.fmt_type == TlpType.CPL_DATA and cpl.status == CplStatus.SC
        assert cpl.requester_id == REQUESTER and cpl.tag == req.tag
        assert cpl.check()
        checker.check_completion(cpl)
    assert not checker.errors
    assert not checker.outstanding, "the completions do not add up to the request"
    # explicit rules: boundaries, sizes, byte counts, lower addresses, data
    first = addr if nbytes else addr & ~3
    remaining = max(nbytes, 1)
    pos = addr & ~3
    got = bytearray()
    for k, cpl in enumerate(cpls):
        start = pos
        end = pos + cpl.length * 4
        assert cpl.byte_count == remaining
        assert cpl.lower_address == ((first if k == 0 else start) & 0x7F)
        assert cpl.length * 4 <= mps
        last = k == len(cpls) - 1
        if k == 0 and start % rcb:
            assert end % rcb == 0 or last, f"first completion [0x{start:x}, 0x{end:x}) does not stop at the RCB"
            assert end - start <= rcb
        else:
            assert start % rcb == 0
            assert end - start == size or last
            assert end - start <= size
        got += cpl.get_data()
        remaining -= end - start - ((first & 3) if k == 0 else 0)
        pos = end
    assert remaining <= 0 and remaining > -4
    assert bytes(got) == data
    return cpls


@pytest.mark.parametrize("rcb,size,mps", [(64, 256, 256), (64, 64, 256), (128, 256, 256),
                                          (128, 128, 128), (64, 128, 512), (128, 512, 512)])
def test_split_rules(rcb, size, mps):
    """Every start offset within two RCBs and many lengths up to 4 KiB (no 4 KiB crossing)."""
    rng = random.Random(rcb * 1000 + size)
    cases = [(0x10000 + off, n) for off in range(0, 2 * rcb + 4) for n in (0, 1, 2, 3, 4, 5, 63, 64, 65)]
    cases += [(0x20000 + rng.randrange(4096), rng.randrange(1, 513)) for _ in range(400)]
    cases += [(0x1_0000_3000 + rng.randrange(64), 4096 - 64), (0x40000, 4096), (0x40fc0, 64)]
    for addr, n in cases:
        if (addr & 0xFFF) + max(n, 1) > 0x1000:
            continue
        _check_split(addr, n, rcb, size, mps)


def test_split_examples():
    """Worked examples: RCB 64, 256-byte completions."""
    def shape(addr, n, rcb=64, size=256):
        return [(c.length * 4, c.byte_count, c.lower_address)
                for c in split_read_completions(_read(addr, n), bytes(4096), rcb, size)]
    # aligned 512 bytes: two 256-byte completions
    assert shape(0x1000, 512) == [(256, 512, 0x00), (256, 256, 0x00)]
    # starts 0x30 into an RCB: 16 bytes to the boundary, then 256, 256 and the rest
    assert shape(0x1030, 512) == [(16, 512, 0x30), (256, 496, 0x40), (240, 240, 0x40)]
    # unaligned byte start and end: byte count counts enabled bytes only
    assert shape(0x1012, 100) == [(48, 100, 0x12), (56, 54, 0x40)]
    # a byte start inside an RCB-aligned dword needs no split
    assert shape(0x1002, 100) == [(104, 100, 0x02)]
    # RCB 128: first completion up to 0x1080
    assert shape(0x1040, 256, 128, 128) == [(64, 256, 0x40), (128, 192, 0x00), (64, 64, 0x00)]
    # zero-length read: one dword, byte count 1, lower address of the dword
    assert shape(0x1003, 0) == [(4, 1, 0x00)]
    # a one-byte read at byte 3 of a dword
    assert shape(0x1003, 1) == [(4, 1, 0x03)]


def _reference_beats(tlp, data_width):
    """tlp_to_beats as it was written first, on cocotbext-pcie's pack_header."""
    lanes = data_width // 32
    hdr = int.from_bytes(bytes(tlp.pack_header()).ljust(16, b"\0"), "big")
    payload = bytes(tlp.data) if tlp.has_data() else b""
    dwords = len(payload) // 4
    if dwords == 0:
        return [(hdr, 0, 0, True, True)]
    nbeats = (dwords + lanes - 1) // lanes
    beats = []
    for k in range(nbeats):
        chunk = payload[k * lanes * 4:(k + 1) * lanes * 4]
        beats.append((hdr if k == 0 else 0, int.from_bytes(chunk, "little"), (1 << (len(chunk) // 4)) - 1,
                      k == 0, k == nbeats - 1))
    return beats


def test_tlp_codec():
    """The stream drivers' header codec gives the same Tlp / beats as cocotbext-pcie's
    unpack_header / pack_header (or the same exception) on random headers of every type."""
    rng = random.Random(2)
    types = list(TlpType)
    compared = 0
    for _ in range(20000):
        hdr = rng.getrandbits(128)
        if rng.random() < 0.8:      # mostly valid fmt/type pairs
            fmt, typ = types[rng.randrange(len(types))].value
            hdr = hdr & ~(0xFF << 120) | int(fmt) << 125 | typ << 120
        try:
            want = Tlp.unpack_header(hdr.to_bytes(16, "big"))
        except Exception as exc:    # noqa: BLE001 - the same error is expected
            with pytest.raises(type(exc)):
                beats_to_tlp(hdr, b"")
            continue
        have = beats_to_tlp(hdr, b"")
        assert have.__dict__ == want.__dict__, hex(hdr)
        if want.has_data() and want.length <= 256:
            want.data = bytearray(rng.randbytes(4 * want.length))
        for width in (64, 128, 256):
            assert tlp_to_beats(want, width) == _reference_beats(want, width), (hex(hdr), width)
        compared += 1
    assert compared > 5000
    req = _read(0x12344, 500)
    req.tc, req.attr, req.tag = 3, 2, 200
    assert completion_with_data(req, PcieId(0, 0, 0)).__dict__ == \
        Tlp.create_completion_data_for_tlp(req, PcieId(0, 0, 0)).__dict__


# --------------------------------------------------------------------------------------------
# simulations
# --------------------------------------------------------------------------------------------

def test_read_model(sim):
    """Direct-path answers as rc.py's; latency, overlap, splitting, interleaving, link rate."""
    run(sim, TOPLEVEL, "host_model", HERE, {"DATA_WIDTH": 64}, results_name="host_model")


# the host settings of the equivalence runs: the link path, the direct path with the defaults,
# the direct path without read latency, and the direct path with every option of the read
# model changed
EQUIV_RUNS = {
    "link": {"HOST_FAST_DMA": "0"},
    "direct": {"HOST_FAST_DMA": "1"},
    "direct-0": {"HOST_FAST_DMA": "1", "HOST_READ_LATENCY_NS": "0"},
    "direct-options": {"HOST_FAST_DMA": "1", "HOST_READ_LATENCY_NS": "250", "HOST_RCB": "128",
                       "HOST_CPL_SIZE": "128", "HOST_CPL_INTERLEAVE": "1", "HOST_LINK_BYTES_PER_NS": "4"},
}


# streams whose accesses follow the read latency: how many index polls and ring blocks, which
# used index writes (batched over the chains completed by then), interrupt decision reads, and
# the descriptor reads of the fetch contexts (issued ahead) interleaved with the walker's
# refills, and the MSI-X messages (checked above); the direct-0 run compares them access for
# access, the others compare every other
# stream (buffer data, status, used elements)
TIMING_STREAMS = {"R descriptor table", "R avail flags/idx", "R avail ring", "R used_event", "W used idx", "W msi",
                  "W avail_event"}


def _streams(accesses):
    """DMA accesses per stream (op + ring field or buffer kind), each in its order."""
    out = {}
    for stream, addr, length, digest in accesses:
        out.setdefault(stream, []).append((addr, length, digest))
    return out


def _speed(name, res):
    return (f"{name:15s} {res['tlps']:6d} TLPs {res['cycles']:9.0f} cycles  wall {res['wall_s']:6.2f} s "
            f"(CPU {res['cpu_s']:6.2f} s)  {res['tlps_per_wall_s']:7.0f} TLPs/s  "
            f"{res['cycles_per_wall_s']:8.0f} cycles/s  load {res['load_avg']:.1f}")


def test_equivalence(sim):
    """The same virtio-blk workload over the link and over the direct path: same statuses and
    data, same disk, same DMA accesses in the same order within each stream (the order between
    streams, e.g. a used_event read against the next chain's descriptor reads, follows the
    read latency; the ring and descriptor reads, used index writes and interrupt decisions
    follow it too, TIMING_STREAMS), every MSI-X message delivered to its callback once, with the same addresses
    and data. How many messages the device sends follows the read latency too (one interrupt
    decision covers what completed before its used_event read). Without read latency the direct
    path has the link path's timing: there every stream and the MSI-X messages must be the
    same, access for access."""
    params = {"DATA_WIDTH": 64}
    runs = {name: _results(sim, f"host_equiv-{name}", params, "host_equiv", env)
            for name, env in EQUIV_RUNS.items()}
    ref = runs["link"]
    ref_streams = _streams(ref["dma"])
    assert len(ref["results"]) >= 200 and len(ref["msix"]) >= 100
    lines = [f"\n{sim}: {len(ref['results'])} virtio-blk requests, DATA_WIDTH 64"]
    for name, res in runs.items():
        lines.append(_speed(name, res))
        if res is ref:
            continue
        assert res["results"] == ref["results"], f"{name}: request results differ"
        assert res["disk_blocks"] == ref["disk_blocks"], f"{name}: disk contents differ"
        # MSI-X delivery: every message the device sent ran its callback once, on every path
        sent = {}
        for _, data in res["msix"]:
            sent[str(data)] = sent.get(str(data), 0) + 1
        assert res["msi_callbacks"] == dict(sorted(sent.items())), f"{name}: MSI callbacks differ from the messages sent"
        assert sorted({tuple(m) for m in res["msix"]}) == sorted({tuple(m) for m in ref["msix"]}), \
            f"{name}: MSI-X addresses / data differ"
        if name == "direct-0":
            # cocotbext-pcie's link takes no simulated time: without added latency the device
            # sees the host answer as on the link path (to within the cycle a completion lands,
            # which may swap two TLPs of different sources in tx_arb's round robin), so every
            # stream, the timing-dependent ones included, and the MSI-X messages must be the
            # link path's, access for access
            assert res["msix"] == ref["msix"], f"{name}: MSI-X messages differ"
            assert len(res["dma"]) == len(ref["dma"]), f"{name}: {len(res['dma'])} vs {len(ref['dma'])} accesses"
        streams = _streams(res["dma"])
        assert sorted(streams) == sorted(ref_streams), f"{name}: DMA streams differ"
        for stream, accesses in ref_streams.items():
            if stream in TIMING_STREAMS and name != "direct-0":
                continue
            other = streams[stream]
            first = next((k for k, (a, b) in enumerate(zip(accesses, other)) if a != b), None)
            assert accesses == other, (f"{name}: DMA stream {stream!r} differs ({len(accesses)} vs "
                                       f"{len(other)} accesses, first difference at {first})")
    print("\n".join(lines))


def _perf_line(res):
    return (f"{res['tlps']} TLPs, {res['cycles']:.0f} cycles in {res['wall_s']:.2f} s wall "
            f"({res['cpu_s']:.2f} s CPU): {res['tlps_per_wall_s']:.0f} TLPs/s, "
            f"{res['cycles_per_wall_s']:.0f} cycles/s wall ({res['tlps_per_cpu_s']:.0f} TLPs/s, "
            f"{res['cycles_per_cpu_s']:.0f} cycles/s CPU; load {res['load_avg']:.1f})")


def test_perf(sim):
    """4 KiB reads at queue depth 16, DATA_WIDTH 256, over the direct DMA path and over the
    link: speed, printed (the reads are checked: status and data)."""
    params = {"DATA_WIDTH": 256}
    direct = _results(sim, "host_perf-direct", params, "host_perf", {"HOST_FAST_DMA": "1", "HOST_READ_LATENCY_NS": "1000"})
    link = _results(sim, "host_perf-link", params, "host_perf", {"HOST_FAST_DMA": "0"}, testcase="perf_reads")
    # the direct path without the read latency: the same simulated time as the link path, so
    # that the two paths' cost per TLP compare directly
    direct0 = _results(sim, "host_perf-direct0", params, "host_perf",
                       {"HOST_FAST_DMA": "1", "HOST_READ_LATENCY_NS": "0"}, testcase="perf_reads")
    assert direct["fast_dma"] and direct0["fast_dma"] and not link["fast_dma"]
    assert direct["read_latency_ns"] == 1000 and direct0["read_latency_ns"] == 0
    idle = json.loads((build_dir(sim, TOPLEVEL, params) / "runs" / "host_perf-direct.json.idle").read_text())
    print(f"\n{sim}: {direct['requests']} x 4 KiB reads at QD16, DATA_WIDTH 256\n"
          f"  direct DMA path, read latency 1000 ns: {_perf_line(direct)}\n"
          f"  direct DMA path, read latency 0:       {_perf_line(direct0)}\n"
          f"  link path (cocotbext-pcie):            {_perf_line(link)}\n"
          f"  idle device (no TLPs, the simulator's own ceiling): {idle['cycles_per_wall_s']:.0f} cycles/s wall, "
          f"{idle['cycles_per_cpu_s']:.0f} cycles/s CPU")
