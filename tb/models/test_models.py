# SPDX-License-Identifier: Apache-2.0
"""Pure-Python tests of the guest-side models (no simulator).

The driver side (``models.virtio.ring``, ``models.virtio.blk``) runs against the Python device
side (``models.ref.vring_device``) over host memory laid out like cocotbext-pcie's root complex
(``models.ref.loopback``), with every device access going through the DMA checker
(``models.pcie.dma_checker``). cocotbext-pcie's RootComplex itself needs the cocotb scheduler,
so it is not used here; its memory (cocotbext-axi AddressSpace/Pool) is.

Conformance IDs (spec/conformance.md) name what a test shows about the models that will check
the device.
"""

import asyncio
import os
import random

import pytest
from cocotbext.axi.memory import Memory
from cocotbext.pcie.core.tlp import Tlp, TlpType

from models.pcie.dma_checker import DmaChecker, DmaViolation, tlp_write_runs
from models.ref import RamDisk, ramdisk_handler
from models.ref.disk_image import (
    DiskImageError,
    default_image,
    default_sector,
    load_disk_image,
    read_disk_image,
    save_disk_image,
)
from models.ref.loopback import MSI_REGION_BASE, LoopbackRc, LoopbackVirtioDevice
from models.ref.ramdisk import blk_dwz_seg_pack, blk_outhdr_pack
from models.ref.vring_device import VringDeviceError
from models.virtio.blk import BLK_LAYOUTS, VIRTIO_BLK_POISON, VirtioBlk
from models.virtio.pci_modern import VirtioError
from models.virtio.ring import (
    VRING_DESC_SIZEOF,
    VirtqueueBadRingError,
    VirtqueueBrokenError,
    VirtqueueError,
    VirtqueueFullError,
    vring_avail_event_offset,
    vring_avail_size,
    vring_init_offsets,
    vring_size,
    vring_used_event_offset,
    vring_used_size,
)
from models.virtio.uapi import (
    VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_WRITE_ZEROES,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_T_ZONE_APPEND,
    VIRTIO_BLK_T_ZONE_RESET_ALL,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
    VIRTIO_F_NOTIFICATION_DATA,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
    vring_need_event,
)

F_INDIRECT = 1 << VIRTIO_RING_F_INDIRECT_DESC
F_EVENT = 1 << VIRTIO_RING_F_EVENT_IDX
SECTOR = 512


def run(coro):
    return asyncio.run(coro)


def echo_handler(fill=0x5A):
    """Device handler: fill the whole writable part, used len = its size."""
    def handler(out_bytes, in_len):
        return bytes([fill]) * in_len, in_len
    return handler


async def make_queue(num=8, features=0, checker=True, callback=None, **kwargs):
    chk = DmaChecker() if checker else None
    vdev = LoopbackVirtioDevice(features, checker=chk, **kwargs)
    vq = await vdev.create_vq(0, num, callback)
    return vdev, vq, vdev.devices[0], chk


async def bufs(vq, *sizes):
    return [vq.host_mem.alloc(size) for size in sizes]


# ------------------------------------------------------------------------------------------------
# Layout
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("qsz", [1, 2, 8, 256, 32768])
def test_ring_layout_offsets(qsz):
    """SPL-22/SPL-24: used_event at avail + 4 + 2*qsz, avail_event at used + 4 + 8*qsz, for the
    driver-chosen qsz; alignment desc 16, avail 2, used 4 (Linux puts used on 64)."""
    assert vring_used_event_offset(qsz) == 4 + 2 * qsz
    assert vring_avail_event_offset(qsz) == 4 + 8 * qsz
    assert vring_avail_size(qsz) == 6 + 2 * qsz
    assert vring_used_size(qsz) == 6 + 8 * qsz
    desc, avail, used = vring_init_offsets(qsz)
    assert (desc, avail) == (0, 16 * qsz)
    assert used >= avail + 6 + 2 * qsz and used % 64 == 0
    assert vring_size(qsz) == used + 6 + 8 * qsz

    async def body():
        _, vq, _, _ = await make_queue(qsz, checker=False)
        assert vq.desc_addr % 16 == 0 and vq.avail_addr % 2 == 0 and vq.used_addr % 4 == 0
        assert vq.desc_addr != 0
        assert vq.avail_addr == vq.desc_addr + 16 * qsz
        assert vq.used_event_addr == vq.avail_addr + 4 + 2 * qsz
        assert vq.avail_event_addr == vq.used_addr + 4 + 8 * qsz
        assert await vq.vring_read_used_idx() == 0 and await vq.vring_read_used_flags() == 0
        assert vq.virtqueue_get_vring_size() == qsz and vq.num_free == qsz
    run(body())


@pytest.mark.parametrize("qsz", [0, 3, 96, 65536])
def test_ring_size_must_be_power_of_two(qsz):
    with pytest.raises(ValueError, match="power of 2"):
        run(make_queue(qsz, checker=False))


# ------------------------------------------------------------------------------------------------
# add / get
# ------------------------------------------------------------------------------------------------

def test_add_direct_chain_and_get():
    """A direct chain: descriptors follow the free list, readable first, NEXT on all but the last,
    avail ring entry then idx; get_buf returns the token and the used len and frees them all."""
    async def body():
        _, vq, dev, chk = await make_queue(8)
        a, b, c = await bufs(vq, 16, 100, 1)
        head = await vq.virtqueue_add_sgs([a, b.sg], [(c.addr, 1)], "token")
        assert head == 0 and vq.num_free == 5 and vq.free_head == 3
        assert [await vq.vring_read_desc(i) for i in range(3)] == [
            (a.addr, 16, VRING_DESC_F_NEXT, 1),
            (b.addr, 100, VRING_DESC_F_NEXT, 2),
            (c.addr, 1, VRING_DESC_F_WRITE, 3)]
        chains = await dev.fetch()
        assert chains[0].out_spans == [(a.addr, 16), (b.addr, 100)] and chains[0].in_spans == [(c.addr, 1)]
        assert await vq.virtqueue_get_buf() is None  # nothing used yet
        dev.pending = []
        await dev.complete(chains[0], echo_handler())
        await dev.publish(0)
        assert await vq.virtqueue_get_buf() == ("token", 1)
        assert await c.read() == b"\x5a"
        assert vq.num_free == 8 and vq.last_used_idx == 1
        assert await vq.virtqueue_get_buf() is None
        vq.check_free_list()
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_indirect_follows_linux_rule():
    """virtqueue_use_indirect: INDIRECT_DESC negotiated, more than one sg, a free descriptor."""
    async def body():
        _, vq, dev, chk = await make_queue(8, F_INDIRECT)
        a, b, c = await bufs(vq, 16, 512, 1)
        await vq.virtqueue_add_sgs([a], [], 1)  # one sg: direct
        assert vq.num_free == 7 and vq.desc_state[0].indir_desc is None
        head = await vq.virtqueue_add_sgs([a, b], [c], 2)  # three sgs: one INDIRECT descriptor
        assert vq.num_free == 6
        addr, length, flags, _ = await vq.vring_read_desc(head)
        assert flags == VRING_DESC_F_INDIRECT and length == 3 * VRING_DESC_SIZEOF
        assert addr == vq.desc_state[head].indir_desc.addr
        await vq.virtqueue_add_sgs([a, b], [c], 3, indirect=False)  # forced direct
        assert vq.num_free == 3 and vq.desc_state[head].indir_desc is not None
        chains = await dev.fetch()
        assert [ch.indirect for ch in chains] == [False, True, False]
        assert chains[1].out_spans == chains[2].out_spans == [(a.addr, 16), (b.addr, 512)]
        await dev.service(echo_handler())
        tables_before = vq.host_mem.allocated
        got = [await vq.virtqueue_get_buf() for _ in range(3)]
        assert [g[0] for g in got] == [1, 2, 3]
        assert vq.host_mem.allocated == tables_before - 1  # the indirect table went back
        vq.check_free_list()
        chk.assert_clean()

        _, vq2, _, _ = await make_queue(4, 0, checker=False)
        await vq2.virtqueue_add_sgs([a, b], [c], 1)  # not negotiated: direct
        assert vq2.num_free == 1
        with pytest.raises(VirtqueueError, match="INDIRECT_DESC"):
            await vq2.virtqueue_add_sgs([a], [c], 2, indirect=True)
    run(body())


