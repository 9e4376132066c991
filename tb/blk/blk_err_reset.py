# SPDX-License-Identifier: Apache-2.0
"""Resets while requests are in flight, and bus mastering switched off with a doorbell
pending.

* device reset (device_status = 0) during I/O at several moments: the status reads 0 only
  once the device has stopped, and from the first read of 0 nothing leaves the device (no DMA,
  no MSI-X, INTx low); the queue registers are back at their reset values; a new driver on new
  rings works (RST-01, RST-02, RST-03, RST-04, RST-05, RST-06);
* queue reset during I/O: queue_reset reads 1 until the chains already fetched are done, then
  0 with queue_enable 0; nothing for the queue afterwards; a fresh ring works from index 0
  (VQ-01, VQ-02, VQ-04);
* bus mastering off: a doorbell waits, nothing is sent until it is on again.

cocotb tests, run by tb/blk/test_blk_errors.py.
"""

import cocotb
from cocotb.triggers import ClockCycles, Timer

from blk_err_tb import SECTOR, ErrBench, now_ns, param
from models.virtio import uapi
from models.virtio.virtio import VP_VQ_VECTOR_POLICY_INTX

TIMEOUT_MS = 10
REQUESTS = 32
REQ_SECTORS = 16  # 8 KiB each: the disk holds twice 32 of them
STALL = 100  # cycles of backpressure per accepted beat on tx_req (slow_link)


async def submit_batch(b, count=REQUESTS, sectors=REQ_SECTORS, reads_only=False):
    """``count`` requests of ``sectors`` each, alternately a write and a read (or only reads),
    every one on its own part of the disk (writes on even slots, reads on odd ones): whatever
    the order in which the device serves them, and wherever it stops, a request that completed
    has one right answer. One doorbell for all."""
    slots = param("CAPACITY") // sectors
    assert slots >= 2 * count, "the disk is too small for the batch"
    reqs = []
    for k in range(count):
        if k % 2 == 0 and not reads_only:
            sector = 2 * k * sectors
            reqs.append(await b.blk.submit_write(sector, b.rng.randbytes(sectors * SECTOR), kick=False))
        else:
            sector = (2 * k + 1) * sectors
            reqs.append(await b.blk.submit_read(sector, sectors, kick=False))
    await b.blk.kick()
    return reqs


async def wait_completed(b, count, timeout_us=2000):
    deadline = now_ns() + timeout_us * 1000
    while b.blk.completed < count:
        assert now_ns() < deadline, f"{b.blk.completed} requests completed, waited for {count}"
        await Timer(200, "ns")


async def wait_published(b, count, timeout_us=2000):
    deadline = now_ns() + timeout_us * 1000
    while await b.vq.vring_read_used_idx() < count:
        assert now_ns() < deadline, f"used->idx below {count} after {timeout_us} us"
        await Timer(20, "ns")


def slow_link():
    """Backpressure on tx_req: ready for one cycle in every STALL + 1."""
    while True:
        for _ in range(STALL):
            yield True
        yield False


