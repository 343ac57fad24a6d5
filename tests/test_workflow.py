"""End to end: the Snakemake workflow on a tiny config in a temporary copy.

The copy holds the Snakefile, workflow/, config/, profiles/, examples/ and its own copy of the
gradlab package (first on PYTHONPATH), so a test can edit gradlab's code and watch what
Snakemake decides to rerun without touching the checkout. Rerun behaviour is proven with
``snakemake -n``: the dry run's job table and each job's wildcards are parsed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("Snakefile", "workflow", "config", "profiles", "examples")
RAISES = (Path(__file__).resolve().parent / "models" / "raises.py").read_text()
TINY = {
    "models": [
        {"name": "seed-net", "kind": "seed-net"},
        {"name": "mlp-small", "kind": "mlp", "dims": [4, 5, 3, 1], "examples": 3},
        {"name": "my_model", "kind": "file", "path": "examples/my_model.py"},
        {"name": "raises", "kind": "file", "path": "raises.py"},
    ],
    "variants": ["correct", "seed-bugs"],
    "mutations": "none",  # the mutations' reruns are tested in tests/test_your_models.py
    "seeds": [0, 1],
    "methods": ["central", "forward"],
    "epsilons": ["1e-7", 1.0e-3],  # the first one is YAML-1.1 text: taken as 1e-7
    "dtypes": ["float64"],
    "verdict": {"threshold": None},
    "report": {"title": "tiny sweep"},
}
def make_copy(dest: Path) -> dict[str, str]:
    """Copy the workflow and the gradlab package to ``dest``; return the environment to use."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    pkg = dest / "_pkg"
    shutil.copytree(ROOT / "gradlab", pkg / "gradlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE="1")
    (dest / "raises.py").write_text(RAISES)
    (dest / "tiny.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    return env


def snake(wf: Path, env: dict, *args: str, config: str = "tiny.yaml", check: bool = True,
          timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = ["snakemake", *args, "--configfile", config]
    out = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def dry_run(wf: Path, env: dict, config: str = "tiny.yaml") -> tuple[Counter, list[dict]]:
    """Jobs a dry run would execute: counts per rule, and check_group's wildcards."""
    out = snake(wf, env, "-n", "--cores", "2", config=config)
    text = out.stdout + out.stderr
    counts: Counter = Counter()
    if "Nothing to be done" not in text:
        table = re.search(r"job\s+count\n[-\s]+\n(.*?)\ntotal\s+\d+", text, re.S)
        assert table, text[-3000:]
        for line in table.group(1).splitlines():
            rule, n = line.split()
            counts[rule] = int(n)
    groups = [dict(kv.split("=") for kv in m.group(1).split(", "))
              for m in re.finditer(r"wildcards: (dtype=.*)", text)]
    assert len(groups) == counts["check_group"]
    return counts, groups


def write_config(wf: Path, name: str, **changes) -> str:
    (wf / name).write_text(yaml.safe_dump(TINY | changes, sort_keys=False))
    return name


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The tiny sweep, run once with --cores 2."""
    wf = tmp_path_factory.mktemp("wf")
    env = make_copy(wf)
    started = time.perf_counter()
    snake(wf, env, "--cores", "2")
    return wf, env, time.perf_counter() - started


@pytest.mark.slow
def test_tables_and_report(done):
    wf, env, _ = done
    tables = wf / "results" / "tables"
    cells = pd.read_parquet(tables / "cells.parquet")
    timing = pd.read_parquet(tables / "timing.parquet")
    # per group: 2 networks x 2 variants x 2 methods + 2 files x 2 methods = 12 cells; 4 groups
    assert len(timing) == 48
    assert cells["seed"].dtype == "int64" and cells["eps"].dtype == "float64"
    assert cells["flagged"].dtype == bool and cells["in_truth"].dtype == bool
    assert sorted(cells["eps"].unique()) == [1e-7, 1e-3]
    bug = cells[(cells["model"] == "seed-net") & (cells["variant"] == "seed-bugs")
                & (cells["method"] == "central") & (cells["eps"] == 1e-7)]
    assert (bug["cell_verdict"] == "bug").all() and len(bug) == 2 * 6
    assert set(bug.loc[bug["flagged"], "block"]) == {"W2", "b1"}
    ok = cells[(cells["variant"] == "correct") & (cells["model"].isin(["seed-net", "mlp-small",
                                                                        "my_model"]))]
    assert not ok["flagged"].any() and (ok["cell_verdict"] == "ok").all()
    failed = cells[cells["model"] == "raises"]
    assert (failed["status"] == "failed").all()
    assert failed["error"].str.contains("ZeroDivisionError: division by zero", regex=False).all()
    assert (cells.loc[cells["model"] != "raises", "status"] == "done").all()
    for name in ("detection", "localisation", "best_eps"):
        assert len(pd.read_parquet(tables / f"{name}.parquet")) > 0
    import json

    run = json.loads((tables / "run.json").read_text())
    assert run["cells"] == {"planned": 48, "computed": 48, "reused": 0, "failed": 8,
                            "inconclusive": 0, "non_finite": 0}
    report = wf / "reports" / "gradlab-report.html"
    assert report.is_file() and report.stat().st_size > 0
    page = report.read_text(errors="replace")
    assert "tiny sweep" in page
    assert "division by zero in my layer" in page  # the failed cells and their reason
    for sub in ("logs/check_group/float64/seed0.log", "logs/aggregate.log",
                "logs/report.log", "benchmarks/check_group/float64/seed1.tsv",
                "benchmarks/aggregate.tsv", "benchmarks/report.tsv"):
        assert (wf / "results" / sub).is_file(), sub
    assert list(wf.rglob(".*.tmp*")) == []


@pytest.mark.slow
def test_nothing_to_do_on_rerun(done):
    wf, env, _ = done
    counts, _ = dry_run(wf, env)
    assert counts == Counter()
    started = time.perf_counter()
    out = snake(wf, env, "--cores", "2")
    assert "Nothing to be done" in out.stdout + out.stderr
    assert time.perf_counter() - started < 15  # < 5 s on an idle machine; CI is shared


@pytest.mark.slow
def test_reordered_lists_change_nothing(done):
    wf, env, _ = done
    name = write_config(wf, "reordered.yaml", seeds=[1, 0], methods=["forward", "central"],
                        epsilons=[1.0e-3, 1.0e-7], variants=["seed-bugs", "correct"],
                        models=list(reversed(TINY["models"])))
    assert dry_run(wf, env, name)[0] == Counter()


@pytest.mark.slow
def test_adding_a_seed_runs_only_its_cells(done):
    wf, env, _ = done
    counts, groups = dry_run(wf, env, write_config(wf, "seed.yaml", seeds=[0, 1, 2]))
    assert counts == Counter(check_group=1, aggregate=1, examples=1, report=1, all=1)
    assert groups == [{"dtype": "float64", "seed": "2"}]


@pytest.mark.slow
def test_adding_an_epsilon_computes_only_its_cells(done, tmp_path):
    """Every group reruns (its steps changed) and computes only the new steps' cells."""
    wf, env, _ = done
    copy = tmp_path / "eps"
    shutil.copytree(wf, copy, symlinks=True)
    env = dict(env, PYTHONPATH=str(copy / "_pkg"))
    name = write_config(copy, "eps.yaml", epsilons=[1e-7, 1e-3, "1e-5", "auto"])
    counts, groups = dry_run(copy, env, name)
    assert counts == Counter(check_group=2, aggregate=1, examples=1, report=1, all=1)
    snake(copy, env, "--cores", "2", config=name)
    run = json.loads((copy / "results" / "tables" / "run.json").read_text())
    # 12 cells per group and step: the two new steps of both groups computed, the rest reused
    assert run["cells"]["computed"] == 2 * 2 * 12 and run["cells"]["reused"] == 2 * 2 * 12


@pytest.mark.slow
def test_editing_the_title_reruns_only_the_report(done):
    wf, env, _ = done
    counts, _ = dry_run(wf, env, write_config(wf, "title.yaml", report={"title": "new"}))
    assert counts == Counter(report=1, all=1)


@pytest.mark.slow
def test_changing_a_verdict_setting_reruns_the_checks(done):
    wf, env, _ = done
    counts, _ = dry_run(wf, env, write_config(wf, "thr.yaml", verdict={"threshold": 2e-7}))
    assert counts == Counter(check_group=2, aggregate=1, examples=1, report=1, all=1)


@pytest.mark.slow
@pytest.mark.parametrize("relative, expected", [
    ("gradlab/check.py", Counter(check_group=2, aggregate=1, examples=1, report=1, all=1)),
    ("gradlab/report/__init__.py", Counter(report=1, all=1)),
])
def test_editing_gradlab_code_reruns_what_depends_on_it(done, relative, expected):
    wf, env, _ = done
    path = wf / "_pkg" / relative
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        assert dry_run(wf, env)[0] == expected
    finally:
        path.write_bytes(original)
    assert dry_run(wf, env)[0] == Counter()


@pytest.mark.slow
def test_tables_identical_with_one_core_and_after_sigkill(done, tmp_path):
    wf, env, _ = done
    from gradlab.tables import TABLES  # what the aggregate rule writes

    reference = {f"{name}.parquet": (wf / "results" / "tables" / f"{name}.parquet").read_bytes()
                 for name in TABLES if name != "timing"}
    one = tmp_path / "one"
    one.mkdir()
    env_one = make_copy(one)
    snake(one, env_one, "aggregate", "--cores", "1")
    for name, data in reference.items():
        assert (one / "results" / "tables" / name).read_bytes() == data, name
    killed = tmp_path / "killed"
    killed.mkdir()
    env_k = make_copy(killed)
    proc = subprocess.Popen(["snakemake", "aggregate", "--cores", "2", "--configfile",
                             "tiny.yaml"],
                            cwd=killed, env=env_k, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "results").glob("cells/*/*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # a killed Snakemake leaves its lock behind: unlock, then the same command finishes
    snake(killed, env_k, "--unlock")
    snake(killed, env_k, "aggregate", "--cores", "2")
    assert list(killed.rglob(".*.tmp*")) == []
    for name, data in reference.items():
        assert (killed / "results" / "tables" / name).read_bytes() == data, name


@pytest.mark.slow
def test_snakemake_report_collects_the_figures(done):
    wf, env, _ = done
    out = snake(wf, env, "--report", "snakereport.html")
    assert (wf / "snakereport.html").stat().st_size > 0
    assert "Could not detect mimetype" not in out.stdout + out.stderr  # Parquet registered


@pytest.mark.slow
@pytest.mark.parametrize("changes, fragment", [
    ({"epsilons": [1e-3, -1.0e-5]}, "config key 'epsilons[1]': -1e-05 is not allowed"),
    ({"seeds": [0, 0]}, "config key 'seeds[1]': seed 0 is listed twice"),
    ({"models": [{"kind": "file", "path": "missing.py"}]},
     "config key 'models[0].path': model file 'missing.py' does not exist"),
])
def test_bad_config_rejected_before_any_job(tmp_path, changes, fragment):
    env = make_copy(tmp_path)
    out = snake(tmp_path, env, "--cores", "2", config=write_config(tmp_path, "bad.yaml",
                                                                     **changes), check=False)
    assert out.returncode != 0
    assert fragment in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "reports" / "gradlab-report.html").exists()


@pytest.mark.slow
def test_typo_in_a_key_rejected(tmp_path):
    env = make_copy(tmp_path)
    (tmp_path / "bad.yaml").write_text("sedes: [0]\n")
    out = snake(tmp_path, env, "--cores", "2", config="bad.yaml", check=False)
    assert out.returncode != 0
    assert "unknown key 'sedes'; did you mean 'seeds'?" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


def test_snakefmt_and_lint_findings_are_documented():
    fmt = subprocess.run(["snakefmt", "--check", "."], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert fmt.returncode == 0, fmt.stderr
    lint = subprocess.run(["snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    findings = set(re.findall(r"^\s+\* (.*?):?$", lint.stdout + lint.stderr, re.M))
    documented = (ROOT / "docs" / "workflow.md").read_text()
    for finding in findings:
        assert finding.rstrip(".:") in documented, finding