@pytest.mark.parametrize("variant", ["direct_prefix", "order", "shuffle", "write_flag", "misalign8", "page_cross",
                                     "qsz1"])
def test_indirect_variants(variant):
    """SPL-06/07/08, SPL-24 (qsz 1): the device model finds the same buffers whatever the table
    looks like, and the driver gets everything back."""
    async def body():
        random.seed(5)
        num = 1 if variant == "qsz1" else 8
        _, vq, dev, chk = await make_queue(num, F_INDIRECT)
        out = await bufs(vq, 16, 7, 33)
        inb = await bufs(vq, 9, 1)
        kwargs = {}
        if variant == "direct_prefix":
            kwargs = dict(indirect=True, direct_prefix=2)
        elif variant == "order":
            kwargs = dict(indirect=True, indirect_order=[0, 3, 1, 4, 2])
        elif variant == "shuffle":
            kwargs = dict(indirect=True, indirect_order="shuffle")
        elif variant == "write_flag":
            vq.indirect_extra_flags = VRING_DESC_F_WRITE
        elif variant == "misalign8":
            vq.indirect_misalign = 8
        elif variant == "page_cross":
            vq.indirect_align, vq.indirect_misalign = 4096, 4096 - 32
        head = await vq.virtqueue_add_sgs(out, inb, "x", **kwargs)
        table = vq.desc_state[head].indir_desc
        if variant == "misalign8":
            assert table.addr % 16 == 8
        if variant == "page_cross":
            assert table.addr // 4096 != (table.addr + table.size - 1) // 4096
        if variant == "order":
            raw = await table.read()
            nexts = [int.from_bytes(raw[16 * i + 14:16 * i + 16], "little") for i in range(5)]
            assert nexts[0] == 3 and nexts[3] == 1 and nexts[1] == 4 and nexts[4] == 2
        assert vq.num_free == num - (3 if variant == "direct_prefix" else 1)
        chains = await dev.fetch()
        assert chains[0].out_spans == [b.sg for b in out] and chains[0].in_spans == [b.sg for b in inb]
        await dev.service(echo_handler())
        assert await vq.virtqueue_get_buf() == ("x", 10)
        assert vq.num_free == num
        vq.check_free_list()
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_ring_full_and_oversized_chains():
    async def body():
        _, vq, dev, _ = await make_queue(4)
        a, b = await bufs(vq, 16, 1)
        for token in range(3):
            await vq.virtqueue_add_sgs([a], [], token)
        with pytest.raises(VirtqueueFullError, match=r"no room for 2 descriptor\(s\): 1 of 4 free"):
            await vq.virtqueue_add_sgs([a], [b], "big")
        await vq.virtqueue_add_sgs([a], [], 3)
        with pytest.raises(VirtqueueFullError):
            await vq.virtqueue_add_sgs([a], [], 4)
        with pytest.raises(VirtqueueError, match="can never fit"):
            await vq.virtqueue_add_sgs([a] * 5, [], 5)
        with pytest.raises(ValueError):
            await vq.virtqueue_add_sgs([], [], 6)
        with pytest.raises(ValueError):
            await vq.virtqueue_add_sgs([a], [], None)
        assert vq.num_free == 0 and vq.avail_idx_shadow == 4  # failed adds changed nothing
        await dev.service(echo_handler())
        assert sorted([(await vq.virtqueue_get_buf())[0] for _ in range(4)]) == [0, 1, 2, 3]
        vq.check_free_list()
    run(body())


def test_out_of_order_completion_returns_each_token_once():
    """VQ-05: completion order is free; get_buf hands back each token once."""
    async def body():
        _, vq, dev, chk = await make_queue(16, rng=random.Random(3))
        buffers = await bufs(vq, *([32] * 8))
        for token in range(8):
            base = buffers[token].addr
            await vq.virtqueue_add_sgs([(base, 16)], [] if token % 2 else [(base + 16, 16)], token)
        await dev.service(echo_handler(), reorder=True, batch=3)
        seen = []
        while (used := await vq.virtqueue_get_buf()) is not None:
            seen.append(used[0])
            vq.check_free_list()
        assert sorted(seen) == list(range(8)) and seen != list(range(8))
        chk.assert_clean()
    run(body())


def test_free_list_over_many_cycles_and_index_wrap():
    """SPL-24: more than 65536 chains through a 4-entry ring, random sizes (direct and
    indirect), random completion order and batching; the free list stays exact and the
    free-running indices wrap at 65536 on both sides. The DMA checker watches every access."""
    async def body():
        rng = random.Random(2024)
        _, vq, dev, chk = await make_queue(4, F_INDIRECT, rng=rng)
        pool = await bufs(vq, *([64] * 4))
        total = 66000
        added = completed = 0
        outstanding = {}
        while completed < total:
            while added < total and vq.num_free:
                nsg = rng.randint(1, 3)
                indirect = rng.choice([None, False]) if nsg <= vq.num_free else None
                if indirect is False and nsg > vq.num_free:
                    break
                sgs = [(pool[added % 4].addr + 8 * k, 8) for k in range(nsg)]
                nout = rng.randint(0, nsg)
                try:
                    await vq.virtqueue_add_sgs(sgs[:nout], sgs[nout:], added, indirect=indirect)
                except VirtqueueFullError:
                    break
                outstanding[added] = nsg - nout
                added += 1
            await vq.virtqueue_kick()
            await dev.service(echo_handler(), reorder=True, batch=rng.randint(1, 4))
            while (used := await vq.virtqueue_get_buf()) is not None:
                token, length = used
                assert length == 8 * outstanding.pop(token)
                completed += 1
            if completed % 997 < 4:
                vq.check_free_list()
        assert not outstanding and vq.num_free == 4
        vq.check_free_list()
        assert vq.avail_idx_shadow == total & 0xFFFF == vq.last_used_idx == dev.used_idx
        assert await vq.vring_read_used_idx() == total & 0xFFFF
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_bad_used_id_breaks_the_queue():
    """Linux's BAD_RING: a used id that is not an outstanding head."""
    async def body():
        _, vq, dev, _ = await make_queue(4, checker=False)
        a, = await bufs(vq, 16)
        await vq.virtqueue_add_sgs([a], [], "t")
        await dev.fetch()
        await dev.dma.write(vq.used_addr + 4, (3).to_bytes(4, "little") + (0).to_bytes(4, "little"))
        await dev.dma.write(vq.used_addr + 2, (1).to_bytes(2, "little"))
        with pytest.raises(VirtqueueBadRingError, match="not a head"):
            await vq.virtqueue_get_buf()
        assert vq.virtqueue_is_broken()
        assert await vq.virtqueue_get_buf() is None
        with pytest.raises(VirtqueueBrokenError):
            await vq.virtqueue_add_sgs([a], [], "u")
    run(body())


