"""gradlab against torch.autograd.gradcheck and jax.test_util.check_grads.

Run ``python benchmarks/bench_frameworks.py`` (needs torch and jax; 2-6 minutes here).

1. **Corpus** (one process): every function of tests/frameworks/{torch,jax}_corpus.py, each
   backward variant, float64 and float32 inputs. Truth per input: the full Jacobian through the
   custom backward against the framework's own autograd of the plain forward. Contenders:
   ``gradlab.check_function`` (defaults), ``torch.autograd.gradcheck`` (defaults, and
   ``fast_mode=True``), ``jax.test_util.check_grads(order=1, modes=["rev"])`` (defaults).
   Counted: buggy variants caught, correct variants falsely flagged, and (gradlab, gradcheck
   whose message names one input) whether the flagged inputs are exactly the buggy ones.
2. **Timing** (each contender in a fresh process per run, after its imports and the model's
   build, one timed call; 3 interleaved rounds, best kept; gradcheck fast_mode on the buggy
   network once, it takes minutes): a 15,649-parameter torch MLP
   (32-128-64-48-1, tanh, m examples) whose layers are one custom autograd.Function; layer 3
   uses a variant whose bias gradient is a mean instead of a sum. gradlab (vmap and loop
   engines, central differences, eps chosen, per element), gradcheck slow and fast mode; and
   the same network in JAX (custom_vjp): gradlab's jax-vmap and check_grads.

Nothing is asserted; the numbers go to docs/performance.md by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "frameworks"))
DIMS = (32, 128, 64, 48, 1)
BUGGY_LAYER = 3
CONTENDERS = ["gradlab torch-vmap", "gradlab loop", "gradcheck slow", "gradcheck fast_mode",
              "gradlab torch-vmap [correct]", "gradcheck slow [correct]",
              "gradcheck fast_mode [correct]", "gradlab jax-vmap", "check_grads (jax)"]
#: contenders run once (minutes); the others once per round, interleaved
ONCE = ("gradcheck fast_mode",)


# ============================================================================ 1. corpus
def _flagged(result) -> set[str]:
    return {b.name for b in result.blocks if b.verdict in ("bug", "shape-mismatch")}


def corpus() -> dict:
    """Run every contender on every corpus entry; return the rows."""
    import jax
    import numpy as np
    import torch
    from jax.test_util import check_grads
    from jax_corpus import CASES as JAX_CASES
    from test_jax_corpus import truth as jax_truth
    from test_torch_corpus import truth as torch_truth
    from torch_corpus import CASES as TORCH_CASES

    import gradlab

    rows = []
    for case in TORCH_CASES:
        for variant, fn in case.functions().items():
            want = torch_truth(case, fn)
            for dtype in ("float64", "float32"):
                xs = case.inputs(getattr(torch, dtype))
                row = {"framework": "torch", "case": case.name, "variant": variant,
                       "dtype": dtype, "truth": sorted(want)}
                started = time.perf_counter()
                row["gradlab"] = sorted(_flagged(gradlab.check_function(fn, xs)))
                row["t_gradlab"] = time.perf_counter() - started
                for mode, fast in (("gradcheck", False), ("gradcheck_fast", True)):
                    leaves = tuple(x.detach().requires_grad_(True) for x in xs)
                    started = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # float32 inputs: gradcheck warns
                        try:
                            torch.autograd.gradcheck(fn, leaves, fast_mode=fast)
                            row[mode] = []
                        except Exception as exc:  # GradcheckError: parse the input it names
                            named = re.findall(r"respect to input (\d+)", str(exc))
                            row[mode] = [f"input{n}" for n in named] or ["?"]
                    row["t_" + mode] = time.perf_counter() - started
                rows.append(row)
    for case in JAX_CASES:
        for variant, fn in case.functions().items():
            want = jax_truth(case, fn)
            for dtype in ("float64", "float32"):
                xs = case.inputs(getattr(np, dtype))
                row = {"framework": "jax", "case": case.name, "variant": variant,
                       "dtype": dtype, "truth": sorted(want)}
                started = time.perf_counter()
                row["gradlab"] = sorted(_flagged(gradlab.check_function(fn, xs)))
                row["t_gradlab"] = time.perf_counter() - started
                started = time.perf_counter()
                try:
                    check_grads(fn, xs, order=1, modes=["rev"])
                    row["check_grads"] = []
                except AssertionError:
                    row["check_grads"] = ["?"]
                row["t_check_grads"] = time.perf_counter() - started
                rows.append(row)
    del jax
    return {"rows": rows}


def summarise(rows: list[dict]) -> list[str]:
    """Markdown table: per tool, framework and dtype."""
    lines = ["| tool | inputs | buggy variants caught | exactly the buggy inputs | "
             "correct variants falsely flagged | time |", "|---|---|---|---|---|---|"]
    tools = [("gradlab", "gradlab.check_function"), ("gradcheck", "gradcheck (defaults)"),
             ("gradcheck_fast", "gradcheck fast_mode"), ("check_grads", "jax check_grads")]
    for key, label in tools:
        for fw in ("torch", "jax"):
            for dtype in ("float64", "float32"):
                sel = [r for r in rows if r["framework"] == fw and r["dtype"] == dtype and key in r]
                if not sel:
                    continue
                bugs = [r for r in sel if r["truth"]]
                good = [r for r in sel if not r["truth"]]
                caught = sum(bool(r[key]) for r in bugs)
                # gradcheck names the first mismatching input only; check_grads names none
                exact = None if key == "check_grads" else sum(r[key] == r["truth"] for r in bugs)
                false = sum(bool(r[key]) for r in good)
                seconds = sum(r["t_" + key] for r in sel)
                lines.append(
                    f"| {label} | {fw} {dtype} | {caught}/{len(bugs)} | "
                    f"{'-' if exact is None else f'{exact}/{len(bugs)}'} | "
                    f"{false}/{len(good)} | {seconds:.2f} s |")
    return lines


# ============================================================================ 2. timing
def torch_module(m: int, buggy: bool = True):
    """(params, X, Y, cost, gradients, truth) of the torch timing network."""
    import torch

    def layer(buggy: bool):
        class LinearTanh(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(x, W, b):
                return torch.tanh(W @ x + b)

            @staticmethod
            def setup_context(ctx, inputs, output):
                ctx.save_for_backward(inputs[0], inputs[1], output)

            @staticmethod
            def backward(ctx, g):
                x, W, y = ctx.saved_tensors
                dz = g * (1 - y**2)
                db = dz.mean(1, keepdim=True) if buggy else dz.sum(1, keepdim=True)
                return W.T @ dz, dz @ x.T, db

        return LinearTanh

    good, bad = layer(False), layer(True)
    gen = torch.Generator().manual_seed(0)
    params = {}
    for k in range(1, len(DIMS)):
        params[f"W{k}"] = torch.randn(DIMS[k], DIMS[k - 1], generator=gen,
                                      dtype=torch.float64) / DIMS[k - 1] ** 0.5
        params[f"b{k}"] = 0.1 * torch.randn(DIMS[k], 1, generator=gen, dtype=torch.float64)
    X = torch.randn(DIMS[0], m, generator=gen, dtype=torch.float64)
    Y = torch.randn(1, m, generator=gen, dtype=torch.float64)

    def cost(p, X, Y, plain=False):
        a = X
        for k in range(1, len(DIMS)):
            fn = bad if k == BUGGY_LAYER and buggy else good
            a = (torch.tanh(p[f"W{k}"] @ a + p[f"b{k}"]) if plain
                 else fn.apply(a, p[f"W{k}"], p[f"b{k}"]))
        return ((a - Y) ** 2).sum() / (2 * m)

    def gradients(p, X, Y, plain=False):
        leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        grads = torch.autograd.grad(cost(leaves, X, Y, plain), list(leaves.values()))
        return {"d" + k: g for k, g in zip(leaves, grads, strict=True)}

    got, want = gradients(params, X, Y), gradients(params, X, Y, plain=True)
    truth = {k: int((~torch.isclose(got["d" + k], want["d" + k], rtol=1e-8, atol=1e-12)).sum())
             for k in params}
    return params, X, Y, cost, gradients, {k: n for k, n in truth.items() if n}


def jax_module(m: int):
    """(params, X, Y, cost, gradients) of the same network in JAX (custom_vjp layers)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)

    def layer(buggy: bool):
        @jax.custom_vjp
        def f(x, W, b):
            return jnp.tanh(W @ x + b)

        def fwd(x, W, b):
            y = jnp.tanh(W @ x + b)
            return y, (x, W, y)

        def bwd(res, g):
            x, W, y = res
            dz = g * (1 - y**2)
            db = dz.mean(1, keepdims=True) if buggy else dz.sum(1, keepdims=True)
            return W.T @ dz, dz @ x.T, db

        f.defvjp(fwd, bwd)
        return f

    good, bad = layer(False), layer(True)
    torch_params, X, Y, *_ = torch_module(m)
    params = {k: jnp.asarray(v.numpy()) for k, v in torch_params.items()}
    X, Y = jnp.asarray(X.numpy()), jnp.asarray(Y.numpy())

    def cost(p, X, Y):
        a = X
        for k in range(1, len(DIMS)):
            a = (bad if k == BUGGY_LAYER else good)(a, p[f"W{k}"], p[f"b{k}"])
        return jnp.sum((a - Y) ** 2) / (2 * m)

    def gradients(p, X, Y):
        return {"d" + k: g for k, g in jax.grad(cost)(p, X, Y).items()}

    del np
    return params, X, Y, cost, gradients


