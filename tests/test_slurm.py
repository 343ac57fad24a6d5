"""The same sweep on a real SLURM cluster, through Snakemake's SLURM executor.

Needs a running SLURM with accounting (``bash scripts/slurm-up.sh`` starts a single-node one on
localhost; ``scripts/test.sh`` and CI do that) and ``snakemake-executor-plugin-slurm``. Without
them the test skips with the reason, except under CI (``CI=true``) where it fails: CI must run it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest
import yaml
from test_workflow import TINY, make_copy, snake

TABLES = ("cells", "detection", "localisation", "best_eps")
CONFIG = TINY | {
    "models": [m for m in TINY["models"] if m["name"] in ("seed-net", "mlp-small", "my_model")],
    "seeds": [0, 1],
    "epsilons": [1.0e-7],
    "report": {"title": "slurm sweep"},
}


def _cluster_problem() -> str | None:
    """Why the cluster cannot be used, or None when it can."""
    for tool in ("sinfo", "sbatch", "sacct"):
        if shutil.which(tool) is None:
            return f"{tool} not found (run: bash scripts/slurm-up.sh as root)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    for cmd in (["sinfo", "-h", "-o", "%T"], ["sacct", "-n", "-X", "-S", "now-1minutes"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return f"{' '.join(cmd)} failed: {out.stderr.strip()[:200]}"
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
    if not ({"idle", "mixed", "allocated"} & set(states.split())):
        return f"no usable SLURM node (states: {states.split()})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM cluster needed in CI: {problem}")
        pytest.skip(f"no SLURM cluster: {problem}")


def _completed_jobs() -> set[str]:
    """IDs of the SLURM jobs that completed in the last day (from accounting)."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", "now-1days", "-o", "JobID,State"],
                         capture_output=True, text=True, timeout=30)
    return {line.split("|")[0] for line in out.stdout.splitlines() if "|COMPLETED" in line}


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_tables_identical_to_local(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    env_local = make_copy(local)
    env_remote = make_copy(remote)
    for wf in (local, remote):
        (wf / "small.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    snake(local, env_local, "--cores", "2", config="small.yaml")
    before = _completed_jobs()
    out = snake(remote, env_remote, "--profile", "profiles/slurm", config="small.yaml",
                timeout=900)
    ran = _completed_jobs() - before
    # every check group ran as a real SLURM job (2 seeds x 1 step here)
    assert len(ran) >= 2, f"SLURM accounting shows {len(ran)} new jobs:\n{out.stderr[-3000:]}"
    for name in TABLES:
        a = (local / "results" / "tables" / f"{name}.parquet").read_bytes()
        b = (remote / "results" / "tables" / f"{name}.parquet").read_bytes()
        assert a == b, f"{name}.parquet differs between the local and the SLURM run"
    assert (remote / "reports" / "gradlab-report.html").is_file()
