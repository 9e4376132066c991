# SPDX-License-Identifier: Apache-2.0
"""Direct DMA path of PcieHost and the host's read model.

cocotbext-pcie's link model (DLLPs, flow control, per-port queues and routing tasks) costs
about half a millisecond of wall time per TLP. Device-initiated traffic needs none of it: the
device's memory reads and writes end in the root complex's memory handlers anyway. With
``PcieHost(fast_dma=True)`` every MRd/MWr the RTL sends on ``tx_req`` goes to
``FastDma.submit`` instead of the link:

* it is handed to the root complex's own TLP handler chain ``rc.rx_tlp_handler[fmt_type]``
  (so whatever wraps it, e.g. the DMA checker of models/pcie/dma_checker.py, sees the same
  calls as on the link path), in ``tx_req`` order, run to completion at once when it does not
  wait on anything (the normal case: host memory, the MSI region);
* a memory write ends in ``rc.handle_mem_write_tlp`` unchanged (byte enables, MSI/MSI-X
  vector events and callbacks of cocotbext-pcie's MsiRegion);
* a memory read ends in ``FastDma.handle_mem_read_tlp`` (registered as the innermost read
  handler of the RC), which answers from ``rc.mem_address_space`` like rc.py's
  ``handle_mem_read_tlp`` (UR when no region covers the request, CA when the region read
  raises, nothing for a request crossing 4 KiB) but with the host read model below, and
  returns the completions straight into ``rx_cpl``.

Requests the link would route elsewhere than the RC's memory (an address inside the host
bridge's windows for device BARs: peer-to-peer) still take the link (so they keep their UR /
drop behaviour); they are rare, and may be overtaken by later fast requests.

Host read model (``ReadModel``):

* latency: the first completion of a read is queued for ``rx_cpl`` ``read_latency_ns`` after
  the MRd left ``tx_req`` (its last beat was accepted); each read has its own latency, so
  outstanding reads overlap;
* splitting: the first completion runs up to the next read completion boundary (RCB, 64 or
  128 bytes) when the read does not start on one, then completions of ``completion_size``
  bytes (a multiple of the RCB, at most Max_Payload_Size; default Max_Payload_Size) up to the
  end; byte count and lower address per PCIe (a zero-length read returns one dword with byte
  count 1);
* ``interleave``: completions of different reads that are due at the same time are mixed at
  random (seeded) instead of going out one read after the other; at most two completions
  then wait in ``rx_cpl`` so that the choice is made as the stream frees up;
* ``link_bytes_per_ns``: completions leave at most at this rate (TLP header + payload bytes;
  None = unlimited, the ``rx_cpl`` stream is then the only limit).
"""

import heapq
import logging
import os
import random
from collections import deque

import cocotb
from cocotb.triggers import Event, Timer
from cocotb.utils import get_sim_time
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from .tlp_stream import new_tlp

DEFAULT_READ_LATENCY_NS = 1000
DEFAULT_RCB = 64
INTERLEAVE_DEPTH = 2           # completions waiting in rx_cpl when interleaving
CPL_HEADER_BYTES = 12

_MEM_READS = (TlpType.MEM_READ, TlpType.MEM_READ_64)
_MEM_WRITES = (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64)
_TRUE = ("1", "yes", "y", "on", "true")
_FALSE = ("0", "no", "n", "off", "false", "")


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={value!r}: use 1/0, yes/no, on/off, true/false")


def env_number(name, default, kind=int, none_words=()):
    """``kind(os.environ[name])``; ``none_words`` (e.g. "none", "0") mean None."""
    value = os.environ.get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value in none_words:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


_CPL_DATA = TlpType.CPL_DATA.value
_RC_ID = PcieId(0, 0, 0)


def completion_with_data(tlp, completer_id):
    """``Tlp.create_completion_data_for_tlp(tlp, completer_id)``, made faster."""
    cpl = new_tlp()
    d = cpl.__dict__
    d["fmt"], d["type"] = _CPL_DATA
    d["_requester_id"] = tlp.requester_id
    d["_completer_id"] = completer_id
    d["status"] = CplStatus.SC
    d["attr"] = tlp.attr
    d["tag"] = tlp.tag
    d["tc"] = tlp.tc
    return cpl


