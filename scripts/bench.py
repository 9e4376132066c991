#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`make bench`: virtio-blk performance bench of the RTL in this tree.

Runs bench points (op read/write, request size, queue depth, DATA_WIDTH) with the cocotb module
tb/bench/blk_bench.py (one simulation per DATA_WIDTH) and writes into sim-build/bench/:

* results.json   one record per point (figures defined in docs/benchmarks.md)
* report.md      host settings, target comparison with the bottleneck the trace shows,
                 tables of every figure, simulator speed
* *.png          plots (matplotlib, Agg)
* speed.json     the simulator-speed point on the other simulator
* sim-<sim>-dw<N>.log   simulator logs

Quick subset (default): read and write at 4 KiB QD16, 512 B QD32 and 4 KiB QD1, DATA_WIDTH 256.
FULL=1: sizes 512 B .. 64 KiB x queue depths 1 .. 64 x DATA_WIDTH 64, 128, 256 (prints its
estimated run time first). SIM= picks the simulator of the sweep (default verilator); the
simulator-speed point also runs on the other one (BENCH_SPEED=0 skips it). Host settings come
from the environment as in models/pcie/host.py (HOST_READ_LATENCY_NS, HOST_RCB, ...).
BENCH_ESTIMATE=1 only prints the estimate.
"""

import contextlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))       # this tree's models/, whatever the venv's editable install says

from models import runner  # noqa: E402

OUT_DIR = runner.BUILD_ROOT / "bench"
BENCH_DIR = ROOT / "tb" / "bench"
TOPLEVEL = "virtio_blk_pci"
CAPACITY = 16384                    # sectors (8 MiB): room for 64 writes of 64 KiB in flight, twice
CLOCK_PERIOD_NS = 4                 # PcieHost's default clock: 250 MHz

OPS = ("read", "write")
SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
QDS = (1, 2, 4, 8, 16, 32, 64)
WIDTHS = (64, 128, 256)
QUICK = [(op, size, qd, 256) for op in OPS for size, qd in ((4096, 16), (512, 32), (4096, 1))]
SPEED_POINT = ("read", 4096, 16, 256)

# cost model of the estimate: wall seconds per TLP and per simulated cycle (Verilator / Icarus,
# measured on this project's 2-core machine; replaced by a fit of the last results when there is one)
DEFAULT_COST = {"verilator": (1.75e-4, 1.6e-5), "icarus": (3.0e-4, 5.0e-5)}
BUILD_S = {"verilator": 90.0, "icarus": 10.0}

KIND_LABELS = {
    "mrd_avail": "MRd avail ring", "mrd_desc": "MRd descriptor", "mrd_indirect": "MRd indirect table",
    "mrd_header": "MRd request header", "mrd_data": "MRd write data", "mrd_other": "MRd other",
    "mwr_data": "MWr read data", "mwr_status": "MWr status", "mwr_used": "MWr used ring", "msix": "MSI-X",
    "mwr_other": "MWr other", "cpl_to_host": "device Cpl (MMIO reads)", "cpl": "host CplD",
    "notify": "notify (MMIO MWr)", "host_req_other": "other host request",
}


def requests_for(size, qd):
    """Requests of a point: enough that the ramps are small, fewer for large requests. Each
    ramp (filling the queue at the start, draining it at the end) costs about one request
    latency (~2,000 cycles at 1 us host latency), so 4 KiB at QD16 needs ~500 requests to keep
    both under 5 % of the window."""
    if size <= 4096:
        return max(32 * qd, 64)
    if size <= 16384:
        return max(4 * qd, 32)
    return max(2 * qd, 16)


def dma_tags_default():
    """DMA_TAGS of the RTL top (its default: the bench does not override it)."""
    text = (runner.RTL_DIR / f"{TOPLEVEL}.v").read_text()
    m = re.search(r"parameter\s+DMA_TAGS\s*=\s*(\d+)", text)
    return int(m.group(1)) if m else None


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "rtl"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        return f"{branch} @ {head}" + (" (rtl/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ------------------------------------------------------------------------------------ estimate

def fit_cost(sim):
    """(s per TLP, s per cycle) from the last results of ``sim`` (least squares), else defaults."""
    rows = []
    for path in (OUT_DIR / "results.json", OUT_DIR / "speed.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows += [r for r in data if r.get("sim") == sim and r.get("wall_s")]
    default = DEFAULT_COST[sim]
    if len(rows) < 3:
        return default, "defaults"
    # least squares of wall = a * tlps + b * cycles
    s_tt = sum(r["traced_tlps"] ** 2 for r in rows)
    s_cc = sum(r["sim_cycles"] ** 2 for r in rows)
    s_tc = sum(r["traced_tlps"] * r["sim_cycles"] for r in rows)
    s_tw = sum(r["traced_tlps"] * r["wall_s"] for r in rows)
    s_cw = sum(r["sim_cycles"] * r["wall_s"] for r in rows)
    det = s_tt * s_cc - s_tc * s_tc
    if det <= 0:
        return default, "defaults"
    a = (s_tw * s_cc - s_cw * s_tc) / det
    b = (s_cw * s_tt - s_tw * s_tc) / det
    if a <= 0 or b <= 0:
        # one term is not resolved by these points: put it all on TLPs
        a = sum(r["wall_s"] for r in rows) / sum(r["traced_tlps"] for r in rows)
        b = 0.0
    return (a, b), f"fit of {len(rows)} earlier points"


def estimate_point(op, size, qd, dw, latency_cycles, serial_cycles):
    """(TLPs, cycles) a point will take, from a rough model of the device: ~16 TLPs of ring,
    descriptor, header, status, used-ring and MSI-X traffic per request plus the data TLPs;
    per request the transfer plus ``serial_cycles`` (the device's per-request time that queue
    depth does not hide), or the QD1 latency shared by ``qd`` requests, whichever is longer."""
    n = requests_for(size, qd)
    data_tlps = math.ceil(size / 256) + 1             # MWr of read data, or CplD of write data
    if op == "write":
        data_tlps += math.ceil(size / 512)            # the MRd of write data
    transfer = size / (dw // 8)
    per_req = max(transfer + serial_cycles, (latency_cycles + transfer) / qd)
    return n * (16 + data_tlps), n * per_req


def device_model():
    """(QD1 latency without the transfer, per-request cycles at depth) of the last results of
    this tree, or those of a device at the targets."""
    lat, serial = 1192.0 - 128.0, 0.0
    try:
        records = json.loads((OUT_DIR / "results.json").read_text())
    except (OSError, ValueError):
        return lat, serial
    qd1 = [r["latency_cycles"] - r["size"] / (r["data_width"] // 8) for r in records
           if r.get("qd") == 1 and r.get("latency_cycles")]
    deep = [r["cycles"] / r["requests"] - r["size"] / (r["data_width"] // 8) for r in records if r.get("qd", 0) >= 16]
    if qd1:
        lat = max(qd1)
    if deep:
        serial = max(0.0, min(deep))
    return lat, serial


def build_params(dw):
    return {"DATA_WIDTH": dw, "CAPACITY": f"64'd{CAPACITY}"}


def build_cost(sim, dw):
    """Seconds to build for ``dw`` (0 when a build exists; it is rebuilt only if rtl/ changed)."""
    return 0.0 if runner.build_dir(sim, TOPLEVEL, build_params(dw)).is_dir() else BUILD_S[sim]


def estimate(points, sim, speed):
    (a, b), source = fit_cost(sim)
    lat, serial = device_model()
    total_tlps = total_cycles = 0.0
    for op, size, qd, dw in points:
        t, c = estimate_point(op, size, qd, dw, lat, serial)
        total_tlps += t
        total_cycles += c
    wall = a * total_tlps + b * total_cycles
    wall += sum(build_cost(sim, dw) for dw in {p[3] for p in points})
    if speed:
        other = "icarus" if sim == "verilator" else "verilator"
        (a2, b2), _ = fit_cost(other)
        t, c = estimate_point(*SPEED_POINT, lat, serial)
        wall += a2 * t + b2 * c + build_cost(other, SPEED_POINT[3])
    return wall, total_tlps, total_cycles, (a, b), source


def fmt_duration(seconds):
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# ------------------------------------------------------------------------------------ running

class Redirect:
    """Send fds 1 and 2 (the simulator writes to them) to ``log``; ``say`` still reaches the
    terminal."""

    def __init__(self, log):
        self.log = log
        self.saved = None

    def __enter__(self):
        self.fh = open(self.log, "w")
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(contextlib.redirect_stdout(self.fh))
        self.stack.enter_context(contextlib.redirect_stderr(self.fh))
        os.dup2(self.fh.fileno(), 1)
        os.dup2(self.fh.fileno(), 2)
        return self

    def say(self, text):
        os.write(self.saved[0], (text + "\n").encode())

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        self.stack.close()
        self.fh.close()


def run_width(sim, dw, points, dma_tags, say_prefix=""):
    """Simulate ``points`` (op, size, qd) at DATA_WIDTH ``dw`` on ``sim``; returns
    (settings, records). Prints one line per finished point."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results = OUT_DIR / f"raw-{sim}-dw{dw}.json"
    log = OUT_DIR / f"sim-{sim}-dw{dw}.log"
    results.unlink(missing_ok=True)
    spec = [{"op": op, "size": size, "qd": qd, "requests": requests_for(size, qd)} for op, size, qd in points]
    # simulated-time limit: generous (20x the time at 1/20 of the bus rate plus 20 us per request)
    limit_ns = sum(p["requests"] * (20 * p["size"] / (dw // 8) + 5000) * CLOCK_PERIOD_NS for p in spec)
    env = {
        "BENCH_POINTS": json.dumps(spec),
        "BENCH_RESULTS": str(results),
        "BENCH_SIM": sim,
        "BENCH_TIMEOUT_MS": str(max(50, int(limit_ns / 1e6) + 20)),
        "PARAM_CAPACITY": str(CAPACITY),
    }
    if dma_tags is not None:
        env["BENCH_DMA_TAGS"] = str(dma_tags)
    params = build_params(dw)
    error = []

    def work():
        try:
            runner.run(sim, TOPLEVEL, "blk_bench", BENCH_DIR, params, results_name=f"bench-dw{dw}",
                       extra_env=env)
        except (AssertionError, RuntimeError, OSError) as exc:
            error.append(exc)

    shown = 0
    with Redirect(log) as out:
        out.say(f"{say_prefix}{sim}, DATA_WIDTH {dw}: {len(spec)} points (log: {log.relative_to(ROOT)})")
        thread = threading.Thread(target=work)
        thread.start()
        while True:
            thread.join(2.0)
            try:
                got = json.loads(results.read_text())["points"]
            except (OSError, ValueError, KeyError):
                got = []
            for rec in got[shown:]:
                lat = f", QD1 latency {rec['latency_cycles']:.0f} cycles" if rec.get("latency_cycles") else ""
                out.say(f"  {rec['op']:5s} {size_label(rec['size']):>6s} QD{rec['qd']:<2d} DW{dw}: "
                        f"{rec['bytes_per_cycle']:6.2f} B/cycle, efficiency {100 * rec['efficiency']:5.1f} %"
                        f"{lat}  [{rec['wall_s']:.1f} s]")
            shown = max(shown, len(got))
            if not thread.is_alive():
                break
    if error:
        tail = "".join(log.read_text().splitlines(True)[-30:])
        raise SystemExit(f"error: the bench failed on {sim} at DATA_WIDTH {dw}: {error[0]}\n"
                         f"(last lines of {log}:)\n{tail}")
    data = json.loads(results.read_text())
    return data["settings"], data["points"]


# ------------------------------------------------------------------------------------ analysis

def size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def point_label(r, dw=True):
    return f"{r['op']} {size_label(r['size'])} QD{r['qd']}" + (f" DW{r['data_width']}" if dw else "")


def latency_bound(r):
    """Target QD1 latency: 4 round trips x host latency + transfer + 64 cycles."""
    rt = r["host_latency_ns"] / r["clock_period_ns"]
    return 4 * rt + r["size"] / (r["data_width"] // 8) + 64


def overhead_shares(r, stream):
    """{group: beats} of ``stream`` in the window, grouped by what they carry."""
    groups = {}
    for key, beats in r["beats"].items():
        s, kind = key.split("/", 1)
        if s != stream:
            continue
        kind, _, sub = kind.partition(":")
        if kind in ("mwr_data",) or (kind == "cpl" and sub == "mrd_data"):
            g = "data"
        elif kind in ("mwr_used",):
            g = "used-ring writes"
        elif kind in ("msix",):
            g = "MSI-X writes"
        elif kind in ("mwr_status",):
            g = "status writes"
        elif kind.startswith("mrd_") or kind == "cpl":
            g = "descriptor/ring reads"
        else:
            g = "other"
        groups[g] = groups.get(g, 0) + beats
    return groups


def throughput_bottleneck(r):
    """Name the limit of a point from its trace facts (docs/benchmarks.md, "Bottleneck")."""
    tags = r.get("dma_tags")
    facts = (f"outstanding reads max {r['max_outstanding_reads']}"
             f"{f' of DMA_TAGS={tags}' if tags else ''}, avg {r['avg_outstanding_reads']:.1f}; "
             f"data moving {100 * r['data_busy']:.0f} % of the window; "
             f"tx_req busy {100 * r['tx_req_busy']:.0f} %, rx_cpl busy {100 * r['rx_cpl_busy']:.0f} %; "
             f"AXI read/write busy {100 * r['axi_read_busy']:.0f}/{100 * r['axi_write_busy']:.0f} %")
    if tags and r.get("at_max_tags") is not None and r["at_max_tags"] >= 0.25:
        return (f"tags exhausted: outstanding reads at DMA_TAGS={tags} for "
                f"{100 * r['at_max_tags']:.0f} % of the window", facts)
    busiest = max(("tx_req", r["tx_req_busy"]), ("rx_cpl", r["rx_cpl_busy"]), key=lambda x: x[1])
    if busiest[1] >= 0.85:
        groups = overhead_shares(r, busiest[0])
        over = {g: b for g, b in groups.items() if g != "data"}
        worst = max(over, key=over.get) if over else "data"
        total = sum(groups.values()) or 1
        return (f"{busiest[0]} saturated ({100 * busiest[1]:.0f} % of cycles carry a beat); "
                f"largest overhead: {worst} ({100 * groups.get(worst, 0) / total:.0f} % of its beats)", facts)
    axi = max(r["axi_read_busy"], r["axi_write_busy"])
    if axi >= 0.85:
        return f"back end's AXI port ({100 * axi:.0f} % of cycles carry a beat)", facts
    if r["reads_busy"] >= 0.5 and r["fetch_only_busy"] >= 0.3:
        peak = r["max_outstanding_reads"]
        return (f"descriptor-fetch round trips serialised: only ring/descriptor/header reads outstanding "
                f"for {100 * r['fetch_only_busy']:.0f} % of the window, "
                f"{r['read_concurrency']:.1f} reads at a time on average"
                f"{f' (max {peak} of DMA_TAGS={tags})' if tags else ''}", facts)
    if r["reads_busy"] >= 0.5:
        return (f"host round trips not overlapped: a read outstanding {100 * r['reads_busy']:.0f} % of the "
                f"window with {r['read_concurrency']:.1f} at a time on average (max "
                f"{r['max_outstanding_reads']}{f' of {tags}' if tags else ''})", facts)
    return (f"device-side gaps: no read outstanding for {100 * (1 - r['reads_busy']):.0f} % of the window "
            f"and data moving only {100 * r['data_busy']:.0f} %; largest gap between data TLPs "
            f"{r['data_gap_max_cycles']} cycles", facts)


def latency_bottleneck(r):
    rt_cycles = r["host_latency_ns"] / r["clock_period_ns"]
    chain = " > ".join(r.get("round_trip_kinds") or [])
    in_reads = r.get("read_busy_cycles_per_request") or 0
    rest = r["latency_cycles"] - in_reads
    facts = (f"{r['round_trips']:g} round trips ({chain}), reads outstanding {in_reads:.0f} cycles, "
             f"the rest {rest:.0f} cycles (transfer {r['size'] / (r['data_width'] // 8):.0f})")
    if r["round_trips"] > 4:
        return (f"descriptor-fetch round trips serialised: {r['round_trips']:g} host round trips "
                f"(4 allowed) = {in_reads:.0f} cycles of {r['latency_cycles']:.0f}", facts)
    if rest > r["size"] / (r["data_width"] // 8) + 64:
        return f"device time between round trips: {rest:.0f} cycles outside the reads", facts
    return f"round trips longer than the host latency ({rt_cycles:.0f} cycles)", facts


TARGETS = [
    # (name, selector, figure, threshold, kind)
    ("read 4 KiB QD>=16: efficiency >= 90 %", lambda r: r["op"] == "read" and r["size"] == 4096 and r["qd"] >= 16,
     0.90),
    ("write 4 KiB QD>=16: efficiency >= 90 %", lambda r: r["op"] == "write" and r["size"] == 4096 and r["qd"] >= 16,
     0.90),
    ("read 512 B QD32: efficiency >= 60 %", lambda r: r["op"] == "read" and r["size"] == 512 and r["qd"] == 32, 0.60),
    ("write 512 B QD32: efficiency >= 60 %", lambda r: r["op"] == "write" and r["size"] == 512 and r["qd"] == 32,
     0.60),
    ("read 4 KiB QD1: latency <= 4 round trips x host latency + size/(DATA_WIDTH/8) + 64 cycles",
     lambda r: r["op"] == "read" and r["size"] == 4096 and r["qd"] == 1, None),
]


def evaluate_targets(records):
    rows = []
    for name, sel, threshold in TARGETS:
        for r in sorted((r for r in records if sel(r)), key=lambda r: (r["data_width"], r["qd"])):
            if threshold is not None:
                met = r["efficiency"] >= threshold
                measured = f"{100 * r['efficiency']:.1f} %"
                required = f">= {100 * threshold:.0f} %"
                why = None if met else throughput_bottleneck(r)
            else:
                bound = latency_bound(r)
                met = r["latency_cycles"] is not None and r["latency_cycles"] <= bound
                measured = f"{r['latency_cycles']:.0f} cycles ({r['round_trips']:g} round trips)"
                required = f"<= {bound:.0f} cycles"
                why = None if met else latency_bottleneck(r)
            rows.append({"target": name, "point": point_label(r), "measured": measured, "required": required,
                         "met": met, "bottleneck": why[0] if why else None, "facts": why[1] if why else None})
    return rows


# ------------------------------------------------------------------------------------ plots

def make_plots(records, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []

    def save(fig, name, caption, layout=True, dpi=110, bbox_inches="tight"):
        """Write ``fig`` to out_dir/name, close it and list it with its caption."""
        if layout:
            fig.tight_layout()
        fig.savefig(out_dir / name, dpi=dpi, bbox_inches=bbox_inches)
        plt.close(fig)
        files.append((name, caption))

    records = sorted(records, key=lambda r: (r["data_width"], r["op"], r["size"], r["qd"]))
    widths = sorted({r["data_width"] for r in records})
    colors = {"read": "#1f77b4", "write": "#d62728"}

    # 1. efficiency of every point (bars), targets as markers
    if len(records) <= 48:
        fig, ax = plt.subplots(figsize=(10, 0.42 * len(records) + 1.6))
        labels = [point_label(r) for r in records]
        y = range(len(records))
        ax.barh(y, [100 * r["efficiency"] for r in records], color=[colors[r["op"]] for r in records], alpha=0.85,
                label="efficiency (payload / (DATA_WIDTH/8) per cycle)")
        ax.scatter([100 * r["link_efficiency"] for r in records], y, marker="|", s=200, color="black",
                   label="link efficiency", zorder=3)
        for k, r in enumerate(records):
            target = 90 if r["size"] == 4096 and r["qd"] >= 16 else 60 if r["size"] == 512 and r["qd"] == 32 else None
            if target:
                ax.scatter([target], [k], marker="D", s=30, color="green", zorder=4,
                           label="target" if "target" not in [t.get_label() for t in ax.collections] else None)
            ax.text(100 * r["efficiency"] + 1, k, f"{100 * r['efficiency']:.1f} %  ({r['bytes_per_cycle']:.2f} B/cycle)",
                    va="center", fontsize=8)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("% of DATA_WIDTH/8 bytes per cycle")
        ax.set_title("virtio-blk payload efficiency per bench point")
        ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(1, len(records)) - 0.1))
        save(fig, "efficiency.png", "payload efficiency and link efficiency of every point, targets marked")

    # 2. efficiency against request size, one line per queue depth (needs >= 2 sizes)
    series = {}
    for r in records:
        series.setdefault((r["data_width"], r["op"], r["qd"]), []).append(r)
    if any(len(v) >= 2 for v in series.values()):
        fig, axes = plt.subplots(len(widths), 2, figsize=(11, 3.4 * len(widths)), squeeze=False, sharey=True)
        for i, dw in enumerate(widths):
            for j, op in enumerate(OPS):
                ax = axes[i][j]
                for (w, o, qd), pts in sorted(series.items()):
                    if w != dw or o != op or len(pts) < 2:
                        continue
                    ax.plot([p["size"] for p in pts], [100 * p["efficiency"] for p in pts], marker="o", ms=3,
                            label=f"QD{qd}")
                ax.set_xscale("log", base=2)
                ax.set_xticks(list(SIZES), [size_label(s) for s in SIZES], fontsize=7)
                ax.set_ylim(0, 105)
                ax.grid(alpha=0.3)
                ax.set_title(f"{op}s, DATA_WIDTH {dw}", fontsize=10)
                if j == 0:
                    ax.set_ylabel("efficiency %")
                ax.legend(fontsize=7, ncol=2)
        fig.suptitle("efficiency against request size")
        save(fig, "efficiency_by_size.png", "efficiency against request size, one line per queue depth", dpi=100,
             bbox_inches=None)

    # 3. heat maps size x queue depth (full sweeps)
    for op in OPS:
        grid_ok = [dw for dw in widths
                   if len({(r["size"], r["qd"]) for r in records if r["op"] == op and r["data_width"] == dw}) >= 4]
        if not grid_ok:
            continue
        fig, axes = plt.subplots(1, len(grid_ok), figsize=(4.6 * len(grid_ok), 4.2), squeeze=False)
        for ax, dw in zip(axes[0], grid_ok):
            sizes = sorted({r["size"] for r in records if r["op"] == op and r["data_width"] == dw})
            qds = sorted({r["qd"] for r in records if r["op"] == op and r["data_width"] == dw})
            grid = [[float("nan")] * len(sizes) for _ in qds]
            for r in records:
                if r["op"] == op and r["data_width"] == dw:
                    grid[qds.index(r["qd"])][sizes.index(r["size"])] = 100 * r["efficiency"]
            im = ax.imshow(grid, origin="lower", vmin=0, vmax=100, cmap="viridis", aspect="auto")
            for a, row in enumerate(grid):
                for b, v in enumerate(row):
                    if v == v:
                        ax.text(b, a, f"{v:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if v < 60 else "black")
            ax.set_xticks(range(len(sizes)), [size_label(s) for s in sizes], fontsize=7, rotation=45)
            ax.set_yticks(range(len(qds)), [f"QD{q}" for q in qds], fontsize=7)
            ax.set_title(f"{op}s, DATA_WIDTH {dw}", fontsize=10)
        fig.colorbar(im, ax=list(axes[0]), label="efficiency %")
        save(fig, f"heatmap_{op}.png", f"efficiency of {op}s over request size and queue depth", layout=False, dpi=100,
             bbox_inches=None)

    # 4. QD1 latency: time with reads outstanding vs the rest, and the target bound
    qd1 = [r for r in records if r["qd"] == 1 and r.get("latency_cycles")]
    if qd1 and len(qd1) <= 48:
        fig, ax = plt.subplots(figsize=(10, 0.5 * len(qd1) + 2.2))
        y = range(len(qd1))
        reads = [r.get("read_busy_cycles_per_request") or 0 for r in qd1]
        rest = [r["latency_cycles"] - x for r, x in zip(qd1, reads)]
        ax.barh(y, reads, color="#ff7f0e", label="a host read outstanding")
        ax.barh(y, rest, left=reads, color="#7f7f7f", label="no read outstanding (device, transfer, writes)")
        for k, r in enumerate(qd1):
            ax.text(r["latency_cycles"] + 10, k, f"{r['latency_cycles']:.0f} cycles, {r['round_trips']:g} round trips",
                    va="center", fontsize=8)
            if r["op"] == "read" and r["size"] == 4096:
                ax.scatter([latency_bound(r)], [k], marker="D", color="green", zorder=3,
                           label="target bound")
        ax.set_yticks(list(y), [point_label(r) for r in qd1], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("cycles from the doorbell write reaching the device to the used-index write leaving it")
        ax.set_xlim(0, max(r["latency_cycles"] for r in qd1) * 1.35)
        ax.set_title("queue depth 1 latency")
        ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.6 / max(1, len(qd1)) - 0.15))
        save(fig, "latency_qd1.png", "QD1 latency split into time with a host read outstanding and the rest")

    # 5. TLPs per request by kind (stacked)
    sel = records if len(records) <= 24 else [r for r in records if r["data_width"] == widths[-1] and r["qd"] == 16]
    if sel:
        kinds = [k for k in KIND_LABELS if any(r["tlps"].get(k) for r in sel)]
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(sel) + 2.2))
        left = [0.0] * len(sel)
        cmap = plt.get_cmap("tab20")
        for n, kind in enumerate(kinds):
            vals = [r["tlps"].get(kind, 0) / r["requests"] for r in sel]
            ax.barh(range(len(sel)), vals, left=left, color=cmap(n % 20), label=KIND_LABELS[kind])
            left = [a + b for a, b in zip(left, vals)]
        for k, total in enumerate(left):
            ax.text(total + 0.3, k, f"{total:.1f}", va="center", fontsize=8)
        ax.set_yticks(range(len(sel)), [point_label(r) for r in sel], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("TLPs on the link per request (both directions)")
        ax.set_title("TLPs per request by kind")
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / max(1, len(sel))))
        save(fig, "tlps_per_request.png", "TLPs per request by kind")

    # 6. what is busy: data, streams, tags, AXI
    if len(records) <= 24:
        metrics = [("data_busy", "data moving"), ("tx_req_busy", "tx_req busy"), ("rx_cpl_busy", "rx_cpl busy"),
                   ("reads_busy", "a read outstanding"), ("fetch_only_busy", "only ring/descriptor/header reads outstanding"),
                   ("tags_used", "avg outstanding reads / DMA_TAGS"),
                   ("axi_busy", "AXI port busy")]
        fig, ax = plt.subplots(figsize=(10, 0.75 * len(records) + 1.8))
        h = 0.8 / len(metrics)
        for m, (key, label) in enumerate(metrics):
            vals = []
            for r in records:
                if key == "tags_used":
                    vals.append(100 * r["avg_outstanding_reads"] / r["dma_tags"] if r.get("dma_tags") else 0)
                elif key == "axi_busy":
                    vals.append(100 * max(r["axi_read_busy"], r["axi_write_busy"]))
                else:
                    vals.append(100 * r[key])
            ax.barh([k + m * h for k in range(len(records))], vals, height=h, label=label)
        ax.set_yticks([k + 0.4 - h / 2 for k in range(len(records))], [point_label(r) for r in records], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("% of the measurement window")
        ax.set_title("where the time goes: utilisation facts of the trace")
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.4 / max(1, len(records)) - 0.08))
        save(fig, "utilisation.png", "utilisation facts per point (the evidence behind the bottleneck column)")
    return files


