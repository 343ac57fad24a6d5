"""Benchmark a full per-element gradient check: the seed's loop, gradlab's engines, torch.

Run ``python benchmarks/bench_check.py`` (about 3-4 minutes; ``--quick`` skips the slow loops
on the largest network). Every contender runs in its own fresh Python process that makes the same
imports (numpy, gradlab, and torch when it is installed: importing torch changes numpy's speed),
runs a warm-up, then is timed with ``time.perf_counter`` (best of several runs for the fast
ones). Peak memory is the process's ``ru_maxrss`` (imports included) and the ``tracemalloc``
peak of one timed call (numpy arrays included). Times are ratios within one run on one machine;
nothing here is asserted.

Contenders (central differences, eps 1e-7, a correct network):

- ``seed loop``: the seed's gradient_check_n written out: for every coordinate copy theta,
  perturb, vector_to_dictionary, forward, twice.
- ``gradlab loop``: ``check_problem(..., engine="loop")`` in-process (``gradlab check
  --engine loop`` without start-up).
- ``gradlab auto``: ``check_problem(..., engine="auto")`` in-process.
- ``CLI``: the whole command ``gradlab check mlp --dims ... --examples ... --method central
  --eps 1e-7`` as a subprocess, Python start-up and imports included.
- ``torch slow`` / ``torch fast``: ``torch.autograd.gradcheck`` in float64, slow and fast mode.

Also: the scaling of ``gradlab auto`` with P (5 sizes up to P = 65,921, with the fitted order)
and all four methods on 64-128-64-1 (eps chosen automatically).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    "seed-net": ((4, 5, 3, 1), 3),
    "20-32-16-1": ((20, 32, 16, 1), 64),
    "64-128-64-1": ((64, 128, 64, 1), 256),
}
SCALING = [((16, 32, 16, 1), 256), ((32, 64, 32, 1), 256), ((64, 128, 64, 1), 256),
           ((96, 192, 96, 1), 256), ((128, 256, 128, 1), 256)]
CONTENDERS = ["seed loop", "seed loop, 1 BLAS thread", "gradlab loop", "gradlab auto", "CLI",
              "torch slow", "torch fast", "torch fast, 1 thread"]
SLOW = ("seed loop", "seed loop, 1 BLAS thread", "gradlab loop", "torch slow")
EPS = 1e-7


# =============================================================================================
# children: one contender, one size, in a fresh process
# =============================================================================================
def _imports(with_torch: bool):
    import numpy  # noqa: F401

    import gradlab.check  # noqa: F401
    import gradlab.spec  # noqa: F401

    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            pass


def _problem(size: str):
    from gradlab.spec import ModelSpec, build_problem

    if size == "seed-net":
        return build_problem(ModelSpec("seed-net"))
    dims, m = SIZES[size] if size in SIZES else _parse_size(size)
    return build_problem(ModelSpec("mlp", dims=dims, examples=m))


def _parse_size(text: str):
    dims, m = text.split("@")
    return tuple(int(x) for x in dims.split("-")), int(m)


# -- the seed's loop, written out as the exercise does it --------------------------------------
def seed_gradient_check(parameters, X, Y, epsilon=1e-7):
    """The seed's gradient_check_n: 2P forward passes, one perturbed copy at a time."""
    import numpy as np

    L = len(parameters) // 2
    keys = [f"{p}{k}" for k in range(1, L + 1) for p in ("W", "b")]
    shapes = {k: parameters[k].shape for k in keys}

    def dictionary_to_vector(params):
        return np.concatenate([params[k].reshape(-1, 1) for k in keys], axis=0)

    def vector_to_dictionary(theta):
        out, start = {}, 0
        for k in keys:
            n = int(np.prod(shapes[k]))
            out[k] = theta[start:start + n].reshape(shapes[k])
            start += n
        return out

    def forward_propagation_n(X, Y, params):
        a = X
        for k in range(1, L + 1):
            z = np.dot(params[f"W{k}"], a) + params[f"b{k}"]
            a = np.maximum(0, z) if k < L else 1 / (1 + np.exp(-z))
        m = X.shape[1]
        logprobs = np.multiply(-np.log(a), Y) + np.multiply(-np.log(1 - a), 1 - Y)
        return 1.0 / m * np.sum(logprobs)

    def backward_propagation_n(X, Y, params):
        m = X.shape[1]
        acts, zs = [X], []
        for k in range(1, L + 1):
            z = np.dot(params[f"W{k}"], acts[-1]) + params[f"b{k}"]
            zs.append(z)
            acts.append(np.maximum(0, z) if k < L else 1 / (1 + np.exp(-z)))
        grads = {}
        dz = acts[-1] - Y
        for k in range(L, 0, -1):
            grads[f"dW{k}"] = 1.0 / m * np.dot(dz, acts[k - 1].T)
            grads[f"db{k}"] = 1.0 / m * np.sum(dz, axis=1, keepdims=True)
            if k > 1:
                dz = np.dot(params[f"W{k}"].T, dz) * (zs[k - 2] > 0)
        return grads

    gradients = backward_propagation_n(X, Y, parameters)
    grad = np.concatenate([gradients["d" + k].reshape(-1, 1) for k in keys], axis=0)
    parameters_values = dictionary_to_vector(parameters)
    num_parameters = parameters_values.shape[0]
    J_plus = np.zeros((num_parameters, 1))
    J_minus = np.zeros((num_parameters, 1))
    gradapprox = np.zeros((num_parameters, 1))
    for i in range(num_parameters):
        thetaplus = np.copy(parameters_values)
        thetaplus[i][0] = thetaplus[i][0] + epsilon
        J_plus[i] = forward_propagation_n(X, Y, vector_to_dictionary(thetaplus))
        thetaminus = np.copy(parameters_values)
        thetaminus[i][0] = thetaminus[i][0] - epsilon
        J_minus[i] = forward_propagation_n(X, Y, vector_to_dictionary(thetaminus))
        gradapprox[i] = (J_plus[i] - J_minus[i]) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    denominator = np.linalg.norm(grad) + np.linalg.norm(gradapprox)
    return numerator / denominator


