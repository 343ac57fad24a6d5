"""Verdicts: which elements disagree beyond the measured noise, and what kind of error it is.

Every tolerance lives in :data:`TOLERANCES`. The reasoning, element by element:

1. *noise bound* ``r_i``: the error the finite difference itself carries at step ``eps``: the
   measured cost noise times the stencil's amplification over ``eps``, plus the error of
   representing ``theta_i + eps``, plus the rounding of the backprop value.
2. an element is *suspect* when ``|g_i - a_i| > safety * r_i``;
3. each suspect is re-evaluated at the smallest step ``eps / rho**k`` whose noise bound still
   leaves its discrepancy visible (or at ``eps * rho`` when a small ``eps`` has no room)
   and at the next larger step (:mod:`gradlab.recheck`):
   - *bug*: the discrepancy ``g_i - a_i`` is the same at both steps (a real error does not
     depend on the step; truncation and round-off do) and backprop is not a subgradient there;
   - *kink*: the discrepancy persists, but the one-sided slopes jump (their gap does not shrink
     with the step like a smooth function's) and backprop lies between them: a valid
     subgradient at a non-differentiable point; or the discrepancy vanished at the smaller step
     and the slopes at ``eps`` show a jump (a kink inside the step);
   - otherwise the error was truncation or round-off: not a bug.
4. a block's *detection limit* is the smallest relative error ``||e|| / ||a||`` that is sure to
   make some element suspect and survive its re-check: ``margin * safety * ||r|| / ||a||``.
   A block whose limit exceeds ``useful_limit`` cannot see a real bug: its verdict is
   ``inconclusive``, not ``ok``.
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
    "rho": 4.0,  # re-check at eps/rho**k (k <= max_shrink) or, for a small eps, eps*rho
    "max_shrink": 6,
    "persist": 0.5,  # a bug's discrepancy changes by less than this fraction between steps
    "kink_asymmetry": 0.25,  # backprop sits on one one-sided slope: min/max distance below this
    "kink_scaling_low": 0.1,  # smooth: the one-sided jump scales like eps (ratio 1/rho); a kink
    "kink_scaling_high": 0.6,  # gives a ratio below low (kink left the step) or above high
    "grad_rounding": 8.0,  # backprop rounding: this many ulps of |g_i|
    "complex_rounding": 64.0,  # complex-step noise: ulps of max|a|
    "scale_fit": 0.02,  # g = k a explains the block when |g - k a| < this x |g - a|
    "pattern_fit": 1e-3,  # a permutation/flip of the estimate matches g within this (relative)
    "subgradient_slack": 0.0,  # backprop within the one-sided slopes, +- this x their jump
    "limit_margin": 2.0,  # a suspect is confirmed reliably once its error is this x its bound
    "useful_limit": 0.5,  # a block that cannot see a relative error this large: inconclusive
    "weak_limit": 1e-4,  # evidence this coarse gets the Taylor test as a second opinion
    "taylor_bug_rate": 1.15,  # remainders shrinking like h**(1 +- this - 1) at every step: wrong
    "taylor_ladder": 4.0,  # h = h0, h0/2, ... : this many halvings
    "taylor_signal": 100.0,  # remainders used only when this many times the cost noise
    "screen_directions": 12,  # random directions per screened block
    "screen_miss": 1e-6,  # a block error above the screen's limit is missed this rarely
    "screen_min_block": 64,  # blocks this small are checked element by element anyway
    "group_budget": 16,  # more wrong elements than this: the full per-element map instead
}


@dataclass
class ElementClasses:
    """Per-element classification of one block (boolean masks over the flattened block)."""

    suspect: np.ndarray
    bug: np.ndarray
    kink: np.ndarray
    truncation: np.ndarray
    resolution: np.ndarray  # the noise bound in force: at eps, or at the re-check steps


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


def detection_limit(bound: np.ndarray, grad: np.ndarray, approx: np.ndarray,
                    typical: float = 0.0) -> float:
    """The smallest relative error ``||e|| / ||a||`` of a block that the check is sure to see.

    An error ``e`` with every ``|e_i| <= safety * r_i`` has ``||e|| <= safety * ||r||``, so any
    larger error makes at least one element suspect; ``limit_margin`` more, and its re-check
    confirms it despite the noise at the re-check steps. Relative to the larger of the numerical
    and the backprop gradient's norm; a block whose gradient is itself at the noise level (a
    dead unit's) is judged against ``typical``, the norm a block of this size has when its
    elements are as large as the model's gradient elements on average, not against zero.
    """
    scale = max(float(np.linalg.norm(approx)), float(np.linalg.norm(grad)))
    if scale <= TOLERANCES["safety"] * float(np.linalg.norm(bound)):
        scale = max(scale, typical)  # a gradient at the noise level: judged on the model's
    if scale == 0.0:
        return 0.0 if not np.any(bound) else float("inf")
    return float(TOLERANCES["limit_margin"] * TOLERANCES["safety"] * np.linalg.norm(bound)
                 / scale)


def _log_closer_to_one(ratio: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """True where ``ratio`` is nearer 1 (a kink's jump) than ``smooth`` (a smooth function's)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log(ratio)) < 0.5 * np.abs(np.log(smooth))


