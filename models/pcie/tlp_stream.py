# SPDX-License-Identifier: Apache-2.0
"""Drivers for the RTL's TLP streams (``<prefix>_data/_strb/_hdr/_valid/_sop/_eop/_ready``).

Encoding (docs/tlp-port.md): the header as on the wire in ``_hdr[127:0]`` with DW0 in bits
127:96, valid on the ``sop`` beat; payload from lane 0 of the ``sop`` beat, 32-bit lanes,
little-endian within a lane; ``_strb`` has one bit per valid dword; a TLP without data is a
single beat with ``_strb`` = 0.
"""

import itertools
import logging
from collections import deque

import cocotb
from cocotb.queue import Queue
from cocotb.triggers import Event, RisingEdge
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpAt, TlpAttr, TlpTc, TlpType
from cocotbext.pcie.core.utils import PcieId


# ---- TLP header codec
#
# cocotbext-pcie's Tlp.pack_header / unpack_header cost tens of microseconds per TLP (enum
# lookups and sets of enums built on every call). These do the same for the request and
# completion types, producing the same bytes / an identical Tlp (tb/host/test_host.py checks
# both against cocotbext-pcie on random headers); anything else goes to cocotbext-pcie.

_REQ_TYPES = {t.value for t in (
    TlpType.CFG_READ_0, TlpType.CFG_WRITE_0, TlpType.CFG_READ_1, TlpType.CFG_WRITE_1,
    TlpType.MEM_READ, TlpType.MEM_READ_64, TlpType.MEM_READ_LOCKED, TlpType.MEM_READ_LOCKED_64,
    TlpType.MEM_WRITE, TlpType.MEM_WRITE_64, TlpType.IO_READ, TlpType.IO_WRITE, TlpType.FETCH_ADD,
    TlpType.FETCH_ADD_64, TlpType.SWAP, TlpType.SWAP_64, TlpType.CAS, TlpType.CAS_64)}
_CFG_TYPES = {t.value for t in (TlpType.CFG_READ_0, TlpType.CFG_WRITE_0, TlpType.CFG_READ_1, TlpType.CFG_WRITE_1)}
_CPL_TYPES = {t.value for t in (TlpType.CPL, TlpType.CPL_DATA, TlpType.CPL_LOCKED, TlpType.CPL_LOCKED_DATA)}
# types whose length field 0 means 0 (for the others it means 1024 dwords)
_LENGTH_RESERVED = {t.value for t in (TlpType.CPL, TlpType.CPL_LOCKED, TlpType.MSG_TO_RC, TlpType.MSG_ADDR,
                                      TlpType.MSG_ID, TlpType.MSG_BCAST, TlpType.MSG_LOCAL, TlpType.MSG_GATHER)}
_TC = [TlpTc(k) for k in range(8)]
_AT = [TlpAt(k) if k in TlpAt._value2member_map_ else None for k in range(4)]
_ATTR = [TlpAttr(k) for k in range(8)]
_STATUS = {s.value: s for s in CplStatus}
_PCIE_IDS = {}
_TEMPLATE = None


def _pcie_id(value):
    pid = _PCIE_IDS.get(value)
    if pid is None:
        pid = _PCIE_IDS[value] = PcieId.from_int(value)
    return pid