def _torch_setup(size: str):
    import torch

    problem = _problem(size)
    net = problem.info["network"]
    L = net.layers
    inputs = tuple(torch.tensor(problem.params[f"{p}{k}"], dtype=torch.float64,
                                requires_grad=True)
                   for k in range(1, L + 1) for p in ("W", "b"))
    X = torch.tensor(net.X, dtype=torch.float64)
    Y = torch.tensor(net.Y, dtype=torch.float64)

    def cost(*params):
        a = X
        for k in range(L):
            z = params[2 * k] @ a + params[2 * k + 1]
            a = torch.relu(z) if k < L - 1 else torch.sigmoid(z)
        m = X.shape[1]
        return (1.0 / m) * torch.sum(-torch.log(a) * Y - torch.log(1 - a) * (1 - Y))

    return cost, inputs


def _runner(contender: str, size: str):
    """Return a zero-argument callable doing one complete check of ``size``."""
    if contender.startswith("seed loop"):
        problem = _problem(size)
        net = problem.info["network"]
        params = {k: v.copy() for k, v in problem.params.items()}
        return lambda: seed_gradient_check(params, net.X, net.Y, EPS)
    if contender in ("gradlab loop", "gradlab auto"):
        from gradlab.check import check_problem

        engine = contender.split()[1]

        def run():
            result = check_problem(_problem(size), method="central", eps=EPS, engine=engine)
            assert result.verdict == "ok", result.table()
            return result

        return run
    if contender == "CLI":
        exe = _gradlab_executable()
        if size == "seed-net":
            args = ["check", "seed-net"]
        else:
            dims, m = SIZES[size] if size in SIZES else _parse_size(size)
            args = ["check", "mlp", "--dims", ",".join(map(str, dims)), "--examples", str(m)]
        cmd = [*exe, *args, "--method", "central", "--eps", f"{EPS:g}"]

        def run():
            out = subprocess.run(cmd, capture_output=True, text=True)
            assert out.returncode == 0, out.stdout + out.stderr
            return out

        return run
    if contender.startswith("torch"):
        import torch

        if contender.endswith("1 thread"):
            torch.set_num_threads(1)
        cost, inputs = _torch_setup(size)
        fast = contender.startswith("torch fast")
        return lambda: torch.autograd.gradcheck(cost, inputs, eps=1e-6, atol=1e-5, rtol=1e-3,
                                                fast_mode=fast)
    raise ValueError(contender)


