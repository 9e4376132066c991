# SPDX-License-Identifier: Apache-2.0
"""Requests a driver must not send (BLK-23) and writes to a read-only disk (BLK-09): the
device answers IOERR in a normal used entry and leaves the disk memory untouched.

cocotb tests, run by tb/blk/test_blk_errors.py (the BLK-09 ones in a READ_ONLY=1 build).
"""

import cocotb

from blk_err_tb import SECTOR, ErrBench, param
from models.virtio import uapi

TIMEOUT_MS = 5
T_IN = uapi.VIRTIO_BLK_T_IN
T_OUT = uapi.VIRTIO_BLK_T_OUT
IOERR = uapi.VIRTIO_BLK_S_IOERR


async def expect_ioerr(b, requests):
    """Submit raw requests [(type, sector, out data, in data len)] with one doorbell; each must
    complete with IOERR and the used len of its writable part, an IN with zeros before the
    status; the disk memory must be unchanged; then checked I/O."""
    before = b.disk_image()
    reqs = []
    for req_type, sector, out_data, in_len in requests:
        reqs.append(await b.blk.submit_request(req_type, sector, out_data=out_data, in_data_len=in_len,
                                               kick=False))
    await b.blk.kick()
    await b.blk.wait_all()
    for req in reqs:
        what = f"type {req.type} sector {req.sector} ({len(req.out_data)} readable, {req.in_data_len} writable)"
        assert req.status == IOERR, f"BLK-23: {what}: status {req.status}, expected IOERR"
        assert req.used_len == req.expected_used_len, f"{what}: used len {req.used_len}"
        if req.in_data_len:
            assert req.data == bytes(req.in_data_len), f"{what}: data before the status is not zeros"
    assert b.disk_image() == before, "the disk memory changed"
    assert not await b.status() & uapi.VIRTIO_CONFIG_S_NEEDS_RESET
    b.checker.assert_clean()
    await b.run_io()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_past_capacity(dut):
    """BLK-23: reads and writes at the capacity, straddling its end, and at sectors
    whose byte address or end wraps 64 bits (2^55, 2^64 - 1) get IOERR in a normal used entry
    (used len = writable bytes, zeros before the status), the disk memory is unchanged, and
    the device goes on serving requests."""
    b = await ErrBench.create(dut, seed=51)
    cap = param("CAPACITY")
    data = b.rng.randbytes(2 * SECTOR)
    await expect_ioerr(b, [
        (T_IN, cap, b"", SECTOR),
        (T_OUT, cap, data[:SECTOR], 0),
        (T_IN, cap - 1, b"", 2 * SECTOR),
        (T_OUT, cap - 1, data, 0),
        (T_IN, cap + 1000, b"", 8 * SECTOR),
        (T_OUT, 1 << 55, data[:SECTOR], 0),          # sector x 512 wraps to byte 0
        (T_IN, 1 << 55, b"", SECTOR),
        (T_OUT, (1 << 64) - 1, data, 0),             # sector + count wraps to 1
        (T_IN, (1 << 64) - 1, b"", 2 * SECTOR),
    ])


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_length_not_multiple_of_512(dut):
    """BLK-23: IN and OUT requests whose data length is not a multiple of 512 (1, 100, 511,
    513 bytes) get IOERR in a normal used entry, the disk memory is unchanged."""
    b = await ErrBench.create(dut, seed=53)
    await expect_ioerr(b, [
        (T_IN, 8, b"", 1),
        (T_IN, 8, b"", 100),
        (T_IN, 8, b"", 513),
        (T_OUT, 8, b.rng.randbytes(100), 0),
        (T_OUT, 8, b.rng.randbytes(511), 0),
        (T_OUT, 8, b.rng.randbytes(513), 0),
    ])


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_missing_status(dut):
    """BLK-23: an OUT and an IN with no writable byte (no room for a status): the device uses
    them with len 0, writes nothing (the disk memory unchanged), and goes on serving requests."""
    b = await ErrBench.create(dut, seed=57)
    before = b.disk_image()
    out = await b.alloc(SECTOR, b.rng.randbytes(SECTOR))
    chain, _ = await b.raw_request(T_OUT, 16, [(out.addr, SECTOR)], status=False, completes=True)
    assert await b.complete_raw(chain) == (chain.head, 0)
    chain, _ = await b.raw_request(T_IN, 16, [], status=False, completes=True)
    assert await b.complete_raw(chain) == (chain.head, 0)
    assert b.disk_image() == before, "the disk memory changed"
    assert not await b.status() & uapi.VIRTIO_CONFIG_S_NEEDS_RESET
    b.checker.assert_clean()
    await b.run_io()


async def read_only(dut, accept_ro, seed):
    b = await ErrBench.create(dut, seed=seed, accept_ro=accept_ro)
    assert param("READ_ONLY")
    assert b.vdev.device_features >> uapi.VIRTIO_BLK_F_RO & 1, "BLK-09: READ_ONLY build without VIRTIO_BLK_F_RO"
    assert bool(b.vdev.features >> uapi.VIRTIO_BLK_F_RO & 1) == accept_ro
    assert b.blk.read_only == accept_ro
    before = b.disk_image()
    reqs = []
    for sector, count in ((0, 1), (100, 8), (param("CAPACITY") - 4, 4)):
        reqs.append(await b.blk.submit_request(T_OUT, sector, out_data=b.rng.randbytes(count * SECTOR), kick=False))
    await b.blk.kick()
    await b.blk.wait_all()
    for req in reqs:
        assert req.status == IOERR, f"BLK-09: write of {len(req.out_data)} bytes at {req.sector}: status {req.status}"
        assert req.used_len == req.expected_used_len, f"write at {req.sector}: used len {req.used_len}"
    if not accept_ro:
        # the driver's own write path sends them too when it was not told the disk is read-only
        status, _ = await b.blk.write(200, b.rng.randbytes(2 * SECTOR))
        assert status == IOERR, f"BLK-09: write with RO declined: status {status}"
    assert b.disk_image() == before, "BLK-09: the read-only disk memory changed"
    status, _ = await b.blk.flush()
    assert status == uapi.VIRTIO_BLK_S_OK
    b.checker.assert_clean()
    await b.run_io()  # reads only: checked against the (unchanged) reference


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_read_only(dut):
    """BLK-09: with VIRTIO_BLK_F_RO offered and accepted, writes (sent anyway) get IOERR and
    the disk memory is unchanged; reads and FLUSH work."""
    await read_only(dut, True, 61)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_read_only_declined(dut):
    """BLK-09: with VIRTIO_BLK_F_RO offered but declined by the driver, writes still get IOERR
    and the disk memory is unchanged; reads and FLUSH work."""
    await read_only(dut, False, 67)
