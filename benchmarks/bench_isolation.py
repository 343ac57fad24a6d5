"""Benchmark the worker process that model files run in (gradlab/isolate.py).

    python benchmarks/bench_isolation.py [--repeats 30] [--sweep] [--base REV] [--json]

1. Per check of a model file (``examples/my_model.py``, central differences, automatic step),
   each contender in its own fresh process, median of ``--repeats``:
   - *in-process*: build the problem and check it in the calling process (no isolation);
   - *isolated, first check*: fork the worker, import and ``init`` there, check, stop it
     (what ``gradlab check`` does);
   - *isolated, next check*: one more check in a worker that is already running (what the
     sweep does for every further check of a model file in a group);
   - the whole ``gradlab check examples/my_model.py`` command, for scale.
2. One whole group of the default sweep (``gradlab sweep-run``, float64, seed 5, every step:
   1,824 checks, 48 of them of the model file), with this checkout, alternating in-process
   (isolation turned off in the command's process) and isolated, ``--repeats // 3`` times
   each: median wall and CPU seconds (the command and its workers).
3. With ``--sweep``: the default sweep from a cold start (``snakemake --cores 2`` in a temporary
   copy, as ``benchmarks/bench_sweep.py``), once with this checkout and once with ``--base``
   (default: the merge base with ``main``; the code before isolation is ``256e58d^1``, whose
   sweep had 120 check jobs of one dtype x seed x step, against 10 now, so that comparison
   also measures the job layout). The built-in models are not isolated, so the two should
   agree within noise; the file model's cells are reported apart. Runs the full default sweep
   exactly twice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "examples/my_model.py"
MODES = ("in-process", "isolated-first", "isolated-next")


def _one_mode(mode: str, repeats: int) -> list[float]:
    """Seconds per check for one mode (run in a fresh process: see ``--child``)."""
    from gradlab import isolate, runner
    from gradlab.isolate import Limits
    from gradlab.spec import ModelSpec

    if mode == "in-process":
        isolate.can_isolate = lambda: False
    spec, options = ModelSpec(MODEL), {"method": "central", "eps": "auto"}
    times = []
    if mode == "isolated-next":
        with runner.open_model(spec, Limits()) as run:
            run.build()
            run.check(**options)  # warm
            for i in range(repeats):  # another seed each time: nothing is reused
                started = time.perf_counter()
                run.check(seed=i + 1, **options)
                times.append(time.perf_counter() - started)
        return times
    for i in range(repeats + 1):
        started = time.perf_counter()
        with runner.open_model(spec, Limits()) as run:
            run.build()
            run.check(seed=i, **options)
        if i:  # the first one warms caches (imports, BLAS)
            times.append(time.perf_counter() - started)
    return times


def per_check(repeats: int) -> dict[str, float]:
    """Median milliseconds per check for each mode, each in its own process."""
    out = {}
    for mode in MODES:
        res = subprocess.run([sys.executable, __file__, "--child", mode, "--repeats",
                              str(repeats)], capture_output=True, text=True, cwd=ROOT,
                             check=True)
        out[mode] = 1000 * statistics.median(json.loads(res.stdout))
    cmd = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(["gradlab", "check", MODEL], capture_output=True, cwd=ROOT, check=True)
        cmd.append(time.perf_counter() - started)
    out["command"] = 1000 * statistics.median(cmd)
    return out


def _sweep(tree: Path) -> dict[str, float]:
    """A cold default sweep in a copy of ``tree``: wall, CPU, and check seconds per model."""
    import pandas as pd

    wf = Path(tempfile.mkdtemp(prefix="gradlab-bench-iso-"))
    try:
        for name in ("Snakefile", "workflow", "config", "profiles", "examples"):
            src = tree / name
            if src.is_dir():
                shutil.copytree(src, wf / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, wf / name)
        shutil.copytree(tree / "gradlab", wf / "_pkg" / "gradlab",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(os.environ, PYTHONPATH=str(wf / "_pkg"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(["snakemake", "--cores", "2"], cwd=wf, env=env, check=True,
                       capture_output=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        timing = pd.read_parquet(wf / "results" / "tables" / "timing.parquet")
        per_model = timing.groupby("model")["seconds"].sum().round(2).to_dict()
        return {"wall_s": round(wall, 2),
                "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime
                               - before.ru_stime, 2),
                "check_s_per_model": per_model}
    finally:
        shutil.rmtree(wf, ignore_errors=True)


def _export(base: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "archive", base], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


_NO_ISOLATION = "from gradlab import isolate; isolate.can_isolate = lambda: False; "


def _group_once(isolated: bool, out: Path) -> tuple[float, float, int]:
    """One ``gradlab sweep-run`` of a whole default group (seed 5, every step: past the seeds
    the mutations run on) with this checkout: wall and CPU seconds, and the checks it ran."""
    code = ("import sys; " + ("" if isolated else _NO_ISOLATION)
            + "from gradlab.cli import main; sys.exit(main())")
    cmd = [sys.executable, "-c", code, "sweep-run", "--config", "config/config.yaml",
           "--dtype", "float64", "--seed", "5", "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True,
                   capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    computed = json.loads(out.read_text())["computed"]
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, computed


def one_group(repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of one whole default group, in-process and isolated,
    alternating, and the number of checks it ran."""
    runs: dict[str, list] = {"in-process": [], "isolated": []}
    out = Path(tempfile.mkdtemp(prefix="gradlab-group-")) / "g.json"
    for _ in range(max(1, repeats)):
        for name in runs:
            runs[name].append(_group_once(name == "isolated", out))
    shutil.rmtree(out.parent, ignore_errors=True)
    return {name: {"wall_s": round(statistics.median(r[0] for r in rs), 3),
                   "cpu_s": round(statistics.median(r[1] for r in rs), 3),
                   "checks": rs[0][2]}
            for name, rs in runs.items()}


