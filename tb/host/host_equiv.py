# SPDX-License-Identifier: Apache-2.0
"""One virtio-blk workload, recorded so that runs with the direct DMA path off and on can be
compared (tb/host/test_host.py::test_equivalence runs this module twice).

The workload is a fixed-seed mix of HOST_EQUIV_REQUESTS (default 300) reads, writes, flushes
and GET_IDs in batches of 1..16: a batch is queued without doorbells, kicked once, and fully
completed before the next one, so what the driver does never depends on timing; requests of a
batch never overlap a written sector. Chains use random layouts (direct, indirect, split
buffers). The results file holds every request's status and data, the disk contents (one
digest per 4 KiB), the device's DMA accesses as the DMA checker logged them (reads and writes
separately, in order), the MSI-X messages on tx_req and the MSI callbacks the root complex
ran per vector, and the speed of the run.
"""

import hashlib
import os
import random

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.pcie.core.tlp import TlpType

from host_bench import Meter, host_settings, write_results, stream_tlps

from models.virtio import uapi
from models.virtio.bringup import virtio_blk_bring_up

SEED = 20260525
SECTOR = 512
MAX_SECTORS = 16


def _digest(data):
    return hashlib.sha256(bytes(data)).hexdigest()[:16]


def stream_of(access, vq, msi_lo, msi_hi):
    """The access's stream: op + the ring field or buffer kind it touches."""
    addr = access.addr
    if msi_lo <= addr < msi_hi:
        field = "msi"
    elif vq.desc_addr <= addr < vq.desc_addr + 16 * vq.num:
        field = "descriptor table"
    elif vq.avail_addr <= addr < vq.avail_addr + 4:
        field = "avail flags/idx"
    elif vq.avail_addr + 4 <= addr < vq.avail_addr + 4 + 2 * vq.num:
        field = "avail ring"
    elif addr == vq.avail_addr + 4 + 2 * vq.num:
        field = "used_event"
    elif vq.used_addr <= addr < vq.used_addr + 2:
        field = "used flags"
    elif vq.used_addr + 2 <= addr < vq.used_addr + 4:
        field = "used idx"
    elif vq.used_addr + 4 <= addr < vq.used_addr + 4 + 8 * vq.num:
        field = "used ring"
    elif addr == vq.used_addr + 4 + 8 * vq.num:
        field = "avail_event"
    else:
        # a buffer or indirect table of a chain: "device-readable buffer of vq 0 head 5"
        field = "; ".join(part.split(" of ")[0] for part in access.what.split("; "))
    return f"{access.op} {field}"


def _plan(rng, count, capacity):
    """Batches of (kind, sector, sectors, data) with no written sector shared in a batch."""
    batches = []
    left = count
    while left:
        size = min(left, rng.randint(1, 16))
        left -= size
        batch = []
        used = set()
        while len(batch) < size:
            kind = rng.choices(("read", "write", "flush", "get_id"), (45, 40, 8, 7))[0]
            if kind in ("flush", "get_id"):
                batch.append((kind, 0, 0, None))
                continue
            n = rng.randint(1, MAX_SECTORS)
            sector = rng.randrange(0, capacity - n)
            span = set(range(sector, sector + n))
            if span & used:
                continue
            used |= span
            data = rng.randbytes(n * SECTOR) if kind == "write" else None
            batch.append((kind, sector, n, data))
        batches.append(batch)
    return batches


@cocotb.test(timeout_time=2, timeout_unit="sec")
async def equiv_workload(dut):
    """Fixed-seed virtio-blk mix; everything the device did is recorded for comparison."""
    count = int(os.environ.get("HOST_EQUIV_REQUESTS", "300"))
    rng = random.Random(SEED)
    host, vdev, blk, checker = await virtio_blk_bring_up(dut, layout="random", rng=SEED)
    capacity = blk.capacity
    disk = bytearray(rng.randbytes(capacity * SECTOR))
    host.disk.write(0, bytes(disk))

    # MSI callbacks run by the root complex, per message data
    msi_calls = {}
    for data, vec in host.rc.msi_region.msi_vectors.items():
        def make(data):
            async def counted():
                msi_calls[data] = msi_calls.get(data, 0) + 1
            return counted
        vec.cb.append(make(data))

    batches = _plan(rng, count, capacity)
    seq0 = checker.seq
    log0 = len(host.tx_req_log)
    results = []
    meter = Meter(host)
    meter.start()
    for batch in batches:
        reqs = []
        for kind, sector, n, data in batch:
            if kind == "read":
                req = await blk.submit_read(sector, n, kick=False)
            elif kind == "write":
                req = await blk.submit_write(sector, data, kick=False)
                disk[sector * SECTOR:(sector + n) * SECTOR] = data
            elif kind == "flush":
                req = await blk.submit_flush(kick=False)
            else:
                req = await blk.submit_get_id(kick=False)
            reqs.append((kind, sector, n, req))
        await blk.kick()
        for kind, sector, n, req in reqs:
            status, data = await blk.wait_req(req)
            assert status == uapi.VIRTIO_BLK_S_OK, (kind, sector, n, status)
            if kind == "read":
                assert data == bytes(disk[sector * SECTOR:(sector + n) * SECTOR]), f"read {sector}+{n}"
            results.append([kind, sector, n, status, _digest(data) if data is not None else None,
                            req.used_len])
    speed = meter.stop(requests=count, **host_settings(host))
    await ClockCycles(dut.clk, 20)

    image = bytes(host.disk.read(0, capacity * SECTOR))
    assert image == bytes(disk), "disk memory differs from the expected image"
    assert not checker.errors, checker.errors[:5]
    assert not host.checker.errors, host.checker.errors[:5]

    msi = host.rc.msi_region
    msi_lo = msi.get_absolute_address(0)
    vq = blk.vqs[0]
    accesses = [[stream_of(a, vq, msi_lo, msi_lo + msi.size), a.addr, a.length,
                 _digest(a.data) if a.data is not None else None]
                for a in checker.accesses_since(seq0)]
    msix = []
    for _, tlp in host.tx_req_log[log0:]:
        if tlp.fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64) and msi_lo <= tlp.address < msi_lo + msi.size:
            msix.append([tlp.address, int.from_bytes(bytes(tlp.get_data())[:4], "little")])
    write_results({
        **speed,
        "all_tlps": stream_tlps(host),
        "results": results,
        "disk_blocks": [_digest(image[k:k + 4096]) for k in range(0, len(image), 4096)],
        "dma": accesses,
        "msix": msix,
        "msi_callbacks": {str(k): v for k, v in sorted(msi_calls.items())},
    })
