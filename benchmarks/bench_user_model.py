"""Benchmark checking a user's own model file (no fast engine): the screen against the loop.

Run ``python benchmarks/bench_user_model.py`` (about 5-10 minutes; ``--quick`` skips the
million-parameter model and the power run). Each contender runs in its own fresh process; times
are ratios within one run on one machine, nothing is asserted. Model:
``benchmarks/models/tanh_net.py`` (a tanh network, squared error), written to a temporary folder
with its sizes and bug filled in.

1. 64-128-64-1, m 256 (P = 16,641), correct and with dW2 1.001x too large: the whole command
   ``gradlab check FILE`` (default ``--localise failing``) and ``--localise all``, against a
   plain loop over the 2P perturbed costs (the seed's gradient check written for the file).
2. 1000-1000-1, m 64 (P = 1,002,001), correct and with one wrong element in dW1: the whole
   command, its peak memory, and the per-element check's time estimated from 200 timed costs.
3. Evaluations and time against P for the screen, the localisation (one wrong element) and the
   full check (in-process).
4. The screen's power by mutation: errors of relative size 1e-1 .. 1e-8 (random direction) in
   W2 of the 16k model, 200 random trials each: misses, against the stated detection limit.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = (HERE / "models" / "tanh_net.py").read_text()


def model_file(folder: Path, dims: tuple[int, ...], m: int, bug: str | None) -> Path:
    """The template with its sizes and bug filled in."""
    text = re.sub(r"^DIMS = .*$", f"DIMS = {dims!r}", TEMPLATE, flags=re.M)
    text = re.sub(r"^M = .*$", f"M = {m}", text, flags=re.M)
    text = re.sub(r"^BUG = .*$", f"BUG = {bug!r}", text, flags=re.M)
    path = folder / f"net_{'x'.join(map(str, dims))}_m{m}_{bug}.py"
    path.write_text(text)
    return path


LOOP = """
import importlib.util, sys, time
import numpy as np
spec = importlib.util.spec_from_file_location("user_model", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
params, X, Y = mod.init(0)
started = time.perf_counter()
names = list(params)
theta = np.concatenate([params[k].reshape(-1) for k in names])
shapes = [params[k].shape for k in names]
sizes = [params[k].size for k in names]
def unflat(v):
    out, i = {}, 0
    for k, s, n in zip(names, shapes, sizes):
        out[k] = v[i:i + n].reshape(s); i += n
    return out
grads = mod.gradients(params, X, Y)
g = np.concatenate([grads["d" + k].reshape(-1) for k in names])
approx = np.empty_like(theta)
limit = int(sys.argv[2]) if len(sys.argv) > 2 else theta.size
for i in range(min(limit, theta.size)):
    t = theta.copy(); t[i] += 1e-7; plus = mod.cost(unflat(t), X, Y)
    t[i] -= 2e-7; minus = mod.cost(unflat(t), X, Y)
    approx[i] = (plus - minus) / 2e-7
elapsed = time.perf_counter() - started
print(elapsed * theta.size / min(limit, theta.size))
"""


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, out.stdout


def _check(path: Path, *extra: str) -> tuple[float, float, dict]:
    wall, peak, out = _run([sys.executable, "-m", "gradlab.cli", "check", str(path), "--json",
                            *extra])
    return wall, peak, json.loads(out)


def _summary(data: dict) -> str:
    bad = [b for b in data["blocks"] if b["verdict"] != "ok"]
    words = "; ".join(f"{b['name']}: {b['diagnosis'].split(';')[0]}" for b in bad) or "ok"
    return f"{data['verdict']} ({data['evaluations']} costs) {words}"


def part_16k(folder: Path) -> None:
    print("## 1. 64-128-64-1, m 256 (P = 16,641): the whole command vs a plain loop\n")
    print("| file | plain loop (2P costs) | gradlab check (failing) | share | --localise all |"
          " share | verdict (failing) |")
    print("|---|---|---|---|---|---|---|")
    for bug in (None, "scale"):
        path = model_file(folder, (64, 128, 64, 1), 256, bug)
        loop, _, out = _run([sys.executable, "-c", LOOP, str(path)])
        fast, _, data = _check(path)
        full, _, data_all = _check(path, "--localise", "all")
        print(f"| {bug or 'correct'} | {loop:.2f} s | {fast:.2f} s | {100 * fast / loop:.1f}% |"
              f" {full:.2f} s | {100 * full / loop:.0f}% | {_summary(data)} |")
        assert data["verdict"] == data_all["verdict"]
    print()


def part_1m(folder: Path) -> None:
    print("## 2. 1000-1000-1, m 64 (P = 1,002,001)\n")
    print("| file | gradlab check | peak RSS | per-element check (2P costs, from 200) | "
          "ratio | verdict |")
    print("|---|---|---|---|---|---|")
    for bug in (None, "one"):
        path = model_file(folder, (1000, 1000, 1), 64, bug)
        est, _, out = _run([sys.executable, "-c", LOOP, str(path), "100"])
        full = float(out.strip().splitlines()[-1])
        wall, peak, data = _check(path)
        print(f"| {bug or 'correct'} | {wall:.1f} s | {peak:.0f} MB | {full / 3600:.1f} h | "
              f"{full / wall:.0f}x | {_summary(data)} |")
    print()


def part_scaling(folder: Path) -> None:
    import importlib.util

    import gradlab

    print("## 3. Evaluations and time against P (in-process)\n")
    print("| network | P | screen: costs, time | one wrong element: costs, time | "
          "full (--localise all): costs, time |")
    print("|---|---|---|---|---|")
    for dims, m in (((16, 32, 16, 1), 256), ((32, 64, 32, 1), 256), ((64, 128, 64, 1), 256),
                    ((128, 256, 128, 1), 256)):
        row = []
        for bug, localise in ((None, "failing"), ("one", "failing"), (None, "all")):
            if localise == "all" and dims[1] > 128:
                row.append("(not run)")
                continue
            path = model_file(folder, dims, m, bug)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            params, X, Y = mod.init(0)
            started = time.perf_counter()
            r = gradlab.check(mod.cost, mod.gradients, params, X, Y, localise=localise)
            row.append(f"{r.evaluations:,}, {time.perf_counter() - started:.2f} s")
        P = sum(dims[i] * dims[i - 1] + dims[i] for i in range(1, len(dims)))
        print(f"| {'-'.join(map(str, dims))} | {P:,} | " + " | ".join(row) + " |")
    print()


def part_power(folder: Path, trials: int) -> None:
    import importlib.util

    import numpy as np

    import gradlab
    from gradlab.finite_diff import METHODS
    from gradlab.screen import screen
    from gradlab.verdict import TOLERANCES

    path = model_file(folder, (64, 128, 64, 1), 256, None)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    params, X, Y = mod.init(0)
    ref = gradlab.check(mod.cost, mod.gradients, params, X, Y)
    block = ref.block("W2")
    layout = gradlab.Layout.of(params)
    theta, sl = layout.flatten(params), layout.slices()["W2"]
    g = mod.gradients(params, X, Y)["dW2"].reshape(-1)

    class Count:
        count = 0

    def flat_cost(v):
        return mod.cost(layout.unflatten(v), X, Y)

    print(f"## 4. Power by mutation: W2 (8,192 elements), stated detection limit "
          f"{block.detection_limit:.2g} (missed with probability < "
          f"{TOLERANCES['screen_miss']:.0e}), {trials} random trials per size\n")
    print("| relative error | x the limit | missed |")
    print("|---|---|---|")
    rng = np.random.default_rng(0)
    for size in [10.0**-k for k in range(1, 9)]:
        misses = 0
        for _ in range(trials):
            e = rng.standard_normal(g.size)
            e *= size * np.linalg.norm(g) / np.linalg.norm(e)
            vectors = rng.standard_normal((int(TOLERANCES["screen_directions"]), g.size))
            scr = screen(METHODS["central"], block.eps, block.noise, flat_cost, theta,
                         ref.cost, sl, g + e, vectors, Count)
            misses += not scr.classes.bug.any()
        print(f"| {size:.0e} | {size / block.detection_limit:.2g} | {misses} of {trials} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip the million-parameter model and the power run")
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        part_16k(folder)
        if not args.quick:
            part_1m(folder)
        part_scaling(folder)
        if not args.quick:
            part_power(folder, args.trials)


if __name__ == "__main__":
    main()
