"""The gradient check: estimate, compare per block and per element, give verdicts.

``check`` (the Python API) and ``check_problem`` (what the CLI and the sweep call) run the same
named steps, each a small function:

1. :func:`_prepare`: the flat point, the evaluators, ``J(theta)``, and backprop's gradients
   (called on copies, with inputs that the model changes in place detected and named);
2. :func:`_estimate`: per parameter block, the step (given, or chosen at the bottom of the "V"),
   the measured noise, and the finite-difference estimate of every element
   (:mod:`gradlab.probes`, :mod:`gradlab.finite_diff`); shared between checks of the same cost;
3. :func:`_judge_block`: per block, the noise bound of every element, the suspects, their
   re-check (:mod:`gradlab.recheck`), the classification (:mod:`gradlab.verdict`), the
   detection limit, the Taylor test where the evidence is weak (:mod:`gradlab.taylor`) and the
   diagnosis (:mod:`gradlab.diagnose`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .diagnose import diagnose, shape_diagnosis
from .errors import ModelError, UsageError
from .fast.blas import fast_problems_single_thread
from .finite_diff import (
    METHODS,
    Method,
    combine,
    complex_safety,
    get_method,
    loop_costs,
    machine_eps,
    stencil,
)
from .params import GradientKeyError, Layout
from .probes import block_noise, choose_steps, probe_coordinates
from .problem import CostFn, GradFn, Problem
from .recheck import recheck
from .result import BlockResult, CheckResult, relative_difference
from .taylor import taylor_rate
from .verdict import TOLERANCES, ElementClasses, classify, detection_limit, noise_bound

__all__ = ["check", "check_problem", "assert_gradients"]

ENGINES = ("auto", "loop", "fast")


def _scalar(value: Any, source: str) -> complex | float:
    """Turn a cost function's return value into one number, or explain what was wrong."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "fiucb":
        raise ModelError(
            f"{source} must return one number; it returned {type(value).__name__}"
            + (f" with shape {arr.shape}" if arr.dtype.kind in "fiucb" else "")
        )
    return arr.reshape(()).item()


class _Counter:
    """Wraps an evaluator and counts the perturbed evaluations it made."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, theta, steps, indices):
        self.count += len(steps) * len(indices)
        return self.fn(theta, steps, indices)


def _evaluator(problem: Problem, layout: Layout, engine: str):
    """Pick the evaluator.

    ``auto``: the problem's fast one when it has one (the plain loop for tiny networks), a
    bring-your-own model's vectorised or parallel evaluator, else the loop. ``fast``: the fast
    engine even for tiny networks (an error for a model without one). ``loop``: the reference.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if engine == "fast" and problem.fast is None:
        raise UsageError(f"engine 'fast' needs a built-in network; {problem.name} has none "
                         "(use auto or loop)")

    def flat_cost(vec: np.ndarray):
        value = problem.cost(layout.unflatten(vec), problem.X, problem.Y)
        return _scalar(value, _cost_name(problem))

    if engine == "fast" or (engine == "auto" and problem.fast is not None
                            and not getattr(problem.fast, "tiny", False)):
        return flat_cost, problem.fast.costs, getattr(problem.fast, "name", "fast")
    if engine == "auto":  # bring-your-own: its cost_batch, else the loop on all cores if it pays
        from .fast import generic_evaluator

        other = generic_evaluator(problem, layout, flat_cost)
        return flat_cost, other.costs, other.name

    def loop(theta, steps, indices):
        return loop_costs(flat_cost, theta, steps, indices)

    return flat_cost, loop, "loop"


def _cost_name(problem: Problem) -> str:
    return f"{problem.source}: cost()" if problem.source else "cost()"


def _prefix(problem: Problem) -> str:
    return f"{problem.source}: " if problem.source else ""


@dataclass
class _Run:
    """What every step of one check needs: the point, the evaluators, J and backprop."""

    problem: Problem
    layout: Layout
    theta: np.ndarray
    flat_cost: Any
    counter: _Counter
    rechecker: _Counter
    engine: str
    j0: complex | float = 0.0
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        """Perturbed cost evaluations made so far."""
        extra = self.rechecker.count if self.rechecker is not self.counter else 0
        return self.counter.count + extra


