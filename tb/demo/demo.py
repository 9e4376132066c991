# SPDX-License-Identifier: Apache-2.0
"""The `make sim` demo: enumerate the virtio-blk function, probe it with the virtio driver,
set up its queue with MSI-X, write a pattern to the disk and read it back, resize the disk to
show a config-change interrupt, and write a summary a person can read to $DEMO_SUMMARY and the
figures to $DEMO_JSON (printed by scripts/demo.py).

The disk memory is loaded from $DEMO_DISK (a raw image; default: a generated pattern) and
saved to $DEMO_DISK_OUT at the end."""

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

from models.pcie import attach_root_complex
from models.virtio import uapi
from models.pcie.dma_checker import DmaChecker
from models.ref.disk_image import load_disk_image, save_disk_image
from models.virtio.blk import VirtioBlk
from models.virtio.virtio import virtio_dev_probe, virtio_pci_probe

CAP_NAMES = {uapi.PCI_CAP_ID_EXP: "PCI Express", uapi.PCI_CAP_ID_MSIX: "MSI-X", uapi.PCI_CAP_ID_VNDR: "vendor"}
CFG_TYPE_NAMES = {getattr(uapi, n): n[len("VIRTIO_PCI_CAP_"):] for n in dir(uapi)
                  if n.startswith("VIRTIO_PCI_CAP_") and n.endswith("_CFG")}
STATUS_NAMES = [(getattr(uapi, n), n[len("VIRTIO_CONFIG_S_"):]) for n in
                ("VIRTIO_CONFIG_S_ACKNOWLEDGE", "VIRTIO_CONFIG_S_DRIVER", "VIRTIO_CONFIG_S_FEATURES_OK",
                 "VIRTIO_CONFIG_S_DRIVER_OK", "VIRTIO_CONFIG_S_NEEDS_RESET", "VIRTIO_CONFIG_S_FAILED")]


def feature_names(bits, device_id):
    prefixes = ["VIRTIO_F_", "VIRTIO_RING_F_"] + (["VIRTIO_BLK_F_"] if device_id == uapi.VIRTIO_ID_BLOCK else [])
    names = {}
    for name in dir(uapi):
        for prefix in prefixes:
            if name.startswith(prefix) and isinstance(getattr(uapi, name), int):
                value = getattr(uapi, name)
                # device-type bits live below 24, transport bits from 24 up
                if (prefix == "VIRTIO_BLK_F_") == (value < 24):
                    names.setdefault(value, name[len(prefix):])
    return " ".join(names.get(b, f"bit{b}") for b in range(64) if bits >> b & 1)


# the I/O part: requests of this size, this many in flight
DEMO_REQUEST_BYTES = 4096
DEMO_QUEUE_DEPTH = 16
DEMO_REQUESTS = 64


