"""Fast evaluators of the perturbed costs ``J(theta + step e_i)``.

- :class:`FastMLP` (:mod:`gradlab.fast.mlp`): the built-in networks, exact up to rounding with
  a few GEMMs per layer instead of 2P forward passes. :func:`attach` hooks it to a problem.
- :func:`generic_evaluator` (:mod:`gradlab.fast.byo`): a bring-your-own model's vectorised
  ``cost_batch`` when it declares one, else the plain loop spread over the machine's cores when
  the loop is long enough for that to pay.

Only numpy is imported here (the CLI imports this package on every ``gradlab check``).
"""

from __future__ import annotations

from ..params import Layout
from .byo import generic_evaluator
from .mlp import FastMLP

__all__ = ["attach", "FastMLP", "generic_evaluator"]


def attach(problem, net) -> None:
    """Give ``problem`` the fast engine of the network ``net`` (``problem.fast``).

    :func:`gradlab.check.check_problem` then runs with numpy's BLAS on one thread
    (:func:`gradlab.fast.blas.fast_problems_single_thread`): the built-in networks' products are
    small, and on a busy machine OpenBLAS's threads make them several times slower, not faster.
    """
    try:
        layout = Layout.of(problem.params)
        problem.fast = FastMLP(net, layout)
    except ValueError:  # an unexpected parameter layout: keep the plain loop
        problem.fast = None
