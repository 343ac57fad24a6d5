"""The verdict of a block checked by the screen, and localisation of what it found wrong.

See :mod:`gradlab.screen` for the screen and its power. Here: a passing screen is ``ok`` with
the screen's detection limit; a failing one is explained by one factor, by a rearrangement of
axes, or by the wrong elements found with adaptive group testing; when none of that explains
it (dense errors, kinks along the directions), the block gets the full per-element check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .diagnose import element_name, factor_text, rearrangements, wrong_elements
from .finite_diff import combine, machine_eps, stencil
from .prepare import Run
from .recheck import recheck
from .screen import Screen, screen
from .verdict import TOLERANCES, ElementClasses, classify, noise_bound

__all__ = ["Located", "localise", "screen_block", "element_check"]

LEAF = 8  # group testing checks subsets this small element by element
SAMPLE = 8  # elements checked one by one to confirm a factor


@dataclass
class Located:
    """The outcome for a screened block: a verdict and its words, or ``None`` (full check).

    Attributes:
        verdict: ``ok``, ``bug``, ``inconclusive``, or ``None`` when the block needs the full
            per-element check.  diagnosis: the words.  approx: estimates of the elements
            checked one by one (NaN elsewhere).  bug_elements: elements found wrong.
    """

    verdict: str | None
    diagnosis: str = ""
    approx: dict[int, float] = field(default_factory=dict)
    bug_elements: int = 0


def _directions(rng: np.random.Generator, count: int, n: int, support=None) -> np.ndarray:
    vectors = np.zeros((count, n))
    cols = np.arange(n) if support is None else support
    vectors[:, cols] = rng.standard_normal((count, cols.size))
    return vectors


def screen_block(run: Run, method, step: float, noise: float, sl: slice, g: np.ndarray,
                 rng: np.random.Generator, support=None, count: int | None = None) -> Screen:
    """Screen the block ``sl`` (or the elements ``support`` of it) along random directions."""
    count = count or int(TOLERANCES["screen_directions"])
    vectors = _directions(rng, count, sl.stop - sl.start, support)
    return screen(method, step, noise, run.flat_cost, run.theta, float(np.real(run.j0)), sl,
                  g, vectors, run.counter)


def element_check(run: Run, method, step: float, noise: float, idx: np.ndarray,
                  g: np.ndarray) -> tuple[np.ndarray, ElementClasses]:
    """The per-element estimate and classification of the flat coordinates ``idx``."""
    j0 = float(np.real(run.j0))
    table = run.counter(run.theta, np.array(stencil(method, step)), idx)
    a = combine(method, step, list(table), j0)
    u = machine_eps(run.theta.dtype)
    bound = noise_bound(a, g, run.theta[idx], step, noise, method.roundoff, u)
    suspect = np.flatnonzero(np.abs(g - a) > TOLERANCES["safety"] * bound)
    evidence = None
    if suspect.size:
        evidence = recheck(method, step, run.counter, run.theta, idx[suspect], j0, g[suspect],
                           a[suspect], bound[suspect], noise, u)
    return a, classify(g, a, bound, evidence)


def _factor(scr: Screen) -> float | None:
    """One factor ``k`` with ``g.v = k a.v`` in every direction, if the projections show one."""
    d, p = scr.approx, scr.proj
    if not np.any(d):
        return None
    k = float(np.dot(p, d) / np.dot(d, d))
    resid = np.linalg.norm(p - k * d) / max(float(np.linalg.norm(p - d)), 1e-300)
    return k if resid < TOLERANCES["scale_fit"] else None


def _rearranged(scr: Screen, g: np.ndarray, shape: tuple[int, ...]) -> str | None:
    """A rearrangement of axes that makes backprop match every projection."""
    tol = TOLERANCES["scale_fit"] * float(np.linalg.norm(scr.proj - scr.approx))
    for text, index in rearrangements(shape):
        undone = g[np.argsort(index)]
        if np.linalg.norm(scr.vectors @ undone - scr.approx) <= tol:
            return text
    return None


def localise(run: Run, method, name: str, shape: tuple[int, ...], sl: slice, step: float,
             noise: float, g: np.ndarray, scr: Screen, hints: dict[str, float],
             seed: int) -> Located:
    """Explain a block whose screen failed; ``Located(None)`` asks for the full check."""
    rng = np.random.default_rng(seed + 977)
    d = "d" + name
    k = _factor(scr)
    if k is not None:
        sample = np.sort(np.argsort(-np.abs(g), kind="stable")[:SAMPLE])
        a, classes = element_check(run, method, step, noise, sl.start + sample, g[sample])
        fits = np.abs(g[sample] - k * a) <= np.maximum(np.abs(g[sample] - a) * 0.1, 1e-300)
        if classes.bug.any() and np.all(fits | ~classes.bug):
            worst = int(np.argmax(np.abs(g[sample] - a)))
            where = element_name(name, shape, int(sample[worst]))
            return Located("bug", (
                f"{factor_text(d, k, hints)}; worst element {where}: backprop "
                f"{g[sample][worst]:.6g}, numerical {a[worst]:.6g} (factor from "
                f"{len(scr.proj)} random directions, confirmed on {sample.size} elements)"),
                dict(zip(sample.tolist(), a.tolist(), strict=True)), int(classes.bug.sum()))
    how = _rearranged(scr, g, shape)
    if how:
        return Located("bug", f"{d} is {how}: so rearranged it matches the numerical gradient; "
                              f"seen along all {len(scr.proj)} random directions")
    return _group_test(run, method, name, shape, sl, step, noise, g, rng)


def _group_test(run: Run, method, name: str, shape: tuple[int, ...], sl: slice, step: float,
                noise: float, g: np.ndarray, rng: np.random.Generator) -> Located:
    """Halve the support until the wrong elements are isolated (about s log n evaluations).

    Level by level: when more than ``group_budget`` subsets fail at one level, the errors are
    too widespread for group testing to pay, and the block gets the full per-element map.
    """
    budget = int(TOLERANCES["group_budget"])
    level = [np.arange(g.size)]
    found: dict[int, float] = {}
    checked: dict[int, float] = {}
    while level:
        if len(level) > budget:
            return Located(None)  # errors in too many places: the full map is cheaper
        nxt = []
        for support in level:
            if support.size <= LEAF:
                a, classes = element_check(run, method, step, noise, sl.start + support,
                                           g[support])
                checked.update(zip(support.tolist(), a.tolist(), strict=True))
                if classes.kink.any():
                    return Located(None)  # kinks need the per-element subgradient logic
                found.update({int(i): float(v) for i, v, b in zip(support, a, classes.bug,
                                                                    strict=True) if b})
                continue
            for half in np.array_split(support, 2):
                scr = screen_block(run, method, step, noise, sl, g, rng, support=half, count=3)
                # a direction judged a subgradient is followed too: the elements decide
                if scr.classes.bug.any() or scr.classes.kink.any():
                    nxt.append(half)
        level = nxt
    if not found:
        return Located(None)  # the screen failed but no element did: look at all of them
    idx = np.array(sorted(found))
    worst = int(max(idx, key=lambda i: abs(g[i] - found[i])))
    values = np.array([found[int(i)] for i in idx])
    return Located("bug", (
        f"{wrong_elements(name, shape, idx, g[idx], values)}; worst element "
        f"{element_name(name, shape, worst)}: backprop {g[worst]:.6g}, numerical "
        f"{found[worst]:.6g} (found by group testing)"), checked, len(idx))


def judge_screened(run: Run, method, blk, hints: dict[str, float], seed: int,
                   localise_failing: bool):
    """The :class:`~gradlab.result.BlockResult` of a block checked along random directions.

    Returns ``None`` when the block needs the full per-element check instead (a kink along a
    direction, or errors that localisation cannot pin down).
    """
    from .result import BlockResult, relative_difference

    g_raw = blk.g_raw
    if tuple(g_raw.shape) != blk.shape or g_raw.dtype.kind not in "fiu" \
            or not np.all(np.isfinite(g_raw)):
        return None  # shape and NaN verdicts come from the per-element path
    g = g_raw.reshape(-1).astype(np.float64)
    rng = np.random.default_rng([seed, blk.sl.start, 7919])
    scr = screen_block(run, method, blk.step, blk.noise, blk.sl, g, rng)
    if not np.all(np.isfinite(scr.approx)):
        return None
    if scr.classes.kink.any() and scr.classes.bug.any():
        return None  # kinks and errors together: the per-element subgradient logic decides
    n_dir = len(scr.proj)
    common = dict(
        name=blk.name, shape=blk.shape, grad_shape=tuple(g_raw.shape),
        difference=relative_difference(scr.proj, scr.approx),
        threshold=float(TOLERANCES["safety"] * np.linalg.norm(scr.classes.resolution)
                        / max(np.linalg.norm(scr.proj) + np.linalg.norm(scr.approx), 1e-300)),
        max_error=float(np.max(np.abs(scr.proj - scr.approx))), worst_index=(),
        worst_grad=float("nan"), worst_approx=float("nan"), eps=blk.step, noise=blk.noise,
        detection_limit=scr.limit, checked_by=f"{n_dir} directions")
    power = (f"{n_dir} random directions: an error above {scr.limit:.1g} relative is missed "
             f"with probability below {TOLERANCES['screen_miss']:.0e}")
    if not scr.classes.bug.any():  # directions at a kink within their slopes are fine
        if scr.limit > TOLERANCES["useful_limit"]:
            return BlockResult(**common, verdict="inconclusive", diagnosis=(
                f"step {blk.step:g} cannot resolve d{blk.name} along {n_dir} random directions "
                f"(only errors above {scr.limit:.2g} relative could be seen); try eps auto"))
        return BlockResult(**common, verdict="ok", diagnosis=f"agrees along {power}")
    if not localise_failing:
        return BlockResult(**common, verdict="bug", bug_elements=-1, diagnosis=(
            f"d{blk.name} disagrees along {int(scr.classes.bug.sum())} of {n_dir} random "
            "directions (not localised: --localise none)"))
    found = localise(run, method, blk.name, blk.shape, blk.sl, blk.step, blk.noise, g, scr,
                     hints, seed)
    if found.verdict is None:
        return None
    worst = max(found.approx, key=lambda i: abs(g[i] - found.approx[i]), default=None)
    if worst is not None:
        common.update(worst_index=tuple(int(x) for x in np.unravel_index(worst, blk.shape)),
                      worst_grad=float(g[worst]), worst_approx=float(found.approx[worst]))
    return BlockResult(**common, verdict=found.verdict, diagnosis=found.diagnosis,
                       bug_elements=found.bug_elements)
