"""The thing the engine checks: a cost, the gradients claimed for it, and a point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Problem", "CostFn", "GradFn"]

CostFn = Callable[[Mapping[str, np.ndarray], Any, Any], Any]
GradFn = Callable[[Mapping[str, np.ndarray], Any, Any], Mapping[str, Any]]


@dataclass
class Problem:
    """A gradient-check problem.

    Attributes:
        name: what to call it in messages and tables.
        params: the point to check at, ``{name: array}`` in flattening order.
        X, Y: data passed through to ``cost`` and ``gradients``.
        cost: ``cost(params, X, Y) -> scalar``.
        gradients: ``gradients(params, X, Y) -> {"dW1": ..., ...}`` (the backprop under test).
        fast: optional object with ``costs(theta, steps, indices) -> array`` evaluating the cost
            exactly at ``theta + step * e_i`` for every step and index (the fast engine's hook).
        cost_batch: optional vectorised cost, ``cost_batch(list_of_params, X, Y) -> array``.
        complex_safe: ``True`` when known to accept complex parameters, ``None`` when unknown.
        source: where the model came from (a built-in name or a file path), for messages.
    """

    name: str
    params: dict[str, np.ndarray]
    X: Any
    Y: Any
    cost: CostFn
    gradients: GradFn
    fast: Any = None
    cost_batch: Callable[..., Any] | None = None
    complex_safe: bool | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)
