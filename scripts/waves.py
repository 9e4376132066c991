#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Record the waves of one cocotb test: ``make waves TEST=<name> [SIM=icarus|verilator]``.

1. Finds the ``tb/*/test_*.py`` file that defines ``async def <TEST>``.
2. Runs the first pytest item of that file for SIM (default icarus) with
   ``WAVES=1`` and a cocotb filter selecting only TEST; ``models.runner``
   builds the design with waves and copies the dump of the run to
   ``sim-build/waves/<TEST>.fst`` (FST for both simulators).
3. Reads the signal names out of the FST and writes the GTKWave save file
   ``sim-build/waves/<TEST>.gtkw`` with the groups below.

If the pytest function calls ``models.runner.run`` several times, the dump of
the last call is kept.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPLEVEL = "virtio_blk_pci"
WAVES_DIR = REPO / "sim-build" / "waves"
USAGE = "usage: make waves TEST=<cocotb test name> [SIM=icarus|verilator]"

#: Groups of top-level ports, by name prefix.
PORT_GROUPS = [
    ("rx_req", "rx_req_tlp_"),
    ("tx_cpl", "tx_cpl_tlp_"),
    ("tx_req", "tx_req_tlp_"),
    ("rx_cpl", "rx_cpl_tlp_"),
]

#: Signals of the "registers" group, as paths relative to the top level.
REGISTER_SIGNALS = [
    "u_func.u_completer.state_reg",
    "u_func.u_completer.bus_num_reg",
    "u_func.u_completer.device_num_reg",
    "u_func.bar_reg_addr",
    "u_func.bar_reg_wr",
    "u_func.bar_reg_rd",
    "u_func.reg_be",
    "u_func.reg_wdata",
    "u_func.bar_reg_rdata",
    "u_func.cfg_reg_addr",
    "u_func.cfg_reg_wr",
    "u_func.cfg_reg_rdata",
    "u_func.u_common.device_status_reg",
    "u_func.u_common.reset_pending_reg",
    "u_func.u_common.driver_features_reg",
    "u_func.u_common.queue_select_reg",
    "u_func.u_common.config_generation_reg",
    "u_func.u_common.config_msix_vector_reg",
    "u_func.u_common.isr_reg",
    "u_func.u_msix.msix_enable",
    "u_func.u_msix.function_mask",
    "u_func.u_msix.vector_mask_reg",
    "u_func.u_msix.pending_reg",
    "intx_assert",
    "notify_valid",
    "notify_queue",
]


def fail(message: str, code: int = 1) -> "NoReturn":  # noqa: F821
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


# ------------------------------------------------------------- finding the test


def find_test_files(tb_dir: Path, test: str) -> list[Path]:
    pattern = re.compile(rf"^\s*async\s+def\s+{re.escape(test)}\s*\(", re.MULTILINE)
    return [f for f in sorted(tb_dir.glob("*/test_*.py")) if pattern.search(f.read_text(errors="replace"))]


def pytest_env(sim: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SIM"] = sim
    return env


def first_item(test_file: Path, sim: str, tb_root: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", str(test_file)],
        cwd=tb_root, env=pytest_env(sim), capture_output=True, text=True, check=False,
    )
    items = [line.strip() for line in out.stdout.splitlines() if "::" in line]
    if not items:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-2000:])
        fail(f"{test_file} has no pytest test function to run on {sim}")
    return items[0]


# ----------------------------------------------------------------- FST reading


def _lz4_block(src: bytes, size: int) -> bytes:
    """Decompress one LZ4 block (the format FST uses for hierarchy blocks)."""
    dst = bytearray()
    i = 0
    while i < len(src):
        token = src[i]
        i += 1
        length = token >> 4
        if length == 15:
            while True:
                b = src[i]
                i += 1
                length += b
                if b != 255:
                    break
        dst += src[i:i + length]
        i += length
        if i >= len(src):
            break
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        length = token & 15
        if length == 15:
            while True:
                b = src[i]
                i += 1
                length += b
                if b != 255:
                    break
        length += 4
        start = len(dst) - offset
        if offset >= length:
            dst += dst[start:start + length]
        else:
            for k in range(length):
                dst.append(dst[start + k])
    if len(dst) != size:
        raise ValueError("corrupt LZ4 block in FST hierarchy")
    return bytes(dst)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _cstr(data: bytes, i: int) -> tuple[str, int]:
    end = data.index(0, i)
    return data[i:end].decode(errors="replace"), end + 1


def _hierarchy(data: bytes) -> bytes:
    i = 0
    while i + 9 <= len(data):
        kind = data[i]
        length = struct.unpack(">Q", data[i + 1:i + 9])[0]
        payload = data[i + 9:i + 1 + length]
        i += 1 + length
        if kind == 254:  # FST_BL_ZWRAPPER: the whole file, gzipped
            return _hierarchy(gzip.decompress(payload[8:]))
        if kind == 4:  # FST_BL_HIER (gzip)
            return gzip.decompress(payload[8:])
        if kind == 6:  # FST_BL_HIER_LZ4
            return _lz4_block(payload[8:], struct.unpack(">Q", payload[:8])[0])
        if kind == 7:  # FST_BL_HIER_LZ4DUO
            size = struct.unpack(">Q", payload[:8])[0]
            once, j = _varint(payload, 8)
            return _lz4_block(_lz4_block(payload[j:], once), size)
    raise ValueError("no hierarchy block (was the simulation cut short?)")


