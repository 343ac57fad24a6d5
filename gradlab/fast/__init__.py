"""Fast evaluators of the perturbed costs ``J(theta + step e_i)``.

- :class:`FastMLP` (:mod:`gradlab.fast.mlp`): the built-in networks, exact up to rounding with
  a few GEMMs per layer instead of 2P forward passes. :func:`attach` hooks it to a problem.
- :func:`generic_evaluator` (:mod:`gradlab.fast.byo`): a bring-your-own model's vectorised
  ``cost_batch`` when it declares one, else the plain loop spread over the machine's cores when
  the loop is long enough for that to pay.

Only numpy is imported here (the CLI imports this package on every ``gradlab check``).
"""

from __future__ import annotations

import functools

from ..params import Layout
from .blas import single_thread
from .byo import generic_evaluator
from .mlp import FastMLP

__all__ = ["attach", "FastMLP", "generic_evaluator"]


def attach(problem, net) -> None:
    """Give ``problem`` the fast engine of the network ``net`` (``problem.fast``).

    Also runs the problem's cost and gradients with numpy's BLAS on one thread
    (:func:`gradlab.fast.blas.single_thread`): the built-in networks' products are small, and
    on a busy machine OpenBLAS's threads make them several times slower, not faster.
    """
    try:
        layout = Layout.of(problem.params)
        problem.fast = FastMLP(net, layout)
    except ValueError:  # an unexpected parameter layout: keep the plain loop
        problem.fast = None
    problem.cost = _one_thread(problem.cost)
    problem.gradients = _one_thread(problem.gradients)


def _one_thread(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        with single_thread():
            return fn(*args, **kwargs)

    return call
