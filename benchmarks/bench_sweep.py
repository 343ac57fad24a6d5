"""Benchmark the sweep: the default workflow from a cold start, then a rerun with nothing to do.

    python benchmarks/bench_sweep.py [--cores 2] [--configfile my.yaml] [--keep] [--json]
                                     [--no-add]

Copies the Snakefile, workflow/, config/, profiles/ and examples/ into a temporary directory
(no .snakemake/, no results/: a cold start), runs ``snakemake --cores N`` there, and reports

- the wall time of the cold run and of the no-op rerun, and the number of jobs;
- the sum of the per-cell check seconds (``timing.parquet``) against the core-seconds the run
  had (wall x cores): the rest is the share spent outside the gradient checks (Snakemake's
  start and scheduling, one Python + numpy start per job, building problems, aggregation,
  the report); and the same in CPU seconds (``check_cpu_seconds`` of ``run.json`` against the
  CPU of Snakemake and all its jobs), which a busy machine does not distort;
- the CPU seconds of Snakemake and all its jobs (the wall time an idle machine needs at best is
  that divided by the cores: on a shared machine the wall time says more about the neighbours);
- the per-rule totals from the jobs' ``benchmark:`` files, with each rule's peak memory (the
  largest ``max_rss`` of its jobs), and the size of every file in ``reports/``;
- a rerun after adding a model (a small mlp) to the config: its wall and CPU time and the cells
  ``run.json`` says were computed and reused (only the new model's cells should compute).

It runs a snapshot of this checkout's gradlab package (first on PYTHONPATH), so edits made to
the checkout while it runs change neither the numbers nor the no-op rerun.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("Snakefile", "workflow", "config", "profiles", "examples")


def _copy(dest: Path) -> dict[str, str]:
    """Copy the workflow and a snapshot of gradlab; return the environment to run it in."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    shutil.copytree(ROOT / "gradlab", dest / "_pkg" / "gradlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dict(os.environ, PYTHONPATH=str(dest / "_pkg"))


