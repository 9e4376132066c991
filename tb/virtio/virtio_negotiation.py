# SPDX-License-Identifier: Apache-2.0
"""Feature negotiation: what the device offers, which subsets it accepts and refuses, and
what refusal means for DRIVER_OK.

cocotb tests, run by tb/virtio/test_virtio.py.
"""

import cocotb

from virtio_tb import (
    BLK_DEFINED_FEATURES,
    LEGACY_ONLY_FEATURES,
    RESERVED_FEATURES,
    TRANSPORT_DEFINED_FEATURES,
    VIRTIO_BLK_F_CONFIG_WCE,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_ZONED,
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_F_ACCESS_PLATFORM,
    VIRTIO_F_ADMIN_VQ,
    VIRTIO_F_NOTIF_CONFIG_DATA,
    VIRTIO_F_NOTIFICATION_DATA,
    VIRTIO_F_ORDER_PLATFORM,
    VIRTIO_F_RING_PACKED,
    VIRTIO_F_SR_IOV,
    VIRTIO_F_VERSION_1,
    VIRTIO_PCI_COMMON_GF,
    VIRTIO_PCI_COMMON_GFSELECT,
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VirtioTB,
    bit,
    feature_bits,
)

TIMEOUT_MS = 10

# offered-feature prerequisites for a virtio-blk device (spec §5.2.5.2; §6 has none for ours)
FEATURE_REQUIRES = {VIRTIO_BLK_F_CONFIG_WCE: VIRTIO_BLK_F_FLUSH}


def random_subset(tb, offered):
    """A valid subset of ``offered``: VERSION_1 always, the rest at random (FEAT-02)."""
    chosen = bit(VIRTIO_F_VERSION_1)
    for n in feature_bits(offered):
        if tb.rng.random() < 0.5:
            chosen |= bit(n)
    for feature, needs in FEATURE_REQUIRES.items():
        if chosen & bit(feature) and not chosen & bit(needs):
            chosen &= ~bit(feature)
    return chosen


async def expect_accepted(tb, features, what):
    assert await tb.negotiate(features), f"{what}: FEATURES_OK refused for {features:#x}"
    assert await tb.get_driver_features() == features, f"{what}: driver_feature read-back"
    rises = tb.pins.driver_ok_rises
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    await tb.flush()
    await tb.cycles(4)
    assert tb.pins.driver_ok_rises == rises + 1 and tb.dut.driver_ok.value == 1, \
        f"{what}: driver_ok did not rise after DRIVER_OK"
    status = await tb.get_status()
    assert status == (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK
                      | VIRTIO_CONFIG_S_DRIVER_OK), f"{what}: status {status:#x}"


