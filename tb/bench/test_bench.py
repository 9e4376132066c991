# SPDX-License-Identifier: Apache-2.0
"""Smoke test of `make bench` (scripts/bench.py, cocotb module blk_bench.py): two tiny bench
points (4 KiB reads at QD1, 512 B writes at QD2) on each simulator; the records must have the
keys of docs/benchmarks.md and figures consistent with each other and with the trace, and the
report and plots must build from them. The bench checks the data of every point itself
(reference RAM disk, DMA checker, protocol checker): a wrong byte fails the simulation."""

import importlib.util
import json
import math
from pathlib import Path

from models.runner import REPO_ROOT, build_dir, run

HERE = Path(__file__).parent
POINTS = [
    {"op": "read", "size": 4096, "qd": 1, "requests": 4},
    {"op": "write", "size": 512, "qd": 2, "requests": 6},
]
KEYS = {"op", "size", "qd", "data_width", "host_latency_ns", "requests", "cycles", "bytes_per_cycle", "efficiency",
        "link_efficiency", "reqs_per_kcycle", "latency_cycles", "round_trips", "tlps"}


def _bench_script():
    spec = importlib.util.spec_from_file_location("bench_script", REPO_ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _close(a, b, rel=2e-3):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-3)


def test_bench_smoke(sim, tmp_path):
    bench = _bench_script()
    params = bench.build_params(256)
    out = build_dir(sim, bench.TOPLEVEL, params) / "runs" / "bench-smoke.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    run(sim, bench.TOPLEVEL, "blk_bench", HERE, params, results_name="bench-smoke",
        extra_env={"BENCH_POINTS": json.dumps(POINTS), "BENCH_RESULTS": str(out), "BENCH_SIM": sim,
                   "BENCH_DMA_TAGS": str(bench.dma_tags_default()), "BENCH_TIMEOUT_MS": "20",
                   "PARAM_CAPACITY": str(bench.CAPACITY), "HOST_READ_LATENCY_NS": "1000", "HOST_RCB": "64"})
    data = json.loads(out.read_text())
    records = data["points"]
    assert len(records) == len(POINTS)
    settings = data["settings"]
    assert settings["host_latency_ns"] == 1000 and settings["rcb"] == 64 and settings["clock_period_ns"] == 4

    for rec, point in zip(records, POINTS):
        assert KEYS <= set(rec), KEYS - set(rec)
        assert (rec["op"], rec["size"], rec["qd"], rec["requests"]) == tuple(point[k] for k in
                                                                             ("op", "size", "qd", "requests"))
        assert rec["data_width"] == 256 and rec["host_latency_ns"] == 1000 and rec["sim"] == sim
        assert rec["data_ok"] is True
        payload = rec["size"] * rec["requests"]
        cycles = rec["cycles"]
        assert cycles > 0
        assert _close(rec["bytes_per_cycle"], payload / cycles)
        assert _close(rec["efficiency"], rec["bytes_per_cycle"] / 32)
        assert 0 < rec["efficiency"] <= 1
        assert _close(rec["reqs_per_kcycle"], rec["requests"] * 1000 / cycles)
        tlps = rec["tlps"]
        assert set(tlps) == set(bench.KIND_LABELS), set(tlps) ^ set(bench.KIND_LABELS)
        assert all(isinstance(v, int) and v >= 0 for v in tlps.values())
        n = sum(tlps.values())
        assert n == rec["link_tlps"]
        assert rec["link_bytes"] == rec["link_payload_bytes"] + 24 * n
        assert rec["link_payload_bytes"] >= payload
        assert _close(rec["link_efficiency"], payload / rec["link_bytes"])
        assert rec["link_efficiency"] < 1
        # the trace agrees with what the requests must have done
        mps = settings["max_payload_size"]
        assert tlps["notify"] >= 1 and tlps["msix"] >= 1
        assert tlps["mwr_status"] >= rec["requests"]
        assert tlps["mwr_used"] >= rec["requests"] and rec["used_idx_writes"] >= 1
        # (every read answered: an open read fails the bench; a read leaving near the end of the
        # window may have its completions after it, so cpl >= reads need not hold in the window)
        assert tlps["cpl"] >= tlps["mrd_header"]
        assert tlps["mrd_header"] >= rec["requests"]
        if rec["op"] == "read":
            assert tlps["mwr_data"] >= payload // mps and tlps["mrd_data"] == 0
            assert rec["beats"]["tx_req/mwr_data"] == payload // 32
        else:
            assert tlps["mrd_data"] >= payload // settings["max_read_request_size"] and tlps["mwr_data"] == 0
            assert rec["beats"]["rx_cpl/cpl:mrd_data"] == payload // 32
        assert _close(rec["data_busy"], payload / 32 / cycles)
        assert rec["max_outstanding_reads"] <= rec["dma_tags"]
        assert rec["max_outstanding_reads"] >= 1 and 0 < rec["reads_busy"] <= 1
        if rec["qd"] == 1:
            trip = rec["host_latency_ns"] / rec["clock_period_ns"]
            assert rec["round_trips"] >= 1 and rec["latency_samples"] == rec["requests"]
            # each round trip lasts at least the host latency; the last may end after the used index
            assert rec["latency_cycles"] >= (rec["round_trips"] - 1) * trip + rec["size"] / 32
            assert rec["round_trip_kinds"] and len(rec["round_trip_kinds"]) == len(rec["round_trip_cycles"])
        else:
            assert rec["latency_cycles"] is None and rec["round_trips"] is None

    # the report and the plots build from these records
    targets = bench.evaluate_targets(records)
    assert [t["point"] for t in targets] == ["read 4 KiB QD1 DW256"]
    assert targets[0]["met"] or targets[0]["bottleneck"]
    plots = bench.make_plots(records, tmp_path)
    assert plots and all((tmp_path / name).stat().st_size > 1000 for name, _ in plots)
    meta = {"full": False, "sim": sim, "git": "test", "date": "today", "wall": 1.0, "load": 0.0}
    report = bench.write_report(records, dict(settings, dma_tags=records[0]["dma_tags"]), records[:1], targets,
                                plots, meta)
    assert "## Targets" in report and "read 4 KiB QD1 DW256" in report and "1000 ns" in report