@dataclass
class _Estimate:
    """Per block: the step, the measured noise; per element: the estimate. Shareable."""

    method: Method
    steps: np.ndarray
    noise: np.ndarray
    approx: np.ndarray
    notes: list[str]


def _snapshot(value: Any) -> Any:
    """A copy of a model input to compare with after a call (arrays and dicts of arrays)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    return None


def _changed(before: Any, after: Any, label: str) -> list[str]:
    """Names of the arrays in ``after`` that differ from their snapshot ``before``."""
    if isinstance(before, np.ndarray):
        same = (isinstance(after, np.ndarray) and after.shape == before.shape
                and np.array_equal(after, before, equal_nan=True))
        return [] if same else [label]
    if isinstance(before, dict) and isinstance(after, Mapping):
        return [n for k, v in before.items() for n in _changed(v, after.get(k), f"{label}[{k!r}]")]
    return []


def _prepare(problem: Problem, engine: str) -> _Run:
    """Flatten the point, pick the evaluators, evaluate J there and call backprop."""
    try:
        layout = Layout.of(problem.params)
    except ValueError as exc:
        raise ModelError(f"{problem.source or problem.name}: {exc}") from None
    theta = layout.flatten(problem.params)
    flat_cost, costs, engine_name = _evaluator(problem, layout, engine)
    counter = _Counter(costs)
    # noise probes and re-checks of suspect elements: the fast engine whenever the model has
    # one (a tiny network's main estimate uses the loop only to reproduce the seed's digits)
    rechecker = counter
    if engine != "loop" and problem.fast is not None and engine_name != "fast":
        rechecker = _Counter(problem.fast.costs)
    run = _Run(problem, layout, theta, flat_cost, counter, rechecker, engine_name)
    inputs = {"X": _snapshot(problem.X), "Y": _snapshot(problem.Y)}
    run.j0 = flat_cost(theta.copy())
    moved = [n for k, v in inputs.items() for n in _changed(v, getattr(problem, k), k)]
    if moved:
        raise ModelError(
            f"{_cost_name(problem)} changes {', '.join(moved)} in place; a cost must not "
            "modify its inputs (gradlab evaluates it many times at the same data)"
        )
    run.grads = _backprop(problem, layout, run)
    return run


def _backprop(problem: Problem, layout: Layout, run: _Run) -> dict[str, np.ndarray]:
    """Call ``gradients()`` on copies; name any input it changed in place."""
    params_copy = {k: np.array(v, copy=True) for k, v in problem.params.items()}
    data = {"X": _snapshot(problem.X), "Y": _snapshot(problem.Y)}
    args = [data[k] if data[k] is not None else getattr(problem, k) for k in ("X", "Y")]
    raw = problem.gradients(params_copy, *args)
    moved = _changed(dict(problem.params), params_copy, "params")
    moved += [n for k, a in zip(("X", "Y"), args, strict=True)
              for n in _changed(getattr(problem, k), a, k)]
    if moved:
        run.notes.append(
            f"gradients() changed {', '.join(moved)} in place (gradlab passed it copies, so the "
            "check below is unaffected; your callers' arrays would be modified)"
        )
    if not isinstance(raw, Mapping):
        raise ModelError(
            f"{_prefix(problem)}gradients() must return a dict of arrays, it returned "
            f"{type(raw).__name__}"
        )
    try:
        return layout.gradient_blocks(raw)
    except GradientKeyError as exc:
        raise ModelError(f"{_prefix(problem)}{exc}") from None


def _estimate(run: _Run, meth: Method, eps: float | str, seed: int) -> _Estimate:
    """Steps, noise and the estimate of every element (per-block steps when eps is auto)."""
    notes: list[str] = []
    theta, j0 = run.theta, run.j0
    if meth.is_complex and run.problem.complex_safe is not True:
        reason = complex_safety(run.flat_cost, theta, float(np.real(j0)), seed)
        if reason:
            notes.append(f"complex step not possible: {reason}; used central differences")
            meth = METHODS["central"]
            eps = "auto" if eps == "auto" or eps < 1e-12 else eps
    j0 = float(np.real(j0))
    blocks = list(run.layout.slices().values())
    radius = getattr(run.problem.fast, "kink_radius", None)
    coords = probe_coordinates(blocks, theta, seed, radius)
    if eps == "auto":
        steps = choose_steps(meth, run.counter, theta, j0, coords)
    else:
        steps = np.full(len(blocks), float(eps))
    noise = block_noise(run.rechecker, theta, j0, coords, steps, radius)
    approx = np.empty(theta.size)
    for h in np.unique(steps):
        idx = np.concatenate([np.arange(b.start, b.stop) for b, s in zip(blocks, steps,
                                                                          strict=True) if s == h])
        table = run.counter(theta, np.array(stencil(meth, float(h))), idx)
        approx[idx] = combine(meth, float(h), list(table), j0)
    return _Estimate(meth, steps, noise, approx, notes)


@dataclass
class _Block:
    """One block's inputs to the verdict."""

    name: str
    shape: tuple[int, ...]
    sl: slice
    g_raw: np.ndarray
    step: float
    noise: float