def _gradlab_executable() -> list[str]:
    """The installed ``gradlab`` console script (next to this Python), else ``-m``."""
    here = Path(sys.executable).parent / "gradlab"
    if here.is_file():
        return [str(here)]
    found = shutil.which("gradlab")
    return [found] if found else [sys.executable, "-m", "gradlab.cli"]


def child(contender: str, size: str, with_torch: bool, budget: float) -> dict:
    _imports(with_torch)
    # warm-up: the same contender once on the seed net, then (if cheap) on the size itself
    _runner(contender, "seed-net")()
    run = _runner(contender, size)
    times = []
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
    while times[-1] < budget / 5 and sum(times) < budget and len(times) < 7:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    best = min(times[1:]) if len(times) > 1 else times[0]
    peak_py = None
    if contender != "CLI" and best < 5:
        import tracemalloc

        tracemalloc.start()
        run()
        peak_py = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if contender == "CLI":
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"contender": contender, "size": size, "seconds": best, "runs": len(times),
            "rss_mb": rss, "tracemalloc_mb": peak_py}


def child_scaling(size: str, with_torch: bool) -> dict:
    _imports(with_torch)
    from gradlab.check import check_problem

    check_problem(_problem("seed-net"), method="central", eps=EPS)
    times, engine_times = [], []
    for _ in range(3):
        problem = _problem(size)
        start = time.perf_counter()
        result = check_problem(problem, method="central", eps=EPS)
        times.append(time.perf_counter() - start)
        import numpy as np

        from gradlab.params import Layout

        theta = Layout.of(problem.params).flatten(problem.params)
        problem.fast._base = None
        start = time.perf_counter()
        problem.fast.costs(theta, np.array([EPS, -EPS]), np.arange(theta.size))
        engine_times.append(time.perf_counter() - start)
    assert result.verdict == "ok"
    return {"size": size, "P": int(theta.size), "seconds": min(times),
            "engine_seconds": min(engine_times),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_methods(with_torch: bool) -> dict:
    _imports(with_torch)
    from gradlab.check import check_problem

    check_problem(_problem("seed-net"), method="central", eps=EPS)
    check_problem(_problem("64-128-64-1"), method="central", eps=EPS)
    out = {}
    for method in ("forward", "central", "five-point", "complex-step"):
        best = None
        for _ in range(3):
            problem = _problem("64-128-64-1")
            start = time.perf_counter()
            result = check_problem(problem, method=method, eps="auto")
            took = time.perf_counter() - start
            best = took if best is None else min(best, took)
        out[method] = {"seconds": best, "eps": result.eps, "verdict": result.verdict,
                       "evaluations": result.evaluations}
    return out


# =============================================================================================
# the parent: spawn the children, print the tables
# =============================================================================================
def _spawn(args: list[str], env_threads: str | None = None) -> dict:
    if args[0] == "--child" and args[1] == "seed loop, 1 BLAS thread":
        env_threads = "1"
    env = dict(os.environ)
    if env_threads:
        env["OPENBLAS_NUM_THREADS"] = env_threads
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _contenders(args, with_torch: bool, flags: list[str], say) -> list[dict]:
    """Time every contender on every size, one fresh process each; say the table rows."""
    results = []
    for size in SIZES:
        base = None
        for contender in CONTENDERS:
            if contender.startswith("torch") and not with_torch:
                continue
            big = size == "64-128-64-1"
            if big and ((args.quick and contender in SLOW)
                        or (contender == "torch slow" and not args.full)):
                continue
            r = _spawn(["--child", contender, size, "--budget", str(args.budget), *flags])
            results.append(r)
            if contender == "seed loop":
                base = r["seconds"]
            ratio = f"{base / r['seconds']:.1f}x faster" if base else "-"
            if contender == "seed loop":
                ratio = "1"
            tm = f"{r['tracemalloc_mb']:.1f} MB" if r["tracemalloc_mb"] is not None else "-"
            P = _n_params(size)
            say(f"| {size} | {P:,} | {contender} | {_fmt_time(r['seconds'])} | {ratio} | "
                f"{r['rss_mb']:.0f} MB | {tm} |")
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("CONTENDER", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--child-scaling", metavar="SIZE", help=argparse.SUPPRESS)
    parser.add_argument("--child-methods", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-torch", action="store_true", help="do not import or time torch")
    parser.add_argument("--quick", action="store_true",
                        help="skip the slow contenders (seed loops, gradlab loop, torch slow) on "
                             "64-128-64-1")
    parser.add_argument("--full", action="store_true",
                        help="also run torch slow mode on 64-128-64-1 (minutes)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of repeated runs per contender (best time is kept)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    with_torch = not args.no_torch and _has_torch()
    if args.child:
        print(json.dumps(child(*args.child, with_torch, args.budget)))
        return 0
    if args.child_scaling:
        print(json.dumps(child_scaling(args.child_scaling, with_torch)))
        return 0
    if args.child_methods:
        print(json.dumps(child_methods(with_torch)))
        return 0

    flags = [] if with_torch else ["--no-torch"]
    import numpy as np

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"# gradlab check benchmark ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, torch "
        f"{_torch_version() if with_torch else 'not used'}, load average "
        f"{os.getloadavg()[0]:.1f})")
    say()
    say("Full per-element check, central differences, eps 1e-7; each contender in a fresh "
        "process after a warm-up; best of several runs when a run is short.")
    say()
    say("| network | P | contender | time | vs seed loop | peak RSS | tracemalloc peak |")
    say("|---|---|---|---|---|---|---|")
    results = _contenders(args, with_torch, flags, say)
    say()
    say("Scaling of `gradlab auto` (whole check_problem, and the engine's 2P perturbed costs "
        "alone), m = 256, central, eps 1e-7:")
    say()
    say("| network | P | check | engine costs() | peak RSS |")
    say("|---|---|---|---|---|")
    scaling = []
    for dims, m in SCALING:
        size = "-".join(map(str, dims)) + f"@{m}"
        r = _spawn(["--child-scaling", size, *flags])
        scaling.append(r)
        say(f"| {'-'.join(map(str, dims))} m{m} | {r['P']:,} | {_fmt_time(r['seconds'])} | "
            f"{_fmt_time(r['engine_seconds'])} | {r['rss_mb']:.0f} MB |")
    P = np.array([r["P"] for r in scaling], float)
    say()
    for key, label in (("seconds", "check"), ("engine_seconds", "engine costs()")):
        t = np.array([r[key] for r in scaling])
        slope = np.polyfit(np.log(P), np.log(t), 1)[0]
        top = np.polyfit(np.log(P[-3:]), np.log(t[-3:]), 1)[0]
        say(f"Fitted growth of the {label} time: ~ P^{slope:.2f} over all sizes, "
            f"~ P^{top:.2f} over the three largest")
    say()
    say("All four methods on 64-128-64-1, m 256, eps chosen automatically (one process, warm):")
    say()
    methods = _spawn(["--child-methods", *flags])
    say("| method | eps chosen | time | evaluations | verdict |")
    say("|---|---|---|---|---|")
    for name, r in methods.items():
        say(f"| {name} | {r['eps']:g} | {_fmt_time(r['seconds'])} | {r['evaluations']:,} | "
            f"{r['verdict']} |")
    say(f"| total | | {_fmt_time(sum(r['seconds'] for r in methods.values()))} | | |")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"contenders": results, "scaling": scaling,
                                               "methods": methods}, indent=1))
    return 0


def _n_params(size: str) -> int:
    dims, _ = SIZES[size]
    return sum(dims[k] * dims[k - 1] + dims[k] for k in range(1, len(dims)))


def _torch_version() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
