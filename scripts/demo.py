#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`make sim`: build the virtio-blk device, enumerate, negotiate and set up its queues in the
simulator, write a pattern to the disk and read it back, and print a summary.

DISK=path.img uses that raw image as the disk (its size sets the capacity; a multiple of 512
bytes); the default is a generated 1 MiB image. The disk after the run is saved to
sim-build/sim/disk.img (the image given is never modified). The figures go to
sim-build/sim/summary.json; the simulator log to sim-build/sim/sim.log."""

import contextlib
import os
import sys
from pathlib import Path

from models import runner
from models.ref.disk_image import DiskImageError, check_image_size

DEFAULT_CAPACITY = 2048          # sectors: the generated 1 MiB disk
MAX_DISK_BYTES = 1 << 32         # the device's AXI4 disk port has 32 address bits

DEMO_DIR = runner.REPO_ROOT / "tb" / "demo"
OUT_DIR = runner.BUILD_ROOT / "sim"


def main():
    sims = runner.selected_sims(os.environ.get("SIM") or "icarus")
    if len(sims) != 1:
        sys.exit("error: make sim runs one simulator; use SIM=icarus or SIM=verilator")
    sim = sims[0]
    disk = os.environ.get("DISK") or ""
    capacity = DEFAULT_CAPACITY
    if disk:
        disk = os.path.abspath(disk)
        try:
            if not os.path.isfile(disk):
                raise DiskImageError(f"{disk}: no such disk image file")
            size = os.path.getsize(disk)
            check_image_size(size, MAX_DISK_BYTES // 512, disk)
            if size == 0:
                raise DiskImageError(f"{disk}: the disk image is empty")
        except DiskImageError as exc:
            sys.exit(f"error: {exc} (DISK= takes a raw image whose size is a multiple of 512 bytes, at most 4 GiB)")
        capacity = size // 512
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    summary = OUT_DIR / "summary.txt"
    figures = OUT_DIR / "summary.json"
    saved = OUT_DIR / "disk.img"
    log = OUT_DIR / "sim.log"
    for path in (summary, figures):
        path.unlink(missing_ok=True)
    print(f"building and simulating virtio_blk_pci on {sim} (log: {log.relative_to(runner.REPO_ROOT)}) ...", flush=True)
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        # the simulator writes to the inherited file descriptors, not to sys.stdout
        saved_fds = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            runner.run(sim, "virtio_blk_pci", "demo", DEMO_DIR, {"DATA_WIDTH": 64, "CAPACITY": capacity},
                       extra_env={"DEMO_SUMMARY": str(summary), "DEMO_JSON": str(figures), "SIM_NAME": sim,
                                  "DEMO_DISK": disk, "DEMO_DISK_OUT": str(saved)})
            error = None
        except AssertionError as exc:
            error = exc
        finally:
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
    if summary.exists():
        print(summary.read_text(), end="")
    if figures.exists():
        print(f"figures: {figures.relative_to(runner.REPO_ROOT)}")
    if error is not None:
        print(f"error: the demo failed: {error}\n(last lines of {log}:)", file=sys.stderr)
        print("".join(log.read_text().splitlines(True)[-30:]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
