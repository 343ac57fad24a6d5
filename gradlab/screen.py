"""The screen: check a large block along random directions, and localise only what fails.

For a block of ``n`` elements the per-element check costs ``2n`` cost evaluations. The screen
costs a few per block: the directional derivative along ``K`` random Gaussian directions ``v``
restricted to the block, ``(J(theta + h v) - J(theta - h v)) / 2h`` (or the method's stencil),
against backprop's ``g.v``, with the same noise bound, re-check and subgradient logic as an
element (each direction is judged like an element by :func:`gradlab.verdict.classify`).

Power: for an error ``e`` in the block, ``e.v`` is ``||e||`` times a standard normal, so a
direction misses it only when that normal falls within ``+-c`` with ``c = b / ||e||`` (``b`` the
direction's resolution); ``K`` independent directions all miss with probability
``erf(c / sqrt 2)**K``. The screen's detection limit is the relative error at which that is
below ``screen_miss`` (1e-6): ``b / (c* ||a||)`` with ``erf(c* / sqrt 2)**K = screen_miss``.

A failing block is localised (:func:`localise`): one factor ``k`` with ``g.v = k a.v`` in every
direction is a scale or sign error (confirmed on a sample of elements); a rearrangement of
``g`` (transposed, flipped, permuted axes) that matches every projection is named; otherwise
the wrong elements are found by adaptive group testing (directions on halves of the support),
and when they are too many, the block gets the full per-element check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .finite_diff import Method, estimate, machine_eps, perturbed_dtype
from .recheck import recheck
from .verdict import TOLERANCES, ElementClasses, classify, noise_bound

__all__ = ["Directions", "Screen", "screen", "miss_probability", "power_constant"]


def power_constant(directions: int, miss: float) -> float:
    """``c*`` with ``erf(c* / sqrt 2) ** directions = miss``."""
    target = miss ** (1.0 / directions)
    lo, hi = 0.0, 10.0
    for _ in range(80):  # bisection: erf is monotone
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.erf(mid / math.sqrt(2)) < target else (lo, mid)
    return lo


def miss_probability(relative_error: float, limit: float, directions: int,
                     miss: float) -> float:
    """The probability that an error ``relative_error`` is missed by a screen whose limit (at
    ``miss``) is ``limit``."""
    c = power_constant(directions, miss) * limit / max(relative_error, 1e-300)
    return math.erf(c / math.sqrt(2)) ** directions


class Directions:
    """An evaluator over directions: ``costs(_, steps, ks)[r, j] = J(theta + steps[r] V[ks[j]])``.

    ``V`` holds one direction per row over the block's slice ``sl`` of the flat parameters.
    The first argument (gradlab's evaluators take theta there) is ignored: the point is fixed.
    """

    def __init__(self, flat_cost, theta: np.ndarray, sl: slice, vectors: np.ndarray, counter):
        self.f, self.theta, self.sl, self.V, self.counter = flat_cost, theta, sl, vectors, counter

    def __call__(self, _theta, steps, ks) -> np.ndarray:
        steps = np.asarray(steps).reshape(-1)
        ks = np.asarray(ks, dtype=np.intp).reshape(-1)
        is_c = np.iscomplexobj(steps)
        out = np.empty((len(steps), len(ks)), np.complex128 if is_c else np.float64)
        base = self.theta.astype(perturbed_dtype(self.theta.dtype, is_c))
        for c, k in enumerate(ks):
            for r, s in enumerate(steps):
                t = base.copy()
                t[self.sl] = t[self.sl] + s * self.V[k]
                out[r, c] = self.f(t)
        self.counter.count += out.size
        return out


@dataclass
class Screen:
    """What the directions said about one block.

    Attributes:
        vectors: the directions (rows).  proj: backprop's ``g.v``.  approx: the directional
            estimates.  classes: each direction classified like an element.
        limit: the relative error missed with probability below ``screen_miss``.
    """

    vectors: np.ndarray
    proj: np.ndarray
    approx: np.ndarray
    classes: ElementClasses
    limit: float


def screen(method: Method, step: float, noise: float, flat_cost, theta: np.ndarray, j0: float,
           sl: slice, g: np.ndarray, vectors: np.ndarray, counter) -> Screen:
    """Judge the block ``sl`` along the rows of ``vectors``.

    Args:
        method, step, noise: the stencil, the block's step and measured noise.
        flat_cost, theta, j0: the cost of a flat vector, the point, J there.
        sl: the block's slice; g: backprop's flat block; vectors: directions (K x n).
        counter: the check's evaluation counter (incremented).
    """
    ev = Directions(flat_cost, theta, sl, vectors, counter)
    ks = np.arange(len(vectors))
    proj = vectors @ g
    # a Gaussian direction over n elements moves the point sqrt(n) times as far as a step
    # along one element: the step shrinks by sqrt(n), so that truncation and round-off weigh
    # as they do at the block's step for one element
    if not method.is_complex:
        step = step / np.sqrt(max(1, int(np.count_nonzero(vectors[0]))))
    approx = estimate(method, step, ev, theta, ks, j0)
    # per direction: theta_i + s v_i is rounded (u |theta_i| each, weighted by |g_i|), and g.v
    # is a sum of rounded terms; fed to noise_bound through its per-element arguments
    u = machine_eps(theta.dtype)
    spread = float(np.sum(np.abs(theta[sl]) * np.abs(g)))
    eff_theta = spread / np.maximum(np.abs(approx), 1e-300)
    grad_sum = np.abs(vectors) @ np.abs(g)
    bound = noise_bound(approx, grad_sum, eff_theta, step, noise, method.roundoff, u)
    suspect = np.flatnonzero(np.abs(proj - approx) > TOLERANCES["safety"] * bound)
    evidence = None
    if suspect.size:
        size = np.full(suspect.size, max(1.0, float(np.max(np.abs(theta[sl])))))
        evidence = recheck(method, step, ev, eff_theta, suspect, j0, proj[suspect],
                           approx[suspect], bound[suspect], noise, u, scale=size)
    classes = classify(proj, approx, bound, evidence)
    scale = max(float(np.sqrt(np.mean(approx**2))), float(np.linalg.norm(g)), 1e-300)
    c_star = power_constant(len(vectors), TOLERANCES["screen_miss"])
    limit = TOLERANCES["safety"] * float(np.max(classes.resolution)) / (c_star * scale)
    return Screen(vectors, proj, approx, classes, limit)
