"""The same sweep on a real SLURM cluster, through Snakemake's SLURM executor.

Needs a running SLURM with accounting (``bash scripts/slurm-up.sh`` starts a single-node one on
localhost; ``scripts/test.sh`` and CI do that) and ``snakemake-executor-plugin-slurm``. Without
them the test skips with the reason, except under CI (``CI=true``) where it fails: CI must run it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT, TINY, make_copy, snake

TABLES = ("cells", "detection", "localisation", "best_eps")
CONFIG = TINY | {
    "models": [m for m in TINY["models"] if m["name"] in ("seed-net", "mlp-small", "my_model")],
    "seeds": [0, 1, 2],
    "epsilons": [1.0e-7, 1.0e-3],
    "report": {"title": "slurm sweep"},
}
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())


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


def _jobs_in(workdir: Path) -> dict[str, tuple[str, int]]:
    """State and CPUs of every SLURM job submitted from ``workdir``, from accounting."""
    cmd = ["sacct", "-n", "-X", "-P", "-S", "now-1days", "-o", "JobID,State,AllocCPUS,WorkDir"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    jobs = {}
    for line in out.stdout.splitlines():
        job_id, state, cpus, wd = line.split("|", 3)
        if wd.rstrip("/") == str(workdir):
            jobs[job_id] = (state, int(cpus))
    return jobs


def check_jobs(config: dict) -> int:
    """check_group jobs of a sweep: one per dtype x seed."""
    return len(config["dtypes"]) * len(config["seeds"])


def expected_slurm_jobs(config: dict, profile: dict) -> int:
    """SLURM jobs the profile makes of a sweep: check jobs packed N to a group, nothing else."""
    group = profile["groups"]["check_group"]
    return math.ceil(check_jobs(config) / profile["group-components"][group])


def test_default_sweep_is_five_slurm_jobs():
    """The profile's grouping turns the default sweep's check jobs (10) into 5 SLURM jobs."""
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert check_jobs(default) == 10
    assert expected_slurm_jobs(default, PROFILE) == 5


@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="snakemake-executor-plugin-slurm is not installed")
def test_slurm_dry_run_shows_the_groups(tmp_path):
    """Without a cluster: the profile's dry run packs the check jobs into the expected groups."""
    env = make_copy(tmp_path)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    out = snake(tmp_path, env, "--profile", "profiles/slurm", "-n", config="small.yaml")
    text = out.stdout + out.stderr
    groups = text.split("Group job checks")[1:]
    assert len(groups) == expected_slurm_jobs(CONFIG, PROFILE), text[-3000:]
    assert sum(g.count("rule check_group:") for g in groups) == check_jobs(CONFIG)


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
    out = snake(remote, env_remote, "--profile", "profiles/slurm", config="small.yaml",
                timeout=900)
    log = out.stdout + out.stderr
    jobs = _jobs_in(remote.resolve())
    # 3 check jobs, 2 to a group: exactly 2 SLURM jobs, all completed; nothing else submitted
    expected = expected_slurm_jobs(CONFIG, PROFILE)
    assert expected < check_jobs(CONFIG), "the small config must exercise the grouping"
    assert len(jobs) == expected, f"SLURM accounting shows {jobs}, expected {expected} jobs:\n" \
        f"{log[-3000:]}"
    # each grouped job runs its members one at a time: it must ask for one member's CPUs
    assert set(jobs.values()) == {("COMPLETED", PROFILE["resources"]["cpus_per_task"])}, jobs
    # aggregate and report ran in the snakemake process (localrules), not on SLURM
    for rule in ("aggregate", "report"):
        assert f"localrule {rule}:" in log, log[-3000:]
    logs = remote / ".snakemake" / "slurm_logs"
    assert {p.name for p in logs.iterdir()} == {"group_checks_check_group"}
    assert len(list(logs.rglob("*.log"))) == expected
    for name in TABLES:
        a = (local / "results" / "tables" / f"{name}.parquet").read_bytes()
        b = (remote / "results" / "tables" / f"{name}.parquet").read_bytes()
        assert a == b, f"{name}.parquet differs between the local and the SLURM run"
    assert (remote / "reports" / "gradlab-report.html").is_file()
