"""Diagnoses: what a failing block's error is, in words, with the evidence.

Tried in order: a missing (zero) gradient, a one-element block (its two values), a scale or
sign error ``g = k a`` (with the factor compared with known quantities such as ``m``), an axis
permutation or reversal (transposed, flipped kernel, swapped axes), errors confined to some
elements, else "unexplained" with the worst element.
"""

from __future__ import annotations

import itertools

import numpy as np

from .verdict import TOLERANCES, ElementClasses

__all__ = [
    "diagnose", "nice_factor", "element_name", "shape_diagnosis", "rearrangement",
    "rearrangements", "factor_text", "wrong_elements",
]


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


def element_name(name: str, shape: tuple[int, ...], flat_index: int) -> str:
    """``W[2, 0]`` for an element of a block; a scalar parameter is just ``s``."""
    if not shape:
        return name
    idx = np.unravel_index(flat_index, shape)
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]"


def rearrangements(shape: tuple[int, ...]):
    """Every axis permutation and/or reversal that keeps ``shape`` and moves some element.

    Yields ``(description, index)``: ``a.reshape(-1)[index]`` is the rearranged ``a`` (rank 1
    to 4; size-1 axes are never "moved").
    """
    ndim = len(shape)
    if ndim == 0 or ndim > 4 or int(np.prod(shape)) < 2:
        return
    order = np.arange(int(np.prod(shape))).reshape(shape)
    for perm in itertools.permutations(range(ndim)):
        if tuple(shape[p] for p in perm) != tuple(shape):
            continue
        for n_flip in range(ndim + 1):
            for axes in itertools.combinations([ax for ax in range(ndim) if shape[ax] > 1],
                                               n_flip):
                moved = np.transpose(order, perm)
                moved = np.flip(moved, axis=axes) if axes else moved
                if not np.array_equal(moved, order):
                    yield _describe(perm, axes, ndim), moved.reshape(-1)


def rearrangement(g: np.ndarray, a: np.ndarray) -> str | None:
    """Describe ``g`` as an axis permutation and/or reversal of ``a`` (same shape), or None.

    Returns e.g. ``"transposed"``, ``"flipped along axis 2"`` or ``"axes permuted as
    (1, 0, 2)"`` when that rearrangement of ``a`` matches ``g`` and explains the discrepancy.
    """
    # the rearranged estimate must match backprop and explain the discrepancy
    tol = min(TOLERANCES["pattern_fit"] * float(np.linalg.norm(a)),
              TOLERANCES["scale_fit"] * float(np.linalg.norm(g - a)))
    flat_a, flat_g = a.reshape(-1), g.reshape(-1)
    for text, index in rearrangements(a.shape):
        if np.linalg.norm(flat_g - flat_a[index]) <= tol:
            return text
    return None


def _describe(perm: tuple[int, ...], axes: tuple[int, ...], ndim: int) -> str:
    parts = []
    if perm != tuple(range(ndim)):
        parts.append("transposed" if ndim == 2 else f"axes permuted as {perm}")
    if axes:
        if ndim == 1 or len(axes) == ndim:
            parts.append("reversed" if ndim == 1 else "flipped along every axis")
        else:
            parts.append(f"flipped along axis {', '.join(map(str, axes))}")
    return " and ".join(parts)


def shape_diagnosis(name: str, shape: tuple[int, ...], g: np.ndarray, a: np.ndarray) -> str:
    """Explain a gradient whose shape differs from its parameter's."""
    d = "d" + name
    text = f"{d} has shape {g.shape} but parameter {name} has shape {tuple(shape)}"
    if g.ndim == 2 and g.T.shape == tuple(shape) and a.size == g.size:
        if np.allclose(g.T.reshape(-1), a.reshape(-1), rtol=1e-3, atol=1e-8):
            return f"{d} is transposed: {text}; its transpose matches the numerical gradient"
        return f"{d} looks transposed: {text}"
    if g.size == a.size:
        text += " (same number of elements: a missing keepdims or a reshape?)"
    return text