def pattern(sector, length):
    """Data that names its own sector in every 512-byte block, so a misplaced block shows."""
    blocks = []
    for k in range(length // 512):
        stamp = f"virtio-blk demo sector {sector + k:10d} ".encode()
        blocks.append((stamp * (512 // len(stamp) + 1))[:512])
    return b"".join(blocks)


async def pattern_io(dut, host, blk, capacity):
    """Write DEMO_REQUESTS requests of DEMO_REQUEST_BYTES at queue depth DEMO_QUEUE_DEPTH, read
    them back, compare. Returns (requests, payload bytes, clock cycles, data ok)."""
    size = min(DEMO_REQUEST_BYTES, capacity * 512)
    count = max(1, min(DEMO_REQUESTS, capacity * 512 // size))
    sectors = [k * size // 512 for k in range(count)]
    period = host.clock_period_ns
    start = get_sim_time("ns")
    ok = True
    for phase in ("write", "read"):
        inflight = []
        for sector in sectors:
            if phase == "write":
                inflight.append((sector, await blk.submit_write(sector, pattern(sector, size))))
            else:
                inflight.append((sector, await blk.submit_read(sector, size // 512)))
            if len(inflight) >= DEMO_QUEUE_DEPTH:
                sector0, req = inflight.pop(0)
                ok &= await check(req, phase, sector0, size)
        for sector0, req in inflight:
            ok &= await check(req, phase, sector0, size)
    cycles = int((get_sim_time("ns") - start) / period)
    return 2 * count, 2 * count * size, cycles, ok


async def check(req, phase, sector, size):
    status, data = await req.wait()
    if status != uapi.VIRTIO_BLK_S_OK:
        return False
    return phase == "write" or data == pattern(sector, size)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def run_demo(dut):
    lines = []
    out = lines.append
    width = len(dut.rx_req_tlp_data)
    capacity = int(os.environ.get("PARAM_CAPACITY", "2048"))
    host = await attach_root_complex(dut)
    load_disk_image(host.disk, os.environ.get("DEMO_DISK") or None, capacity)
    dma_checker = DmaChecker()
    dma_checker.install(host.rc)
    pci_dev = await host.enumerate()
    out(f"virtio-blk-pci demo: {os.environ.get('SIM_NAME', '?')}, DATA_WIDTH={width}")
    out(f"  device       {pci_dev.pcie_id}  {pci_dev.vendor_id:04x}:{pci_dev.device_id:04x}  "
        f"rev {pci_dev.revision_id:02x}  class {pci_dev.class_code:06x}  "
        f"subsystem {pci_dev.subsystem_vendor_id:04x}:{pci_dev.subsystem_id:04x}")
    bar_raw = pci_dev.bar_raw[0]
    out(f"  BAR0         0x{pci_dev.bar_addr[0]:x}, {pci_dev.bar_size[0] // 1024} KiB, "
        f"{'64' if bar_raw & 0x4 else '32'}-bit {'prefetchable' if bar_raw & 0x8 else 'non-prefetchable'}")

    vdev = await virtio_pci_probe(pci_dev, host.rc, intx=host.intx)
    mdev = vdev.mdev
    out("  capabilities")
    for cap_id, ptr in pci_dev.capabilities:
        if cap_id == uapi.PCI_CAP_ID_VNDR:
            cap = next(c for c in mdev.vendor_caps if c["cap"] == ptr)
            extra = f", notify_off_multiplier {cap['notify_off_multiplier']}" if "notify_off_multiplier" in cap else ""
            out(f"    0x{ptr:02x} virtio {CFG_TYPE_NAMES.get(cap['cfg_type'], cap['cfg_type'])}: "
                f"BAR{cap['bar']} + 0x{cap['offset']:04x}, length 0x{cap['length']:x}{extra}")
        elif cap_id == uapi.PCI_CAP_ID_MSIX:
            out(f"    0x{ptr:02x} MSI-X: {await pci_dev.msix_vec_count()} vectors")
        else:
            out(f"    0x{ptr:02x} {CAP_NAMES.get(cap_id, hex(cap_id))}")

    driver = VirtioBlk()
    await virtio_dev_probe(vdev, driver)
    status = await vdev.get_status()
    out(f"  features     offered    0x{vdev.device_features:016x}  {feature_names(vdev.device_features, vdev.id)}")
    out(f"               negotiated 0x{vdev.features:016x}  {feature_names(vdev.features, vdev.id)}")
    out(f"  status       0x{status:02x}  {' '.join(n for v, n in STATUS_NAMES if status & v)}")
    out(f"  interrupts   {vdev.vector_policy}")
    for vq in vdev.vqs:
        out(f"  queue {vq.index}      {vq.name}: size {vq.num}, MSI-X vector {vq.vector}, "
            f"desc 0x{vq.desc_addr:x} avail 0x{vq.avail_addr:x} used 0x{vq.used_addr:x}")
    out(f"  disk         capacity {driver.capacity} sectors ({driver.capacity * 512 // 1024} KiB), "
        f"blk_size {driver.blk_size}, seg_max {driver.seg_max}, read-only {'yes' if driver.read_only else 'no'}, "
        f"image {os.environ.get('DEMO_DISK') or 'generated'}")
    status, ident = await driver.get_id()
    out(f"  get_id       {ident.rstrip(bytes(1)).decode(errors='replace')!r} (status {status})")

    requests, nbytes, cycles, data_ok = await pattern_io(dut, host, driver, capacity)
    per_cycle = nbytes / cycles if cycles else 0.0
    out(f"  I/O          {requests} requests ({requests // 2} writes then {requests // 2} reads of "
        f"{min(DEMO_REQUEST_BYTES, capacity * 512)} B, {DEMO_QUEUE_DEPTH} in flight), {nbytes} payload bytes")
    out(f"               {cycles} clock cycles, {per_cycle:.2f} payload bytes per cycle "
        f"(bus {width // 8} bytes per cycle), data {'matched' if data_ok else 'MISMATCH'}")
    figures = {"requests": requests, "bytes": nbytes, "cycles": cycles,
               "bytes_per_cycle": round(per_cycle, 4), "data_ok": data_ok}

    # resize the disk: the device must raise a config-change interrupt and the driver re-read capacity
    generation = await vdev.generation()
    changes = vdev.config_change_count
    new_capacity = driver.capacity * 2
    dut.capacity.value = new_capacity
    dut.capacity_valid.value = 1
    await ClockCycles(dut.clk, 1)
    dut.capacity_valid.value = 0
    for _ in range(2000):
        if vdev.config_change_count > changes and driver.capacity == new_capacity:
            break
        await ClockCycles(dut.clk, 10)
    ok = vdev.config_change_count > changes and driver.capacity == new_capacity and data_ok
    out(f"  resize       capacity -> {new_capacity} sectors: config interrupt "
        f"{'received' if vdev.config_change_count > changes else 'MISSING'}, "
        f"config_generation {generation} -> {await vdev.generation()}, driver sees {driver.capacity}")
    host.checker.assert_quiet()
    out(f"  traffic      {host.requests_sent} requests to the device, {host.checker.completions_checked} "
        f"completions and {host.checker.requests_checked} device requests checked, "
        f"{len(host.checker.errors)} protocol errors")
    dma_checker.assert_clean()
    out(f"  DMA          {len(dma_checker.accesses)} device accesses to host memory, all inside "
        f"buffers the driver owned")
    saved = os.environ.get("DEMO_DISK_OUT")
    if saved:
        save_disk_image(host.disk, saved, capacity)
        out(f"  disk image   saved to {saved}")
    out(f"  result       {'PASS' if ok else 'FAIL'}")

    summary = "\n".join(lines) + "\n"
    dut._log.info("\n%s", summary)
    path = os.environ.get("DEMO_SUMMARY")
    if path:
        Path(path).write_text(summary)
    path = os.environ.get("DEMO_JSON")
    if path:
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")
    assert data_ok, "the data read back differs from what was written"
    assert ok, "the resize did not reach the driver"
