"""Re-checks of suspect elements: the evidence that tells a bug from truncation, noise and kinks.

A suspect (an element whose discrepancy exceeds its noise bound at the step in use) is estimated
again at the smallest step whose noise bound still leaves its discrepancy clearly visible, and
at a second, larger one: a real bug's discrepancy is the same at both, truncation and round-off
are not. The cost is also evaluated on both sides of the point, so the one-sided slopes show a
kink (a slope that jumps instead of changing like a smooth function's), and whether backprop
lies between them (a valid subgradient).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .finite_diff import Evaluator, Method, combine, stencil
from .probes import ecnoise, table_has_kink
from .verdict import TOLERANCES, noise_bound

__all__ = ["Recheck", "recheck"]

_BATCH = 4096  # evaluate every step for every suspect in one call up to this many costs


@dataclass
class Recheck:
    """Evidence on a block's suspect elements (arrays in suspect order).

    Attributes:
        confirm: the estimate at the re-check step ``h1``; ``bound_confirm`` its noise bound.
        second: the estimate at the second step ``h2`` (NaN when there is none: then ``eps``
            itself is the comparison).
        slopes: one-sided slopes ``(forward, backward)`` at the steps ``h1``, ``h2`` (or eps)
            eps and ``eps / rho``, keyed ``"h1"``, ``"h2"``, ``"eps"``, ``"lo"`` (none for the
            complex step); ``h1``/``h2`` the steps.
        crosses, clean: for models that know their kinks (the built-in networks): the step at
            eps may cross a kink; both compared steps are kink-free. ``None`` otherwise.
    """

    confirm: np.ndarray
    bound_confirm: np.ndarray
    second: np.ndarray
    h1: np.ndarray
    h2: np.ndarray
    slopes: dict[str, tuple[np.ndarray, np.ndarray]]
    crosses: np.ndarray | None = None
    clean: np.ndarray | None = None
    side_steps: tuple[np.ndarray, np.ndarray] | None = None  # the steps of slopes h1, h2
    slope_noise: np.ndarray | None = None  # noise of a one-sided slope at the first of them
    with_eps: np.ndarray | None = None  # the discrepancy at eps must agree too (h1 near eps)

    def take(self, sel: np.ndarray) -> Recheck:
        """The evidence of a subset of the suspects."""
        def pick(a):
            return None if a is None else a[sel]

        return Recheck(
            self.confirm[sel], self.bound_confirm[sel], self.second[sel], self.h1[sel],
            self.h2[sel], {k: (f[sel], b[sel]) for k, (f, b) in self.slopes.items()},
            pick(self.crosses), pick(self.clean),
            None if self.side_steps is None else (self.side_steps[0][sel],
                                                  self.side_steps[1][sel]),
            pick(self.slope_noise), pick(self.with_eps),
        )


def _steps(eps: float, d0: np.ndarray, bound: np.ndarray,
           small: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-check steps ``h1`` (confirm) and ``h2`` (compare; NaN: compare with eps itself), and
    whether eps's own discrepancy must agree too.

    Normally ``h1`` is the smallest ``eps / rho**k`` that keeps the discrepancy visible and
    ``h2 = rho h1``. When not even ``eps / rho`` has room: a ``small`` step (below the
    round-off/truncation balance, ``u**(1/3)`` times the scale) is re-checked at
    ``eps * rho``, where the noise is smaller; a large one at both ``eps / rho`` and
    ``eps * rho`` (a large step's truncation can keep its size one way, far from the Taylor
    regime, and noise the other way; a bug keeps it both ways).
    """
    rho = TOLERANCES["rho"]
    room = d0 / np.maximum(TOLERANCES["safety"] * bound, 1e-300)
    k = np.floor(np.log(np.maximum(room * TOLERANCES["persist"], 1.0)) / np.log(rho))
    k = np.clip(k, 0, TOLERANCES["max_shrink"])
    h1 = np.where(k > 0, eps / rho**k, np.where(small, eps * rho, eps / rho))
    h2 = np.where(k > 1, h1 * rho, np.where((k == 0) & ~small, eps * rho, np.nan))
    return h1, h2, k <= 1


