"""Finite-difference estimates of a gradient, one coordinate at a time.

A method is a stencil kept as data in :data:`METHODS`: the steps (multiples of ``eps``) at which
the cost is evaluated along coordinate ``i`` and the weights that combine them. The cost at the
perturbed points comes from an *evaluator* ``costs(theta, steps, indices) -> (len(steps),
len(indices))``; :func:`loop_costs` is the plain reference (one perturbed copy per evaluation);
the fast engine provides the same function computed with less work.

The measured noise of the cost and the automatic step choice live in :mod:`gradlab.probes`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import lookup
from .vocab import METHOD_NAMES

__all__ = [
    "Method",
    "METHODS",
    "get_method",
    "loop_costs",
    "estimate",
    "stencil",
    "combine",
    "complex_safety",
    "machine_eps",
    "Evaluator",
]

Evaluator = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """A finite-difference stencil.

    Attributes:
        name: as given on the command line.
        offsets: steps in units of eps (imaginary for the complex step).
        weights: weights of the costs at those steps.
        center: weight of the unperturbed cost J(theta).
        order: truncation order p (error ~ eps**p).
        roundoff: sum of |weights|: the factor by which cost noise enters, over eps.
        default_eps: the fixed step used when a step is not chosen automatically.
    """

    name: str
    offsets: tuple[complex, ...]
    weights: tuple[float, ...]
    center: float
    order: int
    default_eps: float

    @property
    def is_complex(self) -> bool:
        """True for the complex-step method."""
        return any(isinstance(o, complex) for o in self.offsets)

    @property
    def roundoff(self) -> float:
        """Noise amplification: sum of |weights| (0 for the complex step)."""
        if self.is_complex:
            return 0.0
        return float(sum(abs(w) for w in self.weights) + abs(self.center))


_FORWARD, _CENTRAL, _FIVE_POINT, _COMPLEX_STEP = METHOD_NAMES
#: the stencils, under the names of :data:`gradlab.vocab.METHOD_NAMES` and in their order
METHODS: dict[str, Method] = {
    _FORWARD: Method(_FORWARD, (1.0,), (1.0,), -1.0, 1, 1e-7),
    _CENTRAL: Method(_CENTRAL, (1.0, -1.0), (0.5, -0.5), 0.0, 2, 1e-7),
    _FIVE_POINT: Method(
        _FIVE_POINT, (2.0, 1.0, -1.0, -2.0), (-1 / 12, 8 / 12, -8 / 12, 1 / 12), 0.0, 4, 1e-3
    ),
    _COMPLEX_STEP: Method(_COMPLEX_STEP, (1j,), (1.0,), 0.0, 2, 1e-20),
}


def get_method(name: str) -> Method:
    """Look up a method by name.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    return lookup(METHODS, name, "method")


def machine_eps(dtype: np.dtype) -> float:
    """Unit round-off of a real or complex dtype (float64 for integers)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        dtype = np.empty(0, dtype).real.dtype
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    return float(np.finfo(dtype).eps)


def perturbed_dtype(dtype: np.dtype, complex_steps: bool) -> np.dtype:
    """The dtype of a perturbed copy of theta: complex of the same precision for complex steps."""
    dtype = np.dtype(dtype)
    if complex_steps:
        return np.result_type(dtype, np.complex64)
    return dtype


def loop_costs(
    f: Callable[[np.ndarray], complex | float],
    theta: np.ndarray,
    steps: np.ndarray,
    indices: np.ndarray,
) -> np.ndarray:
    """The reference evaluator: ``J(theta + steps[k] * e_i)`` one copy at a time.

    Args:
        f: cost of a flat parameter vector.
        theta: the flat point.
        steps: absolute steps (real, or imaginary for the complex step).
        indices: coordinates to perturb.

    Returns:
        Array of shape (len(steps), len(indices)); complex when a step is complex.
    """
    steps = np.asarray(steps)
    is_c = np.iscomplexobj(steps)
    dtype = perturbed_dtype(theta.dtype, is_c)
    out = np.empty((len(steps), len(indices)), dtype=np.complex128 if is_c else np.float64)
    base = theta.astype(dtype)
    for col, i in enumerate(indices):
        for row, step in enumerate(steps):
            t = base.copy()
            t[i] = t[i] + step
            out[row, col] = f(t)
    return out


def estimate(
    method: Method,
    eps: float,
    costs: Evaluator,
    theta: np.ndarray,
    indices: np.ndarray,
    j0: float,
) -> np.ndarray:
    """Finite-difference estimate of dJ/dtheta_i for each index.

    Args:
        method: the stencil.
        eps: the step.
        costs: evaluator returning J at the perturbed points.
        theta: the flat point.
        indices: coordinates to estimate.
        j0: J(theta), used by stencils with a centre weight.

    Returns:
        Float64 array, one estimate per index.
    """
    values = costs(theta, np.array(stencil(method, eps)), indices)
    return combine(method, eps, list(values), j0)


def stencil(method: Method, eps: float) -> list[complex | float]:
    """The absolute steps at which ``method`` evaluates the cost for step ``eps``."""
    return [o * eps for o in method.offsets]


def combine(method: Method, eps: float, rows: list[np.ndarray], j0: float) -> np.ndarray:
    """The estimates from the costs at the stencil's steps (one row per step, in order)."""
    if method.is_complex:
        return np.imag(rows[0]) / eps
    total = np.zeros(np.shape(rows[0]))
    for w, row in zip(method.weights, rows, strict=True):
        total += w * np.real(row)
    if method.center:
        total += method.center * j0
    return total / eps


def complex_safety(
    f: Callable[[np.ndarray], complex],
    theta: np.ndarray,
    j0: float,
    seed: int = 0,
) -> str | None:
    """Check that the cost can be evaluated with complex parameters (needed for complex step).

    Compares the complex-step directional derivative along a random direction with a central
    difference. Returns ``None`` when safe, else a one-line reason.
    """
    rng = np.random.default_rng(seed + 7)
    v = rng.standard_normal(theta.size)
    v /= np.linalg.norm(v)
    h = 1e-20
    ctype = perturbed_dtype(theta.dtype, True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            value = f(theta.astype(ctype) + 1j * h * v)
    except Exception as exc:  # the user's code, any failure means "not complex-safe"
        return f"the cost fails on complex input ({type(exc).__name__}: {exc})"
    value = np.asarray(value)
    if not np.iscomplexobj(value):
        return "the cost drops the imaginary part (returns a real number for complex input)"
    d_complex = float(np.imag(value)) / h
    u = machine_eps(theta.dtype)
    t = max(1.0, float(np.linalg.norm(theta))) * u ** (1 / 3)
    d_central = (
        float(np.real(f(theta + t * v))) - float(np.real(f(theta - t * v)))
    ) / (2 * t)
    tol = 1e-4 * max(abs(d_central), abs(d_complex)) + 1e3 * u ** (2 / 3) * max(1.0, abs(j0))
    if not np.isfinite(d_complex) or abs(d_complex - d_central) > tol:
        return (
            "the cost is not complex-safe (abs(), comparisons or float() on parameters?): "
            f"complex-step slope {d_complex:.6g} vs central difference {d_central:.6g}"
        )
    return None
