"""Injected bugs for any model: mutations of a trusted reference gradient.

A *mutation* is an error of known kind and relative size put into a gradient whose ground truth
does not depend on the model's own backprop being right, so the sweep can measure how small a
bug in *this* model each method and step can see (the detection-limit curves):

- the reference of a built-in model (its ``correct`` variant, verified against the plain loop
  and the exact derivatives by the test suite) is its backprop, exact to rounding (its
  ``reference_error`` is the unit round-off of the model's dtype);
- the reference of a model file is a numerical gradient: five-point differences at two steps
  (``h`` and ``h/2``); the estimate at ``h/2`` is the reference and the relative difference of
  the two estimates, ``reference_error``, bounds its own error (truncation falls 16-fold from
  ``h`` to ``h/2``, so the difference is ~15x the remaining truncation error plus both
  roundings; twice it is taken, as the roundings of the two may partly cancel). A mutation
  smaller than 10x ``reference_error`` has no known ground truth.

Kinds (:data:`KINDS`): ``scale`` (block x (1 + r)), ``element`` (one element off by
r ||g||), ``fraction`` (10% of the elements off, error norm r ||g||), ``noise`` (Gaussian
error of norm r ||g|| over the block): their size r comes from a ladder; ``sign`` (block
negated: r = 2), ``zero`` (block zeroed: r = 1) and ``transpose`` (the block's axes swapped, a
vector reversed: r as computed) have a fixed size. The block is drawn from the seed. Every
mutation comes with its ground truth: the block and ``||mutated - reference|| / ||reference||``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .finite_diff import estimate, get_method, loop_costs
from .problem import Problem

__all__ = [
    "KINDS", "LADDER_KINDS", "FIXED_KINDS", "PREFIX", "REFERENCE", "Mutation", "variant_name",
    "parse_variant", "plan", "reference_gradient", "mutate", "mutated_problem", "as_checked",
]

LADDER_KINDS = ("scale", "element", "fraction", "noise")
FIXED_KINDS = ("sign", "zero", "transpose")
KINDS = LADDER_KINDS + FIXED_KINDS
PREFIX = "mut:"
REFERENCE = "mut:reference"  # the unmutated reference: false alarms are measured on it
FRACTION = 0.1
REFERENCE_STEP = 1e-3


@dataclass(frozen=True)
class Mutation:
    """One injected error: ``kind`` and, for the ladder kinds, its relative ``size`` r."""

    kind: str
    size: float = math.nan


def _label(size: float) -> str:
    from .vocab import eps_label

    return eps_label(float(size))


def variant_name(m: Mutation | None) -> str:
    """The cells' variant of a mutation: ``mut:scale:1e-04``, ``mut:sign``; the reference
    (``None``) is ``mut:reference``."""
    if m is None:
        return REFERENCE
    return f"{PREFIX}{m.kind}" + (f":{_label(m.size)}" if m.kind in LADDER_KINDS else "")


def parse_variant(name: str) -> Mutation | None:
    """Inverse of :func:`variant_name` (``None`` for the reference).

    Raises:
        ValueError: not a mutation variant.
    """
    if name == REFERENCE:
        return None
    if not name.startswith(PREFIX):
        raise ValueError(f"{name!r} is not a mutation variant")
    kind, _, size = name[len(PREFIX):].partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown mutation kind {kind!r}")
    return Mutation(kind, float(size) if size else math.nan)


def plan(kinds: list[str], sizes: list[float]) -> list[str]:
    """Variant names of the reference and of every mutation of ``kinds`` x ``sizes``."""
    out = [REFERENCE]
    for kind in kinds:
        if kind in LADDER_KINDS:
            out += [variant_name(Mutation(kind, s)) for s in sizes]
        else:
            out.append(variant_name(Mutation(kind)))
    return out


def reference_gradient(problem: Problem, trusted: bool) -> tuple[dict, dict[str, float]]:
    """The gradient mutations are applied to, and its estimated relative error per block.

    Args:
        problem: the model at its point.
        trusted: its backprop is verified correct (a built-in model's ``correct`` variant):
            use it (error 0); else compute the five-point reference.

    Returns:
        ``({name: array in the parameter's shape}, {name: relative error bound})``.
    """
    names = list(problem.params)
    if trusted:
        raw = problem.gradients({k: np.array(v, copy=True) for k, v in problem.params.items()},
                                problem.X, problem.Y)
        grads = {n: np.asarray(raw.get("d" + n, raw.get(n)), dtype=np.float64).reshape(
            np.shape(problem.params[n])) for n in names}
        # exact up to the rounding of its own precision (float32: ~1e-7)
        return grads, {n: _unit_roundoff(problem.params[n]) for n in names}
    shapes = [np.shape(problem.params[n]) for n in names]
    theta = np.concatenate([np.asarray(problem.params[n], dtype=np.float64).reshape(-1)
                            for n in names])
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def flat_cost(vec: np.ndarray) -> float:
        params = {n: vec[bounds[i]:bounds[i + 1]].reshape(shapes[i])
                  for i, n in enumerate(names)}
        return float(np.real(problem.cost(params, problem.X, problem.Y)))

    def costs(point: np.ndarray, steps: np.ndarray, indices: np.ndarray) -> np.ndarray:
        return loop_costs(flat_cost, point, steps, indices)

    method, idx = get_method("five-point"), np.arange(theta.size)
    coarse, fine = (estimate(method, h, costs, theta, idx, 0.0)
                    for h in (REFERENCE_STEP, REFERENCE_STEP / 2))
    grads, errors = {}, {}
    for i, n in enumerate(names):
        a, b = coarse[bounds[i]:bounds[i + 1]], fine[bounds[i]:bounds[i + 1]]
        norm = np.linalg.norm(b)
        grads[n] = b.reshape(shapes[i])
        errors[n] = float(2 * np.linalg.norm(a - b) / norm) if norm > 0 else math.inf
    return grads, errors


def _unit_roundoff(value: np.ndarray) -> float:
    dtype = np.asarray(value).dtype
    return float(np.finfo(dtype).eps) if dtype.kind == "f" else float(np.finfo(float).eps)


def as_checked(problem: Problem, reference: Mapping[str, np.ndarray],
               mutated: Mapping[str, np.ndarray], truth: Mapping[str, float]
               ) -> dict[str, float]:
    """The truth of a mutation as the check sees it: both gradients rounded to the parameters'
    precision (a 1e-8 error vanishes in float32); blocks whose change rounded away are dropped.
    """
    out = {}
    for name in truth:
        dtype = np.asarray(problem.params[name]).dtype
        a = np.asarray(mutated[name]).astype(dtype).astype(np.float64)
        b = np.asarray(reference[name]).astype(dtype).astype(np.float64)
        change = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        if change > 0:
            out[name] = change
    return out


def _transposed(g: np.ndarray) -> np.ndarray:
    if g.ndim == 2 and min(g.shape) > 1:
        return g.T.reshape(g.shape)
    return g.reshape(-1)[::-1].reshape(g.shape)


def mutate(m: Mutation, grads: Mapping[str, np.ndarray], seed: int
           ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Apply a mutation to one block of ``grads`` (drawn from ``seed``).

    Returns:
        ``(mutated gradients, {block: ||mutated - reference|| / ||reference||})``; the truth
        is empty when no block can carry the mutation (all zero, or all symmetric).
    """
    rng = np.random.default_rng([int(seed), KINDS.index(m.kind)])
    names = [n for n in grads if np.linalg.norm(grads[n]) > 0]
    if m.kind == "transpose":
        names = [n for n in names if np.linalg.norm(_transposed(grads[n]) - grads[n]) > 0]
    out = {n: np.array(g, dtype=np.float64, copy=True) for n, g in grads.items()}
    if not names:
        return out, {}
    name = names[int(rng.integers(len(names)))]
    g = out[name]
    norm = float(np.linalg.norm(g))
    flat = g.reshape(-1)
    if m.kind == "scale":
        new = g * (1.0 + m.size)
    elif m.kind == "sign":
        new = -g
    elif m.kind == "zero":
        new = np.zeros_like(g)
    elif m.kind == "transpose":
        new = _transposed(g)
    else:
        err = np.zeros(flat.size)
        if m.kind == "element":
            err[int(rng.integers(flat.size))] = 1.0 if rng.random() < 0.5 else -1.0
        elif m.kind == "fraction":
            k = max(1, round(FRACTION * flat.size))
            err[rng.choice(flat.size, size=k, replace=False)] = rng.standard_normal(k)
        else:  # noise
            err = rng.standard_normal(flat.size)
        new = (flat + err * (m.size * norm / np.linalg.norm(err))).reshape(g.shape)
    out[name] = new
    return out, {name: float(np.linalg.norm(new - g) / norm)}


def mutated_problem(problem: Problem, grads: Mapping[str, np.ndarray]) -> Problem:
    """``problem`` with its backprop replaced by ``grads`` (same cost, same point: it may share
    the model's finite-difference estimates)."""
    dtypes = {n: np.asarray(v).dtype for n, v in problem.params.items()}
    fixed = {"d" + n: np.asarray(g).astype(dtypes[n]) for n, g in grads.items()}

    def gradients(params, X, Y):
        return {k: v.copy() for k, v in fixed.items()}

    return replace(problem, gradients=gradients)
