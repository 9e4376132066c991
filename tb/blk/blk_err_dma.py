# SPDX-License-Identifier: Apache-2.0
"""Failed device reads: Unsupported Request, Completer Abort, a poisoned completion and a
completion that never comes, on a descriptor read and on a data buffer read. The device must
stop with DEVICE_NEEDS_RESET, send the configuration interrupt, not hang, and work again after
a reset (STS-02, STS-03, RST-01).

cocotb tests, run by tb/blk/test_blk_errors.py (the completion timeouts in a build with a short
CPL_TIMEOUT). As in blk_err_chain.py, three good requests go first, then the failing chain,
then one doorbell.
"""

import enum

import cocotb
from cocotb.triggers import Timer

from blk_err_tb import (
    CA_BASE,
    F_INDIRECT,
    F_NEXT,
    F_WRITE,
    NO_CPL_BASE,
    POISON_BASE,
    SECTOR,
    UNMAPPED_32,
    UNMAPPED_64,
    ErrBench,
    RawChain,
    now_ns,
    param,
)
from models.ref.ramdisk import blk_outhdr_pack
from models.virtio import uapi

TIMEOUT_MS = 5
T_IN = uapi.VIRTIO_BLK_T_IN
T_OUT = uapi.VIRTIO_BLK_T_OUT


class Where(enum.Enum):
    """The host address a failing read goes to."""
    unmapped32 = UNMAPPED_32   # UR, 3-DW header
    unmapped64 = UNMAPPED_64   # UR, 4-DW header
    abort = CA_BASE            # CA
    poison = POISON_BASE       # EP completion
    no_cpl = NO_CPL_BASE       # no completion: timeout


def arm(b, where):
    if where is Where.abort:
        b.add_ca_region()
    elif where is Where.poison:
        b.poison_completions()
    elif where is Where.no_cpl:
        b.drop_completions()


async def indirect_table_at(b, addr):
    """An IN whose descriptor chain continues in an indirect table at ``addr``: the descriptor
    read fails."""
    vq = b.vq
    hdr = await b.alloc(16, blk_outhdr_pack(T_IN, 0))
    [i, j] = b.raw_index(vq, 2)
    await b.write_descs(vq, {i: (hdr.addr, 16, F_NEXT, j), j: (addr, 48, F_INDIRECT, 0)})
    return await b.publish(vq, i, RawChain(vq, i, [(hdr.addr, 16, "out"), (addr, 48, "indirect")]))


async def out_data_at(b, addr):
    """An OUT of one sector whose data buffer is at ``addr``: the data read fails."""
    chain, _ = await b.raw_request(T_OUT, 512, [(addr, SECTOR)])
    return chain


async def check_failed_read(b, where, since, addr, length):
    """The failing read went out (and, for a timeout, was never answered)."""
    reads = [tlp for t, tlp in b.host.tx_req_log if t >= since and tlp.fmt_type.name.startswith("MEM_READ")
             and addr <= tlp.address < addr + length]
    assert reads, f"no read of 0x{addr:x} was sent"
    if where is Where.no_cpl:
        assert b.dropped_reads, "the completion of the dropped read was not dropped"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(where=[Where.unmapped32, Where.unmapped64, Where.abort, Where.poison])
async def run_descriptor_read_fails(dut, where):
    """STS-02, STS-03, SPL-26, RST-01: the read of an indirect descriptor table is answered
    with UR (no memory at a 32-bit / a 64-bit address), CA or a poisoned completion: the device
    sets DEVICE_NEEDS_RESET, sends one config MSI-X whose handler reads it, writes no used
    entry for the chain and nothing outside the buffers it owns; a reset brings it back."""
    b = await ErrBench.create(dut, seed=31)
    arm(b, where)
    since = now_ns()
    await b.expect_stop(lambda b: indirect_table_at(b, where.value))
    await check_failed_read(b, where, since, where.value, 48)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(where=[Where.unmapped32, Where.unmapped64, Where.abort, Where.poison])
async def run_data_read_fails(dut, where):
    """STS-02, STS-03, RST-01: the read of an OUT request's data buffer is answered with UR,
    CA or a poisoned completion: DEVICE_NEEDS_RESET, the config interrupt, no used entry for
    the request, nothing written outside owned buffers (not even the request's status),
    recovery by reset. (What the disk sector holds afterwards is not specified: the write
    failed.)"""
    b = await ErrBench.create(dut, seed=37)
    arm(b, where)
    since = now_ns()
    await b.expect_stop(lambda b: out_data_at(b, where.value))
    await check_failed_read(b, where, since, where.value, SECTOR)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_descriptor_table_unmapped(dut):
    """STS-02, STS-03, VQ-03, RST-01: a queue re-enabled (after a queue reset) with its
    descriptor table at an address nothing answers (UR): the first request stops the device with
    DEVICE_NEEDS_RESET and the config interrupt; a device reset brings it back."""
    b = await ErrBench.create(dut, seed=41)
    await b.queue_reset_start(0)
    await b.queue_reset_wait(0)
    vq = await b.reenable_queue(0, desc_addr=UNMAPPED_64)

    async def build(b):
        # head 0 of a table the device cannot read
        return await b.publish(vq, 0, RawChain(vq, 0, []))
    since = now_ns()
    await b.expect_stop(build, goods=False)
    await check_failed_read(b, Where.unmapped64, since, UNMAPPED_64, 16 * vq.num)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(what=["descriptor", "data"])
async def run_completion_timeout(dut, what):
    """STS-02, STS-03, RST-01: a device read whose completion never comes (an indirect table,
    or an OUT's data buffer): after CPL_TIMEOUT cycles the device sets DEVICE_NEEDS_RESET and
    sends the config interrupt, does not hang, and a reset brings it back (also with the
    dropped read's tag never answered)."""
    b = await ErrBench.create(dut, seed=43)
    arm(b, Where.no_cpl)
    since = now_ns()
    if what == "descriptor":
        await b.expect_stop(lambda b: indirect_table_at(b, NO_CPL_BASE))
    else:
        await b.expect_stop(lambda b: out_data_at(b, NO_CPL_BASE))
    await check_failed_read(b, Where.no_cpl, since, NO_CPL_BASE, 0x1000)
    t_drop = b.dropped_reads[0][0]
    # the error could only be seen after the timeout
    first_status = [t for t, s in b.stop_config_events]
    assert first_status and first_status[0] - t_drop >= param("CPL_TIMEOUT") * 4, \
        f"config interrupt at {first_status} ns, the read was dropped at {t_drop} ns"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_late_completion(dut):
    """STS-02, RST-01: a read whose completion the host holds back: after CPL_TIMEOUT the
    device sets DEVICE_NEEDS_RESET (config interrupt), is reset and re-initialised; then the
    held completion arrives, for a tag that timed out before the reset. The device must drop
    it as an unexpected completion: it is in no error state, so no DEVICE_NEEDS_RESET and no
    config interrupt, and I/O goes on."""
    b = await ErrBench.create(dut, seed=47)
    arm(b, Where.no_cpl)
    await b.expect_stop(lambda b: out_data_at(b, NO_CPL_BASE))
    assert len(b.dropped_reads) == 1, b.dropped_reads
    since = now_ns()
    await b.complete_late(b.dropped_reads[0][1])
    await Timer(2, "us")
    status = await b.status()
    assert not status & uapi.VIRTIO_CONFIG_S_NEEDS_RESET, \
        f"STS-02: a late completion from before the reset set DEVICE_NEEDS_RESET (status 0x{status:02x})"
    assert not [e for e in b.blk.config_events if e[0] >= since], "config interrupt for a late completion"
    await b.run_io()