def test_device_model_rejects_malformed_chains():
    """The reference device refuses what SPL-26 lists (loops, next >= qsz, nested INDIRECT...)."""
    async def body():
        _, vq, dev, _ = await make_queue(4, F_INDIRECT, checker=False)
        a, = await bufs(vq, 64)

        async def desc(i, addr, length, flags, nxt):
            await vq.desc.write(16 * i, addr.to_bytes(8, "little") + length.to_bytes(4, "little")
                                + flags.to_bytes(2, "little") + nxt.to_bytes(2, "little"))
        await desc(0, a.addr, 8, VRING_DESC_F_NEXT, 1)
        await desc(1, a.addr, 8, VRING_DESC_F_NEXT, 0)
        with pytest.raises(VringDeviceError, match="loop"):
            await dev.walk_chain(0)
        await desc(1, a.addr, 8, VRING_DESC_F_NEXT, 9)
        with pytest.raises(VringDeviceError, match="next 9"):
            await dev.walk_chain(0)
        await desc(0, a.addr, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1)
        await desc(1, a.addr, 8, 0, 0)
        with pytest.raises(VringDeviceError, match="readable descriptor after"):
            await dev.walk_chain(0)
        await desc(0, a.addr, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1)
        with pytest.raises(VringDeviceError, match="INDIRECT together with NEXT"):
            await dev.walk_chain(0)
        await desc(0, a.addr, 24, VRING_DESC_F_INDIRECT, 0)
        with pytest.raises(VringDeviceError, match="multiple of 16"):
            await dev.walk_chain(0)
        await a.write(0, (a.addr).to_bytes(8, "little") + (16).to_bytes(4, "little")
                      + VRING_DESC_F_INDIRECT.to_bytes(2, "little") + bytes(2))
        await desc(0, a.addr, 16, VRING_DESC_F_INDIRECT, 0)
        with pytest.raises(VringDeviceError, match="nested"):
            await dev.walk_chain(0)
    run(body())


# ------------------------------------------------------------------------------------------------
# Notification suppression
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("event, new, old, expected", [
    (0, 1, 0, True),  # used_event 0: the first completion notifies
    (5, 6, 5, True),
    (5, 5, 4, False),
    (5, 10, 0, True),  # passed inside a batch
    (10, 5, 0, False),
    (4, 5, 5, False),  # nothing moved
    (0xFFFF, 0, 0xFFFE, True),  # across the wrap
    (0xFFFF, 1, 0xFFFE, True),
    (0xFFFE, 1, 0xFFFF, False),
    (0, 0, 0xFFFF, False),
    (0xFFFF, 0, 0xFFFF, True),
])
def test_vring_need_event(event, new, old, expected):
    """SPL-16: the event index rule, batches and 16-bit wrap included."""
    assert vring_need_event(event, new, old) is expected


def test_kick_suppression_without_event_idx():
    """VRING_USED_F_NO_NOTIFY: kicks suppressed and counted; without it every kick rings."""
    async def body():
        vdev, vq, dev, chk = await make_queue(8)
        a, = await bufs(vq, 16)
        await vq.virtqueue_add_sgs([a], [], 0)
        assert await vq.virtqueue_kick() is True
        assert (vq.kicks_sent, vq.kicks_suppressed, vdev.mdev.notifies) == (1, 0, [0])
        await dev.set_no_notify(True)
        await vq.virtqueue_add_sgs([a], [], 1)
        await vq.virtqueue_kick()
        assert (vq.kicks_sent, vq.kicks_suppressed) == (1, 1)
        await dev.set_no_notify(False)
        await vq.virtqueue_add_sgs([a], [], 2)
        await vq.virtqueue_kick()
        assert (vq.kicks_sent, vq.kicks_suppressed, len(vdev.mdev.notifies)) == (2, 1, 2)
        chk.assert_clean()
    run(body())


def test_notification_data_doorbells():
    """DNOT-02 (driver side): with VIRTIO_F_NOTIFICATION_DATA every doorbell is one 32-bit value,
    the queue index in bits 15:0 and the avail idx after the additions in bits 31:16 (Linux's
    vring_notification_data), across the 16-bit wrap; without it the 16-bit vp_notify is used."""
    async def body():
        vdev, vq, dev, chk = await make_queue(8, features=1 << VIRTIO_F_NOTIFICATION_DATA)
        assert vq.notification_data
        a, = await bufs(vq, 16)
        vq.avail_idx_shadow = 0xFFFE
        await vq.vring_write_avail_idx(0xFFFE)
        for n in (1, 2, 1):
            for token in range(n):
                await vq.virtqueue_add_sgs([a], [], token)
            await vq.virtqueue_notify()
        assert vdev.mdev.notify_data == [(0, 0xFFFF_0000), (0, 0x0001_0000), (0, 0x0002_0000)]
        assert vq.vring_notification_data(0x1234) == 0x1234_0000
        vdev2, vq2, _, _ = await make_queue(8)
        assert not vq2.notification_data
        await vq2.virtqueue_notify()
        assert (vdev2.mdev.notifies, vdev2.mdev.notify_data) == ([0], [])
    run(body())


def test_kick_suppression_with_event_idx():
    """SPL-22 (driver side): with EVENT_IDX the driver kicks iff vring_need_event(avail_event,
    new, old), for batches of 1-4 and avail_event around the moved range."""
    async def body():
        rng = random.Random(7)
        vdev, vq, dev, chk = await make_queue(4, F_EVENT)
        a, = await bufs(vq, 16)
        expected_sent = expected_suppressed = 0
        for _ in range(300):
            batch = rng.randint(1, 4)
            old = vq.avail_idx_shadow
            new = (old + batch) & 0xFFFF
            avail_event = rng.choice([old, old + 1, new - 1, new, old + 100, old - 1]) & 0xFFFF
            await dev.dma.write(vq.avail_event_addr, avail_event.to_bytes(2, "little"))
            for k in range(batch):
                await vq.virtqueue_add_sgs([a], [], k)
            await vq.virtqueue_kick()
            if vring_need_event(avail_event, new, old):
                expected_sent += 1
            else:
                expected_suppressed += 1
            dev.no_notify = True  # keep the test's avail_event: the device must not rewrite it
            await dev.service(echo_handler())
            while await vq.virtqueue_get_buf() is not None:
                pass
        assert (vq.kicks_sent, vq.kicks_suppressed) == (expected_sent, expected_suppressed)
        assert expected_sent and expected_suppressed
        chk.assert_clean()
    run(body())