def split_read_completions(tlp, data, rcb=DEFAULT_RCB, completion_size=256, completer_id=None):
    """Successful completions (CplD) for memory read ``tlp`` carrying ``data`` (its
    ``tlp.length`` dwords, from the dword-aligned address), split the way a root complex
    does: the first completion up to the next ``rcb`` boundary when the read does not start on
    one, then ``completion_size``-byte completions (a multiple of ``rcb``) up to the end.

    Byte count and lower address follow the PCIe rules (byte count = bytes still to come,
    incl. this completion's; lower address = address of the first byte this completion
    carries, bits 6:0; a zero-length read (1 dword, no byte enabled) has byte count 1 and
    lower address bits 1:0 = 0).
    """
    if rcb not in (64, 128):
        raise ValueError(f"read completion boundary {rcb}: must be 64 or 128")
    if completion_size < rcb or completion_size % rcb:
        raise ValueError(f"completion size {completion_size} is not a multiple of the RCB {rcb}")
    if completer_id is None:
        completer_id = _RC_ID
    dw_addr = tlp.address & ~3
    dw_length = tlp.length
    if dw_length == 1 and tlp.first_be == 0:
        first_off = 0
        remaining = 1
    else:
        first_off = tlp.get_first_be_offset()
        remaining = tlp.get_be_byte_count()
    end = dw_addr + dw_length * 4
    data = bytes(data)
    cpls = []
    pos = dw_addr
    skip = first_off            # bytes of the first dword before the first enabled one
    rcb_mask = rcb - 1
    while pos < end:
        if pos & rcb_mask:
            stop = (pos | rcb_mask) + 1                   # up to the next RCB boundary
        else:
            stop = pos + completion_size
        if stop > end:
            stop = end
        cpl = completion_with_data(tlp, completer_id)
        cpl.byte_count = remaining
        cpl.lower_address = (pos + skip) & 0x7F
        cpl.data = bytearray(data[pos - dw_addr:stop - dw_addr])
        cpl.length = (stop - pos) >> 2
        cpls.append(cpl)
        remaining -= stop - pos - skip
        skip = 0
        pos = stop
    return cpls


class _Resume:
    """Awaitable that finishes a coroutine already started by hand (it is waiting on
    ``trigger``), so that a cocotb Task can take it over."""

    def __init__(self, coro, trigger):
        self.coro = coro
        self.trigger = trigger

    def __await__(self):
        trigger = self.trigger
        while True:
            try:
                yield trigger
            except BaseException as exc:  # cancellation or a failed trigger: pass it on
                try:
                    trigger = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                trigger = self.coro.send(None)
            except StopIteration as stop:
                return stop.value


