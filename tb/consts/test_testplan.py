# SPDX-License-Identifier: Apache-2.0
"""tb/testplan.md claims no coverage that the tests do not have."""

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("testplan", REPO / "scripts" / "testplan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_covered_id_is_cited_by_a_test():
    cited = _load_generator().cited_ids()
    plan = (REPO / "tb" / "testplan.md").read_text()
    covered_section = plan.split("## Covered", 1)[1].split("## Not covered yet", 1)[0]
    claimed = re.findall(r"^\| ([A-Z]+-\d{2}) \|", covered_section, re.M)
    assert claimed, "the test plan lists no covered requirement"
    for rid in claimed:
        assert rid in cited, f"tb/testplan.md lists {rid} as covered but no test docstring cites it"
        row = re.search(rf"^\| {rid} \|[^\n]*", covered_section, re.M).group(0)
        tests_cell = row.rstrip(" |").rsplit(" | ", 1)[1]
        for test in tests_cell.split("`")[1::2]:
            path, _, name = test.partition("::")
            assert (REPO / path).exists() and re.search(rf"def {name}\b", (REPO / path).read_text()), \
                f"tb/testplan.md names {test}, which does not exist"
