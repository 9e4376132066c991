# SPDX-License-Identifier: Apache-2.0
"""Device DMA checker: every memory read and write the device makes is checked against what the
driver currently lets it touch, and logged.

Installed on the root complex (``DmaChecker().install(rc)``), it wraps the handlers of memory
read and write TLPs (``rc.handle_mem_read_tlp`` / ``rc.handle_mem_write_tlp``): a request is
checked byte-exactly (byte enables included) before the RC performs it. The driver's own Python
accesses go straight to the memory regions and are never seen.

The ownership map (which bytes the device may touch, and how):

| region | registered by | device read | device write |
|---|---|---|---|
| descriptor table | Virtqueue (register_vring) | ok | error (SPL-05) |
| available ring incl. used_event | Virtqueue | ok | error |
| used ring incl. avail_event | Virtqueue | error | ok |
| indirect table of an outstanding chain | virtqueue_add_sgs -> own() | ok | error (SPL-05) |
| device-readable buffer of an outstanding chain | own() | ok | error (SPL-03) |
| device-writable buffer of an outstanding chain | own() | warning (SPL-04) | ok |
| MSI/MSI-X message address (the RC's MsiRegion) | install() | ok | ok |
| anything else | | error | error |

A chain stops being owned by the device as soon as the device publishes it (the used idx write
that covers it) or the driver takes it back (``release()``), whichever comes first.

On each write of a used ring's ``idx`` the checker also verifies, for every element it
publishes, that the element (id and len) was fully written before (SPL-09), that its id is an
outstanding head, that ``len`` does not exceed the chain's writable bytes, and that the first
``len`` writable bytes were written before (SPL-10). Writes of used ``flags`` must be 0 or 1
(SPL-19), and 0 with EVENT_IDX (SPL-20).

Violations are recorded in ``errors`` (and raise DmaViolation unless ``raise_on_error`` is
False); SHOULD-NOT accesses go to ``warnings``. ``accesses`` is the ordered log of every access:
``DmaAccess(seq, time_ns, op, addr, length, verdict, what, data)``.

Without a simulator (pure-Python tests) use ``checker.device_port(mem)``: an object with async
``read(addr, length)`` / ``write(addr, data)`` that checks, logs and then accesses ``mem`` (an
AddressSpace), as a device model's DMA would.
"""

import bisect
import logging
from collections import deque, namedtuple

try:
    from cocotb.utils import get_sim_time
except ImportError:  # pragma: no cover - cocotb is always installed here
    get_sim_time = None

try:
    from cocotbext.pcie.core.tlp import TlpType
except ImportError:  # pragma: no cover
    TlpType = None

# Region kinds
KIND_DESC = "descriptor table"
KIND_AVAIL = "available ring"
KIND_USED = "used ring"
KIND_INDIRECT = "indirect table"
KIND_OUT = "device-readable buffer"
KIND_IN = "device-writable buffer"
KIND_MSI = "MSI message address"
KIND_RW = "device read/write region"  # for tests and other users (add_region)

OK, WARN, ERROR = "ok", "warning", "error"

# kind -> ((read verdict, requirement), (write verdict, requirement))
PERMISSIONS = {
    KIND_DESC: ((OK, None), (ERROR, "SPL-05: the device must not write the descriptor table")),
    KIND_AVAIL: ((OK, None), (ERROR, "the available ring (driver area) is read-only for the device")),
    KIND_USED: ((ERROR, "the used ring (device area) is write-only for the device"), (OK, None)),
    KIND_INDIRECT: ((OK, None), (ERROR, "SPL-05: the device must not write an indirect table")),
    KIND_OUT: ((OK, None), (ERROR, "SPL-03: the device must not write a device-readable buffer")),
    KIND_IN: ((WARN, "SPL-04: the device should not read a device-writable buffer"), (OK, None)),
    KIND_MSI: ((OK, None), (OK, None)),
    KIND_RW: ((OK, None), (OK, None)),
}