def child(name: str, m: int, repeat: int) -> dict:
    """One contender, timed in this (fresh) process: the first call and the best of ``repeat``."""
    if name in ("gradlab jax-vmap", "check_grads (jax)"):
        params, X, Y, cost, gradients = jax_module(m)
        truth = torch_module(m)[-1]
    else:
        params, X, Y, cost, gradients, truth = torch_module(m, not name.endswith("[correct]"))
    out = {"contender": name, "P": sum(math.prod(v.shape) for v in params.values()),
           "truth": truth, "times": []}
    for _ in range(repeat):
        started = time.perf_counter()
        out["flagged"] = _run_contender(name, params, X, Y, cost, gradients, out)
        out["times"].append(time.perf_counter() - started)
    out["first"], out["seconds"] = out["times"][0], min(out["times"])
    return out


def _run_contender(name, params, X, Y, cost, gradients, out) -> dict:
    """One check; returns the flagged blocks ({name: bug elements or '?'})."""
    if name.startswith("gradlab"):
        from gradlab.check import check_problem
        from gradlab.frameworks import framework_problem

        problem = framework_problem("bench", params, X, Y, cost, gradients)
        result = check_problem(problem, engine="loop" if "loop" in name else "auto")
        out["engine"] = result.engine
        return {b.name: b.bug_elements for b in result.blocks if b.verdict == "bug"}
    if name.startswith("gradcheck"):
        import torch

        names = list(params)

        def f(*ps):
            return cost(dict(zip(names, ps, strict=True)), X, Y)

        leaves = tuple(v.detach().requires_grad_(True) for v in params.values())
        try:
            torch.autograd.gradcheck(f, leaves, fast_mode="fast_mode" in name)
            return {}
        except Exception as exc:  # GradcheckError names the first mismatching input
            found = re.findall(r"respect to input (\d+)", str(exc))
            return {names[int(i)]: "?" for i in found} or {"?": "?"}
    from jax.test_util import check_grads

    try:
        check_grads(lambda p: cost(p, X, Y), (params,), order=1, modes=["rev"])
        return {}
    except AssertionError:
        return {"?": "?"}


