# SPDX-License-Identifier: Apache-2.0
"""The `make sim` demo: enumerate the virtio-blk function, probe it with the virtio driver,
set up its queue with MSI-X, resize the disk to show a config-change interrupt, and write a
summary a person can read to $DEMO_SUMMARY (printed by scripts/demo.py)."""

import os
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, with_timeout

from models.pcie import attach_root_complex
from models.virtio import uapi
from models.virtio.blk import VirtioBlkDriver
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


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def run_demo(dut):
    lines = []
    out = lines.append
    width = len(dut.rx_req_tlp_data)
    host = await attach_root_complex(dut)
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

    driver = VirtioBlkDriver()
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
        f"blk_size {driver.blk_size}, seg_max {driver.seg_max}, read-only {'yes' if driver.read_only else 'no'}")

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
    ok = vdev.config_change_count > changes and driver.capacity == new_capacity
    out(f"  resize       capacity -> {new_capacity} sectors: config interrupt "
        f"{'received' if vdev.config_change_count > changes else 'MISSING'}, "
        f"config_generation {generation} -> {await vdev.generation()}, driver sees {driver.capacity}")
    host.checker.assert_quiet()
    out(f"  traffic      {host.requests_sent} requests to the device, {host.checker.completions_checked} "
        f"completions and {host.checker.requests_checked} device requests checked, "
        f"{len(host.checker.errors)} protocol errors")
    out(f"  result       {'PASS' if ok else 'FAIL'}")

    summary = "\n".join(lines) + "\n"
    dut._log.info("\n%s", summary)
    path = os.environ.get("DEMO_SUMMARY")
    if path:
        Path(path).write_text(summary)
    assert ok, "the resize did not reach the driver"