class ReadModel:
    """Latency, splitting, interleaving and pacing of the completions the host returns for
    the device's reads (see the module docstring). ``deliver(cpl, on_sent)`` puts one
    completion into the ``rx_cpl`` stream."""

    def __init__(self, deliver, max_payload_size, read_latency_ns=DEFAULT_READ_LATENCY_NS,
                 rcb=DEFAULT_RCB, completion_size=None, interleave=False, link_bytes_per_ns=None,
                 seed=1):
        self.deliver = deliver
        self.max_payload_size = max_payload_size      # callable -> bytes
        self.read_latency_ns = read_latency_ns
        self.rcb = rcb
        self.completion_size = completion_size
        self.interleave = interleave
        self.link_bytes_per_ns = link_bytes_per_ns
        self.rng = random.Random(seed)
        self.check_config()
        self.reads = 0                  # reads answered
        self.completions = 0            # completions delivered to rx_cpl
        self._heap = []                 # (due time in ps, sequence, deque of completions)
        self._seq = 0
        self._ready = []                # deques of completions that are due
        self._inflight = 0              # completions in rx_cpl not yet fully sent
        self._link_free = 0             # ps: when the link can take the next completion
        self._target = None             # ps the runner sleeps until (None: waits on _wake)
        self._wake = Event()
        self._in_runner = False
        self._task = None

    def check_config(self):
        if self.rcb not in (64, 128):
            raise ValueError(f"read completion boundary {self.rcb}: must be 64 or 128")
        if self.read_latency_ns < 0:
            raise ValueError(f"read latency {self.read_latency_ns} ns is negative")
        if self.completion_size is not None and (self.completion_size < self.rcb
                                                 or self.completion_size % self.rcb):
            raise ValueError(f"completion size {self.completion_size} is not a multiple of the RCB {self.rcb}")
        if self.link_bytes_per_ns is not None and self.link_bytes_per_ns <= 0:
            raise ValueError(f"link rate {self.link_bytes_per_ns} bytes/ns: must be > 0 (None = unlimited)")

    def cpl_size(self):
        mps = self.max_payload_size()
        size = self.completion_size or mps
        return max(self.rcb, min(size, mps) // self.rcb * self.rcb)

    def split(self, tlp, data):
        return split_read_completions(tlp, data, self.rcb, self.cpl_size())

    def idle(self):
        return not self._heap and not self._ready and self._inflight == 0

    # ---- scheduling
    def schedule(self, start_ps, cpls):
        """Queue the completions of one read whose request left tx_req at ``start_ps``."""
        self.reads += 1
        self._seq += 1
        due = start_ps + int(round(self.read_latency_ns * 1000))
        heapq.heappush(self._heap, (due, self._seq, deque(cpls)))
        self._need_wake(due)

    def _now(self):
        return round(get_sim_time("ps"))

    def _next_time(self):
        """When the runner must look again (None: only on a new read or a sent completion)."""
        t = self._heap[0][0] if self._heap else None
        if (self._ready and self.link_bytes_per_ns is not None
                and (not self.interleave or self._inflight < INTERLEAVE_DEPTH)):
            if t is None or self._link_free < t:
                t = self._link_free
        return t

    def _need_wake(self, t):
        if self._in_runner:
            return              # the runner plans its next wake right after
        if self._task is None:
            self._task = cocotb.start_soon(self._run())
        elif self._target is None:
            self._wake.set()
        elif t < self._target:
            # earlier than the runner's timer (the latency was lowered): start it over
            self._task.cancel()
            self._target = None
            self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            self._in_runner = True
            try:
                self._pump()
            finally:
                self._in_runner = False
            t = self._next_time()
            if t is None:
                self._target = None
                self._wake.clear()
                await self._wake.wait()
            else:
                now = self._now()
                self._target = t
                if t > now:
                    await Timer(t - now, "ps")

    def _pump(self):
        now = self._now()
        heap = self._heap
        ready = self._ready
        while heap and heap[0][0] <= now:
            ready.append(heapq.heappop(heap)[2])
        rate = self.link_bytes_per_ns
        while ready:
            if self.interleave and self._inflight >= INTERLEAVE_DEPTH:
                return
            if rate is not None and self._link_free > now:
                return
            k = self.rng.randrange(len(ready)) if self.interleave and len(ready) > 1 else 0
            job = ready[k]
            cpl = job.popleft()
            if not job:
                del ready[k]
            self._inflight += 1
            self.completions += 1
            if rate is not None:
                nbytes = CPL_HEADER_BYTES + (cpl.length * 4 if cpl.fmt_type == TlpType.CPL_DATA else 0)
                self._link_free = max(now, self._link_free) + int(round(nbytes * 1000 / rate))
            self.deliver(cpl, self._on_sent)

    def _on_sent(self):
        self._inflight -= 1
        if self._ready:
            if not self._in_runner:
                self._pump()
            t = self._next_time()
            if t is not None:
                self._need_wake(t)


class FastDma:
    """The direct path for device-initiated requests (see the module docstring)."""

    def __init__(self, host, read_model):
        self.host = host
        self.rc = host.rc
        self.log = logging.getLogger("cocotb.tb.fast_dma")
        self.model = read_model
        self.enabled = True
        self.requests = 0               # device requests taken by the direct path
        self.linked = 0                 # device requests sent over the link instead
        self._backlog = None            # TLPs waiting behind a handler that blocked
        self.read_handler = self.handle_mem_read_tlp
        for fmt_type in _MEM_READS:
            self.rc.register_rx_tlp_handler(fmt_type, self.read_handler)

    # ---- device requests
    def accepts(self, tlp):
        """True for a memory request the link would deliver to the RC's own handlers."""
        # the switch routes a device's memory request to the host bridge unless the address is
        # in the bridge's windows for device BARs (HostBridge.match_tlp_secondary); the bridge
        # itself has no BARs (else HostBridge.match_tlp decides as well)
        fmt_type = tlp.fmt_type
        if fmt_type not in _MEM_READS and fmt_type not in _MEM_WRITES:
            return False
        bridge = self.rc.upstream_bridge
        addr = tlp.address
        if (bridge.mem_base <= addr <= bridge.mem_limit
                or bridge.prefetchable_mem_base <= addr <= bridge.prefetchable_mem_limit):
            return False
        if any(bridge.bar_mask) and bridge.match_tlp(tlp):
            return False
        return True

    def submit(self, tlp):
        """Hand a device request to the RC's handler chain, in tx_req order."""
        self.requests += 1
        tlp.fast_dma_start = round(get_sim_time("ps"))
        if self._backlog is not None:
            self._backlog.append(tlp)
            return
        self._dispatch(tlp)

    def _dispatch(self, tlp):
        coro = self.rc.rx_tlp_handler[tlp.fmt_type](tlp)
        try:
            trigger = coro.send(None)
        except StopIteration:
            return
        # the handler waits on something: finish it in a task; later requests queue behind it
        self._backlog = deque()
        cocotb.start_soon(self._finish(coro, trigger))

    async def _finish(self, coro, trigger):
        await _Resume(coro, trigger)
        while self._backlog:
            tlp = self._backlog.popleft()
            await self.rc.rx_tlp_handler[tlp.fmt_type](tlp)
        self._backlog = None

    # ---- the RC's innermost memory read handler
    async def handle_mem_read_tlp(self, tlp):
        """rc.py's handle_mem_read_tlp for requests of the direct path; others (from the link)
        go to the RC's own handler."""
        start = getattr(tlp, "fast_dma_start", None)
        if start is None:
            await self.rc.handle_mem_read_tlp(tlp)
            return
        rc = self.rc
        length = tlp.length * 4
        if not rc.mem_address_space.find_regions(tlp.address, length):
            rc.log.warning("Memory request did not match any regions: %r", tlp)
            self.model.schedule(start, [Tlp.create_ur_completion_for_tlp(tlp, PcieId(0, 0, 0))])
            return
        if length > 0x1000 - (tlp.address & 0xFFF):
            rc.log.warning("Request crossed 4k boundary, discarding request")
            return
        try:
            data = await rc.mem_address_space.read(tlp.address, length)
        except Exception:
            rc.log.warning("Memory read operation failed: %r", tlp)
            self.model.schedule(start, [Tlp.create_ca_completion_for_tlp(tlp, PcieId(0, 0, 0))])
            return
        self.model.schedule(start, self.model.split(tlp, data))

    def idle(self):
        return self._backlog is None and self.model.idle()
