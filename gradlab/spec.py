"""Model specs: turn a model name (or file), a bug variant and options into a Problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bugs import get_bug, ground_truth
from .errors import UsageError
from .fast import attach
from .models import linear1d
from .models.byo import byo_problem
from .models.mlp import MLP, seed_net
from .problem import Problem
from .vocab import DTYPE_NAMES

__all__ = ["ModelSpec", "build_problem", "truth_of", "parse_dims", "BUILTIN_MODELS", "DTYPES"]

BUILTIN_MODELS = ("linear1d", "seed-net", "mlp")
DTYPES = {name: np.dtype(name).type for name in DTYPE_NAMES}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that identifies one model instance.

    Attributes:
        model: ``linear1d``, ``seed-net``, ``mlp`` or a path to a .py file.
        variant: a catalogue variant (built-in networks only; ``correct`` otherwise).
        seed: draws the mlp's parameters, data and dropout masks; passed to a file's init().
        dims, examples, lambd, keep_prob: mlp settings (lambd and keep_prob also for seed-net).
        dtype: ``float64`` or ``float32`` for the built-in models.
    """

    model: str
    variant: str = "correct"
    seed: int = 0
    dims: tuple[int, ...] = (4, 5, 3, 1)
    examples: int = 3
    lambd: float = 0.0
    keep_prob: float = 1.0
    dtype: str = "float64"


def _network(spec: ModelSpec) -> MLP:
    dtype = DTYPES[spec.dtype]
    if spec.model == "seed-net":
        net = seed_net()
        if spec.lambd or spec.keep_prob < 1:
            rng = np.random.default_rng(spec.seed)
            net.lambd, net.keep_prob = float(spec.lambd), float(spec.keep_prob)
            if spec.keep_prob < 1:
                net.masks = {k: rng.random((net.dims[k], net.X.shape[1])) < spec.keep_prob
                             for k in range(1, net.layers)}
        net.params = {k: v.astype(dtype) for k, v in net.params.items()}
        net.X, net.Y = net.X.astype(dtype), net.Y.astype(dtype)
        return net
    try:
        return MLP.random(spec.dims, spec.examples, spec.seed, spec.lambd, spec.keep_prob, dtype)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def build_problem(spec: ModelSpec) -> Problem:
    """Build the problem for a model spec.

    Raises:
        UsageError: unknown model, variant or dtype; impossible mlp settings; a variant on a
            model that has no catalogue (linear1d, a user's file).
        ModelError: a user's model file that does not load or behave.
    """
    if spec.dtype not in DTYPES:
        raise UsageError(f"unknown dtype {spec.dtype!r}; choose one of: {', '.join(DTYPES)}")
    try:
        bug = get_bug(spec.variant)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if spec.model == "linear1d" or spec.model.endswith(".py") or Path(spec.model).is_file():
        if spec.variant != "correct":
            raise UsageError(
                f"variant {spec.variant!r} applies to the built-in networks (seed-net, mlp) "
                f"only; {spec.model} has its own backward"
            )
        if spec.model == "linear1d":
            x = np.array(2.0, dtype=DTYPES[spec.dtype])
            return Problem("linear1d", linear1d.params(dtype=DTYPES[spec.dtype]), x, None,
                           linear1d.cost, linear1d.gradients, complex_safe=True,
                           source="linear1d")
        return byo_problem(spec.model, spec.seed)
    if spec.model not in BUILTIN_MODELS:
        raise UsageError(
            f"unknown model {spec.model!r}; choose one of: {', '.join(BUILTIN_MODELS)}, "
            "or give the path of a .py file"
        )
    net = _network(spec)
    backprop = bug.backprop()

    def gradients(params, X, Y):
        return net.gradients(params, X, Y, backprop)

    m = net.X.shape[1]
    hints = {"m, the number of examples": float(m)}
    if net.keep_prob < 1:
        hints["keep_prob"] = net.keep_prob
    problem = Problem(
        name=spec.model, params=dict(net.params), X=net.X, Y=net.Y, cost=net.cost,
        gradients=gradients, complex_safe=True, source=spec.model,
        info={"network": net, "bug": bug, "factor_hints": hints},
    )
    attach(problem, net)
    return problem


def truth_of(problem: Problem) -> dict[str, float]:
    """Ground truth of a built-in network problem: changed blocks and their relative change."""
    net, bug = problem.info.get("network"), problem.info.get("bug")
    if net is None or bug is None:
        return {}
    return ground_truth(net, bug)


def parse_dims(text: str | Sequence[int]) -> tuple[int, ...]:
    """Parse ``"4,5,3,1"`` into a tuple of ints.

    Raises:
        UsageError: not a comma-separated list of positive integers.
    """
    if not isinstance(text, str):
        return tuple(int(x) for x in text)
    try:
        dims = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--dims {text!r}: give comma-separated layer sizes, e.g. 4,5,3,1") \
            from None
    return dims