# ------------------------------------------------------------------------------------ report

def pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


def write_report(records, settings, speed_rows, targets, plots, meta):
    s = settings
    lines = []
    out = lines.append
    out("# virtio-blk performance bench")
    out("")
    out(f"Generated by `make bench{' FULL=1' if meta['full'] else ''}` on {meta['date']}; RTL: {meta['git']}; "
        f"sweep on {meta['sim']}; {len(records)} points; run time {fmt_duration(meta['wall'])}. "
        "Definitions of every figure: docs/benchmarks.md.")
    out("")
    out("## Host settings")
    out("")
    out("| setting | value |")
    out("|---|---|")
    out(f"| clock | {s['clock_period_ns']} ns ({1000 / s['clock_period_ns']:.0f} MHz) |")
    out(f"| host read latency (MRd leaving tx_req to its first completion) | {s['host_latency_ns']:g} ns "
        f"({s['host_latency_ns'] / s['clock_period_ns']:.0f} cycles) |")
    out(f"| read completion boundary (RCB) | {s['rcb']} B |")
    out(f"| completion size after the first | {s['cpl_size']} B |")
    out(f"| completion interleaving | {'on' if s['cpl_interleave'] else 'off'} |")
    out(f"| link rate limit | {'none' if s['link_bytes_per_ns'] is None else str(s['link_bytes_per_ns']) + ' B/ns'} |")
    out(f"| Max_Payload_Size / Max_Read_Request_Size | {s['max_payload_size']} / {s['max_read_request_size']} B |")
    out(f"| device DMA path | {'direct (models/pcie/fast_host.py)' if s['fast_dma'] else 'cocotbext-pcie link'} |")
    out(f"| RTL DMA_TAGS (outstanding device reads) | {s['dma_tags']} |")
    out(f"| queue size, features | {s['queue_size']}, INDIRECT_DESC {'on' if s['indirect'] else 'off'}, "
        f"EVENT_IDX {'on' if s['event_idx'] else 'off'}, "
        f"NOTIFICATION_DATA {'on' if s.get('notification_data') else 'off'} |")
    out(f"| driver | models/virtio/blk.py VirtioBlk (Linux framing: header, data, status through an indirect "
        f"table), MSI-X completions, refill on completion |")
    out(f"| disk | {s['capacity_sectors']} sectors, AXI RAM (cocotbext-axi) |")
    out("")
    out("## Targets")
    out("")
    out("| target | point | measured | required | result | bottleneck (from the trace) |")
    out("|---|---|---|---|---|---|")
    for t in targets:
        out(f"| {t['target']} | {t['point']} | {t['measured']} | {t['required']} | "
            f"{'met' if t['met'] else '**missed**'} | {t['bottleneck'] or ''} |")
    if not targets:
        out("| (no point of this run is covered by a target) | | | | | |")
    missed = [t for t in targets if not t["met"]]
    if missed:
        out("")
        out("Trace facts behind each missed target:")
        out("")
        for t in missed:
            out(f"* {t['point']}: {t['facts']}")
    out("")
    out("## Results")
    out("")
    out("| op | size | QD | DW | requests | cycles | B/cycle | efficiency | link eff. | req/kcycle | "
        "QD1 latency (cycles) | round trips |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records:
        lat = "-" if r["latency_cycles"] is None else f"{r['latency_cycles']:.0f}"
        trips = "-" if r["round_trips"] is None else f"{r['round_trips']:g}"
        out(f"| {r['op']} | {size_label(r['size'])} | {r['qd']} | {r['data_width']} | {r['requests']} | "
            f"{r['cycles']:.0f} | {r['bytes_per_cycle']:.2f} | {pct(r['efficiency'])} | {pct(r['link_efficiency'])} | "
            f"{r['reqs_per_kcycle']:.2f} | {lat} | {trips} |")
    out("")
    out("### TLPs per request by kind")
    out("")
    kinds = [k for k in KIND_LABELS if any(r["tlps"].get(k) for r in records)]
    out("| point | " + " | ".join(KIND_LABELS[k] for k in kinds) + " | total |")
    out("|---|" + "---:|" * (len(kinds) + 1))
    for r in records:
        per = [r["tlps"].get(k, 0) / r["requests"] for k in kinds]
        out(f"| {point_label(r)} | " + " | ".join(f"{v:.2f}" if v else "-" for v in per)
            + f" | {sum(per):.2f} |")
    out("")
    out("### Trace facts")
    out("")
    out("| point | data moving | tx_req busy | rx_cpl busy | read outstanding | fetch-only | "
        "outstanding reads max / avg | at DMA_TAGS | AXI rd / wr busy | max data gap (cycles) | notifies |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records:
        out(f"| {point_label(r)} | {pct(r['data_busy'])} | {pct(r['tx_req_busy'])} | {pct(r['rx_cpl_busy'])} | "
            f"{pct(r['reads_busy'])} | {pct(r['fetch_only_busy'])} | {r['max_outstanding_reads']} / "
            f"{r['avg_outstanding_reads']:.1f} | {pct(r.get('at_max_tags'))} | "
            f"{pct(r['axi_read_busy'])} / {pct(r['axi_write_busy'])} | "
            f"{'-' if r['data_gap_max_cycles'] is None else r['data_gap_max_cycles']} | {r['notifies']} |")
    qd1 = [r for r in records if r.get("round_trip_kinds") is not None]
    if qd1:
        out("")
        out("### Queue depth 1: the host round trips of one request")
        out("")
        out("| point | latency (cycles) | round trips | what each round trip reads (cycles) | "
            "reads outstanding | rest |")
        out("|---|---:|---:|---|---:|---:|")
        for r in qd1:
            chain = ", ".join(f"{k} ({c:g})" for k, c in zip(r["round_trip_kinds"], r.get("round_trip_cycles", [])))
            reads = r.get("read_busy_cycles_per_request") or 0
            out(f"| {point_label(r)} | {r['latency_cycles']:.0f} | {r['round_trips']:g} | {chain} | {reads:.0f} | "
                f"{r['latency_cycles'] - reads:.0f} |")
    out("")
    out("## Simulator speed")
    out("")
    out("| simulator | point | requests | simulated cycles | wall s | cycles per wall s | TLPs per wall s |")
    out("|---|---|---:|---:|---:|---:|---:|")
    for r in speed_rows:
        out(f"| {r['sim']} | {point_label(r)} | {r['requests']} | {r['sim_cycles']} | {r['wall_s']:.2f} | "
            f"{r['cycles_per_wall_s']:,.0f} | {r['tlps_per_wall_s']:,.0f} |")
    out("")
    out("Wall time of the point's I/O only (bring-up, checks and the build excluded), on a machine shared with "
        f"other jobs (load average {meta['load']:.1f} at the end). TLPs: every TLP on the four streams.")
    if plots:
        out("")
        out("## Plots")
        out("")
        for name, what in plots:
            out(f"* [{name}]({name}): {what}")
            out("")
            out(f"  ![{what}]({name})")
            out("")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------ main

def main():
    full = os.environ.get("FULL", "").strip() not in ("", "0")
    sims = runner.selected_sims(os.environ.get("SIM") or "verilator")
    if len(sims) != 1:
        sys.exit("error: make bench runs its sweep on one simulator; use SIM=icarus or SIM=verilator")
    sim = sims[0]
    other = "icarus" if sim == "verilator" else "verilator"
    speed = os.environ.get("BENCH_SPEED", "1").strip() not in ("0", "no", "off")
    points = ([(op, size, qd, dw) for dw in WIDTHS for op in OPS for size in SIZES for qd in QDS]
              if full else list(QUICK))
    dma_tags = dma_tags_default()
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    wall_est, tlps_est, cycles_est, (a, b), source = estimate(points, sim, speed)
    print(f"bench: {'full sweep' if full else 'quick subset'}: {len(points)} points on {sim}"
          f"{f' + the speed point on {other}' if speed else ''}; estimated {fmt_duration(wall_est)} "
          f"(~{tlps_est / 1e6:.2f} M TLPs, ~{cycles_est / 1e6:.1f} M cycles at {a * 1e3:.3f} ms/TLP + "
          f"{b * 1e6:.1f} us/cycle, {source})", flush=True)
    if os.environ.get("BENCH_ESTIMATE", "").strip() not in ("", "0"):
        return 0
    print(f"bench: host read latency {os.environ.get('HOST_READ_LATENCY_NS', '1000 (default)')} ns, "
          f"RCB {os.environ.get('HOST_RCB', '64 (default)')}, clock {CLOCK_PERIOD_NS} ns; "
          f"RTL DMA_TAGS {dma_tags}", flush=True)

    start = time.time()
    records = []
    settings = None
    widths = sorted({p[3] for p in points}, reverse=True)
    for k, dw in enumerate(widths):
        pts = [(op, size, qd) for op, size, qd, w in points if w == dw]
        settings, recs = run_width(sim, dw, pts, dma_tags, f"[{k + 1}/{len(widths)}] ")
        records += recs
    records.sort(key=lambda r: (r["data_width"], r["op"], r["size"], r["qd"]))
    (OUT_DIR / "results.json").write_text(json.dumps(records, indent=1) + "\n")

    speed_rows = []
    main_speed = [r for r in records if (r["op"], r["size"], r["qd"], r["data_width"]) == SPEED_POINT]
    speed_rows += main_speed
    if speed:
        op, size, qd, dw = SPEED_POINT
        _, recs = run_width(other, dw, [(op, size, qd)], dma_tags, "[speed] ")
        speed_rows += recs
        (OUT_DIR / "speed.json").write_text(json.dumps(recs, indent=1) + "\n")
        mine = main_speed[0] if main_speed else None
        if mine and abs(recs[0]["cycles"] - mine["cycles"]) > 0.02 * mine["cycles"]:
            print(f"bench: note: {other} took {recs[0]['cycles']:.0f} cycles for {point_label(mine)}, "
                  f"{sim} {mine['cycles']:.0f}", flush=True)
    if not main_speed and not speed:
        speed_rows = records[:1]
    speed_rows.sort(key=lambda r: r["sim"])

    targets = evaluate_targets(records)
    plots = make_plots(records, OUT_DIR)
    meta = {"full": full, "sim": sim, "git": git_describe(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "wall": time.time() - start, "load": os.getloadavg()[0]}
    settings = dict(settings, dma_tags=dma_tags)
    report = write_report(records, settings, speed_rows, targets, plots, meta)
    (OUT_DIR / "report.md").write_text(report)

    print("")
    for t in targets:
        print(f"  {'met   ' if t['met'] else 'MISSED'} {t['target']} [{t['point']}]: {t['measured']}"
              f"{'' if t['met'] else ' -- ' + t['bottleneck']}")
    rel = OUT_DIR.relative_to(ROOT)
    print(f"\nbench: {len(records)} points in {fmt_duration(meta['wall'])}; wrote {rel}/report.md, "
          f"{rel}/results.json and {len(plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
