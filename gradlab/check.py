"""The gradient check: estimate, compare per block and per element, give verdicts.

``check`` (the Python API) and ``check_problem`` (what the CLI and the sweep call) run the same
named steps, each a small function:

1. :func:`gradlab.prepare.prepare`: the flat point, the evaluators, ``J(theta)``, and
   backprop's gradients (called on copies; inputs a model changes in place are named);
2. :func:`_estimate`: per parameter block, the step (given, or chosen at the bottom of the
   "V"), the measured noise, and the finite-difference estimate of every element
   (:mod:`gradlab.probes`, :mod:`gradlab.finite_diff`); shared between checks of one cost;
3. :func:`gradlab.judge.judge_block`: per block, the noise bound of every element, the
   suspects, their re-check (:mod:`gradlab.recheck`), the classification
   (:mod:`gradlab.verdict`), the detection limit, the Taylor test where the evidence is weak
   (:mod:`gradlab.taylor`) and the diagnosis (:mod:`gradlab.diagnose`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import UsageError
from .fast.blas import fast_problems_single_thread
from .finite_diff import (
    METHODS,
    Method,
    combine,
    complex_safety,
    estimate,
    get_method,
    machine_eps,
    stencil,
)
from .judge import BlockInput, factor_hints, judge_block
from .localise import judge_screened
from .prepare import Estimate, Run, prepare, share_costs
from .probes import block_noise, choose_steps, probe_coordinates
from .problem import CostFn, GradFn, Problem
from .result import BlockResult, CheckResult, relative_difference
from .verdict import TOLERANCES, noise_bound
from .vocab import step_problem

__all__ = ["check", "check_problem", "assert_gradients"]


def _estimate(run: Run, meth: Method, eps: float | str, seed: int, localise: str) -> Estimate:
    """Steps, noise, and the estimate of every element of the blocks checked element by
    element (per-block steps when eps is auto; NaN for the blocks left to the screen)."""
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
    radius = run.problem.kink_radius()
    coords = probe_coordinates(blocks, theta, seed, radius)
    if eps == "auto":
        steps = choose_steps(meth, run.counter, theta, j0, coords)
    else:
        steps = np.full(len(blocks), float(eps))
    noise = block_noise(run.rechecker, theta, j0, coords, steps, radius)
    sizes = np.array([b.stop - b.start for b in blocks])
    screened = (sizes > TOLERANCES["screen_min_block"]) if localise in ("failing", "none") \
        else np.zeros(len(blocks), bool)
    est = Estimate(meth, steps, noise, np.full(theta.size, np.nan), notes, screened,
                   _truncation(run, meth, steps, noise, coords))
    for h in np.unique(steps[~screened]):
        _fill(run, est, [b for b, s in enumerate(steps) if s == h and not screened[b]])
    return est


def _truncation(run: Run, meth: Method, steps: np.ndarray, noise: np.ndarray,
                coords: list[np.ndarray]) -> np.ndarray:
    """Per block, the relative truncation error of the estimate at its step, measured on the
    probe coordinates against the step divided by rho (only what rises above the noise).

    A bug of about this size can cancel against the truncation error of a coordinate that is
    then never suspect, so the detection limit counts it.
    """
    out = np.zeros(len(steps))
    if meth.is_complex:
        return out
    rho, j0 = TOLERANCES["rho"], float(np.real(run.j0))
    u = machine_eps(run.theta.dtype)
    for b, (idx, h) in enumerate(zip(coords, steps, strict=True)):
        if idx.size == 0:
            continue
        a_h = estimate(meth, float(h), run.rechecker, run.theta, idx, j0)
        a_lo = estimate(meth, float(h) / rho, run.rechecker, run.theta, idx, j0)
        noisy = TOLERANCES["safety"] * noise_bound(a_lo, a_lo, run.theta[idx], float(h) / rho,
                                                   float(noise[b]), meth.roundoff, u)
        change = np.where(np.abs(a_h - a_lo) > noisy, np.abs(a_h - a_lo), 0.0)
        scale = max(float(np.linalg.norm(a_h)), 1e-300)
        out[b] = float(np.linalg.norm(change)) / scale * rho**meth.order / (rho**meth.order - 1)
    return out


def _fill(run: Run, est: Estimate, which: list[int]) -> None:
    """Estimate every element of the blocks ``which`` (all with the same step), in one call."""
    blocks = list(run.layout.slices().values())
    h = float(est.steps[which[0]])
    idx = np.concatenate([np.arange(blocks[b].start, blocks[b].stop) for b in which])
    table = run.counter(run.theta, np.array(stencil(est.method, h)), idx)
    est.approx[idx] = combine(est.method, h, list(table), float(np.real(run.j0)))
    est.screened[which] = False


@fast_problems_single_thread
def check_problem(
    problem: Problem,
    method: str = "central",
    eps: float | str = "auto",
    threshold: float | None = None,
    engine: str = "auto",
    seed: int = 0,
    estimates: dict | None = None,
    localise: str = "auto",
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
        localise: ``all``: every element of every block estimated (2 evaluations per element
            for central differences); ``failing``: blocks larger than ``screen_min_block`` are
            screened along random directions and only failing ones localised
            (:mod:`gradlab.screen`); ``none``: screened, not localised; ``auto`` (default):
            ``all`` for models with a fast engine or a fixed threshold, else ``failing``.

    Returns:
        A :class:`CheckResult`.

    Raises:
        UsageError: an unknown method or engine, a step that is not a positive number.
        ModelError: the cost or gradients do not behave (wrong return type, exceptions, a cost
            that changes its inputs).
    """
    started = time.perf_counter()
    meth = _method(method, eps, threshold)
    localise = _localise(localise, problem, threshold)
    run = prepare(problem, engine)
    if not np.isfinite(run.j0):
        return _nonfinite_result(run, meth, started)
    if estimates is not None:  # the same cost at the same point: each perturbed cost once
        share_costs(run, estimates.setdefault("costs", {}))
    key = (method, eps, seed, localise)
    est = estimates.get(key) if estimates is not None else None
    if est is None:
        est = _estimate(run, meth, eps, seed, localise)
        if estimates is not None:
            estimates[key] = est
    run.notes[:0] = est.notes
    hints = factor_hints(problem)
    blocks = []
    for b, (name, shape) in enumerate(zip(run.layout.names, run.layout.shapes, strict=True)):
        blk = BlockInput(name, tuple(shape), run.layout.slices()[name], run.grads[name],
                         float(est.steps[b]), float(est.noise[b]), b)
        result = None
        if est.screened[b]:
            result = judge_screened(run, est.method, blk, hints, seed, localise == "failing")
            if result is None:  # the screen could not settle it: every element, this block
                _fill(run, est, [b])
        blocks.append(result or judge_block(run, est, blk, threshold, hints, seed))
    out = _assemble(run, est, blocks, threshold, eps == "auto", started)
    out.localise = localise
    return out