def test_interrupt_suppression_without_event_idx():
    """SPL-13/14 (driver side): disable_cb sets VRING_AVAIL_F_NO_INTERRUPT, the reference device
    then sends none; enable_cb clears it and returns False while buffers are pending."""
    async def body():
        calls = []
        _, vq, dev, chk = await make_queue(8, callback=lambda q: calls.append(q.index))
        a, = await bufs(vq, 16)
        await vq.virtqueue_add_sgs([a], [], 0)
        await dev.service(echo_handler())
        assert dev.interrupts == 1 and calls == [0] and vq.interrupt_count == 1
        assert await vq.virtqueue_get_buf() == (0, 0)
        await vq.virtqueue_disable_cb()
        assert int.from_bytes(await vq.avail.read(0, 2), "little") == VRING_AVAIL_F_NO_INTERRUPT
        await vq.virtqueue_add_sgs([a], [], 1)
        await dev.service(echo_handler())
        assert dev.interrupts == 1 and dev.interrupts_suppressed == 1
        assert await vq.virtqueue_enable_cb() is False  # one pending: poll again
        assert int.from_bytes(await vq.avail.read(0, 2), "little") == 0
        assert await vq.virtqueue_get_buf() == (1, 0)
        assert await vq.virtqueue_enable_cb() is True
        chk.assert_clean()
    run(body())


def test_interrupt_suppression_with_event_idx():
    """With EVENT_IDX: get_buf and enable_cb move used_event to last_used_idx, disable_cb writes
    Linux's 0, enable_cb_delayed asks for 3/4 of the outstanding buffers; the reference device
    interrupts iff vring_need_event(used_event, new, old) (SPL-16)."""
    async def body():
        _, vq, dev, chk = await make_queue(8, F_EVENT, callback=lambda q: None)
        a, = await bufs(vq, 16)

        async def used_event():
            return int.from_bytes(await dev.dma.read(vq.used_event_addr, 2), "little")
        for k in range(3):
            await vq.virtqueue_add_sgs([a], [], k)
        await dev.service(echo_handler(), batch=1)
        assert dev.interrupts == 1  # used_event 0: only the move past 0 notifies
        for k in range(3):
            assert (await vq.virtqueue_get_buf())[0] == k
            assert await used_event() == k + 1
        await vq.virtqueue_disable_cb()  # Linux's event_triggered hint: the device already fired, no-op
        assert vq.event_triggered and await used_event() == 3
        assert await vq.virtqueue_enable_cb() is True and not vq.event_triggered
        await vq.virtqueue_disable_cb()
        assert await used_event() == 0
        await vq.virtqueue_add_sgs([a], [], 3)
        await dev.service(echo_handler())
        assert dev.interrupts == 1
        assert await vq.virtqueue_enable_cb() is False and await used_event() == 3
        assert (await vq.virtqueue_get_buf())[0] == 3
        assert await vq.virtqueue_enable_cb() is True and await used_event() == 4
        for k in range(8):
            await vq.virtqueue_add_sgs([a], [], k)
        await vq.virtqueue_disable_cb()
        assert await vq.virtqueue_enable_cb_delayed() is True
        assert await used_event() == 4 + 6  # last_used_idx + 8 * 3 // 4
        await dev.service(echo_handler(), batch=1)
        assert dev.interrupts == 2  # only the move from 10 to 11
        chk.assert_clean()
    run(body())


def test_spurious_interrupt_does_not_call_back():
    """vring_interrupt with nothing new in the used ring: counted, callback not run (IRQ_NONE)."""
    async def body():
        calls = []
        _, vq, _, _ = await make_queue(4, callback=lambda q: calls.append(1))
        await vq.vring_interrupt()
        assert (vq.interrupt_count, vq.spurious_interrupt_count, calls) == (1, 1, [])
    run(body())


# ------------------------------------------------------------------------------------------------
# DMA checker
# ------------------------------------------------------------------------------------------------

async def checked_chain(num=8, features=0, raise_on_error=True):
    _, vq, dev, chk = await make_queue(num, features)
    chk.raise_on_error = raise_on_error
    out, inb = await bufs(vq, 16, 64)
    await vq.virtqueue_add_sgs([out], [inb], "c")
    chain, = await dev.fetch()
    return vq, dev, chk, out, inb, chain


def test_dma_checker_forbidden_writes():
    """SPL-03 and SPL-05: no device writes to readable buffers, descriptors or the avail ring."""
    async def body():
        vq, dev, chk, out, inb, _ = await checked_chain(features=F_INDIRECT)
        with pytest.raises(DmaViolation, match="SPL-03"):
            await dev.dma.write(out.addr + 4, b"x")
        with pytest.raises(DmaViolation, match="SPL-05"):
            await dev.dma.write(vq.desc_addr + 8, b"\0\0")
        with pytest.raises(DmaViolation, match="available ring"):
            await dev.dma.write(vq.avail_addr + 2, b"\0\0")
        c, d = await bufs(vq, 16, 16)
        head = await vq.virtqueue_add_sgs([c], [d], "i", indirect=True)
        with pytest.raises(DmaViolation, match="SPL-05: the device must not write an indirect table"):
            await dev.dma.write(vq.desc_state[head].indir_desc.addr, b"\0")
        assert len(chk.errors) == 4
    run(body())


def test_dma_checker_unowned_memory_names_nearest_region():
    async def body():
        vq, dev, chk, out, inb, _ = await checked_chain()
        with pytest.raises(DmaViolation) as info:
            await dev.dma.read(inb.addr + inb.size + 3, 4)
        message = str(info.value)
        assert f"0x{inb.addr + inb.size + 3:x}" in message and "4 bytes" in message
        assert "nearest known region" in message and "device-writable buffer" in message
        with pytest.raises(DmaViolation, match="not owned"):
            await dev.dma.write(0x4000_0000, b"\0" * 8)
    run(body())


def test_dma_checker_warns_on_reading_writable_buffers():
    """SPL-04 is a SHOULD NOT: a warning, no exception."""
    async def body():
        vq, dev, chk, out, inb, _ = await checked_chain()
        await dev.dma.read(inb.addr, 8)
        assert chk.errors == [] and len(chk.warnings) == 1 and "SPL-04" in chk.warnings[0]
        with pytest.raises(DmaViolation):
            chk.assert_clean(allow_warnings=False)
        with pytest.raises(DmaViolation, match="write-only"):
            await dev.dma.read(vq.used_addr, 2)
    run(body())


