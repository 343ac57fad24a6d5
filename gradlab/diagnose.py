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

__all__ = ["diagnose", "nice_factor", "element_name", "shape_diagnosis", "rearrangement"]


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


def rearrangement(g: np.ndarray, a: np.ndarray) -> str | None:
    """Describe ``g`` as an axis permutation and/or reversal of ``a`` (same shape), or None.

    Tries every permutation of axes that keeps the shape and every set of reversed axes
    (rank up to 4). Returns e.g. ``"transposed"``, ``"flipped along axes 0, 1"`` or
    ``"axes permuted as (1, 0, 2)"``.
    """
    if g.ndim == 0 or g.ndim > 4 or g.size < 2:
        return None
    tol = TOLERANCES["pattern_fit"] * max(float(np.linalg.norm(a)), 1e-300)
    for perm in itertools.permutations(range(g.ndim)):
        if tuple(a.shape[p] for p in perm) != a.shape:
            continue
        moved = np.transpose(a, perm)
        for n_flip in range(g.ndim + 1):
            for axes in itertools.combinations(range(g.ndim), n_flip):
                if perm == tuple(range(g.ndim)) and not axes:
                    continue  # the identity
                cand = np.flip(moved, axis=axes) if axes else moved
                if np.linalg.norm(g - cand) <= tol:
                    return _describe(perm, axes, g.ndim)
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


def _factor_text(d: str, k: float, hints: dict[str, float]) -> str:
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
            return f"{_factor_text(d, k, hints or {})}; {evidence}"
    how = rearrangement(g.reshape(shape), a.reshape(shape)) if shape else None
    if how:
        return f"{d} is {how}: so rearranged it matches the numerical gradient; {evidence}"
    nbug = int(classes.bug.sum())
    if 0 < nbug < g.size:
        where = [element_name(name, shape, int(i)) for i in np.flatnonzero(classes.bug)[:4]]
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
    return f"{d} is wrong in a way not explained by scale, sign or rearranged axes (relative "\
        f"difference {rel:.3g}); {evidence}"
