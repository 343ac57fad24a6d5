"""Shared values: the group grid, the params every rule sees, the source hashes."""

import os
import shlex
import shutil
import sys

from gradlab.config import dumps, source_hash
from gradlab.examples import EXAMPLE_TABLES
from gradlab.sweep import CACHE_DIR, GROUP_PATTERN, check_params, group_keys, group_path
from gradlab.tables import TABLES

TABLES_DIR = "results/tables"
TABLE_FILES = {name: f"{TABLES_DIR}/{name}.parquet" for name in TABLES}
EXAMPLE_FILES = {name: f"{TABLES_DIR}/{name}.parquet" for name in EXAMPLE_TABLES}
RUN_JSON = f"{TABLES_DIR}/run.json"
REPORT_HTML = "reports/gradlab-report.html"
FIGURES = "results/figures"
STATE = "results/.sweep-state.json"

GROUP_FILES = [group_path(*key) for key in group_keys(CFG)]
MODEL_FILES = sorted({m["path"] for m in CFG["models"] if m["kind"] == "file"})

# The gradlab command of the environment running Snakemake (the one that just validated the
# config); found next to its interpreter, which also skips version-manager shims (~0.1 s a job).
GRADLAB = shlex.quote(
    shutil.which("gradlab", path=os.path.dirname(sys.executable)) or "gradlab"
)

# Stable JSON strings: a config change reruns exactly the jobs whose params change.
CHECK_PARAMS = check_params(CFG)
AGGREGATE_PARAMS = dumps({k: v for k, v in CFG.items() if k != "report"})
CORE_HASH = source_hash("core")
REPORT_HASH = source_hash("report")


wildcard_constraints:
    dtype="float32|float64",
    seed=r"\d+",
