"""Verdicts: which elements disagree beyond the measured noise, and what kind of error it is.

Every tolerance lives in :data:`TOLERANCES`. The reasoning, element by element:

1. *noise bound* ``r_i``: the error the finite difference itself carries at step ``eps``: the
   measured cost noise times the stencil's amplification over ``eps``, plus the error of
   representing ``theta_i + eps``, plus the rounding of the backprop value.
2. an element is *suspect* when ``|g_i - a_i| > safety * r_i``;
3. each suspect is re-evaluated at the smallest step ``eps / rho**k`` whose noise bound still
   leaves its discrepancy visible (or at ``eps * rho`` when ``eps`` is already at that limit)
   and at the next larger step (:mod:`gradlab.recheck`):
   - *bug*: the discrepancy ``g_i - a_i`` is the same at both steps (a real error does not
     depend on the step; truncation and round-off do) and backprop is not a subgradient there;
   - *kink*: the discrepancy persists, but the one-sided slopes jump (their gap does not shrink
     with the step like a smooth function's) and backprop lies between them: a valid
     subgradient at a non-differentiable point; or the discrepancy vanished at the smaller step
     and the slopes at ``eps`` show a jump (a kink inside the step);
   - otherwise the error was truncation or round-off: not a bug.
4. a block's *detection limit* is the smallest relative error ``||e|| / ||a||`` that is sure to
   make some element suspect: ``safety * ||r|| / ||a||``. A block whose limit exceeds
   ``useful_limit`` cannot see a real bug: its verdict is ``inconclusive``, not ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .recheck import Recheck

__all__ = ["TOLERANCES", "ElementClasses", "classify", "noise_bound", "detection_limit"]

TOLERANCES: dict[str, float] = {
    "safety": 10.0,  # suspect when the error exceeds safety x the noise bound
    "rho": 4.0,  # re-check at eps/rho**k (k <= max_shrink) or eps*rho
    "max_shrink": 6,
    "persist": 0.5,  # a bug's discrepancy changes by less than this fraction between steps
    "kink_asymmetry": 0.25,  # backprop sits on one one-sided slope: min/max distance below this
    "kink_scaling_low": 0.1,  # smooth: the one-sided jump scales like eps (ratio 1/rho); a kink
    "kink_scaling_high": 0.6,  # gives a ratio below low (kink left the step) or above high
    "grad_rounding": 8.0,  # backprop rounding: this many ulps of |g_i|
    "complex_rounding": 64.0,  # complex-step noise: ulps of max|a|
    "scale_fit": 0.02,  # g = k a explains the block when |g - k a| < this x |g - a|
    "pattern_fit": 1e-3,  # a permutation/flip of the estimate matches g within this (relative)
    "subgradient_slack": 0.1,  # backprop within the one-sided slopes, +- this x their jump
    "useful_limit": 1e-2,  # a block that cannot see a relative error this large: inconclusive
    "weak_limit": 1e-4,  # evidence this coarse gets the Taylor test as a second opinion
    "taylor_bug_rate": 1.5,  # a Taylor remainder shrinking slower than h**this: g is wrong
    "taylor_ladder": 4.0,  # h = h0, h0/2, ... : this many halvings
    "taylor_signal": 100.0,  # remainders used only when this many times the cost noise
}


@dataclass
class ElementClasses:
    """Per-element classification of one block (boolean masks over the flattened block)."""

    suspect: np.ndarray
    bug: np.ndarray
    kink: np.ndarray
    truncation: np.ndarray


def noise_bound(
    approx: np.ndarray,
    grad: np.ndarray,
    theta: np.ndarray,
    eps: float,
    cost_noise: float,
    roundoff: float,
    u: float,
) -> np.ndarray:
    """Per-element error the finite difference can carry at step ``eps`` when backprop is right.

    Args:
        approx, grad, theta: flattened estimate, backprop gradient and parameters.
        eps: the step.  cost_noise: measured absolute noise of one cost evaluation.
        roundoff: the method's noise amplification (0 for the complex step).
        u: unit round-off of the parameters' dtype.
    """
    g_round = TOLERANCES["grad_rounding"] * u * np.abs(grad)
    if roundoff == 0.0:
        scale = float(np.max(np.abs(approx))) if approx.size else 0.0
        return TOLERANCES["complex_rounding"] * u * (np.abs(approx) + scale) + g_round
    step_repr = u * np.abs(theta) * np.abs(approx) / eps
    return roundoff * cost_noise / eps + step_repr + g_round


def detection_limit(bound: np.ndarray, grad: np.ndarray, approx: np.ndarray) -> float:
    """The smallest relative error ``||e|| / ||a||`` of a block that the check is sure to see.

    An error ``e`` with every ``|e_i| <= safety * r_i`` has ``||e|| <= safety * ||r||``, so any
    larger error makes at least one element suspect. Relative to the larger of the numerical
    and the backprop gradient's norm (``inf`` when both are zero: nothing to compare).
    """
    scale = max(float(np.linalg.norm(approx)), float(np.linalg.norm(grad)))
    if scale == 0.0:
        return 0.0 if not np.any(bound) else float("inf")
    return float(TOLERANCES["safety"] * np.linalg.norm(bound) / scale)


def _log_closer_to_one(ratio: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """True where ``ratio`` is nearer 1 (a kink's jump) than ``smooth`` (a smooth function's)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log(ratio)) < 0.5 * np.abs(np.log(smooth))


