# SPDX-License-Identifier: Apache-2.0
"""Disk images: load a file into the device's disk memory, save it back, or generate one.

The disk memory is a cocotbext-axi ``AxiRam`` (or anything with the same synchronous
``read(address, length)`` / ``write(address, data)`` methods: ``cocotbext.axi.memory.Memory``,
a ``RamDisk`` via its ``data``, a bytearray); byte address = sector x 512 + ``base``.

Errors are ``DiskImageError`` with a one-line message naming the file, fit for ``sys.exit``.
"""

import os
import random

SECTOR_SIZE = 512
DEFAULT_SEED = 0x5EC7_0001
PATTERN_MAGIC = b"VBLK"
_PATTERN_BLOCK_SECTORS = 61  # a prime, so the filler does not line up with power-of-two strides
_STAMP_SIZE = 16  # magic, le32 seed, le64 sector number


class DiskImageError(Exception):
    """A disk image file is missing, unreadable or has the wrong size."""


def check_image_size(size, capacity, path="disk image"):
    """Raise DiskImageError unless ``size`` bytes is a whole number of sectors that fits
    ``capacity`` sectors."""
    if size % SECTOR_SIZE:
        raise DiskImageError(f"{path}: size {size} bytes is not a multiple of {SECTOR_SIZE}")
    if capacity is not None and size > capacity * SECTOR_SIZE:
        raise DiskImageError(f"{path}: {size // SECTOR_SIZE} sectors do not fit the configured capacity of "
                             f"{capacity} sectors ({capacity * SECTOR_SIZE} bytes)")


def default_sector(sector, seed=DEFAULT_SEED, _cache={}):
    """The content of one sector of the default image: a 16-byte stamp ("VBLK", le32 seed,
    le64 sector number) then pseudo-random bytes from ``seed``, shifted per sector. Every
    sector differs and names itself, so a misdirected or torn transfer is visible."""
    block = _cache.get(seed)
    if block is None:
        block = random.Random(seed).randbytes(SECTOR_SIZE * _PATTERN_BLOCK_SECTORS + SECTOR_SIZE)
        _cache.clear()
        _cache[seed] = block
    shift = (sector * 7) % (SECTOR_SIZE * _PATTERN_BLOCK_SECTORS)
    stamp = PATTERN_MAGIC + (seed & 0xFFFFFFFF).to_bytes(4, "little") + sector.to_bytes(8, "little")
    return stamp + block[shift + _STAMP_SIZE:shift + SECTOR_SIZE]


def default_image(capacity, seed=DEFAULT_SEED):
    """A deterministic ``capacity``-sector image (see default_sector)."""
    return b"".join(default_sector(s, seed) for s in range(capacity))


def _mem_write(mem, address, data):
    if isinstance(mem, (bytearray, memoryview)):
        mem[address:address + len(data)] = data
    else:
        mem.write(address, data)


def _mem_read(mem, address, length):
    if isinstance(mem, (bytearray, memoryview, bytes)):
        return bytes(mem[address:address + length])
    return bytes(mem.read(address, length))


def load_disk_image(mem, path=None, capacity=None, base=0, seed=DEFAULT_SEED, chunk_sectors=2048):
    """Fill ``mem`` from the image file ``path``, or with default_image(capacity, seed) when
    ``path`` is None or empty. Returns the number of sectors loaded.

    The file must be a whole number of sectors that fits ``capacity``; a shorter file leaves
    the sectors past its end as they were. Raises DiskImageError with a one-line message.
    """
    if not path:
        if capacity is None:
            raise DiskImageError("default disk image: the capacity is needed to generate it")
        for first in range(0, capacity, chunk_sectors):
            last = min(capacity, first + chunk_sectors)
            _mem_write(mem, base + first * SECTOR_SIZE, b"".join(default_sector(s, seed) for s in range(first, last)))
        return capacity
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DiskImageError(f"{path}: no such disk image file") from None
    except OSError as exc:
        raise DiskImageError(f"{path}: cannot read the disk image ({exc.strerror})") from None
    check_image_size(size, capacity, path)
    try:
        with open(path, "rb") as image:
            offset = 0
            while True:
                chunk = image.read(chunk_sectors * SECTOR_SIZE)
                if not chunk:
                    break
                _mem_write(mem, base + offset, chunk)
                offset += len(chunk)
    except OSError as exc:
        raise DiskImageError(f"{path}: cannot read the disk image ({exc.strerror})") from None
    return size // SECTOR_SIZE


def save_disk_image(mem, path, capacity, base=0, chunk_sectors=2048):
    """Write ``capacity`` sectors of ``mem`` to the file ``path``."""
    path = os.fspath(path)
    try:
        with open(path, "wb") as image:
            for first in range(0, capacity, chunk_sectors):
                count = min(chunk_sectors, capacity - first)
                image.write(_mem_read(mem, base + first * SECTOR_SIZE, count * SECTOR_SIZE))
    except OSError as exc:
        raise DiskImageError(f"{path}: cannot write the disk image ({exc.strerror})") from None


def read_disk_image(path, capacity=None):
    """The bytes of an image file, size-checked like load_disk_image."""
    image = bytearray(capacity * SECTOR_SIZE if capacity is not None else 0)
    if capacity is None:
        path = os.fspath(path)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise DiskImageError(f"{path}: no such disk image file") from None
        check_image_size(size, None, path)
        image = bytearray(size)
    load_disk_image(image, path, capacity)
    return bytes(image)
