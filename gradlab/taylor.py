"""The Taylor remainder test: a second opinion that needs no tolerance.

Along a random direction ``v`` restricted to one block, the remainder
``|J(theta + h v) - J(theta) - h g.v|`` shrinks like ``h**2`` when ``g`` is the gradient and like
``h`` when it is not (after dolfin-adjoint's ``taylor_test``). The observed rate over a ladder of
halving steps is read only where the remainders stand well clear of the cost's noise, and only
when the cost is smooth along the ladder: a kink crossed by the direction also makes the
remainder shrink like ``h``, so the curvature ``(J(+h) + J(-h) - 2 J) / h**2`` must stay
steady over the ladder, or the test declines to answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .verdict import TOLERANCES

__all__ = ["taylor_rates", "taylor_says_wrong"]


def _curvature_steady(curv: list[float], clear: list[bool]) -> bool:
    """The second differences over h**2 agree (same sign, within 2x) where measurable."""
    seen = [c for c, ok in zip(curv, clear, strict=True) if ok]
    if len(seen) < 2:
        return True  # too flat to measure: nothing suggests a kink
    if min(seen) * max(seen) <= 0:
        return False
    return max(abs(c) for c in seen) <= 2 * min(abs(c) for c in seen)


def taylor_rates(
    flat_cost: Callable[[np.ndarray], float],
    theta: np.ndarray,
    j0: float,
    grad: np.ndarray,
    coords: np.ndarray,
    cost_noise: float,
    seed: int = 0,
) -> list[float]:
    """The convergence rates of the first-order Taylor remainder along the block ``coords``.

    Args:
        flat_cost: J of a flat parameter vector; theta, j0: the point and J there.
        grad: the flat backprop gradient (the block's part is used).
        coords: the coordinates the direction may move (a block, its suspects left out).
        cost_noise: the measured noise of one evaluation.
        seed: draws the direction.

    Returns:
        The rate between each pair of successive steps whose remainders are at least
        ``taylor_signal`` x the noise, largest steps first (about 2 or more for a right
        gradient, 1 for a wrong one); empty when no pair stands clear of the noise or the
        cost is not smooth along the direction.
    """
    if coords.size == 0:
        return []
    rng = np.random.default_rng(seed + 11)
    v = np.zeros(theta.size)
    v[coords] = rng.standard_normal(coords.size)
    v /= np.linalg.norm(v)
    scale = max(1.0, float(np.max(np.abs(theta[coords]))))
    signal = TOLERANCES["taylor_signal"] * cost_noise
    steps = [0.1 * scale / 2**i for i in range(int(TOLERANCES["taylor_ladder"]) + 4)]
    base = theta.astype(np.float64)
    rests, curv, clear = [], [], []
    for h in steps:
        values = []
        for sign in (1.0, -1.0):
            point = (theta + sign * h * v).astype(theta.dtype)  # the point really evaluated
            value = float(np.real(flat_cost(point)))
            values.append((value, float(np.dot(grad, point.astype(np.float64) - base))))
        (jp, gp), (jm, _) = values
        rests.append(abs(jp - j0 - gp))
        second = jp + jm - 2 * j0
        curv.append(second / h**2)
        clear.append(abs(second) >= signal)
    if not all(np.isfinite(rests)) or not _curvature_steady(curv, clear):
        return []
    return [math.log2(rests[i] / rests[i + 1]) for i in range(len(steps) - 1)
            if rests[i + 1] >= signal and rests[i] > 0]


def taylor_says_wrong(rates: list[float]) -> bool:
    """Every clear pair of steps shows a first-order remainder (rate 1), at least three of them.

    Strict on purpose: many small kinks along the direction (a ReLU network) bend the rate to
    between 1 and 2, which must never be read as a bug.
    """
    bound = TOLERANCES["taylor_bug_rate"]
    return len(rates) >= 3 and all(2 - bound <= r <= bound for r in rates)
