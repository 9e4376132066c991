# SPDX-License-Identifier: Apache-2.0
import cocotb
from models.pcie import attach_root_complex


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def run_smoke(dut):
    host = await attach_root_complex(dut)
    dev = await host.enumerate()
    dut._log.info("found %s %04x:%04x bar0 0x%x size %s caps %s", dev.pcie_id, dev.vendor_id, dev.device_id,
                  dev.bar_addr[0], dev.bar_size[0], [(hex(a), hex(b)) for a, b in dev.capabilities])
    assert dev.device_id == 0x1042
    await dev.enable_device()
    await dev.set_master()
    v = await dev.bar_window[0].read_dword(0x0)
    dut._log.info("dfselect %x", v)
    await dev.bar_window[0].write_dword(0x0, 1)
    v = await dev.bar_window[0].read_dword(0x4)
    dut._log.info("df[1] %x", v)
    assert v & 1
    n = await dev.alloc_irq_vectors(1, 2)
    dut._log.info("msix vectors %d", n)