def test_dma_checker_used_ring_publication_order():
    """SPL-09 (element before idx), SPL-10 (data before idx, len <= writable), and ownership ends
    at publication."""
    async def body():
        vq, dev, chk, out, inb, chain = await checked_chain(raise_on_error=False)
        elem = vq.used_addr + 4
        await dev.dma.write(elem, (chain.head).to_bytes(4, "little"))  # id only, len missing
        await dev.dma.write(vq.used_addr + 2, (1).to_bytes(2, "little"))
        assert any("SPL-09" in e for e in chk.errors)
        assert any("SPL-10" in e and "was not written" in e for e in chk.errors) is False  # len read as 0

        vq, dev, chk, out, inb, chain = await checked_chain(raise_on_error=False)
        await dev.dma.write(inb.addr, b"\0" * 10)
        await dev.push_used(chain, 20)
        await dev.publish(0)
        assert len(chk.errors) == 1 and "SPL-10" in chk.errors[0] and "was not written" in chk.errors[0]

        vq, dev, chk, out, inb, chain = await checked_chain(raise_on_error=False)
        await dev.dma.write(inb.addr, b"\0" * 64)
        await dev.push_used(chain, 65)
        await dev.publish(0)
        assert len(chk.errors) == 1 and "more than its 64 device-writable bytes" in chk.errors[0]

        vq, dev, chk, out, inb, chain = await checked_chain()
        await dev.complete(chain, echo_handler())
        await dev.publish(0)
        assert chk.errors == []
        with pytest.raises(DmaViolation, match="no longer owned"):  # published: back to the driver
            await dev.dma.write(inb.addr, b"late")
    run(body())


@pytest.mark.parametrize("features, flags, rule", [(0, 2, "SPL-19"), (F_EVENT, 1, "SPL-20")])
def test_dma_checker_used_flags(features, flags, rule):
    async def body():
        vq, dev, chk, *_ = await checked_chain(features=features)
        with pytest.raises(DmaViolation, match=rule):
            await dev.dma.write(vq.used_addr, flags.to_bytes(2, "little"))
    run(body())


def test_dma_checker_allows_msi_and_logs_in_order():
    async def body():
        vq, dev, chk, out, inb, chain = await checked_chain()
        await dev.dma.write(MSI_REGION_BASE, (1).to_bytes(4, "little"))
        await dev.complete(chain, echo_handler())
        await dev.publish(0)
        ops = [(a.op, a.addr, a.length) for a in chk.accesses]
        # data, used element, used idx, and only then the suppression field (SPL-09/10/18)
        assert ops[-6:] == [("W", MSI_REGION_BASE, 4), ("R", out.addr, 16), ("W", inb.addr, 64),
                            ("W", vq.used_addr + 4, 8), ("W", vq.used_addr + 2, 2), ("R", vq.avail_addr, 2)]
        seqs = [a.seq for a in chk.accesses]
        assert seqs == sorted(seqs) and chk.accesses_since(seqs[-2])[0].seq == seqs[-1]
        chk.assert_clean(allow_warnings=False)
    run(body())


class FakeRootComplex(LoopbackRc):
    """Enough of cocotbext-pcie's RootComplex to install the checker on its TLP handlers."""

    def __init__(self):
        super().__init__()
        self.rx_tlp_handler = {}
        for fmt_type in (TlpType.MEM_READ, TlpType.MEM_READ_64):
            self.register_rx_tlp_handler(fmt_type, self.read)
        for fmt_type in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            self.register_rx_tlp_handler(fmt_type, self.write)
        self.done = []

    def register_rx_tlp_handler(self, fmt_type, func):
        self.rx_tlp_handler[fmt_type] = func

    async def read(self, tlp):
        self.done.append(("R", tlp.address))

    async def write(self, tlp):
        for addr, data in tlp_write_runs(tlp):
            await self.mem_address_space.write(addr, data)
        self.done.append(("W", tlp.address))


def make_tlp(fmt_type, addr, data=None, length=None, first_be=0xF, last_be=0xF):
    tlp = Tlp()
    tlp.fmt_type = fmt_type
    tlp.address = addr & ~3
    if data is not None:
        tlp.set_data(data)
    if length is not None:
        tlp.length = length
    tlp.first_be = first_be
    tlp.last_be = last_be if tlp.length > 1 else 0
    return tlp


def test_dma_checker_on_tlp_handlers_is_byte_enable_exact():
    """Installed on a root complex, the checker sees TLPs before the RC performs them and checks
    the bytes their byte enables select, not whole dwords."""
    async def body():
        vdev = LoopbackVirtioDevice(0)
        vdev.rc = rc = FakeRootComplex()
        chk = DmaChecker().install(rc)
        vq = await vdev.create_vq(0, 8)
        assert rc.dma_checker is chk and vq.dma_checker() is chk
        hdr = vq.host_mem.alloc(16)
        status = vq.host_mem.alloc(4, align=4)  # the status byte is the first of this dword
        await vq.virtqueue_add_sgs([hdr], [(status.addr, 1)], "t")
        write = rc.rx_tlp_handler[TlpType.MEM_WRITE]
        await write(make_tlp(TlpType.MEM_WRITE, status.addr, b"\x00\xaa\xbb\xcc", first_be=0x1))
        assert rc.done == [("W", status.addr)] and await status.read(0, 2) == b"\x00" + bytes(1)
        with pytest.raises(DmaViolation, match="not owned"):
            await write(make_tlp(TlpType.MEM_WRITE, status.addr, b"\x00\xaa\xbb\xcc", first_be=0x3))
        assert len(rc.done) == 1  # the bad write was not performed
        read = rc.rx_tlp_handler[TlpType.MEM_READ_64]
        await read(make_tlp(TlpType.MEM_READ_64, vq.avail_addr, length=1, first_be=0xC))
        assert chk.accesses[-1][2:5] == ("R", vq.avail_addr + 2, 2)
        await rc.rx_tlp_handler[TlpType.MEM_WRITE](make_tlp(TlpType.MEM_WRITE, MSI_REGION_BASE, bytes(4)))
        with pytest.raises(DmaViolation, match="SPL-05"):
            await read(make_tlp(TlpType.MEM_READ, vq.desc_addr, length=4))  # reading is fine...
            await write(make_tlp(TlpType.MEM_WRITE, vq.desc_addr, bytes(8), first_be=0xF, last_be=0x3))
        runs = tlp_write_runs(make_tlp(TlpType.MEM_WRITE, 0x1000, bytes(range(12)), first_be=0xE, last_be=0x1))
        assert runs == [(0x1001, bytes(range(1, 9)))]
        chk.uninstall()
        assert rc.rx_tlp_handler[TlpType.MEM_WRITE] == rc.write and getattr(rc, "dma_checker") is None
    run(body())


# ------------------------------------------------------------------------------------------------
# RAM disk
# ------------------------------------------------------------------------------------------------