async def reset_during_io(dut, moment, policy=None, seed=0, backpressure=False, reads_only=False):
    b = await ErrBench.create(dut, seed=seed, policy=policy)
    reqs = await submit_batch(b, reads_only=reads_only)
    if moment == "mid":
        # half done, and 1.5 us into the data of the next request (8 KiB take about 4 us)
        await wait_completed(b, REQUESTS // 2)
        await Timer(1500, "ns")
    elif moment == "end":
        # two left: watch what the device has published (used->idx in host memory), not what
        # the driver has seen (interrupts cover batches of completions)
        await wait_published(b, REQUESTS - 2)
    done_before = await b.vq.vring_read_used_idx()  # what the device has finished
    if backpressure:
        # the host takes the device's requests slowly from here on (completions are not held)
        b.host.tx_req.set_pause_generator(slow_link())
    t_write, t0, busy = await b.reset_device()
    b.log.info("reset at '%s' with %d of %d requests completed: status read non-zero %d times over %d ns",
               moment, done_before, REQUESTS, busy, t0 - t_write)
    assert done_before < REQUESTS, "every request completed before the reset: nothing was in flight"
    await b.quiet_since(t0)
    b.host.tx_req.set_pause_generator(None)
    await b.check_reset_values()
    b.check_done_requests(reqs)
    b.checker.assert_clean()
    await b.reinit(policy=policy)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(moment=["kick", "mid", "end"])
async def run_reset_during_io(dut, moment):
    """RST-01, RST-02, RST-03, RST-04, RST-05, RST-06: 32 requests (8 KiB writes and reads) in
    flight, then device_status = 0 right after the doorbell, in the middle of the data of the
    request after the first half, or with two left: the status reads 0 once the device is idle, and from that moment no TLP at all leaves
    it (no DMA, no MSI-X) for 10 us; queue_enable, vectors, queue_reset, size and addresses are
    at their reset values; the requests that completed are right; a new driver on new rings
    does I/O checked against the RAM disk."""
    await reset_during_io(dut, moment, seed={"kick": 71, "mid": 73, "end": 79}[moment])


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_reset_during_io_intx(dut):
    """RST-01, RST-02, RST-03: the same in INTx mode, reset with about half of the requests
    done: from the first read of 0 no TLP, INTx deasserted and not raised again; recovery."""
    await reset_during_io(dut, "mid", policy=VP_VQ_VECTOR_POLICY_INTX, seed=83)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(moment=["kick", "mid"])
async def run_reset_during_io_slow_link(dut, moment):
    """RST-01, RST-02: the same with the host taking the device's requests (tx_req) only one
    cycle in 101 from the reset on, and reads only (mid-batch the device then has only writes
    of read data and used entries in flight, no reads whose completions would hold the reset
    back): device_status may read 0 only once everything the device started is out, so no TLP
    (DMA or MSI-X) leaves it after the completion that carries the first 0."""
    await reset_during_io(dut, moment, seed={"kick": 101, "mid": 103}[moment], backpressure=True,
                          reads_only=True)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_reset_after_completion_slow_link(dut):
    """RST-01, RST-02: one read at a time over a slow link (tx_req ready one cycle in 101);
    device_status = 0 is written 50 to 250 cycles (in steps of 25) after the request's used
    idx reached host memory, i.e. around the used-buffer notification: no TLP (in particular no
    MSI-X message) may leave the device after the completion that reports the reset done.
    Each round re-initialises the device."""
    b = await ErrBench.create(dut, seed=107)
    for delay in range(50, 251, 25):
        b.host.tx_req.set_pause_generator(slow_link())
        vq = b.vq
        req = await b.blk.submit_read(8 + delay, 1)
        while await vq.vring_read_used_idx() == 0:
            await ClockCycles(dut.clk, 1)
        await ClockCycles(dut.clk, delay)
        _, t0, _ = await b.reset_device()
        try:
            await b.quiet_since(t0, window_ns=3000)
        except AssertionError as exc:
            raise AssertionError(f"reset {delay} cycles after the used idx: {exc}") from None
        b.host.tx_req.set_pause_generator(None)
        b.check_done_requests([req])
        await b.reinit(io=False)
    await b.run_io()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_queue_reset_during_io(dut):
    """VQ-01, VQ-02, VQ-04: queue_reset = 1 on the busy queue: it reads 1 while the chains
    already fetched finish, then 0 with queue_enable 0 and the queue's registers at their
    defaults; from then on nothing is sent (one queue: no DMA, no MSI-X); the used entries
    written before are right; re-enabled on a fresh zeroed ring the queue starts at index 0 and
    I/O is checked against the RAM disk."""
    b = await ErrBench.create(dut, seed=89)
    reqs = await submit_batch(b)
    await wait_completed(b, 4)
    t_start = await b.queue_reset_start(0)
    t0, ones = await b.queue_reset_wait(0)
    done = b.blk.completed
    b.log.info("queue reset: read 1 %d times over %d ns; %d of %d requests completed", ones, t0 - t_start,
               done, REQUESTS)
    assert ones >= 1, "VQ-04: queue_reset never read 1 although chains were in flight"
    assert done < REQUESTS, "every request completed before the queue reset"
    mdev = b.vdev.mdev
    assert await mdev.vp_modern_get_queue_enable(0) == 0, "VQ-04: queue_enable after the queue reset"
    assert await mdev.vp_ioread16(uapi.VIRTIO_PCI_COMMON_Q_MSIX) == uapi.VIRTIO_MSI_NO_VECTOR
    assert await mdev.vp_modern_get_queue_size(0) == param("QUEUE_SIZE_MAX")
    for lo in (uapi.VIRTIO_PCI_COMMON_Q_DESCLO, uapi.VIRTIO_PCI_COMMON_Q_AVAILLO, uapi.VIRTIO_PCI_COMMON_Q_USEDLO):
        assert await mdev.vp_ioread32(lo) == 0 and await mdev.vp_ioread32(lo + 4) == 0
    assert await b.status() & uapi.VIRTIO_CONFIG_S_DRIVER_OK, "the queue reset touched device_status"
    await b.quiet_since(t0)
    # what the device used before the reset completed is reaped; the rest was never touched
    await b.blk.poll()
    used_idx, _ = await b.used_entries()
    assert b.vq.last_used_idx == used_idx
    b.check_done_requests(reqs)
    b.checker.assert_clean()
    b.vq.vring_del_virtqueue()
    await b.blk.abort_all()
    assert sum(r.aborted for r in reqs) == REQUESTS - used_idx
    b.ref.data[:] = b.disk_image()
    await b.reenable_queue(0)
    await b.run_io()
    # and a second round of the same on the new ring, to see the indices run on from 0
    reqs = await submit_batch(b, count=8)
    await b.blk.wait_all()
    for req in reqs:
        assert req.status == uapi.VIRTIO_BLK_S_OK
    b.check_done_requests(reqs)
    b.checker.assert_clean()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_bus_master_off(dut):
    """With bus mastering off (PCI Command bit 2) and the device idle, a write and a read are
    made available and the doorbell rung: nothing at all is sent (no ring read, no MSI-X) and
    nothing completes; once bus mastering is on again both complete right, without another
    doorbell; the device is not put in DEVICE_NEEDS_RESET."""
    b = await ErrBench.create(dut, seed=97)
    mdev = b.vdev.mdev
    cmd = await mdev._cfg_read(uapi.PCI_COMMAND, 2)
    assert cmd & uapi.PCI_COMMAND_MASTER
    await mdev._cfg_write(uapi.PCI_COMMAND, 2, cmd & ~uapi.PCI_COMMAND_MASTER)
    t_off = now_ns()
    data = b.rng.randbytes(8 * SECTOR)
    w = await b.blk.submit_write(40, data)
    r = await b.blk.submit_read(400, 4)
    assert b.vq.kicks_sent >= 1
    await Timer(20, "us")
    late = b.tlps_since(t_off)
    assert not late, f"{len(late)} TLP(s) sent with bus mastering off: {late[:3]}"
    assert not w.done and not r.done
    await mdev._cfg_write(uapi.PCI_COMMAND, 2, cmd)
    for req in (w, r):
        await req.wait()
    assert w.status == uapi.VIRTIO_BLK_S_OK and r.status == uapi.VIRTIO_BLK_S_OK
    b.check_done_requests([w, r])
    assert not await b.status() & uapi.VIRTIO_CONFIG_S_NEEDS_RESET
    await b.run_io()