# Short names accepted by own()
SPAN_KINDS = {"out": KIND_OUT, "in": KIND_IN, "indirect": KIND_INDIRECT}

PAGE_SHIFT = 12
USED_IDX_OFFSET = 2
USED_RING_OFFSET = 4
USED_ELEM_SIZE = 8
USED_ELEM_FULL = 0xFF  # all 8 bytes of a used element written
RECENTLY_RELEASED = 4096  # released regions remembered to name the nearest region in errors

DmaAccess = namedtuple("DmaAccess", "seq time_ns op addr length verdict what data")


class DmaViolation(AssertionError):
    """The device touched host memory it does not own, or broke the used-ring publication order."""


class _Entry:
    __slots__ = ("start", "end", "kind", "token", "name", "written", "state", "label")

    def __init__(self, start, length, kind, token, name):
        self.start = start
        self.end = start + length
        self.kind = kind
        self.token = token
        self.name = name
        self.written = bytearray(length) if kind == KIND_IN else None
        self.state = "owned"
        self.label = f"{kind} of {name}"

    def describe(self):
        return f"{self.kind} of {self.name} [0x{self.start:x}..0x{self.end:x})"


class _VringTrack:
    """What the checker knows about one split ring's used area."""

    def __init__(self, vq):
        self.vq = vq
        self.num = vq.num
        self.used_addr = vq.used_addr
        self.used_size = 4 + USED_ELEM_SIZE * vq.num + 2
        self.shadow = bytearray(self.used_size)  # the used ring as the device wrote it
        self.elem_mask = bytearray(vq.num)  # bytes of each element written since it was last published
        self.published_idx = 0
        self.entries = []


class DevicePort:
    """A device's view of host memory through the checker (for Python device models)."""

    def __init__(self, checker, mem):
        self.checker = checker
        self.mem = mem

    async def read(self, addr, length):
        self.checker.check_read(addr, length)
        return bytes(await self.mem.read(addr, length))

    async def write(self, addr, data):
        data = bytes(data)
        self.checker.check_write(addr, data)
        await self.mem.write(addr, data)


