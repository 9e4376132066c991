# SPDX-License-Identifier: Apache-2.0
"""Protocol checker for every TLP the RTL sends (tx_cpl and tx_req).

It watches the requests the host forwards to the device (to know what completions are
owed and what the device's Command and Device Control registers hold) and checks:

* completions: only for an outstanding request (requester id + tag), correct type for the
  request (CplD for reads, Cpl for writes and errors), completer id, status, byte count,
  lower address, length within Max_Payload_Size, splits only at read-completion boundaries,
  and that the data adds up to the bytes requested;
* requests: MRd/MWr only, 3-DW header below 4 GiB and 4-DW above, byte-enable rules,
  payload within Max_Payload_Size, reads within Max_Read_Request_Size, no 4 KiB crossing,
  requester id = the captured bus/device, unique tags among outstanding reads, and nothing
  at all while Bus Master Enable is off.

A violation raises TlpProtocolError (which fails the test) and is kept in ``errors``.
"""

import logging

from cocotbext.pcie.core.tlp import TlpType, CplStatus
from cocotbext.pcie.core.utils import PcieId

READ_COMPLETION_BOUNDARY = 64
PCI_COMMAND_DWORD = 1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4

_CFG_TYPES = {TlpType.CFG_READ_0, TlpType.CFG_WRITE_0, TlpType.CFG_READ_1, TlpType.CFG_WRITE_1}
_MEM_READS = {TlpType.MEM_READ, TlpType.MEM_READ_64}
_MEM_WRITES = {TlpType.MEM_WRITE, TlpType.MEM_WRITE_64}
_CPL_TYPES = {TlpType.CPL, TlpType.CPL_DATA, TlpType.CPL_LOCKED, TlpType.CPL_LOCKED_DATA}


class TlpProtocolError(AssertionError):
    pass


def _be_contiguous_high(be):
    """First-DW BE of a multi-dword request: enabled bytes reach up to byte 3."""
    return be != 0 and (be | (be - 1)) & 0xF == 0xF and be & 0x8 != 0


def _be_contiguous_low(be):
    """Last-DW BE of a multi-dword request: enabled bytes start at byte 0."""
    return be != 0 and be & (be + 1) == 0


def _first_be_offset(be):
    for k in range(4):
        if be & (1 << k):
            return k
    return 0


def request_byte_count(tlp):
    """Bytes a memory read asks for (PCIe byte-count rules)."""
    if tlp.length == 1:
        if tlp.first_be == 0:
            return 1
        lo = _first_be_offset(tlp.first_be)
        hi = max(k for k in range(4) if tlp.first_be & (1 << k))
        return hi - lo + 1
    hi = max(k for k in range(4) if tlp.last_be & (1 << k)) if tlp.last_be else 3
    return tlp.length * 4 - _first_be_offset(tlp.first_be) - (3 - hi)


class _Outstanding:
    __slots__ = ("tlp", "remaining", "next_addr", "first")

    def __init__(self, tlp):
        self.tlp = tlp
        self.first = True
        if tlp.fmt_type in _MEM_READS or tlp.fmt_type in {TlpType.MEM_READ_LOCKED, TlpType.MEM_READ_LOCKED_64}:
            self.remaining = request_byte_count(tlp)
            self.next_addr = tlp.address + _first_be_offset(tlp.first_be)
        else:
            self.remaining = 4
            self.next_addr = 0


