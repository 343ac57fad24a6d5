"""The thing the engine checks: a cost, the gradients claimed for it, and a point."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Problem", "CostFn", "GradFn", "FastEngine", "KinkRadius"]

CostFn = Callable[[Mapping[str, np.ndarray], Any, Any], Any]
GradFn = Callable[[Mapping[str, np.ndarray], Any, Any], Mapping[str, Any]]
#: ``kink_radius(theta, indices) -> radii``: per coordinate, the step below which the cost
#: along it crosses no kink (``inf`` where none can be reached)
KinkRadius = Callable[[np.ndarray, np.ndarray], np.ndarray]


class FastEngine(Protocol):
    """What a fast engine (``Problem.fast``) provides to the check.

    Every attribute is required; ``kink_radius`` may be ``None`` for an engine that does not
    know where the cost has kinks (then the check cannot tell a kink from a bug by position).

    Attributes:
        name: the engine's name in results (``"fast"``, ``"torch-vmap"``).
        tiny: True for models so small that the check uses the plain loop instead (it costs
            well under a millisecond per coordinate there and reproduces reference digits).
        kink_radius: see :data:`KinkRadius`, or ``None``.
    """

    name: str
    kink_radius: KinkRadius | None

    @property
    def tiny(self) -> bool:
        """True when the plain loop should be used instead of this engine."""

    def costs(self, theta: np.ndarray, steps: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """``J(theta + steps[k] e_i)`` for every step k and index i, shape
        ``(len(steps), len(indices))``, exact up to rounding."""


@dataclass
class Problem:
    """A gradient-check problem.

    Attributes:
        name: what to call it in messages and tables.
        params: the point to check at, ``{name: array}`` in flattening order.
        X, Y: data passed through to ``cost`` and ``gradients``.
        cost: ``cost(params, X, Y) -> scalar``.
        gradients: ``gradients(params, X, Y) -> {"dW1": ..., ...}`` (the backprop under test).
        fast: the fast engine (:class:`FastEngine`), or ``None``: evaluates the cost exactly
            at ``theta + step * e_i`` for many steps and indices at once.
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
    fast: FastEngine | None = None
    cost_batch: Callable[..., Any] | None = None
    complex_safe: bool | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def kink_radius(self) -> KinkRadius | None:
        """The fast engine's :data:`KinkRadius`, when it has an engine that knows its kinks."""
        return self.fast.kink_radius if self.fast is not None else None
