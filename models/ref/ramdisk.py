# SPDX-License-Identifier: Apache-2.0
"""Reference RAM disk: what a virtio-blk device must answer, used as the scoreboard.

``RamDisk`` holds ``capacity`` 512-byte sectors in a bytearray and implements the request
semantics of spec §5.2.6 (conformance BLK-09 ... BLK-24):

* IN / OUT: data in 512-byte units whatever ``blk_size`` says; a length that is not a multiple
  of 512, or a range past ``capacity``, gives IOERR and leaves the disk untouched (an IN then
  returns zeros). OUT on a read-only disk (RO *offered*) gives IOERR.
* FLUSH: OK (UNSUPP if the disk is built with ``flush=False``).
* GET_ID: the id string NUL-padded to 20 bytes, OK.
* DISCARD / WRITE_ZEROES (only if enabled): 16-byte segments {le64 sector, le32 num_sectors,
  le32 flags}; a flag bit other than unmap, or unmap on DISCARD, gives UNSUPP (BLK-10/11); a
  range past capacity, a segment or sector count above the limits, or a data length that is not
  a multiple of 16 gives IOERR (BLK-23). Read-only: IOERR (spec issue §15.8, recommended).
  After WRITE_ZEROES the range reads zeros (BLK-12); after DISCARD its content is undefined
  (``is_defined`` says which sectors a scoreboard may compare).
* Any other type (zoned types, GET_LIFETIME, SECURE_ERASE, 0xFF...): UNSUPP (BLK-17, BLK-22).

``handle_request(out_bytes, in_len)`` does the whole request as the device sees it (header in
the first 16 readable bytes, status in the last writable byte) and returns the exact writable
bytes, following the RTL back end's contract (docs/ring-engine.md): it always produces exactly
``in_len`` bytes (data or zeros, then the status) and the used length is ``in_len``.
"""

from models.virtio.uapi import (
    VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
)

SECTOR_SIZE = 512
VIRTIO_BLK_OUTHDR_SIZE = 16  # struct virtio_blk_outhdr: le32 type, le32 reserved (ioprio), le64 sector
VIRTIO_BLK_DWZ_SEG_SIZE = 16  # struct virtio_blk_discard_write_zeroes
DEFAULT_ID = b"VIRTIO-BLK-REF"


def blk_outhdr_pack(req_type, sector, reserved=0):
    """The 16-byte request header."""
    return (req_type.to_bytes(4, "little") + reserved.to_bytes(4, "little") + sector.to_bytes(8, "little"))


def blk_outhdr_unpack(raw):
    """(type, reserved, sector) of a 16-byte header."""
    raw = bytes(raw)
    return (int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little"),
            int.from_bytes(raw[8:16], "little"))


def blk_dwz_seg_pack(sector, num_sectors, flags=0):
    """One struct virtio_blk_discard_write_zeroes segment."""
    return sector.to_bytes(8, "little") + num_sectors.to_bytes(4, "little") + flags.to_bytes(4, "little")


def blk_dwz_seg_unpack(raw):
    raw = bytes(raw)
    return (int.from_bytes(raw[0:8], "little"), int.from_bytes(raw[8:12], "little"),
            int.from_bytes(raw[12:16], "little"))


def blk_id_bytes(id_string):
    """GET_ID data: the id NUL-padded (or cut) to 20 bytes."""
    if isinstance(id_string, str):
        id_string = id_string.encode("ascii")
    return bytes(id_string[:VIRTIO_BLK_ID_BYTES]).ljust(VIRTIO_BLK_ID_BYTES, b"\0")


