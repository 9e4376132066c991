# SPDX-License-Identifier: Apache-2.0
"""Root complex + host memory attached to the RTL's four TLP streams.

``TlpPortDevice`` is a cocotbext-pcie ``Device`` whose whole function (config space
included) lives in the RTL: every TLP the root complex routes to it is driven into
``rx_req`` (requests) or ``rx_cpl`` (completions for device reads), and every TLP the RTL
sends on ``tx_cpl`` / ``tx_req`` goes upstream after the protocol checker has seen it.

Device-initiated requests (``tx_req``) take the direct path of models/pcie/fast_host.py by
default (``fast_dma``): straight into the RC's memory handlers, with the host read model
(latency, completion splitting, interleaving, link rate) answering reads into ``rx_cpl``.
Configuration and BAR accesses of the driver, and their completions, always use the link.

Host settings (constructor argument, else environment variable, else default):

| argument | environment | default | meaning |
|---|---|---|---|
| ``fast_dma`` | ``HOST_FAST_DMA`` | 1 | direct DMA path (0: every TLP over cocotbext-pcie's link) |
| ``read_latency_ns`` | ``HOST_READ_LATENCY_NS`` | 1000 | MRd leaving tx_req to its first completion |
| ``read_completion_boundary`` | ``HOST_RCB`` | 64 | RCB of the root port: 64 or 128 |
| ``completion_size`` | ``HOST_CPL_SIZE`` | MPS | bytes per completion after the first (multiple of the RCB) |
| ``cpl_interleave`` | ``HOST_CPL_INTERLEAVE`` | 0 | mix the completions of different tags |
| ``link_bytes_per_ns`` | ``HOST_LINK_BYTES_PER_NS`` | unlimited | completion rate of the link ("0"/"none": unlimited) |
| ``seed`` | ``HOST_SEED`` | 1 | seed of the interleaving choices |

Latency, splitting, interleaving and link rate apply to the direct path; with
``fast_dma=False`` the RC answers reads itself (rc.py: no added latency, largest completions;
``read_completion_boundary`` is still programmed into the RC).
"""

import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, RisingEdge, FallingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiRam
from cocotbext.pcie.core import RootComplex, Device
from cocotbext.pcie.core.caps import PciCapId
from cocotbext.pcie.core.tlp import TlpType

from .checker import TlpChecker
from .fast_host import DEFAULT_READ_LATENCY_NS, DEFAULT_RCB, FastDma, ReadModel, env_bool, env_number
from .tlp_stream import TlpStreamSink, TlpStreamSource, beats_to_tlp

VIRTIO_PCI_VENDOR_ID = 0x1AF4
SECTOR_SIZE = 512
DEFAULT_CAPACITY_SECTORS = 2048   # virtio_blk_pci's CAPACITY default
PCI_EXP_DEVCTL = 8


