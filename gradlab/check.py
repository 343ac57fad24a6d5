"""The gradient check: estimate, compare per block and per element, give verdicts.

``check`` (the Python API) and ``check_problem`` (what the CLI and the sweep call) compose the
pieces: :mod:`gradlab.finite_diff` for the estimates, :mod:`gradlab.verdict` for the verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ModelError, UsageError
from .fast.blas import fast_problems_single_thread
from .finite_diff import (
    METHODS,
    choose_step,
    combine,
    complex_safety,
    get_method,
    loop_costs,
    machine_eps,
    noise_level,
    stencil,
)
from .params import GradientKeyError, Layout
from .problem import CostFn, GradFn, Problem
from .result import BlockResult, CheckResult, relative_difference
from .verdict import TOLERANCES, classify, diagnose, noise_bound

__all__ = ["check", "check_problem", "assert_gradients"]

ENGINES = ("auto", "loop", "fast")
_RECHECK_BATCH = 4096  # re-check all steps x all suspects in one call up to this many costs


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


def _recheck(method, eps, costs, theta, idx, j0, grad, approx, bound, cost_noise, u,
             radius=None):
    """Re-evaluate the suspect coordinates to tell bugs from truncation, round-off and kinks.

    Each suspect is re-estimated at the smallest step ``eps / rho**k`` (k <= max_shrink) whose
    noise bound still leaves its discrepancy clearly visible: a bug's discrepancy stays the same
    there, truncation and kink effects shrink. A suspect already at the round-off limit is
    re-estimated at ``eps * rho`` instead. One-sided slopes at ``eps`` and ``eps / rho`` feed the
    kink test. When the model knows its kink ``radius`` per coordinate (the built-in networks),
    both compared steps are kept below it, and a discrepancy that cannot be confirmed at two
    kink-free steps is put down to the kink.
    """
    rho = TOLERANCES["rho"]
    d0 = np.abs(grad - approx)
    room = d0 / np.maximum(TOLERANCES["safety"] * bound, 1e-300)  # how far the step may shrink
    k = np.floor(np.log(np.maximum(room * TOLERANCES["persist"], 1.0)) / np.log(rho))
    k = np.clip(k, 0, TOLERANCES["max_shrink"]).astype(int)
    confirm_step = np.where(k > 0, eps / rho ** k.astype(float), eps * rho)
    # a second, larger re-check step: a bug's discrepancy is the same at both
    second_step = np.where(k > 1, confirm_step * rho, np.nan)
    out = {key: np.full(idx.size, np.nan) for key in ("confirm", "bound_confirm", "second")}
    if radius is not None and not method.is_complex:
        reach = max(abs(o) for o in method.offsets)  # the stencil's widest step, in eps
        compare = np.where(k > 1, confirm_step * rho, eps)
        compare = np.where(reach * compare < radius, compare, 2 * confirm_step)
        second_step = np.where(compare == eps, np.nan, compare)
        out["crosses"] = reach * eps >= radius
        out["clean"] = (reach * confirm_step < radius) & (reach * compare < radius)
    one_sided = [] if method.is_complex else [eps, -eps, eps / rho, -eps / rho]
    plan = [(key, h) for key, steps in (("confirm", confirm_step), ("second", second_step))
            for h in sorted(set(steps[np.isfinite(steps)].tolist()))]
    wanted = list(dict.fromkeys(
        [s for _, h in plan for s in stencil(method, h)] + one_sided))
    table = None
    if len(wanted) * idx.size <= _RECHECK_BATCH:  # few suspects: one call for every step
        table = dict(zip(wanted, costs(theta, np.array(wanted), idx), strict=True))
    for key, h in plan:
        sel = np.flatnonzero((confirm_step if key == "confirm" else second_step) == h)
        if table is not None:
            rows = [table[s][sel] for s in stencil(method, h)]
        else:
            rows = list(costs(theta, np.array(stencil(method, h)), idx[sel]))
        est = combine(method, h, rows, j0)
        out[key][sel] = est
        if key == "confirm":
            out["bound_confirm"][sel] = noise_bound(
                est, grad[sel], theta[idx[sel]], h, cost_noise, method.roundoff, u
            )
    if one_sided:
        if table is None:
            table = dict(zip(one_sided, costs(theta, np.array(one_sided), idx), strict=True))
        for suffix, h in (("", eps), ("_lo", eps / rho)):
            out["fwd" + suffix] = (np.real(table[h]) - j0) / h
            out["bwd" + suffix] = (j0 - np.real(table[-h])) / h
    return out


def _shape_diagnosis(name: str, shape, g: np.ndarray, a: np.ndarray) -> str:
    d = "d" + name
    text = f"{d} has shape {g.shape} but parameter {name} has shape {tuple(shape)}"
    if g.ndim == 2 and g.T.shape == tuple(shape) and a.size == g.size:
        if np.allclose(g.T.reshape(-1), a.reshape(-1), rtol=1e-3, atol=1e-8):
            return f"{d} is transposed: {text}; its transpose matches the numerical gradient"
        return f"{d} looks transposed: {text}"
    if g.size == a.size:
        text += " (same number of elements: a missing keepdims or a reshape?)"
    return text


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
        eps: the step, or ``"auto"`` to choose it from the error-vs-step trade-off.
        threshold: a fixed relative-difference threshold (seed style) instead of the measured
            noise floor; ``None`` (default) uses the noise floor.
        engine: ``auto`` (the problem's fast evaluator when it has one) or ``loop``.
        seed: seeds the random probes of the noise measurement and the step scan.
        estimates: a dict shared by checks of the *same cost at the same point* (e.g. the bug
            variants of one network, which differ only in the backward): the step, the noise
            and the finite-difference estimates are computed once per (method, eps, seed) and
            reused. Never share it between different costs or points.

    Returns:
        A :class:`CheckResult`.

    Raises:
        UsageError: an unknown method or engine, a step that is not a positive number.
        ModelError: the cost or gradients do not behave (wrong return type, exceptions).
    """
    started = time.perf_counter()
    try:
        meth = get_method(method)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if eps != "auto":
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not np.isfinite(eps) \
                or eps <= 0:
            raise UsageError(f"eps must be a positive number or 'auto', got {eps!r}")
    if threshold is not None and not (isinstance(threshold, int | float) and threshold > 0):
        raise UsageError(f"threshold must be a positive number, got {threshold!r}")
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
    notes: list[str] = list(problem.info.get("notes", []))  # e.g. a framework's vmap fallback
    j0 = flat_cost(theta.copy())
    params_copy = {k: np.array(v, copy=True) for k, v in problem.params.items()}
    raw = problem.gradients(params_copy, problem.X, problem.Y)
    if not isinstance(raw, Mapping):
        raise ModelError(
            f"{problem.source + ': ' if problem.source else ''}gradients() must return a dict "
            f"of arrays, it returned {type(raw).__name__}"
        )
    try:
        grads = layout.gradient_blocks(raw)
    except GradientKeyError as exc:
        raise ModelError(f"{problem.source + ': ' if problem.source else ''}{exc}") from None

    key = (method, eps, seed)
    if estimates is not None and key in estimates:
        meth, eps, reused_notes, h, cost_noise, approx = estimates[key]
        notes.extend(reused_notes)
        j0 = float(np.real(j0))
    else:
        if meth.is_complex and problem.complex_safe is not True and np.isfinite(j0):
            reason = complex_safety(flat_cost, theta, float(np.real(j0)), seed)
            if reason:
                notes.append(f"complex step not possible: {reason}; used central differences")
                meth = METHODS["central"]
                eps = "auto" if eps == "auto" or eps < 1e-12 else eps
        j0 = float(np.real(j0))
        if not np.isfinite(j0):
            return _nonfinite_result(problem, layout, grads, meth, j0, notes, started,
                                     engine_name)
        h = choose_step(meth, counter, theta, j0, seed) if eps == "auto" else float(eps)
        cost_noise = noise_level(rechecker, theta, j0, seed, step=h,
                                 blocks=list(layout.slices().values()),
                                 radius=getattr(problem.fast, "kink_radius", None))
        table = counter(theta, np.array(stencil(meth, h)), np.arange(theta.size))
        approx = combine(meth, h, list(table), j0)
        if estimates is not None:
            estimates[key] = (meth, eps, list(notes), h, cost_noise, approx)
    u = machine_eps(theta.dtype)
    chosen = eps == "auto"

    slices = layout.slices()
    g_flat = np.zeros(theta.size)
    comparable = np.zeros(theta.size, bool)
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        g = grads[name]
        if g.size == int(np.prod(shape)) and g.dtype.kind in "fiu":
            g_flat[slices[name]] = g.reshape(-1)
            comparable[slices[name]] = True
    bound = noise_bound(approx, g_flat, theta, h, cost_noise, meth.roundoff, u)
    finite = np.isfinite(approx) & np.isfinite(g_flat)
    err = np.abs(g_flat - approx)
    suspects = np.flatnonzero(comparable & finite & (err > TOLERANCES["safety"] * bound))
    recheck_all = None
    if suspects.size:
        kink_radius = getattr(problem.fast, "kink_radius", None)
        radius = kink_radius(theta, suspects) if kink_radius is not None else None
        recheck_all = _recheck(meth, h, rechecker, theta, suspects, j0, g_flat[suspects],
                               approx[suspects], bound[suspects], cost_noise, u, radius)

    hints = dict(problem.info.get("factor_hints", {}))
    blocks: list[BlockResult] = []
    approx_blocks: dict[str, np.ndarray] = {}
    truncation_total = 0
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        sl = slices[name]
        a = approx[sl]
        approx_blocks[name] = a.reshape(shape)
        g_raw = grads[name]
        g = g_flat[sl]
        diff = relative_difference(g, a) if comparable[sl].all() else float("nan")
        b_thr = float(
            TOLERANCES["safety"] * np.linalg.norm(bound[sl])
            / max(np.linalg.norm(g) + np.linalg.norm(a), 1e-300)
        )
        err_b = np.abs(g - a) if comparable[sl].all() else np.full(a.size, np.nan)
        worst = int(np.nanargmax(err_b)) if np.any(np.isfinite(err_b)) else 0
        common = dict(
            name=name, shape=tuple(shape), grad_shape=tuple(g_raw.shape), difference=diff,
            threshold=float(threshold) if threshold is not None else b_thr,
            max_error=float(err_b[worst]) if err_b.size else 0.0,
            worst_index=tuple(int(x) for x in np.unravel_index(worst, shape)) if shape else (),
            worst_grad=float(g[worst]) if g.size else 0.0,
            worst_approx=float(a[worst]) if a.size else 0.0,
        )
        if tuple(g_raw.shape) != tuple(shape):
            blocks.append(BlockResult(**common, verdict="shape-mismatch",
                                      diagnosis=_shape_diagnosis(name, shape, g_raw, a)))
            continue
        if not finite[sl].all():
            what = "backprop" if not np.all(np.isfinite(g)) else "the cost at perturbed points"
            blocks.append(BlockResult(**common, verdict="non-finite",
                                      diagnosis=f"{what} gave NaN or inf for d{name} "
                                      "(a saturated sigmoid or log(0)?)"))
            continue
        local = np.flatnonzero((suspects >= sl.start) & (suspects < sl.stop)).tolist()
        sub = None
        if local and recheck_all is not None:
            # classify() finds the same suspects (same test), in the same order
            sub = {k: v[local] for k, v in recheck_all.items()}
            classes = classify(g, a, bound[sl], sub)
        else:
            classes = classify(g, a, bound[sl], None)
        truncation_total += int(classes.truncation.sum())
        if threshold is not None:
            verdict = "bug" if diff > threshold else "ok"
        elif classes.bug.any():
            verdict = "bug"
        elif classes.kink.any():
            verdict = "kink"
        else:
            verdict = "ok"
        if verdict == "bug":
            text = diagnose(name, tuple(shape), g, a, classes, hints)
        elif verdict == "kink":
            text = (f"{int(classes.kink.sum())} element(s) of d{name} sit on a kink (ReLU/max) "
                    f"within the step: backprop matches a one-sided slope; not a backprop bug")
        else:
            text = "agrees within the measured noise"
        blocks.append(BlockResult(**common, verdict=verdict, diagnosis=text,
                                  bug_elements=int(classes.bug.sum()),
                                  kink_elements=int(classes.kink.sum()),
                                  truncation_elements=int(classes.truncation.sum())))
    if truncation_total:
        notes.append(
            f"{truncation_total} element(s) disagreed at eps={h:g} but the disagreement changed "
            "with the step (truncation or round-off), so they are not counted as bugs"
        )
    mask = comparable & finite
    overall = relative_difference(g_flat[mask], approx[mask]) if mask.any() else float("nan")
    overall_thr = float(threshold) if threshold is not None else float(
        TOLERANCES["safety"] * np.linalg.norm(bound[mask])
        / max(np.linalg.norm(g_flat[mask]) + np.linalg.norm(approx[mask]), 1e-300)
    )
    return CheckResult(
        verdict=_overall(blocks), difference=overall, threshold=overall_thr, method=meth.name,
        eps=h, eps_chosen=chosen, cost=j0, cost_noise=cost_noise, blocks=blocks,
        grad={n: grads[n] for n in layout.names}, approx=approx_blocks, engine=engine_name,
        evaluations=counter.count + (rechecker.count if rechecker is not counter else 0),
        seconds=time.perf_counter() - started, notes=notes,
    )


def _overall(blocks: list[BlockResult]) -> str:
    verdicts = {b.verdict for b in blocks}
    if verdicts & {"bug", "shape-mismatch"}:
        return "bug"
    if "non-finite" in verdicts:
        return "inconclusive"
    return "ok"


def _nonfinite_result(problem, layout, grads, meth, j0, notes, started, engine) -> CheckResult:
    blocks = []
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        blocks.append(BlockResult(
            name=name, shape=tuple(shape), grad_shape=tuple(grads[name].shape),
            difference=float("nan"), threshold=float("nan"), max_error=float("nan"),
            worst_index=(), worst_grad=float("nan"), worst_approx=float("nan"),
            verdict="non-finite",
            diagnosis=f"the cost is {j0} at the checked point (log(0) from a saturated "
            "sigmoid?); nothing can be checked",
        ))
    return CheckResult(
        verdict="inconclusive", difference=float("nan"), threshold=float("nan"),
        method=meth.name, eps=float("nan"), eps_chosen=False, cost=j0, cost_noise=float("nan"),
        blocks=blocks, grad=dict(grads), approx={}, engine=engine, evaluations=0,
        seconds=time.perf_counter() - started, notes=notes,
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
