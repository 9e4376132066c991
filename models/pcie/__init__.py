# SPDX-License-Identifier: Apache-2.0
"""PCIe host side of the testbench: cocotbext-pcie's RootComplex joined to the RTL's
four-stream TLP port, with idle/backpressure insertion and a protocol checker.

The one call a test needs::

    from models.pcie import attach_root_complex
    host = await attach_root_complex(dut)    # clock, reset, RC + host memory, adapter, checker
    await host.enumerate()                   # rc.enumerate(); host.pci_dev is our function
"""

from .tlp_stream import TlpStreamSource, TlpStreamSink, tlp_to_beats, beats_to_tlp
from .checker import TlpChecker, TlpProtocolError
from .host import PcieHost, TlpPortDevice, IntxMonitor, attach_root_complex

__all__ = [
    "TlpStreamSource", "TlpStreamSink", "tlp_to_beats", "beats_to_tlp",
    "TlpChecker", "TlpProtocolError",
    "PcieHost", "TlpPortDevice", "IntxMonitor", "attach_root_complex",
]
