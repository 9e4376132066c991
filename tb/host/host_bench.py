# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the host-model tests (tb/host): a meter of simulation speed and the JSON
results file the pytest side reads (the bring-up is models.virtio.bringup).

The host settings come from the environment (HOST_FAST_DMA, HOST_READ_LATENCY_NS, ...; see
models/pcie/host.py), so that the pytest side can run the same cocotb module with the direct
DMA path on and off.
"""

import json
import os
import time

import cocotb
from cocotb.utils import get_sim_time


PARAMS = {"DATA_WIDTH": 64}
for _name in PARAMS:
    if f"PARAM_{_name}" in os.environ:
        PARAMS[_name] = int(os.environ[f"PARAM_{_name}"], 0)


def stream_tlps(host):
    """TLPs moved on the four streams so far."""
    return host.rx_req.tlps + host.rx_cpl.tlps + host.tx_req.tlps + host.tx_cpl.tlps


class Meter:
    """Wall time, process CPU time, simulated time and TLPs between start() and stop()."""

    def __init__(self, host):
        self.host = host
        self.result = None

    def start(self):
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.sim0 = get_sim_time("ns")
        self.tlps0 = stream_tlps(self.host)

    def stop(self, **extra):
        wall = time.perf_counter() - self.wall0
        cpu = time.process_time() - self.cpu0
        sim_ns = get_sim_time("ns") - self.sim0
        tlps = stream_tlps(self.host) - self.tlps0
        cycles = sim_ns / self.host.clock_period_ns
        self.result = {
            "wall_s": wall,
            "cpu_s": cpu,
            "sim_ns": sim_ns,
            "cycles": cycles,
            "tlps": tlps,
            "tlps_per_wall_s": tlps / wall if wall else None,
            "tlps_per_cpu_s": tlps / cpu if cpu else None,
            "cycles_per_wall_s": cycles / wall if wall else None,
            "cycles_per_cpu_s": cycles / cpu if cpu else None,
            "load_avg": os.getloadavg()[0],
            **extra,
        }
        return self.result


def host_settings(host):
    """The host model's settings, for the results file."""
    dma = getattr(host, "dma", None)
    if dma is None:             # a PcieHost without the direct path (older models)
        return {"fast_dma": False}
    m = dma.model
    return {
        "fast_dma": host.fast_dma,
        "read_latency_ns": m.read_latency_ns,
        "rcb": m.rcb,
        "completion_size": m.completion_size,
        "interleave": m.interleave,
        "link_bytes_per_ns": m.link_bytes_per_ns,
    }


def write_results(data):
    """Write ``data`` as JSON to $HOST_RESULTS (when set)."""
    path = os.environ.get("HOST_RESULTS")
    if path:
        with open(path, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
    cocotb.log.info("host results: %s", json.dumps({k: v for k, v in data.items() if not isinstance(v, list)}))