def factor_text(d: str, k: float, hints: dict[str, float]) -> str:
    """``dW2 is 2x too large (scale error, factor 2)``, with any known quantity it equals."""
    if abs(k + 1) < 1e-3:
        return f"{d} has the wrong sign (backprop = -1 x numerical)"
    sign = "has the wrong sign and " if k < 0 else ""
    size = "too large" if abs(k) > 1 else "too small"
    text = f"{d} {sign}is {nice_factor(abs(k))}x {size} (scale error, factor {k:.6g})"
    for label, value in hints.items():
        if not value or value == 1:
            continue
        if abs(abs(k) - value) <= 1e-3 * value:
            text += f"; the factor equals {label}"
        elif abs(abs(k) - 1 / value) <= 1e-3 / value:
            text += f"; the factor equals 1/({label})"
    return text


def wrong_elements(name: str, shape: tuple[int, ...], idx: np.ndarray, g: np.ndarray,
                   a: np.ndarray) -> str:
    """``dW: 2 of 20 elements wrong (W[0, 1], W[3, 2]), each 2x the numerical value``.

    Args:
        idx: flat indices of the wrong elements; g, a: their backprop and numerical values.
    """
    n = int(np.prod(shape)) if shape else 1
    where = [element_name(name, shape, int(i)) for i in idx[:4]]
    more = ", ..." if len(idx) > 4 else ""
    ratio = g / np.where(a == 0, np.nan, a)
    extra = ""
    if np.all(np.isfinite(ratio)) and np.ptp(ratio) <= 1e-3 * np.max(np.abs(ratio)):
        extra = f", each {nice_factor(float(ratio[0]))}x the numerical value"
    return f"d{name}: {len(idx)} of {n} elements wrong ({', '.join(where)}{more}){extra}"


def diagnose(
    name: str,
    shape: tuple[int, ...],
    grad: np.ndarray,
    approx: np.ndarray,
    classes: ElementClasses,
    hints: dict[str, float] | None = None,
) -> str:
    """Explain a failing block in words, with the evidence.

    Args:
        name: the parameter's name; shape: its shape.
        grad, approx: flattened backprop gradient and numerical estimate.
        classes: the per-element classification (which elements are bugs).
        hints: known quantities a scale factor is compared with, e.g.
            ``{"m, the number of examples": 64}``.

    Returns:
        One sentence: the kind of error and the worst element with both values.
    """
    g, a = grad.astype(np.float64), approx.astype(np.float64)
    na, ng = float(np.linalg.norm(a)), float(np.linalg.norm(g))
    worst = int(np.argmax(np.abs(g - a)))
    evidence = (
        f"worst element {element_name(name, shape, worst)}: backprop {g[worst]:.6g}, "
        f"numerical {a[worst]:.6g}"
    )
    d = "d" + name
    if ng <= 1e-12 * na or not np.any(g):
        return f"{d} is missing: backprop gives zero, the numerical gradient has norm {na:.3g}"
    if g.size == 1:
        return f"{d} is wrong: backprop {g[0]:.6g}, numerical {a[0]:.6g}"
    if na > 0:
        k = float(np.dot(g, a) / np.dot(a, a))
        # the scale model must explain the discrepancy itself, not just the gradient
        resid = float(np.linalg.norm(g - k * a)) / max(float(np.linalg.norm(g - a)), 1e-300)
        if resid < TOLERANCES["scale_fit"]:
            return f"{factor_text(d, k, hints or {})}; {evidence}"
    how = rearrangement(g.reshape(shape), a.reshape(shape)) if shape else None
    if how:
        return f"{d} is {how}: so rearranged it matches the numerical gradient; {evidence}"
    nbug = int(classes.bug.sum())
    if 0 < nbug < g.size:
        idx = np.flatnonzero(classes.bug)
        return f"{wrong_elements(name, shape, idx, g[idx], a[idx])}; {evidence}"
    rel = float(np.linalg.norm(g - a) / (ng + na))
    return f"{d} is wrong in a way not explained by scale, sign or rearranged axes (relative "\
        f"difference {rel:.3g}); {evidence}"
