# SPDX-License-Identifier: Apache-2.0
"""The RTL's uapi constants (rtl/virtio_pci_defs.vh) and the Python driver's
(models/virtio/uapi.py) are the same names with the same values.

Every localparam in the header whose name is a Linux uapi name (VIRTIO_*, PCI_*) must exist
in models.virtio.uapi with the same value; the project's own layout constants (BAR0_*,
CAP_*, ...) are checked against what the driver discovers in the simulation tests instead.
"""

import re
from pathlib import Path

import pytest

from models.runner import RTL_DIR
from models.virtio import uapi

HEADER = RTL_DIR / "virtio_pci_defs.vh"
UAPI_PREFIXES = ("VIRTIO_", "PCI_")

_LOCALPARAM = re.compile(r"^\s*localparam\s+(?:\[[^\]]*\]\s*)?(\w+)\s*=\s*([^;]+);", re.M)
_SIZED = re.compile(r"^(\d+)?'([hdbo])([0-9a-fA-F_]+)$")


def verilog_value(text):
    """Value of a Verilog constant expression as used in the header (literals only)."""
    text = text.strip()
    m = _SIZED.match(text)
    if m:
        base = {"h": 16, "d": 10, "b": 2, "o": 8}[m.group(2)]
        return int(m.group(3).replace("_", ""), base)
    if re.fullmatch(r"\d+", text):
        return int(text)
    raise ValueError(f"not a literal: {text!r}")


def header_constants():
    constants = {}
    for name, value in _LOCALPARAM.findall(Path(HEADER).read_text()):
        constants[name] = verilog_value(value)
    return constants


def test_header_parses():
    constants = header_constants()
    # the header is the RTL's table of uapi constants: it must hold a substantial set of them
    uapi_names = [n for n in constants if n.startswith(UAPI_PREFIXES)]
    assert len(uapi_names) >= 60, uapi_names


@pytest.mark.parametrize("name", [n for n in header_constants() if n.startswith(UAPI_PREFIXES)])
def test_rtl_constant_matches_python(name):
    rtl_value = header_constants()[name]
    assert hasattr(uapi, name), f"models.virtio.uapi has no {name} (the RTL defines it as 0x{rtl_value:x})"
    assert getattr(uapi, name) == rtl_value, \
        f"{name}: RTL 0x{rtl_value:x}, Python 0x{getattr(uapi, name):x}"