def fst_signals(path: Path) -> list[str]:
    """Full names of all variables in an FST file, as GTKWave shows them
    (``top.sub.sig`` or ``top.sub.vec[7:0]``), in declaration order."""
    data = _hierarchy(path.read_bytes())
    names: list[str] = []
    scope: list[str] = []
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag == 254:  # scope: type, name, component
            i += 1
            name, i = _cstr(data, i)
            _, i = _cstr(data, i)
            scope.append(name)
        elif tag == 255:  # upscope
            scope.pop()
        elif tag == 252:  # attribute begin: type, subtype, name, argument
            i += 2
            _, i = _cstr(data, i)
            _, i = _varint(data, i)
        elif tag == 253:  # attribute end
            pass
        else:  # variable: direction, name, length, alias
            i += 1
            name, i = _cstr(data, i)
            _, i = _varint(data, i)
            _, i = _varint(data, i)
            names.append(".".join(scope + [name.replace(" [", "[")]))
    return names


def _base(name: str) -> str:
    """Signal name without its bit range."""
    return re.sub(r"\[[^\]]*\]$", "", name)


def top_scope(names: list[str]) -> str:
    scopes = {n.rsplit(".", 1)[0] for n in names if "." in n}
    for candidate in sorted(scopes, key=len):
        if candidate.split(".")[-1] == TOPLEVEL:
            return candidate
    roots = sorted({s.split(".")[0] for s in scopes if not s.startswith("$")})
    if roots == ["TOP"]:
        children = sorted({s.split(".")[1] for s in scopes if s.count(".") >= 1 and s.startswith("TOP.")})
        if children:
            return "TOP." + children[0]
    if not roots:
        raise ValueError("the dump holds no scopes")
    return roots[0]


# ------------------------------------------------------------------ .gtkw file


def groups_for(names: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    top = top_scope(names)
    direct = [n for n in names if n.rsplit(".", 1)[0] == top]
    by_base = {}
    for n in names:
        by_base.setdefault(_base(n), n)
    groups = []
    for group, prefix in PORT_GROUPS:
        groups.append((group, [n for n in direct if n.rsplit(".", 1)[1].startswith(prefix)]))
    regs, missing = [], []
    for rel in REGISTER_SIGNALS:
        full = by_base.get(f"{top}.{rel}")
        (regs if full else missing).append(full or rel)
    groups.append(("registers", regs))
    return groups, missing


def write_gtkw(path: Path, fst: Path, groups: list[tuple[str, list[str]]]) -> None:
    lines = [
        "[*] GTKWave save file written by scripts/waves.py",
        f'[dumpfile] "{fst}"',
        f'[savefile] "{path}"',
        "[timestart] 0",
        "[size] 1600 900",
        "[signals_width] 320",
        "[sst_expanded] 1",
        "[sst_vpaned_height] 250",
    ]
    for group, signals in groups:
        if not signals:
            continue
        lines += ["@800200", f"-{group}"]
        for sig in signals:
            lines += ["@22" if sig.endswith("]") else "@28", sig]
        lines += ["@1000200", f"-{group}"]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=USAGE)
    parser.add_argument("--test", default="", help="name of the cocotb test (async def <name>)")
    parser.add_argument("--tb-dir", type=Path, default=REPO / "tb", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    test = args.test.strip()
    if not test:
        fail(f"TEST is missing; {USAGE}", 2)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", test):
        fail(f"TEST '{test}' is not a Python function name; {USAGE}", 2)

    from models.runner import filter_for_tests, selected_sims

    sims = selected_sims(os.environ.get("SIM") or "icarus")
    if len(sims) != 1:
        fail("make waves runs one simulator; use SIM=icarus or SIM=verilator", 2)
    sim = sims[0]

    files = find_test_files(args.tb_dir.resolve(), test)
    if not files:
        fail(f"no {args.tb_dir.name}/*/test_*.py defines 'async def {test}'")
    if len(files) > 1:
        fail(f"'async def {test}' is defined in several files: {', '.join(str(f) for f in files)}")
    test_file = files[0]
    item = first_item(test_file, sim, args.tb_dir.resolve().parent)

    WAVES_DIR.mkdir(parents=True, exist_ok=True)
    fst = WAVES_DIR / f"{test}.fst"
    gtkw = WAVES_DIR / f"{test}.gtkw"
    fst.unlink(missing_ok=True)
    gtkw.unlink(missing_ok=True)

    env = pytest_env(sim)
    env.update(WAVES="1", WAVES_FILE=str(fst), COCOTB_TEST_FILTER=filter_for_tests([test]))
    print(f"waves: running {test} from {item} on {sim}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", item],
                            cwd=args.tb_dir.resolve().parent, env=env, check=False)

    if not fst.is_file():
        fail(f"no dump was produced for {test} (pytest exit code {result.returncode})")
    try:
        names = fst_signals(fst)
        groups, missing = groups_for(names)
    except (ValueError, IndexError, OSError) as exc:
        fail(f"cannot read the signal names from {fst}: {exc}")
    write_gtkw(gtkw, fst, groups)
    if missing:
        print(f"waves: not in the dump, left out of 'registers': {', '.join(missing)}")
    rel = os.path.relpath
    print(f"waves: {rel(fst)}")
    print(f"waves: {rel(gtkw)}   (gtkwave {rel(gtkw)})")
    if result.returncode != 0:
        print(f"waves: note: {test} failed on {sim}; the waves show the failing run", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
