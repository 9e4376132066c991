#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`make sim`: build the virtio-blk device, enumerate, negotiate and set up its queues in the
simulator, and print a summary. The simulator log goes to sim-build/sim/sim.log."""

import contextlib
import os
import sys
from pathlib import Path

from models import runner

DEMO_DIR = runner.REPO_ROOT / "tb" / "demo"
OUT_DIR = runner.BUILD_ROOT / "sim"


def main():
    sims = runner.selected_sims(os.environ.get("SIM") or "icarus")
    if len(sims) != 1:
        sys.exit("error: make sim runs one simulator; use SIM=icarus or SIM=verilator")
    sim = sims[0]
    if os.environ.get("DISK"):
        sys.exit("error: DISK= needs the block I/O path, which this build does not have yet; run make sim without DISK")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    summary = OUT_DIR / "summary.txt"
    log = OUT_DIR / "sim.log"
    summary.unlink(missing_ok=True)
    print(f"building and simulating virtio_blk_pci on {sim} (log: {log.relative_to(runner.REPO_ROOT)}) ...", flush=True)
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        # the simulator writes to the inherited file descriptors, not to sys.stdout
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            runner.run(sim, "virtio_blk_pci", "demo", DEMO_DIR, {"DATA_WIDTH": 64},
                       extra_env={"DEMO_SUMMARY": str(summary), "SIM_NAME": sim})
            error = None
        except AssertionError as exc:
            error = exc
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    if summary.exists():
        print(summary.read_text(), end="")
    if error is not None:
        print(f"error: the demo failed: {error}\n(last lines of {log}:)", file=sys.stderr)
        print("".join(log.read_text().splitlines(True)[-30:]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