def sweeps(base_tree: Path) -> dict[str, dict]:
    """The default sweep with this checkout and with the base tree."""
    return {"base": _sweep(base_tree), "isolated": _sweep(ROOT)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sweep", action="store_true", help="also time the default sweep")
    parser.add_argument("--base", default=None, help="the revision to compare the sweep with")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_one_mode(args.child, args.repeats)))
        return 0
    result: dict = {"per_check_ms": {k: round(v, 2) for k, v in per_check(args.repeats).items()}}
    result["group"] = one_group(args.repeats // 3)
    if args.sweep:
        base = args.base or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT,
                                           capture_output=True, text=True,
                                           check=True).stdout.strip()
        result["base_rev"] = base[:12]
        base_tree = Path(tempfile.mkdtemp(prefix="gradlab-base-"))
        try:
            result["sweep"] = sweeps(_export(base, base_tree))
        finally:
            shutil.rmtree(base_tree, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ms = result["per_check_ms"]
    print(f"one check of {MODEL} (central, auto step), median of {args.repeats}:")
    print(f"  in-process                   {ms['in-process']:7.2f} ms")
    print(f"  isolated, fork+import+check  {ms['isolated-first']:7.2f} ms "
          f"(+{ms['isolated-first'] - ms['in-process']:.2f} ms)")
    print(f"  isolated, next check         {ms['isolated-next']:7.2f} ms")
    print(f"  whole `gradlab check` command {ms['command']:6.0f} ms")
    g = result["group"]
    print(f"one whole default group (float64, seed 5: {g['isolated']['checks']:,} checks), "
          f"median of {max(1, args.repeats // 3)}:")
    for name in ("in-process", "isolated"):
        print(f"  {name:<10} {g[name]['wall_s']:6.3f} s wall {g[name]['cpu_s']:6.3f} s CPU")
    print(f"  isolated - in-process: {g['isolated']['wall_s'] - g['in-process']['wall_s']:+.3f}"
          f" s wall, {g['isolated']['cpu_s'] - g['in-process']['cpu_s']:+.3f} s CPU per group")
    if args.sweep:
        s = result["sweep"]
        for name in ("base", "isolated"):
            r = s[name]
            print(f"default sweep, {name:<8} {r['wall_s']:7.2f} s wall {r['cpu_s']:7.2f} s CPU; "
                  f"checks per model (s): {r['check_s_per_model']}")
        print(f"  ratio isolated / base: wall {s['isolated']['wall_s'] / s['base']['wall_s']:.3f}"
              f", CPU {s['isolated']['cpu_s'] / s['base']['cpu_s']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
