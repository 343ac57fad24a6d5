"""Verdicts: which elements disagree beyond the measured noise, and what kind of error it is.

Every tolerance lives in :data:`TOLERANCES`. The reasoning, element by element:

1. *noise bound* ``r_i``: the error the finite difference itself carries at step ``eps``: the
   measured cost noise times the stencil's amplification over ``eps``, plus the error of
   representing ``theta_i + eps``, plus the rounding of the backprop value.
2. an element is *suspect* when ``|g_i - a_i| > safety * r_i``;
3. each suspect is re-evaluated at the smallest step ``eps / rho**k`` whose noise bound still
   leaves its discrepancy visible (or at ``eps * rho`` when ``eps`` is already at that limit):
   - *kink*: the backprop value equals one one-sided slope but not the other, and the jump
     between the slopes does not shrink like ``eps`` (a ReLU/max kink lies within the step);
   - *bug*: the discrepancy ``g_i - a_i`` stays the same at another step (a real error does not
     depend on the step; truncation and round-off do);
   - otherwise the error was truncation or round-off: not a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TOLERANCES", "ElementClasses", "classify", "diagnose", "nice_factor"]

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


def classify(
    grad: np.ndarray,
    approx: np.ndarray,
    bound: np.ndarray,
    recheck: dict[str, np.ndarray] | None,
) -> ElementClasses:
    """Classify the elements of one block.

    Args:
        grad, approx: flattened backprop gradient and estimate at eps.
        bound: noise bound at eps (see :func:`noise_bound`).
        recheck: for the suspects (in order), ``confirm`` (the estimate at the re-check step)
            and ``bound_confirm`` (its noise bound), and the one-sided slopes ``fwd``, ``bwd``
            at eps and ``fwd_lo``, ``bwd_lo`` at eps/rho (absent for the complex step); for
            models that know their kinks, ``crosses`` (the step at eps may cross one) and
            ``clean`` (both compared steps are kink-free), which replace the numeric kink test.
    """
    t = TOLERANCES
    err = grad - approx
    suspect = np.abs(err) > t["safety"] * bound
    n = grad.size
    bug = np.zeros(n, bool)
    kink = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    if not suspect.any() or recheck is None:
        bug[:] = suspect
        return ElementClasses(suspect, bug, kink, trunc)
    idx = np.flatnonzero(suspect)
    g, d0 = grad[idx], err[idx]
    d1 = g - recheck["confirm"]
    confirmed = np.abs(d1) > t["safety"] * recheck["bound_confirm"]
    # compare with the next larger step: the second re-check step, or eps itself
    d2 = np.where(np.isfinite(recheck["second"]), g - recheck["second"], d0)
    persistent = confirmed & (np.abs(d1 - d2) <= t["persist"] * np.abs(d1)) & (
        np.abs(d1 - d0) <= t["persist"] * np.abs(d0)
    )
    is_kink = np.zeros(idx.size, bool)
    if "clean" in recheck:
        # the model knows where its kinks are: a bug only from two kink-free steps
        persistent &= recheck["clean"]
        is_kink = ~persistent & (recheck["crosses"] | ~recheck["clean"])
    elif "fwd" in recheck:
        near = np.minimum(np.abs(g - recheck["fwd"]), np.abs(g - recheck["bwd"]))
        far = np.maximum(np.abs(g - recheck["fwd"]), np.abs(g - recheck["bwd"]))
        jump = np.abs(recheck["fwd"] - recheck["bwd"])
        jump_lo = np.abs(recheck["fwd_lo"] - recheck["bwd_lo"])
        ratio = jump_lo / np.maximum(jump, 1e-300)
        not_smooth = (ratio < t["kink_scaling_low"]) | (ratio > t["kink_scaling_high"])
        one_sided = near <= t["kink_asymmetry"] * far
        big = jump > t["safety"] * 2 * bound[idx]
        # a kink: backprop sits on one one-sided slope, the slopes differ by more than the
        # noise, and either the error vanished at a smaller step (the kink left the step) or
        # the jump does not scale like a smooth function's (the kink stays inside)
        is_kink = one_sided & big & (not_smooth | ~persistent)
    bug[idx] = persistent & ~is_kink
    kink[idx] = is_kink
    trunc[idx] = ~persistent & ~is_kink
    return ElementClasses(suspect, bug, kink, trunc)


def nice_factor(k: float) -> str:
    """Write a scale factor the way a person would: 2, 4, 1/3, 0.73."""
    if k == 0:
        return "0"
    if abs(k - 1) < 1e-2:  # a near-1 factor: show how far from 1 it is
        return f"{k:.8g}"
    for n in range(2, 101):
        if abs(k - n) <= 1e-3 * n:
            return f"{n}"
        if abs(k - 1 / n) <= 1e-3 / n:
            return f"1/{n}"
    return f"{k:.4g}"


def _where(name: str, shape: tuple[int, ...], flat_index: int) -> str:
    idx = np.unravel_index(flat_index, shape) if shape else ()
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]"


def diagnose(
    name: str,
    shape: tuple[int, ...],
    grad: np.ndarray,
    approx: np.ndarray,
    classes: ElementClasses,
    hints: dict[str, float] | None = None,
) -> str:
    """Explain a failing block in words, with the evidence.

    Recognises a zero (missing) gradient, a sign flip, a scale error with its factor, a
    transposed gradient and errors confined to some elements; otherwise "unexplained".
    ``hints`` may name known quantities (``{"m, the number of examples": 3}``) that a factor
    is compared with.
    """
    g, a = grad.astype(np.float64), approx.astype(np.float64)
    na, ng = float(np.linalg.norm(a)), float(np.linalg.norm(g))
    worst = int(np.argmax(np.abs(g - a)))
    evidence = (
        f"worst element {_where(name, shape, worst)}: backprop {g[worst]:.6g}, "
        f"numerical {a[worst]:.6g}"
    )
    d = "d" + name
    if ng <= 1e-12 * na or not np.any(g):
        return f"{d} is missing: backprop gives zero, the numerical gradient has norm {na:.3g}"
    if na > 0:
        k = float(np.dot(g, a) / np.dot(a, a))
        # the scale model must explain the discrepancy itself, not just the gradient
        resid = float(np.linalg.norm(g - k * a)) / max(float(np.linalg.norm(g - a)), 1e-300)
        if resid < TOLERANCES["scale_fit"]:
            if abs(k + 1) < 1e-3:
                return f"{d} has the wrong sign (backprop = -1 x numerical); {evidence}"
            sign = "has the wrong sign and " if k < 0 else ""
            size = "too large" if abs(k) > 1 else "too small"
            text = f"{d} {sign}is {nice_factor(abs(k))}x {size} (scale error, factor {k:.6g})"
            for label, value in (hints or {}).items():
                if value and abs(abs(k) - value) <= 1e-3 * value and value != 1:
                    text += f"; the factor equals {label}"
                elif value and abs(abs(k) - 1 / value) <= 1e-3 / value and value != 1:
                    text += f"; the factor equals 1/({label})"
            return f"{text}; {evidence}"
    if len(shape) == 2 and shape[0] == shape[1]:
        gt = g.reshape(shape).T.reshape(-1)
        if np.linalg.norm(gt - a) <= 1e-3 * na:
            return f"{d} is transposed: its transpose matches the numerical gradient; {evidence}"
    nbug = int(classes.bug.sum())
    if 0 < nbug < g.size:
        where = [_where(name, shape, int(i)) for i in np.flatnonzero(classes.bug)[:4]]
        more = ", ..." if nbug > 4 else ""
        ratio = g[classes.bug] / np.where(a[classes.bug] == 0, np.nan, a[classes.bug])
        extra = ""
        if np.all(np.isfinite(ratio)) and np.ptp(ratio) <= 1e-3 * np.max(np.abs(ratio)):
            extra = f", each {nice_factor(float(ratio[0]))}x the numerical value"
        return (
            f"{d}: {nbug} of {g.size} elements wrong ({', '.join(where)}{more}){extra}; "
            f"{evidence}"
        )
    rel = float(np.linalg.norm(g - a) / (ng + na))
    return f"{d} is wrong in a way not explained by scale, sign or transpose (relative "\
        f"difference {rel:.3g}); {evidence}"