def new_tlp():
    """A Tlp with the defaults of ``Tlp()``, made without running its constructor."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = dict(Tlp().__dict__)
    tlp = Tlp.__new__(Tlp)
    tlp.__dict__.update(_TEMPLATE)
    tlp.data = bytearray()
    return tlp


def pack_header_int(tlp):
    """``tlp.pack_header()`` as a 128-bit integer (DW0 in bits 127:96, zero-padded)."""
    fmt = tlp.fmt
    key = (fmt, tlp.type)
    if key in _REQ_TYPES:
        kind = 1
    elif key in _CPL_TYPES:
        kind = 2
    else:
        return int.from_bytes(bytes(tlp.pack_header()).ljust(16, b"\0"), "big")
    tag = tlp.tag
    attr = tlp.attr
    dw0 = (tlp.length & 0x3FF | (tlp.at & 0x3) << 10 | (attr & 0x3) << 12 | bool(tlp.ep) << 14
           | bool(tlp.td) << 15 | bool(tlp.th) << 16 | bool(tlp.ln) << 17 | (attr & 0x4) << 16
           | (tag & 0x100) << 11 | (tlp.tc & 0x7) << 20 | (tag & 0x200) << 14 | (tlp.type & 0x1F) << 24
           | (fmt & 0x7) << 29)
    if kind == 1:
        dw1 = tlp.first_be & 0xF | (tlp.last_be & 0xF) << 4 | (tag & 0xFF) << 8 | int(tlp.requester_id) << 16
        if key in _CFG_TYPES:
            return dw0 << 96 | dw1 << 64 | (tlp.address & 0xFFC | int(tlp.completer_id) << 16) << 32
        if fmt & 1:     # 4-DW header
            return dw0 << 96 | dw1 << 64 | (tlp.address & 0xFFFFFFFFFFFFFFFC | tlp.ph & 0x3)
        return dw0 << 96 | dw1 << 64 | (tlp.address & 0xFFFFFFFC | tlp.ph & 0x3) << 32
    dw1 = tlp.byte_count & 0xFFF | bool(tlp.bcm) << 12 | (tlp.status & 0x7) << 13 | int(tlp.completer_id) << 16
    dw2 = tlp.lower_address & 0x7F | (tag & 0xFF) << 8 | int(tlp.requester_id) << 16
    return dw0 << 96 | dw1 << 64 | dw2 << 32


def unpack_header_int(hdr):
    """``Tlp.unpack_header`` of a 128-bit header integer (DW0 in bits 127:96)."""
    dw0 = hdr >> 96
    fmt = dw0 >> 29 & 0x7
    typ = dw0 >> 24 & 0x1F
    key = (fmt, typ)
    dw1 = hdr >> 64 & 0xFFFFFFFF
    at = _AT[dw0 >> 10 & 0x3]
    if key in _REQ_TYPES and at is not None:
        kind = 1
    elif key in _CPL_TYPES and at is not None and (dw1 >> 13 & 0x7) in _STATUS:
        kind = 2
    else:   # other types, and values cocotbext-pcie rejects: its own error
        return Tlp.unpack_header(hdr.to_bytes(16, "big"))
    tlp = new_tlp()
    d = tlp.__dict__
    length = dw0 & 0x3FF
    if length == 0 and key not in _LENGTH_RESERVED:
        length = 1024
    d["length"] = length
    d["at"] = at
    d["ep"] = bool(dw0 & 1 << 14)
    d["td"] = bool(dw0 & 1 << 15)
    d["th"] = bool(dw0 & 1 << 16)
    d["ln"] = bool(dw0 & 1 << 17)
    d["attr"] = _ATTR[(dw0 >> 12 & 0x3) | (dw0 >> 16 & 0x4)]
    d["tc"] = _TC[dw0 >> 20 & 0x7]
    d["type"] = typ
    d["fmt"] = fmt
    tag = (dw0 >> 11 & 0x100) | (dw0 >> 14 & 0x200)
    if kind == 1:
        d["first_be"] = dw1 & 0xF
        d["last_be"] = dw1 >> 4 & 0xF
        d["tag"] = tag | (dw1 >> 8 & 0xFF)
        d["_requester_id"] = _pcie_id(dw1 >> 16)
        dw2 = hdr >> 32 & 0xFFFFFFFF
        if key in _CFG_TYPES:
            d["address"] = dw2 & 0xFFC
            d["_completer_id"] = _pcie_id(dw2 >> 16)
        elif fmt & 1:
            val = hdr & 0xFFFFFFFFFFFFFFFF
            d["address"] = val & 0xFFFFFFFFFFFFFFFC
            d["ph"] = val & 0x3
        else:
            d["address"] = dw2 & 0xFFFFFFFC
            d["ph"] = dw2 & 0x3
    else:
        byte_count = dw1 & 0xFFF
        d["byte_count"] = byte_count or 4096
        d["bcm"] = bool(dw1 & 1 << 12)
        d["status"] = _STATUS[dw1 >> 13 & 0x7]
        d["_completer_id"] = _pcie_id(dw1 >> 16)
        dw2 = hdr >> 32 & 0xFFFFFFFF
        d["lower_address"] = dw2 & 0x7F
        d["tag"] = tag | (dw2 >> 8 & 0xFF)
        d["_requester_id"] = _pcie_id(dw2 >> 16)
    return tlp


def tlp_to_beats(tlp, data_width):
    """Split a Tlp into beats: a list of (hdr, data, strb, sop, eop) integers/bools."""
    lanes = data_width // 32
    hdr = pack_header_int(tlp)
    payload = bytes(tlp.data) if tlp.fmt in (2, 3) else b""       # has_data()
    dwords = len(payload) // 4
    if dwords == 0:
        return [(hdr, 0, 0, True, True)]
    nbeats = (dwords + lanes - 1) // lanes
    value = int.from_bytes(payload, "little")
    shift = 32 * lanes
    mask = (1 << shift) - 1
    full = (1 << lanes) - 1
    beats = []
    for k in range(nbeats):
        last = k == nbeats - 1
        n = dwords - k * lanes if last else lanes
        beats.append((hdr if k == 0 else 0, value & mask, full if not last else (1 << n) - 1, k == 0, last))
        value >>= shift
    return beats


def beats_to_tlp(hdr, payload):
    """Build a Tlp from the sop-beat header and the concatenated payload bytes."""
    tlp = unpack_header_int(hdr)
    tlp.data = bytearray(payload)
    return tlp


def _bits_reader(handle):
    """A function returning the signal's value as a string of 0/1/x/z (MSB first).

    The simulator's own binary string, without building a LogicArray (that costs more than the
    rest of a beat's work); cocotb's public API when the handle has no raw GPI object."""
    raw = getattr(handle, "_handle", None)
    get = getattr(raw, "get_signal_val_binstr", None)
    if get is not None:
        return get
    return lambda: str(handle.value)


class _WakingQueue(Queue):
    """A Queue that also sets ``not_empty`` on every put (so a driver can sleep until there is
    something to send while the item stays in the queue: ``qsize()`` means what it did)."""

    def __init__(self):
        super().__init__()
        self.not_empty = Event()

    def _put(self, item):
        super()._put(item)
        self.not_empty.set()


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
        self.set_pause_generator(None)

    def _paused(self):
        if self._pause_gen is None:
            return False
        return bool(next(self._pause_gen))


class TlpStreamSource(_TlpStreamBase):
    """Drives TLPs into the RTL (rx_req, rx_cpl).

    Cycle behaviour: a TLP queued during a cycle is presented from the next rising edge, one
    beat per cycle while ``ready`` is high; the pause generator is consulted once per cycle in
    which a beat is waiting (True: ``valid`` low for that cycle). With nothing to send the
    driver sleeps until ``send`` (no work per idle cycle), and a signal is only written when
    its value changes.
    """

    def __init__(self, dut, prefix, clk, data_width):
        super().__init__(dut, prefix, clk, data_width)
        self.queue = _WakingQueue()
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

    def send_nowait(self, tlp, on_sent=None):
        """``send`` for callers that cannot wait (the queue is unbounded)."""
        self.idle_event.clear()
        self.queue.put_nowait((tlp, on_sent))

    def idle(self):
        return self.queue.empty() and self.idle_event.is_set()

    async def _run(self):
        beats = deque()
        on_sent = None
        current = None
        clock_edge = RisingEdge(self.clk)
        ready = _bits_reader(self.ready)
        queue = self.queue
        sigs = (self.hdr, self.data, self.strb, self.sop, self.eop)
        driven = [0, 0, 0, 0, 0]    # values last written to sigs
        valid = 0                   # value last written to valid
        while True:
            await clock_edge
            if current is not None and valid and ready() == "1":
                self.beats += 1
                if current[4]:
                    self.tlps += 1
                    if on_sent is not None:
                        on_sent()
                        on_sent = None
                current = None
            if current is None:
                if not beats and not queue.empty():
                    tlp, on_sent = queue.get_nowait()
                    beats.extend(tlp_to_beats(tlp, self.data_width))
                if beats:
                    current = beats.popleft()
            if current is not None and not self._paused():
                for k in range(5):
                    value = current[k]
                    if driven[k] != value:
                        sigs[k].value = value
                        driven[k] = value
                if not valid:
                    self.valid.value = 1
                    valid = 1
            else:
                if valid:
                    self.valid.value = 0
                    valid = 0
                if current is None and not beats and queue.empty():
                    self.idle_event.set()
                    # nothing to send: sleep until a TLP is queued (it is taken at the next edge)
                    not_empty = queue.not_empty
                    not_empty.clear()
                    if queue.empty():
                        await not_empty.wait()


class TlpStreamSink(_TlpStreamBase):
    """Receives TLPs from the RTL (tx_cpl, tx_req) and hands each one to ``callback(tlp)``.

    Framing is checked here (sop first, eop last, contiguous strobes, header only on sop);
    TLP-level rules live in TlpChecker.

    Cycle behaviour: ``ready`` is high unless the pause generator (consulted once per cycle
    while one is set) says pause. Without a pause generator the sink sleeps while ``valid``
    is low (no work per idle cycle).
    """

    def __init__(self, dut, prefix, clk, data_width, callback, on_error):
        super().__init__(dut, prefix, clk, data_width)
        self.callback = callback
        self.on_error = on_error
        self.ready.value = 0
        self._ready = 0             # value last written to ready
        self._in_tlp = False
        self._hdr = 0
        self._payload = bytearray()
        self._sleeping = False
        self._task = cocotb.start_soon(self._run())

    def set_pause_generator(self, generator=None):
        super().set_pause_generator(generator)
        if generator is not None and self._sleeping:
            # asleep until valid rises: start over so that the pattern applies from the next edge
            self._task.cancel()
            self._sleeping = False
            self._task = cocotb.start_soon(self._run())

    def _value(self, handle, read):
        """Integer value of a handle (through cocotb when it holds X/Z, as before)."""
        bits = read()
        try:
            return int(bits, 2)
        except ValueError:
            return handle.value.to_unsigned()

    async def _run(self):
        clock_edge = RisingEdge(self.clk)
        valid_rise = RisingEdge(self.valid)
        valid = _bits_reader(self.valid)
        sop_bits = _bits_reader(self.sop)
        eop_bits = _bits_reader(self.eop)
        strb_bits = _bits_reader(self.strb)
        hdr_bits = _bits_reader(self.hdr)
        data_bits = _bits_reader(self.data)
        full = (1 << self.lanes) - 1
        while True:
            await clock_edge
            v = valid() == "1"
            if v and self._ready:
                self.beats += 1
                sop = sop_bits() == "1"
                eop = eop_bits() == "1"
                strb = self._value(self.strb, strb_bits)
                if sop == self._in_tlp:
                    self.on_error(f"{self.prefix}: sop={int(sop)} {'inside' if self._in_tlp else 'outside'} a TLP")
                if sop:
                    self._hdr = self._value(self.hdr, hdr_bits)
                    self._payload = bytearray()
                    self._in_tlp = True
                if strb & (strb + 1):
                    self.on_error(f"{self.prefix}: strobe 0x{strb:x} is not contiguous from lane 0")
                if not eop and strb != full:
                    self.on_error(f"{self.prefix}: beat before eop is not full (strb 0x{strb:x})")
                n = strb.bit_length()
                if n:
                    bits = data_bits()
                    try:
                        data = int(bits, 2)
                    except ValueError:
                        # lanes outside the strobe may be X; the enabled ones may not
                        bits = bits[len(bits) - 32 * n:]
                        if any(c not in "01" for c in bits):
                            self.on_error(f"{self.prefix}: X/Z in enabled payload lanes: {bits}")
                        data = int(bits.replace("x", "0").replace("z", "0").replace("X", "0").replace("Z", "0") or "0", 2)
                    self._payload += (data & ((1 << (32 * n)) - 1)).to_bytes(4 * n, "little")
                if eop:
                    self._in_tlp = False
                    self.tlps += 1
                    self.callback(self._hdr, bytes(self._payload))
            if self._pause_gen is not None:
                ready = 0 if self._paused() else 1
                if ready != self._ready:
                    self.ready.value = ready
                    self._ready = ready
            else:
                if not self._ready:
                    self.ready.value = 1
                    self._ready = 1
                if not v:
                    # idle: sleep until valid rises, then sample at the next edge
                    self._sleeping = True
                    await valid_rise
                    self._sleeping = False


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