def _subgradient(g: np.ndarray, rc: Recheck) -> tuple[np.ndarray, np.ndarray]:
    """Backprop lies between one-sided slopes that jump: a valid subgradient at a kink.

    Returns the mask and the slack allowed around the slopes (an error that small could pass).
    """
    t = TOLERANCES
    fa, ba = rc.slopes["h1"]
    fb, bb = rc.slopes["h2"]
    jump_a, jump_b = np.abs(fa - ba), np.abs(fb - bb)
    step_a, step_b = rc.side_steps if rc.side_steps is not None else (rc.h1, rc.h2)
    noise = t["safety"] * (rc.slope_noise if rc.slope_noise is not None else rc.bound_confirm)
    # within the noise, and within how much the slopes still move between the two steps
    slack = noise + np.abs(fa - fb) + np.abs(ba - bb) + t["subgradient_slack"] * jump_a
    between = (g >= np.minimum(fa, ba) - slack) & (g <= np.maximum(fa, ba) + slack)
    with np.errstate(divide="ignore", invalid="ignore"):
        kinky = _log_closer_to_one(jump_a / jump_b, step_a / step_b)
    return between & (jump_a > 2 * noise) & kinky, slack


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
        return ElementClasses(suspect, bug, kink, trunc, bound)
    idx = np.flatnonzero(suspect)
    g, d0 = grad[idx], err[idx]
    d1 = g - recheck.confirm
    confirmed = np.abs(d1) > t["safety"] * recheck.bound_confirm
    d2 = np.where(np.isfinite(recheck.second), g - recheck.second, d0)
    persistent = confirmed & (np.abs(d1 - d2) <= t["persist"] * np.abs(d1))
    if recheck.with_eps is not None:  # re-checked near eps: eps's discrepancy agrees too
        persistent &= ~recheck.with_eps | (np.abs(d1 - d0) <= t["persist"] * np.abs(d1))
    is_kink = np.zeros(idx.size, bool)
    slack = np.zeros(idx.size)
    if recheck.clean is not None:
        # the model knows where its kinks are: a bug only from two kink-free steps
        persistent &= recheck.clean
        is_kink = ~persistent & (recheck.crosses | ~recheck.clean)
    elif recheck.slopes:
        at_kink, slack = _subgradient(g, recheck)
        is_kink = np.where(persistent, at_kink, _kink_inside_step(g, recheck, bound[idx]))
        slack = np.where(persistent & is_kink, slack, 0.0)
    bug[idx] = persistent & ~is_kink
    kink[idx] = is_kink
    trunc[idx] = ~persistent & ~is_kink
    # a re-checked element could hide an error below its re-check noise, or below the change
    # of its truncation between the two re-check steps (the persistence test)
    # (an element found wrong needs no such allowance)
    resolution = bound.copy()
    # and a subgradient accepted at a kink could hide an error below the interval's slack, an
    # element excused as truncation or a kink inside the step one below what it kept at h1
    resolution[idx] = np.where(bug[idx], bound[idx], np.maximum.reduce([
        bound[idx], np.nan_to_num(recheck.bound_confirm),
        np.abs(d1 - d2) / (t["persist"] * t["safety"]), slack / t["safety"],
        np.where(persistent, 0.0, np.abs(d1) / t["safety"])]))
    return ElementClasses(suspect, bug, kink, trunc, resolution)