def _snakemake(wf: Path, cores: int, extra: list[str], env: dict[str, str]
               ) -> tuple[float, float, str]:
    """Run snakemake; return wall seconds, CPU seconds of it and all its jobs, output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(["snakemake", "--cores", str(cores), *extra], cwd=wf,
                         capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        sys.exit(f"snakemake failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return wall, cpu, out.stdout + out.stderr


def _benchmarks(wf: Path) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = {}
    for tsv in sorted((wf / "results" / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(wf / "results" / "benchmarks").parts[0].removesuffix(".tsv")
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        t = totals.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                     "max_rss_mb": 0.0})
        t["jobs"] += 1
        t["wall_s"] += float(row["s"])
        if row.get("max_rss") not in (None, "", "NA"):
            t["max_rss_mb"] = max(t["max_rss_mb"], float(row["max_rss"]))
        t["cpu_s"] += float(row["cpu_time"]) if row.get("cpu_time") not in (None, "", "NA") \
            else 0.0
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", default=None, help="run this config instead")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-add", action="store_true",
                        help="skip the add-a-model rerun (for very large configs)")
    args = parser.parse_args(argv)

    import pandas as pd

    wf = Path(tempfile.mkdtemp(prefix="gradlab-bench-"))
    try:
        env = _copy(wf)
        extra = []
        if args.configfile:
            shutil.copy2(args.configfile, wf / "bench-config.yaml")
            extra = ["--configfile", "bench-config.yaml"]
        cold, cold_cpu, _ = _snakemake(wf, args.cores, extra, env)
        noop, _, log2 = _snakemake(wf, args.cores, extra, env)
        if "Nothing to be done" not in log2:
            print("warning: the rerun was not a no-op", file=sys.stderr)
        timing = pd.read_parquet(wf / "results" / "tables" / "timing.parquet")
        run = json.loads((wf / "results" / "tables" / "run.json").read_text())
        rules = _benchmarks(wf)
        reports = wf / "reports"
        report_mb = {p.name: round(p.stat().st_size / 2**20, 2) for p in sorted(
            reports.iterdir())} if reports.is_dir() else {}
        added = None if args.no_add else _add_a_model(wf, args, extra, env)
        checks = float(timing["seconds"].sum())
        budget = cold * args.cores
        result = {
            "cores": args.cores,
            "cold_wall_s": round(cold, 2),
            "noop_rerun_wall_s": round(noop, 2),
            "jobs": sum(r["jobs"] for r in rules.values()),
            "cells": int(len(timing)),
            "check_seconds": round(checks, 2),
            "core_seconds": round(budget, 2),
            "cpu_seconds": round(cold_cpu, 2),
            "check_cpu_seconds": round(run.get("check_cpu_seconds", 0.0), 2),
            "outside_checks_cpu_share": round(1 - run.get("check_cpu_seconds", 0.0) / cold_cpu,
                                              3) if cold_cpu else None,
            "outside_checks_share": round(1 - checks / budget, 3),
            "per_cell_ms": round(1000 * checks / max(len(timing), 1), 2),
            "cells_per_s": round(len(timing) / cold, 1),
            "report_files_mb": report_mb,
            "rules": {k: {m: round(v, 2) for m, v in r.items()} for k, r in rules.items()},
            "failed_cells": run["cells"]["failed"],
            "add_a_model": added,
        }
    finally:
        if args.keep:
            print(f"kept {wf}", file=sys.stderr)
        else:
            shutil.rmtree(wf, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"default sweep, {result['cores']} cores: {result['cells']} cells in "
          f"{result['jobs']} jobs")
    print(f"  cold run          {result['cold_wall_s']:8.2f} s wall "
          f"({result['cells_per_s']} cells per second)")
    print(f"  no-op rerun       {result['noop_rerun_wall_s']:8.2f} s wall")
    print(f"  gradient checks   {result['check_seconds']:8.2f} s summed over cells "
          f"({result['per_cell_ms']} ms per cell)")
    print(f"  outside checks    {100 * result['outside_checks_share']:7.1f} % of "
          f"{result['core_seconds']:.1f} core-seconds (wall x cores)")
    print(f"  CPU used          {result['cpu_seconds']:8.2f} s (snakemake and every job); "
          f"{result['cpu_seconds'] / result['cores']:.1f} s wall on {result['cores']} idle "
          f"cores at best")
    print(f"  CPU in checks     {result['check_cpu_seconds']:8.2f} s: "
          f"{100 * result['outside_checks_cpu_share']:.1f} % of the CPU went elsewhere")
    for rule, r in result["rules"].items():
        print(f"  rule {rule:<13}{r['jobs']:5d} jobs {r['wall_s']:9.2f} s wall "
              f"{r['cpu_s']:9.2f} s cpu, peak {r['max_rss_mb']:7.1f} MB")
    for name, mb in result["report_files_mb"].items():
        print(f"  reports/{name}: {mb} MB")
    a = result["add_a_model"]
    if a:
        print(f"  add a model       {a['wall_s']:8.2f} s wall, {a['cpu_s']:.2f} s CPU: "
              f"{a['computed']} cells computed, {a['reused']} reused")
    return 0


def _add_a_model(wf: Path, args: argparse.Namespace, extra: list[str], env: dict[str, str]
                 ) -> dict[str, float | int]:
    """Rerun with one more model in the config; what it cost and what run.json counted."""
    import yaml

    source = wf / ("bench-config.yaml" if args.configfile else "config/config.yaml")
    cfg = yaml.safe_load(source.read_text()) or {}
    cfg["models"] = [*(cfg.get("models") or []),
                     {"name": "added-mlp", "kind": "mlp", "dims": [3, 4, 1], "examples": 4}]
    (wf / "bench-added.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    wall, cpu, _ = _snakemake(wf, args.cores, [*extra, "--configfile", "bench-added.yaml"],
                              env)
    cells = json.loads((wf / "results" / "tables" / "run.json").read_text())["cells"]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "computed": cells["computed"],
            "reused": cells["reused"], "planned": cells["planned"]}


if __name__ == "__main__":
    sys.exit(main())