LOCALISE = ("auto", "failing", "all", "none")


def _localise(localise: str, problem: Problem, threshold: float | None) -> str:
    """Resolve ``auto``; reject unknown values."""
    if localise not in LOCALISE:
        raise UsageError(f"unknown localise {localise!r}; choose one of: {', '.join(LOCALISE)}")
    if localise != "auto":
        return localise
    return "all" if problem.fast is not None or threshold is not None else "failing"


def _method(method: str, eps: float | str, threshold: float | None) -> Method:
    """Validate the options; the method's stencil."""
    try:
        meth = get_method(method)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if (isinstance(eps, str) and eps != "auto") or step_problem(eps)[1]:  # no text here
        raise UsageError(f"eps must be a positive number or 'auto', got {eps!r}")
    if threshold is not None and not (isinstance(threshold, int | float) and threshold > 0):
        raise UsageError(f"threshold must be a positive number, got {threshold!r}")
    return meth


def _assemble(run: Run, est: Estimate, blocks: list[BlockResult], threshold: float | None,
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
            mask[sl] = np.isfinite(approx[sl])  # screened blocks: their sampled elements
        g_all.append(np.asarray(run.grads[b.name], np.float64).reshape(-1)
                     if run.grads[b.name].size == sl.stop - sl.start
                     else np.zeros(sl.stop - sl.start))
        if b.checked_by == "elements" and np.isfinite(b.threshold) and b.threshold:
            # back to safety x ||bound|| of the block
            allowed.append(b.threshold * (np.linalg.norm(g_all[-1]) + np.linalg.norm(approx[sl])))
        else:
            mask[sl] = False  # a screened block: its own (directional) difference counts
    g_flat = np.concatenate(g_all) if g_all else np.zeros(0)
    overall = relative_difference(g_flat[mask], approx[mask]) if mask.any() else max(
        (b.difference for b in blocks if np.isfinite(b.difference)), default=float("nan"))
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


def _nonfinite_result(run: Run, meth: Method, started: float) -> CheckResult:
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
    localise: str = "auto",
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
        localise: ``auto`` (default: ``failing``), ``failing``, ``all`` or ``none``; see
            :func:`check_problem`.

    Returns:
        A :class:`CheckResult`; ``result.verdict`` is ``ok``, ``bug`` or ``inconclusive``.

    Raises:
        UsageError: bad method, engine, eps or threshold.
        ModelError: the functions do not return what is required.
    """
    params = {str(k): np.asarray(v) for k, v in params.items()}
    problem = Problem("user", params, X, Y, cost, gradients)
    return check_problem(problem, method=method, eps=eps, threshold=threshold, engine=engine,
                         seed=seed, localise=localise)


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