def test_ramdisk_read_write_and_errors():
    """BLK-20/23: 512-byte units; IOERR past capacity or unaligned, disk untouched."""
    disk = RamDisk(16)
    assert disk.write(2, b"\x11" * 1024) == VIRTIO_BLK_S_OK
    assert disk.read(2, 2) == (VIRTIO_BLK_S_OK, b"\x11" * 1024)
    assert disk.read(15, 2) == (VIRTIO_BLK_S_IOERR, bytes(1024))
    assert disk.read_bytes(0, 100) == (VIRTIO_BLK_S_IOERR, bytes(100))
    before = bytes(disk.data)
    assert disk.write(15, b"\x22" * 1024) == VIRTIO_BLK_S_IOERR
    assert disk.write(0, b"\x22" * 100) == VIRTIO_BLK_S_IOERR
    assert bytes(disk.data) == before
    assert disk.flush() == VIRTIO_BLK_S_OK
    assert disk.get_id() == (VIRTIO_BLK_S_OK, b"VIRTIO-BLK-REF".ljust(20, b"\0"))
    assert RamDisk(1, id_string="X" * 25).get_id()[1] == b"X" * 20


def test_ramdisk_read_only():
    """BLK-09: RO offered -> OUT is IOERR and nothing is written (also DISCARD/WZ, §15.8)."""
    disk = RamDisk(4, read_only=True, data=b"\x33" * 2048, discard=True, write_zeroes=True)
    assert disk.write(0, bytes(512)) == VIRTIO_BLK_S_IOERR
    assert disk.write_zeroes([(0, 1, 0)]) == VIRTIO_BLK_S_IOERR
    assert disk.discard([(0, 1, 0)]) == VIRTIO_BLK_S_IOERR
    assert bytes(disk.data) == b"\x33" * 2048
    assert disk.read(0, 1)[0] == VIRTIO_BLK_S_OK


def test_ramdisk_discard_and_write_zeroes():
    """BLK-10/11/12 and UNSUPP when not supported."""
    disk = RamDisk(8, data=b"\x44" * 4096, discard=True, write_zeroes=True, max_discard_seg=2,
                   max_write_zeroes_sectors=4)
    assert disk.discard([(0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)]) == VIRTIO_BLK_S_UNSUPP
    assert disk.write_zeroes([(0, 1, 0x4)]) == VIRTIO_BLK_S_UNSUPP
    assert disk.write_zeroes([(1, 2, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)]) == VIRTIO_BLK_S_OK
    assert disk.read(0, 4)[1] == b"\x44" * 512 + bytes(1024) + b"\x44" * 512
    assert disk.write_zeroes([(0, 5, 0)]) == VIRTIO_BLK_S_IOERR  # > max sectors
    assert disk.discard([(0, 1, 0), (2, 1, 0), (4, 1, 0)]) == VIRTIO_BLK_S_IOERR  # > max segments
    assert disk.discard([(7, 2, 0)]) == VIRTIO_BLK_S_IOERR  # past capacity
    assert disk.discard([(6, 2, 0)]) == VIRTIO_BLK_S_OK
    assert not disk.is_defined(6) and disk.is_defined(5)
    disk.write(6, bytes(512))
    assert disk.is_defined(6) and not disk.is_defined(7)
    plain = RamDisk(2)
    assert plain.discard([(0, 1, 0)]) == plain.write_zeroes([(0, 1, 0)]) == VIRTIO_BLK_S_UNSUPP


def test_ramdisk_whole_requests():
    """handle_request: exact writable bytes, status last, used len = writable bytes; unknown
    types UNSUPP (BLK-17, BLK-22); short header IOERR."""
    disk = RamDisk(4, data=bytes(range(256)) * 8, discard=True)
    in_bytes, status, used = disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_IN, 1), 513)
    assert (status, used) == (VIRTIO_BLK_S_OK, 513) and in_bytes == (bytes(range(256)) * 2) + b"\0"
    in_bytes, status, used = disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_OUT, 3, reserved=7) + b"\x55" * 512, 1)
    assert (in_bytes, status, used) == (b"\0", VIRTIO_BLK_S_OK, 1) and disk.data[1536:] == b"\x55" * 512
    assert disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_OUT, 0) + bytes(512), 3)[0] == b"\0\0\0"
    assert disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_FLUSH, 0), 1)[1] == VIRTIO_BLK_S_OK
    in_bytes, status, used = disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_GET_ID, 0), 21)
    assert in_bytes == disk.id_string + b"\0" and used == 21
    for req_type in (0xFF, VIRTIO_BLK_T_ZONE_APPEND, VIRTIO_BLK_T_ZONE_RESET_ALL, VIRTIO_BLK_T_WRITE_ZEROES):
        assert disk.handle_request(blk_outhdr_pack(req_type, 0), 1)[1] == VIRTIO_BLK_S_UNSUPP
    assert disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_DISCARD, 0) + blk_dwz_seg_pack(0, 1)[:12], 1)[1] == \
        VIRTIO_BLK_S_IOERR
    assert disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_IN, 0)[:12], 513) == (bytes(512) + b"\x01", 1, 513)
    assert disk.handle_request(blk_outhdr_pack(VIRTIO_BLK_T_IN, 0), 0) == (b"", None, 0)
    assert RamDisk.expected_used_len(VIRTIO_BLK_T_IN, 1024) == 1025
    assert RamDisk.expected_used_len(VIRTIO_BLK_T_GET_ID, 20) == 21
    assert RamDisk.expected_used_len(VIRTIO_BLK_T_FLUSH, 0) == 1


# ------------------------------------------------------------------------------------------------
# Disk images
# ------------------------------------------------------------------------------------------------

def test_default_disk_image_is_deterministic_and_self_describing():
    image = default_image(130)
    assert image == default_image(130) and len(image) == 130 * SECTOR
    assert image != default_image(130, seed=1)
    sectors = {image[i * SECTOR:(i + 1) * SECTOR] for i in range(130)}
    assert len(sectors) == 130
    assert image[77 * SECTOR:77 * SECTOR + 4] == b"VBLK"
    assert int.from_bytes(image[77 * SECTOR + 8:77 * SECTOR + 16], "little") == 77
    assert default_sector(77) == image[77 * SECTOR:78 * SECTOR]


def test_disk_image_load_save_round_trip(tmp_path):
    """The AxiRam memory interface (cocotbext.axi Memory) in and out of a file."""
    ram = Memory(size=64 * SECTOR)
    assert load_disk_image(ram, None, capacity=64) == 64
    assert ram.read(5 * SECTOR, SECTOR) == default_sector(5)
    path = tmp_path / "disk.img"
    save_disk_image(ram, path, 64)
    assert path.read_bytes() == default_image(64)
    small = tmp_path / "small.img"
    small.write_bytes(b"\x77" * (3 * SECTOR))
    assert load_disk_image(ram, small, capacity=64) == 3
    assert ram.read(0, 3 * SECTOR) == b"\x77" * (3 * SECTOR) and ram.read(3 * SECTOR, SECTOR) == default_sector(3)
    assert read_disk_image(small) == b"\x77" * (3 * SECTOR)
    assert read_disk_image(small, capacity=4)[3 * SECTOR:] == bytes(SECTOR)
    image = bytearray(64 * SECTOR)
    load_disk_image(image, path, capacity=64)
    assert bytes(image) == default_image(64)