class TlpPortDevice(Device):
    """cocotbext-pcie device that forwards everything to the RTL's TLP port."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        self._upstream = Queue()
        cocotb.start_soon(self._run_upstream())

    async def upstream_recv(self, tlp):
        assert tlp.check()
        if tlp.fmt_type in {TlpType.CFG_READ_0, TlpType.CFG_WRITE_0}:
            self.bus_num = tlp.completer_id.bus
        if tlp.is_completion():
            self.host.checker.host_completion(tlp)
            await self.host.rx_cpl.send(tlp, on_sent=tlp.release_fc)
        else:
            self.host.checker.host_request(tlp)
            self.host.requests_sent += 1
            await self.host.rx_req.send(tlp, on_sent=tlp.release_fc)

    def from_rtl(self, tlp):
        """Queue a TLP from the RTL for the link, keeping the order in which it was sent."""
        self._upstream.put_nowait(tlp)

    async def _run_upstream(self):
        while True:
            tlp = await self._upstream.get()
            await self.upstream_send(tlp)


class IntxMonitor:
    """Watches the level INTx request; handlers run on each rising edge (like a level IRQ)."""

    def __init__(self, signal):
        self.signal = signal
        self.handlers = []
        self.rises = 0
        self.event = Event()
        cocotb.start_soon(self._run())

    @property
    def level(self):
        return 1 if self.signal.value == 1 else 0

    def register_handler(self, handler):
        """``handler`` is an async callable with no arguments."""
        self.handlers.append(handler)

    async def _run(self):
        while True:
            await RisingEdge(self.signal)
            self.rises += 1
            self.event.set()
            for handler in list(self.handlers):
                cocotb.start_soon(handler())


class PcieHost:
    """The guest's PCI world around one DUT.

    Attributes: ``rc`` (cocotbext-pcie RootComplex with host memory in ``rc.mem_pool``),
    ``device`` (the TlpPortDevice on the root port), ``pci_dev`` (cocotbext-pcie PciDevice of
    our function after ``enumerate()``), ``intx`` (IntxMonitor), ``checker`` (TlpChecker),
    the four stream models ``rx_req``, ``rx_cpl``, ``tx_cpl``, ``tx_req``, and
    ``tx_req_log`` (every TLP the device sent on tx_req, in order: the DMA/MSI-X trace),
    ``dma`` (the FastDma direct path; ``dma.model`` is the host read model) and
    ``fast_dma`` (True while device requests take the direct path; may be changed at run time).
    Settings of the direct path and the read model: see the module docstring.
    """

    def __init__(self, dut, clk=None, rst=None, clock_period_ns=4, start_clock=True,
                 max_payload_size=256, max_read_request_size=512, disk_size=None,
                 fast_dma=None, read_latency_ns=None, read_completion_boundary=None,
                 completion_size=None, cpl_interleave=None, link_bytes_per_ns=None, seed=None):
        self.dut = dut
        self.clk = clk if clk is not None else dut.clk
        self.rst = rst if rst is not None else dut.rst
        self.data_width = len(dut.rx_req_tlp_data)
        self.log = logging.getLogger("cocotb.tb.host")
        for name in ("cocotb.pcie", "cocotb.tb.rx_req_tlp", "cocotb.tb.rx_cpl_tlp"):
            logging.getLogger(name).setLevel(logging.WARNING)

        # in reset from time 0, so that no model samples the RTL's outputs before they are defined
        self.rst.value = 1
        if start_clock:
            Clock(self.clk, clock_period_ns, unit="ns", impl="gpi").start()
        self.clock_period_ns = clock_period_ns

        self.checker = TlpChecker()
        self.requests_sent = 0
        self.tx_req_log = []

        self.rc = RootComplex()
        self.rc.max_payload_size = (max_payload_size // 128).bit_length() - 1
        self.rc.max_read_request_size = (max_read_request_size // 128).bit_length() - 1
        self.device = TlpPortDevice(self)
        self.rc.make_port().connect(self.device)

        # the direct DMA path and the host read model
        if fast_dma is None:
            fast_dma = env_bool("HOST_FAST_DMA", True)
        if read_latency_ns is None:
            read_latency_ns = env_number("HOST_READ_LATENCY_NS", DEFAULT_READ_LATENCY_NS, float)
        if read_completion_boundary is None:
            read_completion_boundary = env_number("HOST_RCB", DEFAULT_RCB)
        if completion_size is None:
            completion_size = env_number("HOST_CPL_SIZE", None, int, ("", "none", "mps"))
        if cpl_interleave is None:
            cpl_interleave = env_bool("HOST_CPL_INTERLEAVE", False)
        if link_bytes_per_ns is None:
            link_bytes_per_ns = env_number("HOST_LINK_BYTES_PER_NS", None, float, ("", "none", "0"))
        if seed is None:
            seed = env_number("HOST_SEED", 1)
        self.rc.read_completion_boundary = read_completion_boundary == 128
        model = ReadModel(self._deliver_completion, self._completion_mps, read_latency_ns,
                          read_completion_boundary, completion_size, cpl_interleave,
                          link_bytes_per_ns, seed)
        self.dma = FastDma(self, model)
        self.fast_dma = bool(fast_dma)

        self.rx_req = TlpStreamSource(dut, "rx_req_tlp", self.clk, self.data_width)
        self.rx_cpl = TlpStreamSource(dut, "rx_cpl_tlp", self.clk, self.data_width)
        self.tx_cpl = TlpStreamSink(dut, "tx_cpl_tlp", self.clk, self.data_width,
                                    self._on_tx_cpl, self.checker._error)
        self.tx_req = TlpStreamSink(dut, "tx_req_tlp", self.clk, self.data_width,
                                    self._on_tx_req, self.checker._error)
        self.intx = IntxMonitor(dut.intx_assert) if hasattr(dut, "intx_assert") else None
        self.pci_dev = None
        # the disk memory behind the device's AXI4 master port (byte address = sector x 512)
        # (created by reset(), once the RTL's outputs are defined)
        self.disk = None
        if hasattr(dut, "m_axi_awvalid") and disk_size is None:
            disk_size = int(os.environ.get("PARAM_CAPACITY", DEFAULT_CAPACITY_SECTORS)) * SECTOR_SIZE
        self.disk_size = disk_size
        self._injected = {}

    # ---- streams from the RTL
    def _on_tx_cpl(self, hdr, payload):
        tlp = beats_to_tlp(hdr, payload)
        self.checker.check_completion(tlp)
        waiter = self._injected.get((int(tlp.requester_id), tlp.tag))
        if waiter is not None:
            waiter[0].append(tlp)
            # the last completion: an error, one without data (writes), or the rest of the bytes
            if (tlp.status != 0 or tlp.fmt_type == TlpType.CPL
                    or tlp.byte_count <= tlp.length * 4 - (tlp.lower_address & 3)):
                del self._injected[(int(tlp.requester_id), tlp.tag)]
                waiter[1].set()
            return
        self.device.from_rtl(tlp)

    async def inject(self, tlp, timeout_ns=20_000):
        """Send a raw TLP straight into rx_req (bypassing the root complex's routing).

        For requests the RC would never route to us (type 1 config, I/O, locked reads,
        malformed ones). Returns the list of completions for a non-posted request (they do
        not go to the RC), or [] for a posted one once it has been accepted.
        """
        done = Event()
        if not tlp.is_posted():
            cpls = []
            self._injected[(int(tlp.requester_id), tlp.tag)] = (cpls, done)
            self.checker.host_request(tlp)
            await self.rx_req.send(tlp)
            await with_timeout(done.wait(), timeout_ns, "ns")
            return cpls
        self.checker.host_request(tlp)
        await self.rx_req.send(tlp, on_sent=done.set)
        await with_timeout(done.wait(), timeout_ns, "ns")
        return []

    def _on_tx_req(self, hdr, payload):
        tlp = beats_to_tlp(hdr, payload)
        self.checker.check_request(tlp)
        self.tx_req_log.append((get_sim_time("ns"), tlp))
        if self.fast_dma and self.dma.accepts(tlp):
            self.dma.submit(tlp)
        else:
            self.device.from_rtl(tlp)

    # ---- the direct path's completions
    def _deliver_completion(self, cpl, on_sent):
        self.checker.host_completion(cpl)
        self.rx_cpl.send_nowait(cpl, on_sent=on_sent)

    def _completion_mps(self):
        """Max_Payload_Size for completions to the device: the RC's and the device's."""
        return min(128 << self.rc.max_payload_size, self.checker.max_payload_size)

    @property
    def read_model(self):
        return self.dma.model

    # ---- test controls
    def set_idle_generator(self, factory=None):
        """Idle cycles on the host-to-device streams: ``factory()`` returns a fresh bool iterator."""
        self.rx_req.set_pause_generator(factory() if factory else None)
        self.rx_cpl.set_pause_generator(factory() if factory else None)

    def set_backpressure_generator(self, factory=None):
        """Backpressure on the device-to-host streams."""
        self.tx_cpl.set_pause_generator(factory() if factory else None)
        self.tx_req.set_pause_generator(factory() if factory else None)

    async def reset(self, cycles=8):
        self.rst.value = 1
        await ClockCycles(self.clk, cycles)
        if self.disk is None and self.disk_size is not None:
            self.disk = AxiRam(AxiBus.from_prefix(self.dut, "m_axi"), self.clk, self.rst, size=self.disk_size)
            for name in ("cocotb.virtio_blk_pci.m_axi", "cocotb.axi"):
                logging.getLogger(name).setLevel(logging.WARNING)
        await FallingEdge(self.clk)
        self.rst.value = 0
        await ClockCycles(self.clk, 2)

    async def enumerate(self, timeout_ns=100_000):
        """Enumerate the bus and find our function; returns its PciDevice."""
        # the bus scan probes 32 empty device slots; their "failed to route" warnings are noise
        rc_log = logging.getLogger("cocotb.pcie.RootComplex")
        level = rc_log.level
        rc_log.setLevel(logging.ERROR)
        try:
            await self.rc.enumerate(timeout=timeout_ns, timeout_unit="ns")
        finally:
            rc_log.setLevel(level)
        self.pci_dev = self.find_function()
        if self.pci_dev is None:
            raise AssertionError("enumeration found no device with vendor id 0x1AF4")
        exp = self.pci_dev.get_capability_offset(PciCapId.EXP)
        if exp:
            # the root complex programmed MPS/MRRS during enumeration, before the checker knew
            # where Device Control is: read what it holds, then follow later writes
            self.checker.devctl_dword = (exp + PCI_EXP_DEVCTL) >> 2
            devctl = await self.pci_dev.config_read_word(exp + PCI_EXP_DEVCTL)
            self.checker.max_payload_size = 128 << ((devctl >> 5) & 0x7)
            self.checker.max_read_request_size = 128 << ((devctl >> 12) & 0x7)
        return self.pci_dev

    def find_function(self):
        def walk(bus):
            for dev in bus.devices:
                if dev.vendor_id == VIRTIO_PCI_VENDOR_ID:
                    return dev
            for child in bus.children:
                found = walk(child)
                if found is not None:
                    return found
            return None
        return walk(self.rc.host_bridge.bus)

    async def quiesce(self, cycles=16):
        """Wait until nothing is queued towards the device (incl. completions the read model
        still holds), then a few more cycles."""
        while not (self.rx_req.idle() and self.rx_cpl.idle() and self.dma.idle()):
            await RisingEdge(self.clk)
        await ClockCycles(self.clk, cycles)


async def attach_root_complex(dut, **kwargs):
    """Attach a cocotbext-pcie root complex with host memory to ``dut`` and reset it.

    Starts the clock (``start_clock=False`` if the test drives it), builds the adapter and
    the protocol checker, pulses reset and returns the PcieHost. Enumerate with
    ``await host.enumerate()`` (or ``await host.rc.enumerate()``) and then use the standard
    cocotbext-pcie API on ``host.pci_dev`` / ``host.rc``.
    """
    host = PcieHost(dut, **kwargs)
    await host.reset()
    return host