class RamDisk:
    """The reference disk. ``data`` is the whole disk (capacity x 512 bytes).

    ``discard`` / ``write_zeroes``: whether those requests are supported (the device offers
    the feature); ``max_discard_sectors`` etc. are the limits it advertises (None = no limit).
    ``requests`` counts requests by type.
    """

    def __init__(self, capacity, read_only=False, id_string=DEFAULT_ID, data=None, flush=True,
                 discard=False, write_zeroes=False, max_discard_sectors=None, max_discard_seg=None,
                 max_write_zeroes_sectors=None, max_write_zeroes_seg=None):
        if capacity < 0:
            raise ValueError(f"capacity {capacity} sectors")
        self.capacity = capacity
        self.data = bytearray(capacity * SECTOR_SIZE)
        if data is not None:
            if len(data) > len(self.data):
                raise ValueError(f"initial data of {len(data)} bytes does not fit {capacity} sectors")
            self.data[:len(data)] = data
        self.read_only = read_only
        self.id_string = blk_id_bytes(id_string)
        self.flush_supported = flush
        self.discard_supported = discard
        self.write_zeroes_supported = write_zeroes
        self.max_discard_sectors = max_discard_sectors
        self.max_discard_seg = max_discard_seg
        self.max_write_zeroes_sectors = max_write_zeroes_sectors
        self.max_write_zeroes_seg = max_write_zeroes_seg
        self.undefined = set()  # discarded sectors whose content is unspecified
        self.requests = {}

    # ------------------------------------------------------------------------------------------
    # Per-request semantics
    # ------------------------------------------------------------------------------------------

    def _range_ok(self, sector, nbytes):
        return nbytes % SECTOR_SIZE == 0 and sector * SECTOR_SIZE + nbytes <= len(self.data)

    def read(self, sector, count):
        """IN of ``count`` sectors: (status, data); zeros with IOERR."""
        nbytes = count * SECTOR_SIZE
        return self.read_bytes(sector, nbytes)

    def read_bytes(self, sector, nbytes):
        """IN with a data length in bytes (IOERR unless a multiple of 512 inside the disk)."""
        if not self._range_ok(sector, nbytes):
            return VIRTIO_BLK_S_IOERR, bytes(nbytes)
        start = sector * SECTOR_SIZE
        return VIRTIO_BLK_S_OK, bytes(self.data[start:start + nbytes])

    def write(self, sector, data):
        """OUT: status."""
        if self.read_only or not self._range_ok(sector, len(data)):
            return VIRTIO_BLK_S_IOERR
        start = sector * SECTOR_SIZE
        self.data[start:start + len(data)] = data
        self._define(sector, len(data) // SECTOR_SIZE)
        return VIRTIO_BLK_S_OK

    def flush(self):
        return VIRTIO_BLK_S_OK if self.flush_supported else VIRTIO_BLK_S_UNSUPP

    def get_id(self):
        """(status, 20 bytes)."""
        return VIRTIO_BLK_S_OK, self.id_string

    def discard(self, segments):
        """DISCARD of [(sector, num_sectors, flags)]: status."""
        return self._dwz(VIRTIO_BLK_T_DISCARD, segments)

    def write_zeroes(self, segments):
        """WRITE_ZEROES of [(sector, num_sectors, flags)]: status."""
        return self._dwz(VIRTIO_BLK_T_WRITE_ZEROES, segments)

    def _dwz(self, req_type, segments):
        if req_type == VIRTIO_BLK_T_DISCARD:
            supported, max_sectors, max_seg = self.discard_supported, self.max_discard_sectors, self.max_discard_seg
            allowed_flags = 0
        else:
            supported, max_sectors, max_seg = (self.write_zeroes_supported, self.max_write_zeroes_sectors,
                                               self.max_write_zeroes_seg)
            allowed_flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
        if not supported:
            return VIRTIO_BLK_S_UNSUPP
        for _, _, flags in segments:
            if flags & ~allowed_flags:
                return VIRTIO_BLK_S_UNSUPP
        if self.read_only or not segments or (max_seg is not None and len(segments) > max_seg):
            return VIRTIO_BLK_S_IOERR
        for sector, num_sectors, _ in segments:
            if max_sectors is not None and num_sectors > max_sectors:
                return VIRTIO_BLK_S_IOERR
            if not self._range_ok(sector, num_sectors * SECTOR_SIZE):
                return VIRTIO_BLK_S_IOERR
        for sector, num_sectors, _ in segments:
            if req_type == VIRTIO_BLK_T_WRITE_ZEROES:
                start = sector * SECTOR_SIZE
                self.data[start:start + num_sectors * SECTOR_SIZE] = bytes(num_sectors * SECTOR_SIZE)
                self._define(sector, num_sectors)
            else:
                self.undefined.update(range(sector, sector + num_sectors))
        return VIRTIO_BLK_S_OK

    def _define(self, sector, count):
        if self.undefined:
            self.undefined.difference_update(range(sector, sector + count))

    def is_defined(self, sector, count=1):
        """False if any of the sectors was discarded since last written (content unspecified)."""
        return not any(s in self.undefined for s in range(sector, sector + count))

    def resize(self, capacity):
        """Change the capacity (keeps the data that still fits, zero-fills growth)."""
        new = bytearray(capacity * SECTOR_SIZE)
        keep = min(len(new), len(self.data))
        new[:keep] = self.data[:keep]
        self.data = new
        self.capacity = capacity
        self.undefined = {s for s in self.undefined if s < capacity}

    # ------------------------------------------------------------------------------------------
    # Whole requests, as the device sees the chain
    # ------------------------------------------------------------------------------------------

    def handle_request(self, out_bytes, in_len):
        """Serve one request: ``out_bytes`` = all device-readable bytes of the chain,
        ``in_len`` = its device-writable byte count.

        Returns ``(in_bytes, status, used_len)``: exactly ``in_len`` bytes to write into the
        writable part (data or zeros, the status byte last), the status (None if there is no
        writable byte to put it in) and the used length (``in_len``).
        """
        out_bytes = bytes(out_bytes)
        if in_len < 1:
            return b"", None, 0
        data_len = in_len - 1
        if len(out_bytes) < VIRTIO_BLK_OUTHDR_SIZE:
            status, data = VIRTIO_BLK_S_IOERR, b""
            req_type = None
        else:
            req_type, _reserved, sector = blk_outhdr_unpack(out_bytes[:VIRTIO_BLK_OUTHDR_SIZE])
            payload = out_bytes[VIRTIO_BLK_OUTHDR_SIZE:]
            status, data = self._dispatch(req_type, sector, payload, data_len)
        self.requests[req_type] = self.requests.get(req_type, 0) + 1
        data = bytes(data[:data_len]).ljust(data_len, b"\0")
        return data + bytes([status]), status, in_len

    def _dispatch(self, req_type, sector, payload, data_len):
        if req_type == VIRTIO_BLK_T_IN:
            return self.read_bytes(sector, data_len)
        if req_type == VIRTIO_BLK_T_OUT:
            return self.write(sector, payload), b""
        if req_type == VIRTIO_BLK_T_FLUSH:
            return self.flush(), b""
        if req_type == VIRTIO_BLK_T_GET_ID:
            return self.get_id()
        if req_type in (VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES):
            supported = self.discard_supported if req_type == VIRTIO_BLK_T_DISCARD else self.write_zeroes_supported
            if not supported:
                return VIRTIO_BLK_S_UNSUPP, b""
            if len(payload) % VIRTIO_BLK_DWZ_SEG_SIZE:
                return VIRTIO_BLK_S_IOERR, b""
            segments = [blk_dwz_seg_unpack(payload[i:i + VIRTIO_BLK_DWZ_SEG_SIZE])
                        for i in range(0, len(payload), VIRTIO_BLK_DWZ_SEG_SIZE)]
            return self._dwz(req_type, segments), b""
        return VIRTIO_BLK_S_UNSUPP, b""

    @staticmethod
    def expected_used_len(req_type, data_len):
        """The used len spec §5.2.6 expects for a well-formed request (IN: data + 1; GET_ID: 21;
        OUT, FLUSH, DISCARD, WRITE_ZEROES: 1)."""
        if req_type == VIRTIO_BLK_T_IN:
            return data_len + 1
        if req_type == VIRTIO_BLK_T_GET_ID:
            return VIRTIO_BLK_ID_BYTES + 1
        return 1