def test_disk_image_errors_are_one_line(tmp_path):
    ram = Memory(size=8 * SECTOR)
    cases = []
    with pytest.raises(DiskImageError) as info:
        load_disk_image(ram, tmp_path / "missing.img", capacity=8)
    cases.append((info, "missing.img: no such disk image file"))
    odd = tmp_path / "odd.img"
    odd.write_bytes(bytes(1000))
    with pytest.raises(DiskImageError) as info:
        load_disk_image(ram, odd, capacity=8)
    cases.append((info, "size 1000 bytes is not a multiple of 512"))
    big = tmp_path / "big.img"
    big.write_bytes(bytes(9 * SECTOR))
    with pytest.raises(DiskImageError) as info:
        load_disk_image(ram, big, capacity=8)
    cases.append((info, "9 sectors do not fit the configured capacity of 8 sectors"))
    for info, text in cases:
        message = str(info.value)
        assert text in message and "\n" not in message
    with pytest.raises(DiskImageError, match="cannot write"):
        save_disk_image(ram, os.path.join(tmp_path, "no", "dir.img"), 8)


# ------------------------------------------------------------------------------------------------
# virtio-blk driver over the reference device
# ------------------------------------------------------------------------------------------------

BLK_FEATURES = F_INDIRECT | F_EVENT | (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES)


async def make_blk(capacity=64, features=BLK_FEATURES, num=16, nqueues=1, seg_max=8, size_max=None,
                   handler=True, use_irq=True, read_only=False, **blk_kwargs):
    disk = RamDisk(capacity, data=default_image(capacity), discard=True, write_zeroes=True, read_only=read_only)
    chk = DmaChecker()
    vdev = LoopbackVirtioDevice(features, checker=chk, handler=ramdisk_handler(disk) if handler else None,
                                rng=random.Random(1))
    blk = VirtioBlk(use_irq=use_irq, **blk_kwargs)
    vqs = [await vdev.create_vq(i, num, blk.virtblk_done if use_irq else None) for i in range(nqueues)]
    blk.capacity, blk.seg_max, blk.size_max, blk.read_only = capacity, seg_max, size_max, read_only
    blk.virtblk_init_request_path(vdev, vqs)
    return blk, disk, vdev, chk


@pytest.mark.parametrize("layout", [lay for lay in BLK_LAYOUTS] + ["split+indirect", "merged+indirect",
                                                                  "split_header+indirect", "linux+direct"])
