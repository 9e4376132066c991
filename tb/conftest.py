# SPDX-License-Identifier: Apache-2.0
"""pytest configuration of the testbenches.

Every test function with a ``sim`` argument runs once per simulator chosen by
the ``SIM`` environment variable (default: icarus and verilator), e.g.
``tb/regs/test_regs.py::test_regs[icarus]``.
"""

import pytest

from models.runner import selected_sims


def _sims(config: pytest.Config) -> list[str]:
    sims = config.stash.get(_SIMS_KEY, None)
    if sims is None:
        try:
            sims = selected_sims()
        except SystemExit as exc:
            pytest.exit(str(exc.code), returncode=2)
        config.stash[_SIMS_KEY] = sims
    return sims


_SIMS_KEY = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    _sims(config)  # stop before collection when SIM is wrong


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim" in metafunc.fixturenames:
        metafunc.parametrize("sim", _sims(metafunc.config))