def _subgradient(g: np.ndarray, rc: Recheck) -> np.ndarray:
    """Backprop lies between one-sided slopes that jump: a valid subgradient at a kink."""
    t = TOLERANCES
    fa, ba = rc.slopes["h1"]
    fb, bb = rc.slopes["h2"]
    jump_a, jump_b = np.abs(fa - ba), np.abs(fb - bb)
    noise = 2 * t["safety"] * rc.bound_confirm
    slack = t["subgradient_slack"] * jump_a + noise
    between = (g >= np.minimum(fa, ba) - slack) & (g <= np.maximum(fa, ba) + slack)
    with np.errstate(divide="ignore", invalid="ignore"):
        kinky = _log_closer_to_one(jump_a / jump_b, rc.h1 / rc.h2)
    return between & (jump_a > noise) & kinky


def _kink_inside_step(g: np.ndarray, rc: Recheck, bound: np.ndarray) -> np.ndarray:
    """The slopes at eps jump, and backprop sits on one of them or the jump does not scale
    like a smooth function's (``eps / rho`` gives ``1 / rho`` of it): a kink inside the step."""
    t = TOLERANCES
    fwd, bwd = rc.slopes["eps"]
    fwd_lo, bwd_lo = rc.slopes["lo"]
    jump, jump_lo = np.abs(fwd - bwd), np.abs(fwd_lo - bwd_lo)
    ratio = jump_lo / np.maximum(jump, 1e-300)
    not_smooth = (ratio < t["kink_scaling_low"]) | (ratio > t["kink_scaling_high"])
    near = np.minimum(np.abs(g - fwd), np.abs(g - bwd))
    far = np.maximum(np.abs(g - fwd), np.abs(g - bwd))
    one_sided = near <= t["kink_asymmetry"] * far
    return (one_sided | not_smooth) & (jump > t["safety"] * 2 * bound)


def classify(
    grad: np.ndarray,
    approx: np.ndarray,
    bound: np.ndarray,
    recheck: Recheck | None,
) -> ElementClasses:
    """Classify the elements of one block.

    Args:
        grad, approx: flattened backprop gradient and estimate at eps.
        bound: noise bound at eps (see :func:`noise_bound`).
        recheck: the re-check evidence on the block's suspects, in order
            (:class:`gradlab.recheck.Recheck`), or ``None`` (every suspect is then a bug).
    """
    t = TOLERANCES
    err = grad - approx
    suspect = np.abs(err) > t["safety"] * bound
    n = grad.size
    bug, kink, trunc = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    if not suspect.any() or recheck is None:
        bug[:] = suspect
        return ElementClasses(suspect, bug, kink, trunc)
    idx = np.flatnonzero(suspect)
    g, d0 = grad[idx], err[idx]
    d1 = g - recheck.confirm
    confirmed = np.abs(d1) > t["safety"] * recheck.bound_confirm
    d2 = np.where(np.isfinite(recheck.second), g - recheck.second, d0)
    persistent = confirmed & (np.abs(d1 - d2) <= t["persist"] * np.abs(d1))
    is_kink = np.zeros(idx.size, bool)
    if recheck.clean is not None:
        # the model knows where its kinks are: a bug only from two kink-free steps
        persistent &= recheck.clean
        is_kink = ~persistent & (recheck.crosses | ~recheck.clean)
    elif recheck.slopes:
        is_kink = np.where(persistent, _subgradient(g, recheck),
                           _kink_inside_step(g, recheck, bound[idx]))
    bug[idx] = persistent & ~is_kink
    kink[idx] = is_kink
    trunc[idx] = ~persistent & ~is_kink
    return ElementClasses(suspect, bug, kink, trunc)