def test_blk_layouts_give_identical_results(layout):
    """SPL-01/BLK-19: the same requests under every framing give the same data and statuses
    as the reference disk; used lens are the spec's (SPL-11); the checker sees no violation."""
    async def body():
        blk, disk, vdev, chk = await make_blk(layout=layout, rng=11)
        rng = random.Random(3)
        for n in range(40):
            sector = rng.randrange(60)
            count = rng.randint(1, 4)
            data = rng.randbytes(count * SECTOR)
            ok = sector + count <= 64
            if ok:
                assert await blk.write(sector, data) == (VIRTIO_BLK_S_OK, None)
                assert disk.read(sector, count) == (VIRTIO_BLK_S_OK, data)
            status, got = await blk.read(sector, min(count, 64 - sector))
            assert status == VIRTIO_BLK_S_OK and got == disk.read(sector, min(count, 64 - sector))[1]
        assert await blk.get_id() == (VIRTIO_BLK_S_OK, disk.id_string)
        assert await blk.flush() == (VIRTIO_BLK_S_OK, None)
        assert await blk.write_zeroes([(0, 2), (10, 1)]) == (VIRTIO_BLK_S_OK, None)
        assert disk.read(0, 2)[1] == bytes(1024) and disk.read(10, 1)[1] == bytes(512)
        assert await blk.discard([(20, 4)]) == (VIRTIO_BLK_S_OK, None)
        assert blk.used_len_mismatches == [] and not blk.inflight
        assert blk.completed == blk.submitted == 84
        assert blk.host_mem.allocated == 0  # every buffer and indirect table went back
        blk.vqs[0].check_free_list()
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_blk_chain_framings():
    """The chains each layout builds (SPL-01 framings A-E, SPL-02 seg_max)."""
    async def body():
        blk, disk, vdev, chk = await make_blk(seg_max=5, size_max=4096, rng=2)

        async def framing(layout, fn, *args):
            req = await fn(*args, layout=layout)
            await req.wait()
            return [n for _, n in req.sgs_out], [n for _, n in req.sgs_in], req
        w, r = blk.submit_write, blk.submit_read
        assert (await framing("separate", w, 0, bytes(1024)))[:2] == ([16, 1024], [1])
        assert (await framing("separate", r, 0, 2))[:2] == ([16], [1024, 1])
        assert (await framing("merged", w, 0, bytes(1024)))[:2] == ([1040], [1])
        assert (await framing("merged", r, 0, 2))[:2] == ([16], [1025])
        assert (await framing("split_header", w, 0, bytes(512)))[:2] == ([4, 4, 8, 512], [1])
        assert (await framing("separate", w, 0, bytes(3 * 4096)))[:2] == ([16, 4096, 4096, 4096], [1])
        assert (await framing("merged", blk.submit_get_id))[:2] == ([16], [21])
        odd = False
        pieces = set()
        for _ in range(20):
            out, inn, req = await framing("split", r, 0, 8)
            assert out == [16] and inn[-1] == 1 and sum(inn) == 8 * SECTOR + 1
            assert 1 <= len(inn) - 1 <= 5 and max(inn) <= 4096  # data pieces within seg_max, size_max
            pieces.add(len(inn) - 1)
            odd |= any(addr % 2 for addr, _ in req.sgs_in)
        assert odd and len(pieces) > 2
        out, inn, req = await framing("split", w, 0, bytes(3 * 4096))
        assert 3 <= len(out) - 1 <= 5 and max(out) <= 4096  # size_max forces at least 3 pieces
        for layout in ("indirect", "mixed", "split+indirect"):
            _, _, req = await framing(layout, w, 0, bytes(512))
            assert req.indirect is True
        _, _, req = await framing("separate", w, 0, bytes(512))
        assert req.indirect is False
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_blk_many_in_flight_out_of_order():
    """Submit/complete split: a full ring of requests, completed in random order by the device;
    a full ring raises without wait_for_space; results match the scoreboard."""
    async def body():
        blk, disk, vdev, chk = await make_blk(num=8, handler=False, layout="indirect", rng=4)
        dev = vdev.devices[0]
        reqs = []
        for n in range(4):
            reqs.append(await blk.submit_write(n * 4, bytes([n + 1]) * 2048, kick=False))
        for n in range(4):
            reqs.append(await blk.submit_read(n * 4, 4, kick=False))
        with pytest.raises(VirtqueueFullError):
            await blk.submit_flush(wait_for_space=False)
        await blk.kick()
        assert vdev.mdev.notifies == [0]  # one doorbell for the batch
        assert blk.vqs[0].num_free == 0 and len(blk.inflight) == 8
        # Reads were queued after the writes but the device may run them in any order: serve the
        # writes first, as a device that keeps per-sector ordering would.
        chains = await dev.fetch()
        writes = [c for c in chains if c.out_len > 16]
        reads = [c for c in chains if c.out_len == 16]
        dev.pending = []
        handler = ramdisk_handler(disk)
        for batch in (writes, reads):
            random.Random(9).shuffle(batch)
            old = dev.used_idx
            for chain in batch:
                await dev.complete(chain, handler)
            await dev.publish(old)
        await blk.wait_all()
        assert all(r.done for r in reqs) and blk.vqs[0].num_free == 8
        for n in range(4):
            assert reqs[n].result == (VIRTIO_BLK_S_OK, None)
            assert reqs[4 + n].result == (VIRTIO_BLK_S_OK, bytes([n + 1]) * 2048)
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_blk_polling_without_interrupts():
    """Queues without a callback: NO_INTERRUPT set, the device sends no interrupt, poll() reaps."""
    async def body():
        blk, disk, vdev, chk = await make_blk(features=F_INDIRECT, use_irq=False, handler=False)
        vq, dev = blk.vqs[0], vdev.devices[0]
        assert int.from_bytes(await vq.avail.read(0, 2), "little") == VRING_AVAIL_F_NO_INTERRUPT
        reqs = [await blk.submit_read(s, 1) for s in range(5)]
        assert await blk.poll() == 0
        await dev.service(ramdisk_handler(disk))
        assert dev.interrupts == 0 and dev.interrupts_suppressed == 5
        assert await blk.poll() == 5
        for s, req in enumerate(reqs):
            assert await req.wait() == disk.read(s, 1)
        await blk.wait_all()
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_blk_driver_rules_and_raw_requests():
    """The checked helpers refuse what the driver must not send (§16); submit_request sends it
    anyway and the device answers per BLK-09/22/23."""
    async def body():
        blk, disk, vdev, chk = await make_blk(features=F_INDIRECT, read_only=True)
        with pytest.raises(ValueError, match="not a multiple of 512"):
            await blk.submit_write(0, bytes(100))
        with pytest.raises(VirtioError, match="read-only"):
            await blk.submit_write(0, bytes(512))
        with pytest.raises(ValueError, match="past the capacity"):
            await blk.submit_read(63, 2)
        with pytest.raises(VirtioError, match="not negotiated"):
            await blk.submit_discard([(0, 1)])
        before = bytes(disk.data)
        req = await blk.submit_request(VIRTIO_BLK_T_OUT, 0, out_data=b"\x99" * 512)
        assert await req.wait() == (VIRTIO_BLK_S_IOERR, None) and bytes(disk.data) == before
        req = await blk.submit_request(VIRTIO_BLK_T_IN, 63, in_data_len=1024)
        assert (await req.wait())[0] == VIRTIO_BLK_S_IOERR
        req = await blk.submit_request(0xFF, 0, in_data_len=4)
        assert await req.wait() == (VIRTIO_BLK_S_UNSUPP, bytes(4)) and req.used_len == 5
        assert len(blk.used_len_mismatches) == 1  # type 0xFF with data: spec expects 1
        req = await blk.submit_request(VIRTIO_BLK_T_DISCARD, 0, out_data=blk_dwz_seg_pack(0, 1))
        assert (await req.wait())[0] == VIRTIO_BLK_S_IOERR  # read-only wins over discard support
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_blk_multiqueue_round_robin_and_poisoned_buffers():
    async def body():
        blk, disk, vdev, chk = await make_blk(nqueues=3, handler=False, layout="separate")
        reqs = [await blk.submit_read(s, 1) for s in range(6)]
        assert [r.vq.index for r in reqs] == [0, 1, 2, 0, 1, 2]
        buf = reqs[0].in_bufs[0]
        assert await buf.read(0, 4) == bytes([VIRTIO_BLK_POISON]) * 4  # writable buffers start poisoned
        for index, dev in vdev.devices.items():
            await dev.service(ramdisk_handler(disk))
        await blk.wait_all()
        assert [r.result for r in reqs] == [disk.read(s, 1) for s in range(6)]
        chk.assert_clean(allow_warnings=False)
    run(body())


def test_blk_abort_all_after_reset():
    """Requests the device never used come back aborted (virtqueue_detach_unused_buf)."""
    async def body():
        blk, disk, vdev, chk = await make_blk(handler=False)
        reqs = [await blk.submit_read(s, 1) for s in range(3)]
        await blk.abort_all()
        assert all(r.aborted and r.status is None for r in reqs) and not blk.inflight
        assert blk.vqs[0].num_free == blk.vqs[0].num and blk.vqs[0].avail_idx_shadow == 0
        assert blk.host_mem.allocated == 0
    run(body())


def test_blk_remove_resets_and_forgets_the_rings():
    """remove(): reset, requests never used come back aborted, and from then on the checker
    treats any device access to the old rings or buffers as an error (RST-02)."""
    async def body():
        blk, disk, vdev, chk = await make_blk(handler=False)
        vq = blk.vqs[0]
        dev = vdev.devices[0]
        reqs = [await blk.submit_read(s, 1) for s in range(2)]
        chain = (await dev.fetch())[0]
        await blk.remove(vdev)
        assert all(r.aborted for r in reqs) and blk.vqs == [] and vq.virtqueue_is_broken()
        with pytest.raises(DmaViolation, match="not owned"):
            await dev.dma.write(chain.in_spans[0][0], b"late")
        with pytest.raises(DmaViolation, match="no longer owned"):
            await dev.dma.read(vq.avail_addr, 2)
    run(body())


def test_blk_stream_keeps_the_ring_full():
    """stream(): many cheap requests with one doorbell per refill (the SPL-24 wrap driver)."""
    async def body():
        blk, disk, vdev, chk = await make_blk(num=8, features=F_EVENT, layout="separate")
        failures = await blk.stream(3000)
        assert failures == [] and blk.completed == 3000 and disk.requests[VIRTIO_BLK_T_FLUSH] == 3000
        assert blk.vqs[0].avail_idx_shadow == 3000 and blk.host_mem.allocated == 0

        async def reads(n):
            return await blk.submit_read(n % 64, 1, kick=False, wait_for_space=False)
        assert await blk.stream(100, reads, depth=3) == []
        req = await blk.submit_request(0xFF, kick=False)
        await blk.kick()
        assert await blk.stream(1, lambda n: blk.submit_request(0xFE, kick=False)) != []
        assert req.status == VIRTIO_BLK_S_UNSUPP
        chk.assert_clean(allow_warnings=False)
    run(body())
