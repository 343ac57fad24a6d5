"""The verdict of one parameter block: bound, suspects, re-check, limit, Taylor, diagnosis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .diagnose import diagnose, shape_diagnosis
from .finite_diff import machine_eps
from .prepare import Estimate, Run
from .problem import Problem
from .recheck import recheck
from .result import BlockResult, relative_difference
from .taylor import taylor_rates, taylor_says_wrong
from .verdict import TOLERANCES, ElementClasses, classify, detection_limit, noise_bound

__all__ = ["BlockInput", "judge_block", "factor_hints"]


@dataclass
class BlockInput:
    """One block's inputs to the verdict."""

    name: str
    shape: tuple[int, ...]
    sl: slice
    g_raw: np.ndarray
    step: float
    noise: float
    index: int = 0  # the block's position in the layout


def _compare(run: Run, est: Estimate, blk: BlockInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat backprop, estimate and noise bound of a block (backprop cast to float64)."""
    a = est.approx[blk.sl]
    usable = blk.g_raw.dtype.kind in "fiu" and blk.g_raw.size == a.size
    g = blk.g_raw.reshape(-1).astype(np.float64) if usable else np.full(a.size, np.nan)
    u = machine_eps(run.theta.dtype)
    bound = noise_bound(a, g, run.theta[blk.sl], blk.step, blk.noise, est.method.roundoff, u)
    return g, a, bound


def _classes(run: Run, est: Estimate, blk: BlockInput, g, a, bound) -> ElementClasses:
    """Suspects, their re-check, and the per-element classification of one block."""
    suspect = np.flatnonzero(np.abs(g - a) > TOLERANCES["safety"] * bound)
    if not suspect.size:
        return classify(g, a, bound, None)
    idx = blk.sl.start + suspect
    kink_radius = run.problem.kink_radius()
    radius = kink_radius(run.theta, idx) if kink_radius is not None else None
    evidence = recheck(est.method, blk.step, run.rechecker, run.theta, idx,
                       float(np.real(run.j0)), g[suspect], a[suspect], bound[suspect],
                       blk.noise, machine_eps(run.theta.dtype), radius)
    return classify(g, a, bound, evidence)


def _typical(approx: np.ndarray, size: int) -> float:
    """The norm of a block of ``size`` elements as large as the model's gradient on average."""
    finite = approx[np.isfinite(approx)]
    if not finite.size:
        return 0.0
    return float(np.linalg.norm(finite) * np.sqrt(size / finite.size))


def _inconclusive_reason(run: Run, blk: BlockInput, limit: float, g, a) -> str:
    dtype = np.dtype(run.theta.dtype).name
    if max(float(np.linalg.norm(g)), float(np.linalg.norm(a))) <= blk.noise:
        return (f"d{blk.name} is too small to measure against the cost's noise "
                f"({blk.noise:.2g}) at eps={blk.step:g}: nothing could be seen")
    return (f"step {blk.step:g} is too small for {dtype} on this cost: round-off (noise "
            f"{blk.noise:.2g}) swamps the difference, so only errors above {limit:.2g} relative "
            "could be seen; try eps auto")


def judge_block(run: Run, est: Estimate, blk: BlockInput, threshold: float | None,
                 hints: dict[str, float], seed: int) -> BlockResult:
    """The verdict, evidence and diagnosis of one block."""
    g, a, bound = _compare(run, est, blk)
    comparable = bool(np.all(np.isfinite(g)) or np.any(np.isfinite(g)))
    diff = relative_difference(g, a) if comparable else float("nan")
    err = np.abs(g - a) if comparable else np.full(a.size, np.nan)
    worst = int(np.nanargmax(err)) if np.any(np.isfinite(err)) else 0
    limit = detection_limit(bound, g, a, _typical(est.approx, a.size)) if comparable \
        else float("nan")
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
    limit = detection_limit(classes.resolution, g, a, _typical(est.approx, a.size))
    # an error of the truncation's size can cancel against it where nothing is suspect
    limit = max(limit, TOLERANCES["limit_margin"] * float(est.truncation[blk.index]))
    common["detection_limit"] = limit
    counts = dict(bug_elements=int(classes.bug.sum()), kink_elements=int(classes.kink.sum()),
                  truncation_elements=int(classes.truncation.sum()))
    if threshold is not None:
        verdict = "bug" if diff > threshold else "ok"
        text = diagnose(blk.name, blk.shape, g, a, classes, hints) if verdict == "bug" \
            else "agrees within the given threshold"
        return BlockResult(**common, verdict=verdict, diagnosis=text, **counts)
    rates: list[float] = []
    if not classes.bug.any() and (limit > TOLERANCES["weak_limit"] or classes.kink.any()):
        keep = blk.sl.start + np.flatnonzero(~classes.suspect)
        grad_flat = np.zeros(run.theta.size)
        grad_flat[blk.sl] = g
        rates = taylor_rates(run.flat_cost, run.theta, float(np.real(run.j0)), grad_flat, keep,
                             blk.noise, seed)
    common["taylor_rate"] = rates[-1] if rates else None
    if classes.bug.any():
        return BlockResult(**common, verdict="bug", **counts,
                           diagnosis=diagnose(blk.name, blk.shape, g, a, classes, hints))
    if limit > TOLERANCES["useful_limit"] and taylor_says_wrong(rates):
        return BlockResult(**common, verdict="bug", **counts, diagnosis=(
            f"d{blk.name} is wrong along a random direction: the Taylor remainder shrinks like "
            f"h^{rates[-1]:.2f}, not h^2 (the per-element evidence was too weak to say where)"))
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


def factor_hints(problem: Problem) -> dict[str, float]:
    """Known quantities a scale factor is compared with: the model's, else X's dimensions."""
    hints = dict(problem.info.get("factor_hints", {}))
    if not hints:
        shape = np.shape(problem.X) if isinstance(problem.X, np.ndarray) else ()
        for axis, n in enumerate(shape):
            hints.setdefault(f"X.shape[{axis}] (the number of examples?)", float(n))
        hints.setdefault("2", 2.0)
    return hints
