"""The set-up of one check, and the state its steps pass along.

- :func:`prepare`: flatten the point, pick the evaluators (the fast engine, a model's
  ``cost_batch``, or the loop), evaluate ``J(theta)`` and call backprop on copies, naming any
  input a model changes in place;
- :class:`Run` (the point, evaluators, J, backprop's gradients, notes) and :class:`Estimate`
  (per block the step and the measured noise, per element the estimate).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ModelError, UsageError
from .finite_diff import Method, loop_costs
from .params import GradientKeyError, Layout
from .problem import Problem

__all__ = ["ENGINES", "Counter", "Memo", "Run", "Estimate", "prepare", "share_costs"]

ENGINES = ("auto", "loop", "fast")


def _scalar(value: Any, source: str) -> complex | float:
    """Turn a cost function's return value into one number, or explain what was wrong."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "fiucb":
        raise ModelError(
            f"{source} must return one number; it returned {type(value).__name__}"
            + (f" with shape {arr.shape}" if arr.dtype.kind in "fiucb" else "")
        )
    return arr.reshape(()).item()


class Counter:
    """Wraps an evaluator and counts the perturbed evaluations it made."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, theta, steps, indices):
        self.count += len(steps) * len(indices)
        return self.fn(theta, steps, indices)


class Memo:
    """Remembers an evaluator's answers to whole requests (the same steps at the same indices),
    so that checks of the same cost at the same point (the variants and mutations of one
    model, sharing their ``estimates``) ask each one once: the re-checks of a suspect that
    every mutation of a model has, its noise measurement.

    Whole requests, not single costs: an evaluator may round a cost differently in another
    company (the fast engine picks its series length per call, the loop takes a complex path
    for a real step among complex ones), and a shared answer must be the one a fresh call
    gives.
    """

    def __init__(self, fn, store: dict):
        self.fn, self.store = fn, store

    def __call__(self, theta, steps, indices):
        steps = np.asarray(steps)
        indices = np.asarray(indices, dtype=np.intp)
        key = (steps.dtype.str, steps.shape, steps.tobytes(), indices.tobytes())
        if key not in self.store:
            self.store[key] = self.fn(theta, steps, indices)
        return self.store[key].copy()


def share_costs(run: Run, store: dict) -> None:
    """Let a check reuse the costs other checks of the same cost at the same point computed
    (kept in ``store``): the re-check evaluator's by (step, index), the plain cost's by the
    exact point (the Taylor test's). The values are the ones a fresh evaluation gives."""
    run.rechecker.fn = Memo(run.rechecker.fn, store.setdefault("perturbed", {}))
    points = store.setdefault("points", {})
    cost = run.flat_cost

    def flat_cost(vec: np.ndarray):
        # the point's digest, not its bytes: a large model's points would pile up
        key = (vec.dtype.str, hashlib.blake2b(vec.tobytes(), digest_size=16).digest())
        if key not in points:
            points[key] = cost(vec)
        return points[key]

    run.flat_cost = flat_cost


def _evaluator(problem: Problem, layout: Layout, engine: str):
    """Pick the evaluator.

    ``auto``: the problem's fast one when it has one (the plain loop for tiny networks), a
    bring-your-own model's vectorised or parallel evaluator, else the loop. ``fast``: the fast
    engine even for tiny networks (an error for a model without one). ``loop``: the reference.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if engine == "fast" and problem.fast is None:
        raise UsageError(f"engine 'fast' needs a built-in network; {problem.name} has none "
                         "(use auto or loop)")

    def flat_cost(vec: np.ndarray):
        value = problem.cost(layout.unflatten(vec), problem.X, problem.Y)
        return _scalar(value, _cost_name(problem))

    fast = problem.fast
    if fast is not None and (engine == "fast" or (engine == "auto" and not fast.tiny)):
        return flat_cost, fast.costs, fast.name
    if engine == "auto":  # bring-your-own: its cost_batch, else the loop on all cores if it pays
        from .fast import generic_evaluator

        other = generic_evaluator(problem, layout, flat_cost)
        return flat_cost, other.costs, other.name

    def loop(theta, steps, indices):
        return loop_costs(flat_cost, theta, steps, indices)

    return flat_cost, loop, "loop"


def _cost_name(problem: Problem) -> str:
    return f"{problem.source}: cost()" if problem.source else "cost()"


def _prefix(problem: Problem) -> str:
    return f"{problem.source}: " if problem.source else ""


@dataclass
class Run:
    """What every step of one check needs: the point, the evaluators, J and backprop."""

    problem: Problem
    layout: Layout
    theta: np.ndarray
    flat_cost: Any
    counter: Counter
    rechecker: Counter
    engine: str
    j0: complex | float = 0.0
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        """Perturbed cost evaluations made so far."""
        extra = self.rechecker.count if self.rechecker is not self.counter else 0
        return self.counter.count + extra


@dataclass
class Estimate:
    """Per block: the step, the measured noise; per element: the estimate. Shareable."""

    method: Method
    steps: np.ndarray
    noise: np.ndarray
    approx: np.ndarray
    notes: list[str]
    screened: np.ndarray  # per block: left to the screen (its estimates are NaN)
    truncation: np.ndarray  # per block: relative truncation error measured on its probes


def _snapshot(value: Any) -> Any:
    """A copy of a model input to compare with after a call (arrays and dicts of arrays)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    return None


def _changed(before: Any, after: Any, label: str) -> list[str]:
    """Names of the arrays in ``after`` that differ from their snapshot ``before``."""
    if isinstance(before, np.ndarray):
        same = (isinstance(after, np.ndarray) and after.shape == before.shape
                and np.array_equal(after, before, equal_nan=True))
        return [] if same else [label]
    if isinstance(before, dict) and isinstance(after, Mapping):
        return [n for k, v in before.items() for n in _changed(v, after.get(k), f"{label}[{k!r}]")]
    return []


def prepare(problem: Problem, engine: str) -> Run:
    """Flatten the point, pick the evaluators, evaluate J there and call backprop."""
    try:
        layout = Layout.of(problem.params)
    except ValueError as exc:
        raise ModelError(f"{problem.source or problem.name}: {exc}") from None
    theta = layout.flatten(problem.params)
    flat_cost, costs, engine_name = _evaluator(problem, layout, engine)
    counter = Counter(costs)
    # noise probes and re-checks of suspect elements: the fast engine whenever the model has
    # one (a tiny network's main estimate uses the loop only to reproduce the seed's digits)
    rechecker = counter
    if engine != "loop" and problem.fast is not None and engine_name != "fast":
        rechecker = Counter(problem.fast.costs)
    run = Run(problem, layout, theta, flat_cost, counter, rechecker, engine_name)
    run.notes.extend(problem.info.get("notes", []))  # e.g. a framework model's vmap fallback
    inputs = {"X": _snapshot(problem.X), "Y": _snapshot(problem.Y)}
    run.j0 = flat_cost(theta.copy())
    moved = [n for k, v in inputs.items() for n in _changed(v, getattr(problem, k), k)]
    if moved:
        raise ModelError(
            f"{_cost_name(problem)} changes {', '.join(moved)} in place; a cost must not "
            "modify its inputs (gradlab evaluates it many times at the same data)"
        )
    run.grads = _backprop(problem, layout, run)
    return run


def _backprop(problem: Problem, layout: Layout, run: Run) -> dict[str, np.ndarray]:
    """Call ``gradients()`` on copies; name any input it changed in place."""
    params_copy = {k: np.array(v, copy=True) for k, v in problem.params.items()}
    data = {"X": _snapshot(problem.X), "Y": _snapshot(problem.Y)}
    args = [data[k] if data[k] is not None else getattr(problem, k) for k in ("X", "Y")]
    raw = problem.gradients(params_copy, *args)
    moved = _changed(dict(problem.params), params_copy, "params")
    moved += [n for k, a in zip(("X", "Y"), args, strict=True)
              for n in _changed(getattr(problem, k), a, k)]
    if moved:
        run.notes.append(
            f"gradients() changed {', '.join(moved)} in place (gradlab passed it copies, so the "
            "check below is unaffected; your callers' arrays would be modified)"
        )
    if not isinstance(raw, Mapping):
        raise ModelError(
            f"{_prefix(problem)}gradients() must return a dict of arrays, it returned "
            f"{type(raw).__name__}"
        )
    try:
        return layout.gradient_blocks(raw)
    except GradientKeyError as exc:
        raise ModelError(f"{_prefix(problem)}{exc}") from None