def _compare(run: _Run, est: _Estimate, blk: _Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat backprop, estimate and noise bound of a block (backprop cast to float64)."""
    a = est.approx[blk.sl]
    usable = blk.g_raw.dtype.kind in "fiu" and blk.g_raw.size == a.size
    g = blk.g_raw.reshape(-1).astype(np.float64) if usable else np.full(a.size, np.nan)
    u = machine_eps(run.theta.dtype)
    bound = noise_bound(a, g, run.theta[blk.sl], blk.step, blk.noise, est.method.roundoff, u)
    return g, a, bound


def _classes(run: _Run, est: _Estimate, blk: _Block, g, a, bound) -> ElementClasses:
    """Suspects, their re-check, and the per-element classification of one block."""
    suspect = np.flatnonzero(np.abs(g - a) > TOLERANCES["safety"] * bound)
    if not suspect.size:
        return classify(g, a, bound, None)
    idx = blk.sl.start + suspect
    kink_radius = getattr(run.problem.fast, "kink_radius", None)
    radius = kink_radius(run.theta, idx) if kink_radius is not None else None
    evidence = recheck(est.method, blk.step, run.rechecker, run.theta, idx,
                       float(np.real(run.j0)), g[suspect], a[suspect], bound[suspect],
                       blk.noise, machine_eps(run.theta.dtype), radius)
    return classify(g, a, bound, evidence)


def _inconclusive_reason(run: _Run, blk: _Block, limit: float, g, a) -> str:
    dtype = np.dtype(run.theta.dtype).name
    if max(float(np.linalg.norm(g)), float(np.linalg.norm(a))) <= blk.noise:
        return (f"d{blk.name} is too small to measure against the cost's noise "
                f"({blk.noise:.2g}) at eps={blk.step:g}: nothing could be seen")
    return (f"step {blk.step:g} is too small for {dtype} on this cost: round-off (noise "
            f"{blk.noise:.2g}) swamps the difference, so only errors above {limit:.2g} relative "
            "could be seen; try eps auto")


def _judge_block(run: _Run, est: _Estimate, blk: _Block, threshold: float | None,
                 hints: dict[str, float], seed: int) -> BlockResult:
    """The verdict, evidence and diagnosis of one block."""
    g, a, bound = _compare(run, est, blk)
    comparable = bool(np.all(np.isfinite(g)) or np.any(np.isfinite(g)))
    diff = relative_difference(g, a) if comparable else float("nan")
    err = np.abs(g - a) if comparable else np.full(a.size, np.nan)
    worst = int(np.nanargmax(err)) if np.any(np.isfinite(err)) else 0
    limit = detection_limit(bound, g, a) if comparable else float("nan")
    common = dict(
        name=blk.name, shape=blk.shape, grad_shape=tuple(blk.g_raw.shape), difference=diff,
        threshold=float(threshold) if threshold is not None else float(
            TOLERANCES["safety"] * np.linalg.norm(bound)
            / max(np.linalg.norm(g) + np.linalg.norm(a), 1e-300)),
        max_error=float(err[worst]) if err.size else 0.0,
        worst_index=tuple(int(x) for x in np.unravel_index(worst, blk.shape)) if blk.shape
        else (),
        worst_grad=float(g[worst]) if g.size else 0.0,
        worst_approx=float(a[worst]) if a.size else 0.0,
        eps=blk.step, noise=blk.noise, detection_limit=limit,
    )
    if tuple(blk.g_raw.shape) != blk.shape:
        return BlockResult(**common, verdict="shape-mismatch",
                           diagnosis=shape_diagnosis(blk.name, blk.shape, blk.g_raw, a))
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(a))):
        what = "backprop" if not np.all(np.isfinite(g)) else "the cost at perturbed points"
        return BlockResult(**common, verdict="non-finite",
                           diagnosis=f"{what} gave NaN or inf for d{blk.name} "
                           "(a saturated sigmoid or log(0)?)")
    classes = _classes(run, est, blk, g, a, bound)
    counts = dict(bug_elements=int(classes.bug.sum()), kink_elements=int(classes.kink.sum()),
                  truncation_elements=int(classes.truncation.sum()))
    if threshold is not None:
        verdict = "bug" if diff > threshold else "ok"
        text = diagnose(blk.name, blk.shape, g, a, classes, hints) if verdict == "bug" \
            else "agrees within the given threshold"
        return BlockResult(**common, verdict=verdict, diagnosis=text, **counts)
    rate = None
    if not classes.bug.any() and (limit > TOLERANCES["weak_limit"] or classes.kink.any()):
        keep = blk.sl.start + np.flatnonzero(~classes.suspect)
        grad_flat = np.zeros(run.theta.size)
        grad_flat[blk.sl] = g
        rate = taylor_rate(run.flat_cost, run.theta, float(np.real(run.j0)), grad_flat, keep,
                           blk.noise, seed)
    common["taylor_rate"] = rate
    if classes.bug.any():
        return BlockResult(**common, verdict="bug", **counts,
                           diagnosis=diagnose(blk.name, blk.shape, g, a, classes, hints))
    if rate is not None and rate < TOLERANCES["taylor_bug_rate"]:
        return BlockResult(**common, verdict="bug", **counts, diagnosis=(
            f"d{blk.name} is wrong along a random direction: the Taylor remainder shrinks like "
            f"h^{rate:.2f}, not h^2 (the per-element evidence was too weak to say where)"))
    if limit > TOLERANCES["useful_limit"]:
        return BlockResult(**common, verdict="inconclusive", **counts,
                           diagnosis=_inconclusive_reason(run, blk, limit, g, a))
    if classes.kink.any():
        return BlockResult(**common, verdict="kink", **counts, diagnosis=(
            f"{counts['kink_elements']} element(s) of d{blk.name} sit at a kink (a point where "
            "the cost is not differentiable, within the step): backprop lies between the "
            "one-sided slopes; not a backprop bug"))
    return BlockResult(**common, verdict="ok", **counts,
                       diagnosis=f"agrees within the measured noise (could see errors above "
                       f"{limit:.1g} relative)")


def _hints(problem: Problem) -> dict[str, float]:
    """Known quantities a scale factor is compared with: the model's, else X's dimensions."""
    hints = dict(problem.info.get("factor_hints", {}))
    if not hints:
        shape = np.shape(problem.X) if isinstance(problem.X, np.ndarray) else ()
        for axis, n in enumerate(shape):
            hints.setdefault(f"X.shape[{axis}] (the number of examples?)", float(n))
        hints.setdefault("2", 2.0)
    return hints


@fast_problems_single_thread
def check_problem(
    problem: Problem,
    method: str = "central",
    eps: float | str = "auto",
    threshold: float | None = None,
    engine: str = "auto",
    seed: int = 0,
    estimates: dict | None = None,
) -> CheckResult:
    """Check a problem's gradients against finite differences.

    Args:
        problem: cost, gradients and the point to check at.
        method: ``forward``, ``central``, ``five-point`` or ``complex-step``.
        eps: the step, or ``"auto"`` to choose it per block from the error-vs-step trade-off.
        threshold: a fixed relative-difference threshold (seed style) instead of the measured
            noise floor; ``None`` (default) uses the noise floor.
        engine: ``auto`` (the problem's fast evaluator when it has one), ``loop`` or ``fast``.
        seed: seeds the random probes of the noise measurement and the step scan.
        estimates: a dict shared by checks of the *same cost at the same point* (e.g. the bug
            variants of one network, which differ only in the backward): the steps, the noise
            and the finite-difference estimates are computed once per (method, eps, seed) and
            reused. Never share it between different costs or points.

    Returns:
        A :class:`CheckResult`.

    Raises:
        UsageError: an unknown method or engine, a step that is not a positive number.
        ModelError: the cost or gradients do not behave (wrong return type, exceptions, a cost
            that changes its inputs).
    """
    started = time.perf_counter()
    meth = _method(method, eps, threshold)
    run = _prepare(problem, engine)
    if not np.isfinite(run.j0):
        return _nonfinite_result(run, meth, started)
    key = (method, eps, seed)
    est = estimates.get(key) if estimates is not None else None
    if est is None:
        est = _estimate(run, meth, eps, seed)
        if estimates is not None:
            estimates[key] = est
    run.notes[:0] = est.notes
    hints = _hints(problem)
    blocks = []
    for b, (name, shape) in enumerate(zip(run.layout.names, run.layout.shapes, strict=True)):
        blk = _Block(name, tuple(shape), run.layout.slices()[name], run.grads[name],
                     float(est.steps[b]), float(est.noise[b]))
        blocks.append(_judge_block(run, est, blk, threshold, hints, seed))
    return _assemble(run, est, blocks, threshold, eps == "auto", started)


def _method(method: str, eps: float | str, threshold: float | None) -> Method:
    """Validate the options; the method's stencil."""
    try:
        meth = get_method(method)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if eps != "auto" and (isinstance(eps, bool) or not isinstance(eps, int | float)
                          or not np.isfinite(eps) or eps <= 0):
        raise UsageError(f"eps must be a positive number or 'auto', got {eps!r}")
    if threshold is not None and not (isinstance(threshold, int | float) and threshold > 0):
        raise UsageError(f"threshold must be a positive number, got {threshold!r}")
    return meth


def _assemble(run: _Run, est: _Estimate, blocks: list[BlockResult], threshold: float | None,
              chosen: bool, started: float) -> CheckResult:
    """The overall result from the block results."""
    truncation = sum(b.truncation_elements for b in blocks)
    if truncation:
        run.notes.append(
            f"{truncation} element(s) disagreed at the step used but the disagreement changed "
            "with the step (truncation or round-off), so they are not counted as bugs")
    approx, g_all, allowed = est.approx, [], []
    mask = np.zeros(run.theta.size, bool)
    for b in blocks:
        sl = run.layout.slices()[b.name]
        if b.verdict not in ("shape-mismatch", "non-finite"):
            mask[sl] = True
        g_all.append(np.asarray(run.grads[b.name], np.float64).reshape(-1)
                     if run.grads[b.name].size == sl.stop - sl.start
                     else np.zeros(sl.stop - sl.start))
        if np.isfinite(b.threshold) and b.threshold:  # back to safety x ||bound|| of the block
            allowed.append(b.threshold * (np.linalg.norm(g_all[-1]) + np.linalg.norm(approx[sl])))
    g_flat = np.concatenate(g_all) if g_all else np.zeros(0)
    overall = relative_difference(g_flat[mask], approx[mask]) if mask.any() else float("nan")
    scale = np.linalg.norm(g_flat[mask]) + np.linalg.norm(approx[mask])
    thr = float(threshold) if threshold is not None else float(
        np.sqrt(np.sum(np.square(allowed))) / max(scale, 1e-300))
    steps, counts = np.unique(est.steps, return_counts=True)
    return CheckResult(
        verdict=_overall(blocks), difference=overall, threshold=thr, method=est.method.name,
        eps=float(steps[np.argmax(counts)]), eps_chosen=chosen, cost=float(np.real(run.j0)),
        cost_noise=float(np.max(est.noise)), blocks=blocks,
        grad={n: run.grads[n] for n in run.layout.names},
        approx={n: approx[run.layout.slices()[n]].reshape(s)
                for n, s in zip(run.layout.names, run.layout.shapes, strict=True)},
        engine=run.engine, evaluations=run.evaluations,
        seconds=time.perf_counter() - started, notes=run.notes,
    )


def _overall(blocks: list[BlockResult]) -> str:
    verdicts = {b.verdict for b in blocks}
    if verdicts & {"bug", "shape-mismatch"}:
        return "bug"
    if verdicts & {"non-finite", "inconclusive"}:
        return "inconclusive"
    return "ok"


def _nonfinite_result(run: _Run, meth: Method, started: float) -> CheckResult:
    j0 = run.j0
    blocks = []
    for name, shape in zip(run.layout.names, run.layout.shapes, strict=True):
        blocks.append(BlockResult(
            name=name, shape=tuple(shape), grad_shape=tuple(run.grads[name].shape),
            difference=float("nan"), threshold=float("nan"), max_error=float("nan"),
            worst_index=(), worst_grad=float("nan"), worst_approx=float("nan"),
            verdict="non-finite",
            diagnosis=f"the cost is {j0} at the checked point (log(0) from a saturated "
            "sigmoid?); nothing can be checked",
        ))
    return CheckResult(
        verdict="inconclusive", difference=float("nan"), threshold=float("nan"),
        method=meth.name, eps=float("nan"), eps_chosen=False, cost=float(np.real(j0)),
        cost_noise=float("nan"), blocks=blocks, grad=dict(run.grads), approx={},
        engine=run.engine, evaluations=0, seconds=time.perf_counter() - started,
        notes=run.notes,
    )


def check(
    cost: CostFn,
    gradients: GradFn,
    params: Mapping[str, np.ndarray],
    X: Any = None,
    Y: Any = None,
    method: str = "central",
    eps: float | str = "auto",
    threshold: float | None = None,
    engine: str = "auto",
    seed: int = 0,
) -> CheckResult:
    """Check ``gradients`` against finite differences of ``cost`` at ``params``.

    Args:
        cost: ``cost(params, X, Y) -> float``.
        gradients: ``gradients(params, X, Y) -> {"dW1": array, ...}`` (keys ``dW1`` or ``W1``;
            extra keys ignored).
        params: ``{name: array}``; flattened in key order, each block row-major.
        X, Y: passed through to ``cost`` and ``gradients``.
        method: ``forward``, ``central`` (default), ``five-point`` or ``complex-step``.
        eps: a positive step, or ``"auto"`` (default) to choose it.
        threshold: fixed relative-difference threshold instead of the measured noise floor.
        engine: ``auto`` or ``loop`` (plain one-coordinate-at-a-time reference).
        seed: seeds the random probes.

    Returns:
        A :class:`CheckResult`; ``result.verdict`` is ``ok``, ``bug`` or ``inconclusive``.

    Raises:
        UsageError: bad method, engine, eps or threshold.
        ModelError: the functions do not return what is required.
    """
    params = {str(k): np.asarray(v) for k, v in params.items()}
    problem = Problem("user", params, X, Y, cost, gradients)
    return check_problem(problem, method=method, eps=eps, threshold=threshold, engine=engine,
                         seed=seed)


def assert_gradients(
    cost: CostFn,
    gradients: GradFn,
    params: Mapping[str, np.ndarray],
    X: Any = None,
    Y: Any = None,
    **options: Any,
) -> CheckResult:
    """Like :func:`check`, but raise ``AssertionError`` when a block is wrong (for pytest).

    The message names each failing block, its diagnosis, the worst element's index and both
    values. Kinks do not fail; a non-finite check fails.

    Returns:
        The :class:`CheckResult` when it passes.

    Raises:
        AssertionError: the verdict is ``bug`` or ``inconclusive``.
    """
    result = check(cost, gradients, params, X, Y, **options)
    if result.verdict == "ok":
        return result
    lines = [f"gradient check failed ({result.verdict}): difference {result.difference:.3e}, "
             f"{result.method} eps={result.eps:g}"]
    for b in result.blocks:
        if b.verdict in ("bug", "shape-mismatch", "non-finite"):
            idx = ", ".join(map(str, b.worst_index))
            lines.append(
                f"  d{b.name} [{b.verdict}]: {b.diagnosis} (worst d{b.name}[{idx}]: "
                f"backprop {b.worst_grad:.6g} vs numerical {b.worst_approx:.6g})"
            )
    raise AssertionError("\n".join(lines))
