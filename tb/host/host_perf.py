# SPDX-License-Identifier: Apache-2.0
"""Simulation speed of the whole bench: virtio-blk 4 KiB reads at queue depth 16.

HOST_PERF_REQUESTS requests (default 200) after a warm-up of 16; the results (wall and CPU
time, simulated cycles, TLPs on the four streams, per second) go to $HOST_RESULTS.
With HOST_PROFILE=1 the measured part runs under cProfile (stats in $HOST_RESULTS.pstat).
"""

import cProfile
import os

import cocotb
from cocotb.triggers import ClockCycles

from host_bench import Meter, host_settings, write_results, PARAMS

from models.virtio import uapi
from models.virtio.bringup import virtio_blk_bring_up

SECTORS = 8             # 4 KiB
DEPTH = 16


@cocotb.test(timeout_time=2, timeout_unit="sec")
async def perf_reads(dut):
    """4 KiB reads at queue depth 16: TLPs and cycles per wall second."""
    count = int(os.environ.get("HOST_PERF_REQUESTS", "200"))
    host, vdev, blk, checker = await virtio_blk_bring_up(dut)
    # a pattern on the disk, so that the data check below means something
    capacity = blk.capacity
    span = min(capacity, 2048) // SECTORS * SECTORS
    pattern = bytes((i * 13 + (i >> 9)) & 0xFF for i in range(span * 512))
    host.disk.write(0, pattern)

    def submit(n):
        sector = (n * SECTORS) % span
        req_future = blk.submit_read(sector, SECTORS, kick=False, wait_for_space=False)
        return req_future

    done = []

    async def run(n):
        reqs = []

        async def sub(k):
            req = await submit(k)
            reqs.append(req)
            return req
        failures = await blk.stream(n, submit=sub, depth=DEPTH)
        assert not failures, failures
        done.extend(reqs)

    await run(16)           # warm-up
    meter = Meter(host)
    profile = cProfile.Profile() if os.environ.get("HOST_PROFILE") == "1" else None
    meter.start()
    if profile:
        profile.enable()
    done.clear()
    await run(count)
    if profile:
        profile.disable()
    res = meter.stop(requests=count, bytes=count * SECTORS * 512, data_width=PARAMS["DATA_WIDTH"],
                     **host_settings(host))
    if profile and os.environ.get("HOST_RESULTS"):
        profile.dump_stats(os.environ["HOST_RESULTS"] + ".pstat")
    for req in done:
        assert req.status == uapi.VIRTIO_BLK_S_OK, req
        assert req.data == pattern[req.sector * 512:(req.sector + SECTORS) * 512], f"data of {req}"
    await ClockCycles(dut.clk, 10)
    assert not checker.errors, checker.errors
    assert not host.checker.errors, host.checker.errors
    write_results(res)


@cocotb.test(timeout_time=2, timeout_unit="sec")
async def perf_idle(dut):
    """The ceiling: simulated cycles per wall second with the device idle after bring-up
    (no Python work per cycle)."""
    from cocotb.triggers import Timer
    host, vdev, blk, checker = await virtio_blk_bring_up(dut)
    cycles = int(os.environ.get("HOST_IDLE_CYCLES", "200000"))
    meter = Meter(host)
    profile = cProfile.Profile() if os.environ.get("HOST_PROFILE") == "1" else None
    meter.start()
    if profile:
        profile.enable()
    await Timer(cycles * host.clock_period_ns, "ns")
    if profile:
        profile.disable()
        if os.environ.get("HOST_RESULTS"):
            profile.dump_stats(os.environ["HOST_RESULTS"] + ".idle.pstat")
    res = meter.stop(data_width=PARAMS["DATA_WIDTH"])
    path = os.environ.get("HOST_RESULTS")
    if path:
        os.environ["HOST_RESULTS"] = path + ".idle"
    write_results(res)
    if path:
        os.environ["HOST_RESULTS"] = path