class TlpChecker:
    def __init__(self, raise_on_error=True):
        self.log = logging.getLogger("cocotb.tb.checker")
        self.raise_on_error = raise_on_error
        self.errors = []
        self.outstanding = {}          # (requester id, tag) -> _Outstanding: host -> device
        self.dma_reads = {}            # tag -> bytes still owed: device -> host
        self.command = 0
        self.max_payload_size = 128
        self.max_read_request_size = 512
        self.devctl_dword = None       # set once the PCI Express capability is known
        self.bus_dev = None            # (bus, device) captured by the function
        self.completions_checked = 0
        self.requests_checked = 0

    # ---- bookkeeping of what the host sends
    def host_request(self, tlp):
        """Called for each request the host sends to the device."""
        if tlp.fmt_type == TlpType.CFG_WRITE_0 and tlp.completer_id.function == 0:
            self.bus_dev = (tlp.completer_id.bus, tlp.completer_id.device)
            dword = tlp.address >> 2
            value = int.from_bytes(tlp.data[:4], "little")
            mask = sum(0xFF << (8 * k) for k in range(4) if tlp.first_be & (1 << k))
            if dword == PCI_COMMAND_DWORD:
                self.command = (self.command & ~mask | value & mask) & 0xFFFF
            elif self.devctl_dword is not None and dword == self.devctl_dword and tlp.first_be & 0x3:
                devctl = value & 0xFFFF
                if tlp.first_be & 0x1:
                    self.max_payload_size = 128 << ((devctl >> 5) & 0x7)
                if tlp.first_be & 0x2:
                    self.max_read_request_size = 128 << ((devctl >> 12) & 0x7)
        if not tlp.is_posted():
            key = (int(tlp.requester_id), tlp.tag)
            if key in self.outstanding:
                self._error(f"host reused tag {tlp.tag} while it is outstanding: {tlp!r}")
            self.outstanding[key] = _Outstanding(tlp)

    def host_completion(self, tlp):
        """Called for each completion the host returns for a device read (DMA)."""
        if tlp.tag in self.dma_reads:
            self.dma_reads[tlp.tag] -= max(tlp.length * 4 - (tlp.lower_address & 3), 0) if tlp.status == CplStatus.SC else self.dma_reads[tlp.tag]
            if self.dma_reads[tlp.tag] <= 0 or tlp.byte_count <= tlp.length * 4 - (tlp.lower_address & 3):
                del self.dma_reads[tlp.tag]

    # ---- checks on what the device sends
    def _error(self, msg):
        self.errors.append(msg)
        self.log.error("TLP protocol violation: %s", msg)
        if self.raise_on_error:
            raise TlpProtocolError(msg)

    def check_completion(self, tlp):
        self.completions_checked += 1
        if tlp.fmt_type not in _CPL_TYPES:
            self._error(f"tx_cpl carries a {tlp.fmt_type.name}, not a completion: {tlp!r}")
            return
        key = (int(tlp.requester_id), tlp.tag)
        req = self.outstanding.get(key)
        if req is None:
            self._error(f"completion with requester id {tlp.requester_id} tag {tlp.tag} matches no outstanding request: {tlp!r}")
            return
        rt = req.tlp
        if tlp.ep or tlp.td:
            self._error(f"completion with EP/TD set: {tlp!r}")
        if tlp.tc != rt.tc or tlp.attr != rt.attr:
            self._error(f"completion TC/Attr {tlp.tc}/{tlp.attr} differ from the request's {rt.tc}/{rt.attr}")
        if rt.fmt_type in _CFG_TYPES:
            # a type-0 request names the function (its id answers); a type-1 request names a
            # device behind a bridge, so the function answers UR with its own captured id
            if rt.fmt_type in {TlpType.CFG_READ_0, TlpType.CFG_WRITE_0}:
                expected = rt.completer_id
            else:
                expected = PcieId(*self.bus_dev, 0) if self.bus_dev is not None else tlp.completer_id
            if tlp.completer_id != expected:
                self._error(f"config completion completer id {tlp.completer_id} != {expected}")
            want = TlpType.CPL_DATA if (rt.fmt_type in {TlpType.CFG_READ_0, TlpType.CFG_READ_1} and tlp.status == CplStatus.SC) else TlpType.CPL
            if tlp.fmt_type != want:
                self._error(f"config request answered with {tlp.fmt_type.name}, expected {want.name}")
            if tlp.byte_count != 4 or tlp.lower_address != 0:
                self._error(f"config completion byte count {tlp.byte_count} lower address {tlp.lower_address}, expected 4 and 0")
            if tlp.fmt_type == TlpType.CPL_DATA and tlp.length != 1:
                self._error(f"config read completion length {tlp.length} != 1")
            del self.outstanding[key]
            return
        if self.bus_dev is not None and (tlp.completer_id.bus, tlp.completer_id.device) != self.bus_dev:
            self._error(f"completer id {tlp.completer_id} is not the captured bus/device {self.bus_dev}")
        if tlp.status != CplStatus.SC:
            if tlp.fmt_type != TlpType.CPL:
                self._error(f"{tlp.status.name} completion carries data: {tlp!r}")
            del self.outstanding[key]
            return
        if rt.fmt_type not in _MEM_READS:
            self._error(f"successful completion for a {rt.fmt_type.name}: {tlp!r}")
            del self.outstanding[key]
            return
        if tlp.fmt_type != TlpType.CPL_DATA:
            self._error(f"memory read answered with a completion without data: {tlp!r}")
        if tlp.length * 4 > self.max_payload_size:
            self._error(f"completion of {tlp.length * 4} bytes exceeds Max_Payload_Size {self.max_payload_size}")
        if tlp.byte_count != req.remaining:
            self._error(f"completion byte count {tlp.byte_count} != {req.remaining} bytes still owed")
        if tlp.lower_address != req.next_addr & 0x7F:
            self._error(f"completion lower address 0x{tlp.lower_address:02x} != 0x{req.next_addr & 0x7F:02x}")
        carried = tlp.length * 4 - (req.next_addr & 3)
        if carried < tlp.byte_count:
            end = req.next_addr + carried
            if end % READ_COMPLETION_BOUNDARY:
                self._error(f"partial completion ends at 0x{end:x}, not at a {READ_COMPLETION_BOUNDARY}-byte boundary")
            req.remaining -= carried
            req.next_addr = end
            req.first = False
        else:
            if tlp.length * 4 - 3 > tlp.byte_count + (req.next_addr & 3):
                self._error(f"completion carries {tlp.length} dwords for {tlp.byte_count} remaining bytes")
            del self.outstanding[key]

    def check_request(self, tlp):
        self.requests_checked += 1
        if tlp.fmt_type not in _MEM_READS and tlp.fmt_type not in _MEM_WRITES:
            self._error(f"tx_req carries a {tlp.fmt_type.name}; only memory reads and writes are allowed: {tlp!r}")
            return
        if not self.command & PCI_COMMAND_MASTER:
            self._error(f"{tlp.fmt_type.name} to 0x{tlp.address:x} sent while Bus Master Enable is off")
        four_dw = tlp.fmt_type in {TlpType.MEM_READ_64, TlpType.MEM_WRITE_64}
        if four_dw != (tlp.address >= 1 << 32):
            self._error(f"{'4' if four_dw else '3'}-DW header for address 0x{tlp.address:x}")
        if self.bus_dev is not None and (tlp.requester_id.bus, tlp.requester_id.device, tlp.requester_id.function) != (*self.bus_dev, 0):
            self._error(f"requester id {tlp.requester_id} is not the captured bus/device {self.bus_dev}")
        if tlp.length == 1:
            if tlp.last_be != 0:
                self._error(f"one-dword request with last BE 0x{tlp.last_be:x}")
        else:
            if not _be_contiguous_high(tlp.first_be) or not _be_contiguous_low(tlp.last_be):
                self._error(f"byte enables first 0x{tlp.first_be:x} last 0x{tlp.last_be:x} are not contiguous")
        if (tlp.address & 0xFFF) + tlp.length * 4 > 0x1000:
            self._error(f"{tlp.fmt_type.name} at 0x{tlp.address:x} of {tlp.length * 4} bytes crosses a 4 KiB boundary")
        if tlp.fmt_type in _MEM_WRITES:
            if tlp.length * 4 > self.max_payload_size:
                self._error(f"write of {tlp.length * 4} bytes exceeds Max_Payload_Size {self.max_payload_size}")
            if len(tlp.data) != tlp.length * 4:
                self._error(f"write payload {len(tlp.data)} bytes, length field {tlp.length * 4}")
        else:
            if tlp.length * 4 > self.max_read_request_size:
                self._error(f"read of {tlp.length * 4} bytes exceeds Max_Read_Request_Size {self.max_read_request_size}")
            if tlp.tag in self.dma_reads:
                self._error(f"read reuses tag {tlp.tag} while it is outstanding")
            self.dma_reads[tlp.tag] = request_byte_count(tlp)

    def assert_quiet(self):
        """Every request the host sent has been completed."""
        if self.outstanding:
            raise TlpProtocolError(f"{len(self.outstanding)} host requests never completed: "
                                   + ", ".join(repr(o.tlp) for o in self.outstanding.values()))