async def expect_refused(tb, features, what):
    """FEATURES_OK reads back clear (FEAT-03), and DRIVER_OK then does not start the device."""
    assert not await tb.negotiate(features), f"{what}: FEATURES_OK accepted for {features:#x}"
    rises = tb.pins.driver_ok_rises
    # a driver that ignores the refusal and carries on
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    await tb.set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK
                        | VIRTIO_CONFIG_S_DRIVER_OK)
    assert not await tb.get_status() & VIRTIO_CONFIG_S_FEATURES_OK, f"{what}: FEATURES_OK stuck on retry"
    await tb.cycles(20)
    assert tb.pins.driver_ok_rises == rises and tb.dut.driver_ok.value == 0, \
        f"{what}: driver_ok rose although FEATURES_OK was refused"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_offered_features(dut):
    """The offered set is exactly the configured one and holds only allowed bits.

    RFB-01 (VERSION_1), RFB-02/RFB-04 (ACCESS_PLATFORM and ORDER_PLATFORM), FEAT-04/RFB-08
    (only bits defined for a blk device or the transport; no legacy-only bits 0/7/24/27/30, no
    reserved bits 42-49, nothing above 63), FEAT-01/BLK-03 (prerequisites), BLK-02 (FLUSH),
    BLK-06 (no ZONED), RFB-06 (no SR_IOV without the capability), BLK-09 setup (RO offered
    exactly when the disk is read-only), MQ exactly with several queues, NOTIFICATION_DATA
    exactly when its parameter is on (RFB-07: its meaning is checked by virtio_doorbells and
    tb/blk); features whose logic is not implemented here are not offered (packed ring,
    notification config data, admin VQ).
    """
    tb = VirtioTB(dut)
    await tb.start()
    p = tb.p
    offered = await tb.get_features()
    tb.log.info("offered features %#x: bits %s", offered, feature_bits(offered))
    assert offered == p.offered_features, f"offered {offered:#x}, expected {p.offered_features:#x}"

    for n in feature_bits(offered):
        assert n in BLK_DEFINED_FEATURES or n in TRANSPORT_DEFINED_FEATURES, f"bit {n} is not defined"
        assert n not in LEGACY_ONLY_FEATURES, f"legacy-only bit {n} offered"
        assert n not in RESERVED_FEATURES, f"reserved bit {n} offered"
    for feature, needs in FEATURE_REQUIRES.items():
        if offered & bit(feature):
            assert offered & bit(needs), f"bit {feature} offered without {needs}"
    for n in (VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_ORDER_PLATFORM, VIRTIO_BLK_F_FLUSH):
        assert offered & bit(n), f"bit {n} not offered"
    for n in (VIRTIO_BLK_F_ZONED, VIRTIO_F_SR_IOV, VIRTIO_F_RING_PACKED, VIRTIO_F_NOTIF_CONFIG_DATA,
              VIRTIO_F_ADMIN_VQ):
        assert not offered & bit(n), f"bit {n} offered"
    assert bool(offered & bit(VIRTIO_F_NOTIFICATION_DATA)) == p.notification_data
    assert bool(offered & bit(VIRTIO_BLK_F_RO)) == p.read_only
    assert bool(offered & bit(VIRTIO_BLK_F_MQ)) == (p.num_queues > 1)
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_accept_offered_set(dut):
    """The whole offered set and the minimal {VERSION_1} are accepted: FEATURES_OK sticks and
    DRIVER_OK raises the driver_ok pin (FEAT-02, INIT-01)."""
    tb = VirtioTB(dut)
    await tb.start()
    await expect_accepted(tb, tb.p.offered_features, "offered set")
    await expect_accepted(tb, bit(VIRTIO_F_VERSION_1), "VERSION_1 only")
    await tb.reset_device()
    await tb.cycles(4)
    assert tb.dut.driver_ok.value == 0, "driver_ok still high after a device reset"
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_accept_random_subsets(dut):
    """Random valid subsets (always with VERSION_1) are accepted (FEAT-02); each accepted set
    is accepted again after a device reset (FEAT-05)."""
    tb = VirtioTB(dut, seed=31)
    await tb.start()
    offered = tb.p.offered_features
    for i in range(16):
        features = random_subset(tb, offered)
        await expect_accepted(tb, features, f"subset {i}")
        await expect_accepted(tb, features, f"subset {i} after reset")
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_refuse_invalid_sets(dut):
    """A set with a bit that was not offered, or without VERSION_1, is refused: FEATURES_OK
    reads back clear and a following DRIVER_OK does not raise driver_ok (FEAT-03, RFB-01);
    after a reset the same driver can negotiate a valid set (FEAT-05)."""
    tb = VirtioTB(dut, seed=37)
    await tb.start()
    offered = tb.p.offered_features
    not_offered = [n for n in range(64) if not offered >> n & 1]
    candidates = [VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_RING_PACKED,
                  VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_ADMIN_VQ, 0, 24, 27, 30, 31, 42, 63]
    candidates += tb.rng.sample(not_offered, 4)
    for n in candidates:
        if offered >> n & 1:
            continue
        await expect_refused(tb, offered | bit(n), f"unoffered bit {n}")
    await expect_refused(tb, offered & ~bit(VIRTIO_F_VERSION_1), "without VERSION_1")
    await expect_refused(tb, 0, "empty set")
    await expect_accepted(tb, offered, "offered set after refusals")
    await tb.finish()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def run_features_frozen_after_features_ok(dut):
    """Once FEATURES_OK is set the accepted set is latched: driver_feature writes to either
    word are ignored (FEAT-08: behaviour follows the set latched at FEATURES_OK)."""
    tb = VirtioTB(dut, seed=41)
    await tb.start()
    features = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_BLK_F_FLUSH)
    assert await tb.negotiate(features)
    for sel, value in ((0, 0xFFFF_FFFF), (1, 0), (0, 0), (1, 0xFFFF_FFFF)):
        await tb.cwrite32(VIRTIO_PCI_COMMON_GFSELECT, sel)
        await tb.cwrite32(VIRTIO_PCI_COMMON_GF, value)
    assert await tb.get_driver_features() == features
    await tb.add_status(VIRTIO_CONFIG_S_DRIVER_OK)
    assert await tb.get_driver_features() == features
    assert await tb.get_status() & VIRTIO_CONFIG_S_FEATURES_OK
    await tb.finish()