def recheck(
    method: Method,
    eps: float,
    costs: Evaluator,
    theta: np.ndarray,
    idx: np.ndarray,
    j0: float,
    grad: np.ndarray,
    approx: np.ndarray,
    bound: np.ndarray,
    cost_noise: float,
    u: float,
    radius: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> Recheck:
    """Gather the re-check evidence for the suspect coordinates ``idx`` of one block.

    Args:
        method, eps: the stencil and step of the main estimate.
        costs: the evaluator; theta, j0: the point and J there.
        idx: suspect coordinates; grad, approx, bound: their backprop value, estimate and
            noise bound at eps.  cost_noise: the block's measured noise; u: unit round-off.
        radius: per suspect, the distance to the nearest kink when the model knows it.
        scale: per suspect, the size of the parameter it moves (default ``|theta[idx]|``; the
            screen passes its block's, since its "suspects" are directions).
    """
    rho = TOLERANCES["rho"]
    scale = np.maximum(1.0, np.abs(np.real(theta[idx])) if scale is None else scale)
    small = eps < u ** (1 / 3) * scale
    # the suspect's own noise: coordinates that move a badly conditioned part of the cost see
    # far more rounding than the block's probes may have; it sets how far the step may shrink
    noise = np.maximum(cost_noise, _own_noise(costs, theta, idx, np.full(idx.size, eps), scale,
                                              u, j0, radius))
    own_bound = np.maximum(bound, noise_bound(approx, grad, theta[idx], eps, noise,
                                              method.roundoff, u))
    h1, h2, with_eps = _steps(eps, np.abs(grad - approx), own_bound, small)
    crosses = clean = None
    if radius is not None and not method.is_complex:
        reach = max(abs(o) for o in method.offsets)  # the stencil's widest step, in eps
        compare = np.where(np.isfinite(h2), h2, eps)
        compare = np.where(reach * compare < radius, compare, 2 * h1)
        h2 = np.where(compare == eps, np.nan, compare)
        crosses = reach * eps >= radius
        clean = (reach * h1 < radius) & (reach * compare < radius)
    h2_or_eps = np.where(np.isfinite(h2), h2, eps)
    # every absolute step any suspect needs, evaluated once per suspect
    plan = sorted({s for h in np.unique(np.concatenate([h1, h2[np.isfinite(h2)]]))
                   for s in stencil(method, float(h))}, key=lambda s: (abs(s), np.real(s)))
    # one-sided slopes: at the re-check steps, and at eps and eps/rho; the complex step's
    # steps are far too small for real differences, so it takes real ones of its own
    # (the subgradient test asks whether a kink sits at the point itself, whatever the step:
    # it reads slopes at a fixed moderate step, accurate in the precision and short enough to
    # cross no other kink; the complex step's eps is far too small for real differences)
    side_b = max(1e-6, np.sqrt(u)) * scale
    side_a, side_eps = side_b / rho, (1e-6 if method.is_complex else eps)
    sides = sorted({float(s) * sign for s in np.unique(np.concatenate(
        [side_a, side_b, [side_eps, side_eps / rho]])) for sign in (1, -1)})
    wanted = list(dict.fromkeys(plan + sides))
    table = _evaluate(costs, theta, idx, wanted)

    def at(step: complex | float, sel: np.ndarray) -> np.ndarray:
        return table[step][sel]

    confirm = np.full(idx.size, np.nan)
    second = np.full(idx.size, np.nan)
    bound_confirm = np.full(idx.size, np.nan)
    for target, steps in ((confirm, h1), (second, h2)):
        for h in np.unique(steps[np.isfinite(steps)]):
            sel = np.flatnonzero(steps == h)
            target[sel] = combine(method, float(h), [at(s, sel) for s in stencil(method, h)], j0)
    bound_confirm[:] = noise_bound(confirm, grad, theta[idx], h1, noise, method.roundoff, u)
    slopes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if sides:
        for key, steps in (("h1", side_a), ("h2", side_b),
                           ("lo", np.full(idx.size, side_eps / rho))):
            fwd, bwd = np.empty(idx.size), np.empty(idx.size)
            for h in np.unique(steps):
                sel = np.flatnonzero(steps == h)
                fwd[sel] = (np.real(at(float(h), sel)) - j0) / h
                bwd[sel] = (j0 - np.real(at(-float(h), sel))) / h
            slopes[key] = (fwd, bwd)
        sel = np.arange(idx.size)
        slopes["eps"] = ((np.real(at(side_eps, sel)) - j0) / side_eps,
                         (j0 - np.real(at(-side_eps, sel))) / side_eps)
    slope_noise = 2 * noise / side_a
    return Recheck(confirm, bound_confirm, second, h1, h2_or_eps, slopes, crosses, clean,
                   (side_a, side_b), slope_noise, with_eps)


def _own_noise(costs: Evaluator, theta: np.ndarray, idx: np.ndarray, h: np.ndarray,
               scale: np.ndarray, u: float, j0: float,
               radius: np.ndarray | None) -> np.ndarray:
    """ECnoise of each suspect's own coordinate: 9 costs spaced like the step ``h``."""
    spacing = np.minimum(np.abs(np.real(h)), max(1e-4, np.sqrt(u)) * scale)
    if radius is not None:
        spacing = np.minimum(spacing, radius / 5)
    out = np.zeros(idx.size)
    floor = 4 * u * abs(j0)
    for d in np.unique(spacing[spacing > 0]):
        sel = np.flatnonzero(spacing == d)
        table = np.real(costs(theta, np.arange(-4, 5) * float(d), idx[sel])).astype(np.float64)
        for k, col in zip(sel, table.T, strict=True):
            out[k] = _column_noise(col.tobytes(), floor)
    return out


@functools.lru_cache(maxsize=1 << 16)
def _column_noise(column: bytes, floor: float) -> float:
    """ECnoise of a kink-free column of 9 finite costs, else 0 (by the column's bytes: checks
    that share their costs ask for the same columns again)."""
    col = np.frombuffer(column, dtype=np.float64)
    if np.all(np.isfinite(col)) and not table_has_kink(col, floor):
        return ecnoise(col)
    return 0.0


def _evaluate(costs: Evaluator, theta: np.ndarray, idx: np.ndarray, wanted: list) -> dict:
    """``{step: J(theta + step e_i) for each suspect i}`` (one call when small enough)."""
    if len(wanted) * idx.size <= _BATCH:
        rows = costs(theta, np.array(wanted), idx)
        return dict(zip(wanted, rows, strict=True))
    return {s: costs(theta, np.array([s]), idx)[0] for s in wanted}
