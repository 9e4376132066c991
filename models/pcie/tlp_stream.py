# SPDX-License-Identifier: Apache-2.0
"""Drivers for the RTL's TLP streams (``<prefix>_data/_strb/_hdr/_valid/_sop/_eop/_ready``).

Encoding (docs/tlp-port.md): the header as on the wire in ``_hdr[127:0]`` with DW0 in bits
127:96, valid on the ``sop`` beat; payload from lane 0 of the ``sop`` beat, 32-bit lanes,
little-endian within a lane; ``_strb`` has one bit per valid dword; a TLP without data is a
single beat with ``_strb`` = 0.
"""

import itertools
import logging

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, RisingEdge
from cocotbext.pcie.core.tlp import Tlp


def tlp_to_beats(tlp, data_width):
    """Split a Tlp into beats: a list of (hdr, data, strb, sop, eop) integers/bools."""
    lanes = data_width // 32
    hdr_bytes = bytes(tlp.pack_header())
    hdr = int.from_bytes(hdr_bytes.ljust(16, b"\0"), "big")
    payload = bytes(tlp.data) if tlp.has_data() else b""
    dwords = len(payload) // 4
    beats = []
    if dwords == 0:
        return [(hdr, 0, 0, True, True)]
    nbeats = (dwords + lanes - 1) // lanes
    for k in range(nbeats):
        chunk = payload[k * lanes * 4:(k + 1) * lanes * 4]
        n = len(chunk) // 4
        beats.append((hdr if k == 0 else 0, int.from_bytes(chunk, "little"), (1 << n) - 1,
                      k == 0, k == nbeats - 1))
    return beats


def beats_to_tlp(hdr, payload):
    """Build a Tlp from the sop-beat header and the concatenated payload bytes."""
    tlp = Tlp.unpack_header(hdr.to_bytes(16, "big"))
    tlp.data = bytearray(payload)
    return tlp


class _TlpStreamBase:
    def __init__(self, dut, prefix, clk, data_width):
        self.log = logging.getLogger(f"cocotb.tb.{prefix}")
        self.clk = clk
        self.data_width = data_width
        self.lanes = data_width // 32
        self.prefix = prefix
        self.data = getattr(dut, f"{prefix}_data")
        self.strb = getattr(dut, f"{prefix}_strb")
        self.hdr = getattr(dut, f"{prefix}_hdr")
        self.valid = getattr(dut, f"{prefix}_valid")
        self.sop = getattr(dut, f"{prefix}_sop")
        self.eop = getattr(dut, f"{prefix}_eop")
        self.ready = getattr(dut, f"{prefix}_ready")
        self._pause_gen = None
        self.beats = 0          # handshakes seen
        self.tlps = 0           # TLPs transferred

    def set_pause_generator(self, generator=None):
        """Insert idle cycles (source) or backpressure (sink): one bool per clock, True = pause."""
        self._pause_gen = generator

    def clear_pause_generator(self):
        self._pause_gen = None

    def _paused(self):
        if self._pause_gen is None:
            return False
        return bool(next(self._pause_gen))


class TlpStreamSource(_TlpStreamBase):
    """Drives TLPs into the RTL (rx_req, rx_cpl)."""

    def __init__(self, dut, prefix, clk, data_width):
        super().__init__(dut, prefix, clk, data_width)
        self.queue = Queue()
        self.idle_event = Event()
        self.idle_event.set()
        self.valid.value = 0
        self.sop.value = 0
        self.eop.value = 0
        self.strb.value = 0
        self.data.value = 0
        self.hdr.value = 0
        self._task = cocotb.start_soon(self._run())

    async def send(self, tlp, on_sent=None):
        """Queue a TLP; ``on_sent`` is called once its last beat has been accepted."""
        self.idle_event.clear()
        await self.queue.put((tlp, on_sent))

    def idle(self):
        return self.queue.empty() and self.idle_event.is_set()

    async def _run(self):
        beats = []
        on_sent = None
        current = None
        clock_edge = RisingEdge(self.clk)
        while True:
            await clock_edge
            if current is not None and self.valid.value == 1 and self.ready.value == 1:
                self.beats += 1
                if current[4]:
                    self.tlps += 1
                    if on_sent is not None:
                        on_sent()
                        on_sent = None
                current = None
            if current is None:
                if not beats and not self.queue.empty():
                    tlp, on_sent = self.queue.get_nowait()
                    beats = tlp_to_beats(tlp, self.data_width)
                if beats:
                    current = beats.pop(0)
            if current is not None and not self._paused():
                hdr, data, strb, sop, eop = current
                self.hdr.value = hdr
                self.data.value = data
                self.strb.value = strb
                self.sop.value = sop
                self.eop.value = eop
                self.valid.value = 1
            else:
                self.valid.value = 0
                if current is None and not beats and self.queue.empty():
                    self.idle_event.set()


class TlpStreamSink(_TlpStreamBase):
    """Receives TLPs from the RTL (tx_cpl, tx_req) and hands each one to ``callback(tlp)``.

    Framing is checked here (sop first, eop last, contiguous strobes, header only on sop);
    TLP-level rules live in TlpChecker.
    """

    def __init__(self, dut, prefix, clk, data_width, callback, on_error):
        super().__init__(dut, prefix, clk, data_width)
        self.callback = callback
        self.on_error = on_error
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        clock_edge = RisingEdge(self.clk)
        in_tlp = False
        hdr = 0
        payload = bytearray()
        while True:
            await clock_edge
            if self.ready.value == 1 and self.valid.value == 1:
                self.beats += 1
                sop = self.sop.value == 1
                eop = self.eop.value == 1
                strb = self.strb.value.to_unsigned()
                if sop == in_tlp:
                    self.on_error(f"{self.prefix}: sop={int(sop)} {'inside' if in_tlp else 'outside'} a TLP")
                if sop:
                    hdr = self.hdr.value.to_unsigned()
                    payload = bytearray()
                    in_tlp = True
                if strb & (strb + 1):
                    self.on_error(f"{self.prefix}: strobe 0x{strb:x} is not contiguous from lane 0")
                if not eop and strb != (1 << self.lanes) - 1:
                    self.on_error(f"{self.prefix}: beat before eop is not full (strb 0x{strb:x})")
                n = strb.bit_length()
                value = self.data.value
                if value.is_resolvable:
                    data = value.to_unsigned()
                else:
                    # lanes outside the strobe may be X; the enabled ones may not
                    bits = str(value)[len(value) - 32 * n:] if n else ""
                    if any(c not in "01" for c in bits):
                        self.on_error(f"{self.prefix}: X/Z in enabled payload lanes: {bits}")
                    data = int(bits.replace("x", "0").replace("z", "0").replace("X", "0").replace("Z", "0") or "0", 2)
                payload += (data & ((1 << (32 * n)) - 1)).to_bytes(4 * n, "little") if n else b""
                if eop:
                    in_tlp = False
                    self.tlps += 1
                    self.callback(hdr, bytes(payload))
            self.ready.value = 0 if self._paused() else 1


def idle_pattern(name, seed=1):
    """Named pause patterns for idle and backpressure insertion (as in cocotbext-axi tests)."""
    import random
    if name in (None, "none"):
        return None
    if name == "alternate":
        return itertools.cycle([1, 0])
    if name == "mostly_paused":
        return itertools.cycle([1, 1, 1, 0])
    if name == "random":
        rng = random.Random(seed)
        return (rng.random() < 0.4 for _ in itertools.count())
    raise ValueError(f"unknown pause pattern {name!r}: use none, alternate, mostly_paused or random")
