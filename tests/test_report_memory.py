"""The report reads the cells in bounded pieces: its peak memory on a large cells table (the
report fixture's real cells replicated under new seeds, ~700,000 rows, the summaries recomputed
for it) stays under a bound that reading every cell into pandas exceeds.

Measured once on these tables (peak RSS of the child process): the code that loaded the
catalogue's cells and built a per-cell frame needed 959 MB; the bounded report
320 MB (see docs/workflow.md for the sweeps' numbers).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_report_large import big_tables

ROWS = 700_000
LIMIT_MB = 500

# the peak of the child's own memory: VmHWM (ru_maxrss would keep the parent's peak, which
# Linux carries across exec)
CHILD = """
import re, sys
from gradlab.report import build_report
lines = []
build_report(sys.argv[1], sys.argv[2], "memory", log=lines.append)
print(lines[0])
with open("/proc/self/status") as fh:
    print(re.search(r"VmHWM:\\s*(\\d+) kB", fh.read()).group(1))
"""


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    tables = tmp_path_factory.mktemp("memory") / "tables"
    n_rows, n_cells = big_tables(tables, ROWS)
    return tables, n_rows, n_cells


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_report_memory_is_bounded(big, tmp_path):
    tables, n_rows, n_cells = big
    assert n_rows >= ROWS
    out = tmp_path / "report.html"
    run = subprocess.run([sys.executable, "-c", CHILD, str(tables), str(out)],
                         capture_output=True, text=True, check=True)
    note, peak_kib = run.stdout.strip().splitlines()[-2:]
    assert f"of {n_cells:,} cells in the tables" in note  # it read the summaries, not cells
    assert int(peak_kib) / 1024 < LIMIT_MB, (int(peak_kib) / 1024, note)
    text = out.read_text(encoding="utf-8")
    catalogue = pd.read_parquet(tables / "settings.parquet")["cells"].sum()
    assert f"{catalogue} cells are too many for one page" in text