class DmaChecker:
    """Ownership map + access log of device DMA. See the module docstring."""

    def __init__(self, raise_on_error=True, log_data=True, max_logged_messages=20):
        self.raise_on_error = raise_on_error
        self.log_data = log_data
        self.max_logged_messages = max_logged_messages
        self.log = logging.getLogger("cocotb.tb.dma_checker")
        self.rc = None
        self.accesses = []
        self.errors = []
        self.warnings = []
        self._seq = 0
        self._pages = {}  # page number -> list of entries
        self._tokens = {}  # token -> list of entries
        self._vrings = {}  # vq -> _VringTrack
        self._released = deque(maxlen=RECENTLY_RELEASED)
        self._orig_handlers = {}
        self._sim_time = get_sim_time

    # ------------------------------------------------------------------------------------------
    # Installation on a cocotbext-pcie RootComplex
    # ------------------------------------------------------------------------------------------

    def install(self, rc):
        """Wrap ``rc``'s memory read/write TLP handlers, allow the MSI region, and set
        ``rc.dma_checker`` so virtqueues find the checker."""
        if self.rc is not None:
            raise RuntimeError("DmaChecker is already installed")
        self.rc = rc
        rc.dma_checker = self
        msi = getattr(rc, "msi_region", None)
        if msi is not None:
            self.add_region(msi.get_absolute_address(0), msi.size, KIND_MSI, "root complex MSI region")
        handlers = getattr(rc, "rx_tlp_handler", None)
        if handlers is not None and TlpType is not None:
            for fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64):
                self._wrap(rc, fmt_type, self._checked_read_handler)
            for fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
                self._wrap(rc, fmt_type, self._checked_write_handler)
        return self

    def _wrap(self, rc, fmt_type, make):
        orig = rc.rx_tlp_handler[fmt_type]
        self._orig_handlers[fmt_type] = orig
        rc.register_rx_tlp_handler(fmt_type, make(orig))

    def uninstall(self):
        if self.rc is None:
            return
        for fmt_type, orig in self._orig_handlers.items():
            self.rc.register_rx_tlp_handler(fmt_type, orig)
        self._orig_handlers = {}
        if getattr(self.rc, "dma_checker", None) is self:
            self.rc.dma_checker = None
        self.rc = None

    def _checked_read_handler(self, orig):
        async def handler(tlp):
            if tlp.length == 1 and tlp.first_be == 0:
                self._record("R", tlp.address & ~3, 0, OK, "zero-length read", None)
            else:
                self.check_read((tlp.address & ~3) + tlp.get_first_be_offset(), tlp.get_be_byte_count())
            await orig(tlp)
        return handler

    def _checked_write_handler(self, orig):
        async def handler(tlp):
            for addr, data in tlp_write_runs(tlp):
                self.check_write(addr, data)
            await orig(tlp)
        return handler

    def device_port(self, mem):
        """A checked DMA port onto ``mem`` (an AddressSpace) for Python device models."""
        return DevicePort(self, mem)

    # ------------------------------------------------------------------------------------------
    # Ownership
    # ------------------------------------------------------------------------------------------

    def _add(self, entry):
        for page in range(entry.start >> PAGE_SHIFT, ((entry.end - 1) >> PAGE_SHIFT) + 1):
            self._pages.setdefault(page, []).append(entry)
        self._tokens.setdefault(entry.token, []).append(entry)

    def _remove_token(self, token, state):
        entries = self._tokens.pop(token, None)
        if not entries:
            return False
        for entry in entries:
            for page in range(entry.start >> PAGE_SHIFT, ((entry.end - 1) >> PAGE_SHIFT) + 1):
                lst = self._pages.get(page)
                if lst is not None:
                    try:
                        lst.remove(entry)
                    except ValueError:
                        pass
                    if not lst:
                        del self._pages[page]
            entry.state = state
            self._released.append(entry)
        return True

    def add_region(self, addr, length, kind=KIND_RW, name="region", token=None):
        """A region the device may access per ``kind`` until remove_region(token)."""
        if kind not in PERMISSIONS:
            raise ValueError(f"unknown region kind {kind!r}")
        token = token if token is not None else ("region", name, addr)
        self._add(_Entry(addr, length, kind, token, name))
        return token

    def remove_region(self, token):
        self._remove_token(token, "removed")

    def register_vring(self, vq):
        """Descriptor table, available ring and used ring of a split virtqueue."""
        if vq in self._vrings:
            return
        track = _VringTrack(vq)
        name = f"vq {vq.index} ({vq.name})"
        token = ("vring", id(vq))
        num = vq.num
        self._add(_Entry(vq.desc_addr, 16 * num, KIND_DESC, token, name))
        self._add(_Entry(vq.avail_addr, 4 + 2 * num + 2, KIND_AVAIL, token, name))
        self._add(_Entry(vq.used_addr, track.used_size, KIND_USED, token, name))
        self._vrings[vq] = track

    def unregister_vring(self, vq):
        """Forget a ring (after a reset and re-setup on new rings): the device may no longer touch it."""
        self._vrings.pop(vq, None)
        self._remove_token(("vring", id(vq)), "unregistered")
        for token in [t for t in self._tokens if isinstance(t, tuple) and len(t) == 2 and t[0] is vq]:
            self._remove_token(token, "unregistered")

    def own(self, token, spans, name=None):
        """Give the device a chain: ``spans`` = [(addr, length, kind)], kind "out", "in" or
        "indirect" (or a KIND_* name). ``token`` identifies it for release()."""
        if token in self._tokens:
            self._error(f"{name or token}: given to the device while it still owns it (driver bug)")
        name = name or str(token)
        for addr, length, kind in spans:
            kind = SPAN_KINDS.get(kind, kind)
            if kind not in PERMISSIONS:
                raise ValueError(f"unknown span kind {kind!r}")
            self._add(_Entry(addr, length, kind, token, name))

    def release(self, token):
        """The driver took the chain back (virtqueue_get_buf); no-op if the device already gave it back."""
        self._remove_token(token, "taken back by the driver")

    def owned_tokens(self):
        return [t for t in self._tokens if not (isinstance(t, tuple) and t and t[0] in ("vring", "region"))]

    # ------------------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------------------

    def _overlapping(self, addr, end):
        first = addr >> PAGE_SHIFT
        last = (end - 1) >> PAGE_SHIFT
        if first == last:
            return [e for e in self._pages.get(first, ()) if e.start < end and addr < e.end]
        found = []
        seen = set()
        for page in range(first, last + 1):
            for entry in self._pages.get(page, ()):
                if entry.start < end and addr < entry.end and id(entry) not in seen:
                    seen.add(id(entry))
                    found.append(entry)
        return found

    @staticmethod
    def _gaps(addr, end, intervals):
        """Parts of [addr, end) not covered by ``intervals`` [(start, end)]."""
        gaps = []
        pos = addr
        for start, stop in sorted(intervals):
            if start > pos:
                gaps.append((pos, min(start, end)))
            pos = max(pos, stop)
            if pos >= end:
                break
        if pos < end:
            gaps.append((pos, end))
        return [g for g in gaps if g[0] < g[1]]

    def _classify(self, op, addr, length):
        """(verdict, message, description of what was touched)."""
        end = addr + length
        entries = self._overlapping(addr, end)
        which = 0 if op == "R" else 1
        covering = None
        for entry in entries:
            verdict, why = PERMISSIONS[entry.kind][which]
            if verdict == ERROR:
                return ERROR, f"{why}: it touches the {entry.describe()}", self._what(entries)
            if verdict == OK and entry.start <= addr and end <= entry.end:
                covering = entry
        if covering is not None:  # the common case: one region allows the whole access
            return OK, None, covering.label if len(entries) == 1 else self._what(entries)
        allowed = [(e.start, e.end) for e in entries if PERMISSIONS[e.kind][which][0] in (OK, WARN)]
        gaps = self._gaps(addr, end, allowed)
        if gaps:
            gap_start, gap_end = gaps[0]
            return ERROR, (f"bytes [0x{gap_start:x}..0x{gap_end:x}) are not owned by the device; "
                           f"nearest known region: {self.nearest(gap_start, gap_end)}"), self._what(entries)
        ok_only = [(e.start, e.end) for e in entries if PERMISSIONS[e.kind][which][0] == OK]
        if self._gaps(addr, end, ok_only):
            warn = next(e for e in entries if PERMISSIONS[e.kind][which][0] == WARN)
            return WARN, f"{PERMISSIONS[warn.kind][which][1]}: it touches the {warn.describe()}", self._what(entries)
        return OK, None, self._what(entries)

    @staticmethod
    def _what(entries):
        return "; ".join(e.label for e in entries) if entries else "unowned memory"

    def nearest(self, start, end):
        """Describe the known region (current or recently released) nearest to [start, end)."""
        best = None
        candidates = [e for lst in self._pages.values() for e in lst] + list(self._released)
        for entry in candidates:
            if entry.start < end and start < entry.end:
                dist = 0
            elif entry.end <= start:
                dist = start - entry.end + 1
            else:
                dist = entry.start - end + 1
            if best is None or dist < best[0]:
                best = (dist, entry)
        if best is None:
            return "none (nothing registered)"
        dist, entry = best
        state = "" if entry.state == "owned" else f", no longer owned ({entry.state})"
        if dist == 0:
            return f"{entry.describe()}{state}"
        return f"{entry.describe()}{state}, {dist - 1} bytes away"

    def check_read(self, addr, length):
        """Check (and log) a device read of ``length`` bytes at ``addr``; returns the verdict."""
        if length <= 0:
            self._record("R", addr, 0, OK, "zero-length read", None)
            return OK
        verdict, message, what = self._classify("R", addr, length)
        self._record("R", addr, length, verdict, what, None)
        if verdict != OK:
            self._report(verdict, f"device read of {length} bytes at 0x{addr:x}: {message}")
        return verdict

    def check_write(self, addr, data):
        """Check (and log) a device write of ``data`` at ``addr``; returns the verdict. Also tracks
        used-ring publication and written bytes of device-writable buffers."""
        data = bytes(data)
        length = len(data)
        if length == 0:
            return OK
        verdict, message, what = self._classify("W", addr, length)
        self._record("W", addr, length, verdict, what, data if self.log_data else None)
        if verdict != OK:
            self._report(verdict, f"device write of {length} bytes at 0x{addr:x}: {message}")
        end = addr + length
        for entry in self._overlapping(addr, end):
            if entry.kind == KIND_IN:
                lo = max(addr, entry.start)
                hi = min(end, entry.end)
                entry.written[lo - entry.start:hi - entry.start] = b"\x01" * (hi - lo)
        for track in self._vrings.values():
            if track.used_addr < end and addr < track.used_addr + track.used_size:
                self._used_write(track, addr, data)
        return verdict

    def _used_write(self, track, addr, data):
        lo = max(addr, track.used_addr)
        hi = min(addr + len(data), track.used_addr + track.used_size)
        off_lo = lo - track.used_addr
        off_hi = hi - track.used_addr
        track.shadow[off_lo:off_hi] = data[lo - addr:hi - addr]
        vq = track.vq
        name = f"vq {vq.index}"
        # elements first: a TLP carrying elements and the idx writes them together
        ring_end = USED_RING_OFFSET + USED_ELEM_SIZE * track.num
        for off in range(max(off_lo, USED_RING_OFFSET), min(off_hi, ring_end)):
            slot, byte = divmod(off - USED_RING_OFFSET, USED_ELEM_SIZE)
            track.elem_mask[slot] |= 1 << byte
        if off_lo < 2 and off_hi > 0:  # flags
            if off_lo > 0 or off_hi < 2:
                self._error(f"{name}: used flags written one byte at a time")
            flags = int.from_bytes(track.shadow[0:2], "little")
            if getattr(vq, "event", False) and flags != 0:
                self._error(f"{name}: SPL-20: used flags written as 0x{flags:x} with EVENT_IDX negotiated "
                            "(must stay 0)")
            elif flags not in (0, 1):
                self._error(f"{name}: SPL-19: used flags written as 0x{flags:x} (only 0 or 1 allowed)")
        if off_lo < USED_IDX_OFFSET + 2 and off_hi > USED_IDX_OFFSET:
            if off_lo > USED_IDX_OFFSET or off_hi < USED_IDX_OFFSET + 2:
                self._error(f"{name}: used idx written one byte at a time; the driver can see a torn index")
            new = int.from_bytes(track.shadow[USED_IDX_OFFSET:USED_IDX_OFFSET + 2], "little")
            self._publish(track, new)

    def _publish(self, track, new):
        vq = track.vq
        name = f"vq {vq.index}"
        old = track.published_idx
        count = (new - old) & 0xFFFF
        if count == 0:
            return
        if count > track.num:
            self._error(f"{name}: used idx moved from {old} to {new}: {count} entries, more than the queue size "
                        f"{track.num} (went backwards?)")
            track.published_idx = new
            return
        for k in range(count):
            idx = (old + k) & 0xFFFF
            slot = idx % track.num
            if track.elem_mask[slot] != USED_ELEM_FULL:
                self._error(f"{name}: SPL-09: used ring[{slot}] (idx {idx}) not completely written before used idx "
                            f"moved to {new} (written byte mask 0x{track.elem_mask[slot]:02x})")
            track.elem_mask[slot] = 0
            elem = USED_RING_OFFSET + USED_ELEM_SIZE * slot
            head = int.from_bytes(track.shadow[elem:elem + 4], "little")
            used_len = int.from_bytes(track.shadow[elem + 4:elem + 8], "little")
            token = (vq, head)
            entries = self._tokens.get(token)
            if not entries:
                self._error(f"{name}: used idx {new} publishes id {head} (ring[{slot}]) that is not a chain the "
                            "device owns (never made available, or already used)")
                continue
            writable = [e for e in entries if e.kind == KIND_IN]
            total = sum(e.end - e.start for e in writable)
            if used_len > total:
                self._error(f"{name}: SPL-10: used len {used_len} for head {head} is more than its {total} "
                            "device-writable bytes")
            else:
                remaining = used_len
                for entry in writable:
                    if remaining <= 0:
                        break
                    part = min(remaining, entry.end - entry.start)
                    hole = entry.written.find(0, 0, part)
                    if hole >= 0:
                        self._error(f"{name}: SPL-10: head {head} published with used len {used_len}, but byte "
                                    f"0x{entry.start + hole:x} of its {entry.describe()} was not written before "
                                    "the used idx")
                        break
                    remaining -= part
            self._remove_token(token, f"used by the device at used idx {new}")
        track.published_idx = new

    # ------------------------------------------------------------------------------------------
    # Log and reports
    # ------------------------------------------------------------------------------------------

    def _now(self):
        if self._sim_time is None:
            return None
        try:
            return self._sim_time("ns")
        except Exception:
            self._sim_time = None  # no simulator: stop trying (an exception per access is slow)
            return None

    def _record(self, op, addr, length, verdict, what, data):
        self._seq += 1
        self.accesses.append(DmaAccess(self._seq, self._now(), op, addr, length, verdict, what, data))

    def _report(self, verdict, message):
        if verdict == WARN:
            self.warnings.append(message)
            if len(self.warnings) <= self.max_logged_messages:
                self.log.warning("%s", message)
        else:
            self._error(message)

    def _error(self, message):
        self.errors.append(message)
        if len(self.errors) <= self.max_logged_messages:
            self.log.error("%s", message)
        if self.raise_on_error:
            raise DmaViolation(message)

    @property
    def seq(self):
        """Sequence number of the last logged access (for accesses_since)."""
        return self._seq

    def accesses_since(self, seq):
        """Accesses logged after sequence number ``seq``."""
        i = bisect.bisect_right([a.seq for a in self.accesses], seq)
        return self.accesses[i:]

    def assert_clean(self, allow_warnings=True):
        """Raise DmaViolation listing every recorded error (and warning unless allowed)."""
        problems = list(self.errors) + ([] if allow_warnings else list(self.warnings))
        if problems:
            more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
            raise DmaViolation(f"{len(problems)} DMA problem(s): " + "; ".join(problems[:10]) + more)

    def clear(self):
        """Forget the log, errors and warnings (ownership is kept)."""
        self.accesses = []
        self.errors = []
        self.warnings = []


def tlp_write_runs(tlp):
    """The contiguous (address, bytes) runs a memory write TLP really writes (byte enables).

    Only the first and last dwords can have holes (their byte enables); the middle dwords are
    all enabled, so the work is per byte at the two ends only."""
    data = bytes(tlp.get_data())
    base = tlp.address & ~3
    length = tlp.length
    if length == 1:
        bes = ((0, tlp.first_be),)
    else:
        bes = ((0, tlp.first_be), (length - 1, tlp.last_be))
    # enabled byte ranges [start, end) in payload offsets, in order, merged when adjacent
    runs = []
    for dw, be in bes:
        if dw == length - 1 and length > 2:
            # the full middle dwords 1 .. length-2
            _add_range(runs, 4, 4 * (length - 1))
        for k in range(4):
            if be >> k & 1:
                _add_range(runs, 4 * dw + k, 4 * dw + k + 1)
    return [(base + start, data[start:end]) for start, end in runs]


def _add_range(runs, start, end):
    if runs and runs[-1][1] == start:
        runs[-1][1] = end
    else:
        runs.append([start, end])