def timing(m: int, skip: tuple[str, ...], rounds: int) -> list[dict]:
    """Every contender in its own fresh process, one timed call each, ``rounds`` interleaved
    rounds (the machine is shared: interleaving spreads its load over all contenders); the
    best round is kept."""
    results: dict[str, dict] = {}
    for k in range(rounds):
        for name in CONTENDERS:
            if name in skip or (k and name in ONCE):
                continue
            done = subprocess.run([sys.executable, __file__, "--child", name, "--examples",
                                   str(m), "--repeat", "1"],
                                  capture_output=True, text=True, timeout=3600)
            if done.returncode:
                print(f"{name} failed: {done.stderr[-400:]}", file=sys.stderr)
                continue
            got = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  round {k + 1}: {name}: {got['seconds']:.2f} s", file=sys.stderr)
            if name in results:
                got["times"] = results[name]["times"] + got["times"]
                got["seconds"] = min(got["times"])
            results[name] = got
    return list(results.values())


def timing_table(results: list[dict]) -> list[str]:
    """Markdown table with ratios against gradlab's vmap engine."""
    best = {r["contender"]: r["seconds"] for r in results}
    lines = ["| contender | best | all runs | vs gradlab torch-vmap (same network) | "
             "flagged (bug elements) |", "|---|---|---|---|---|"]
    for r in results:
        name = r["contender"]
        base = best.get("gradlab torch-vmap" + (" [correct]" if "[correct]" in name else ""))
        ratio = f"{r['seconds'] / base:.1f}x" if base else "-"
        flagged = ", ".join(f"{k} ({v})" for k, v in r["flagged"].items()) or "nothing"
        runs = ", ".join(f"{t:.2f}" for t in r["times"])
        lines.append(f"| {r['contender']} | {r['seconds']:.2f} s | {runs} | {ratio} | {flagged} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one timing child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--examples", type=int, default=4, help="m of the timing network")
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--skip", action="append", default=[], help="a timing contender to skip")
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.examples, args.repeat)))
        return 0
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# bench_frameworks, {stamp}")
    if not args.no_corpus:
        rows = corpus()["rows"]
        print("\n".join(summarise(rows)))
        missed = [r for r in rows if r["gradlab"] != r["truth"]]
        print(f"\ngradlab rows not exactly right: {len(missed)}"
              + "".join(f"\n  {r}" for r in missed))
    if not args.no_timing:
        results = timing(args.examples, tuple(args.skip), args.rounds)
        truth = results[0]["truth"] if results else {}
        print(f"\nP = {results[0]['P'] if results else '?'}, m = {args.examples}, "
              f"truth (elements whose gradient is wrong): {truth}")
        print("\n".join(timing_table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
