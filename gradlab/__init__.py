"""gradlab: check hand-written backpropagation against finite differences.

Public API::

    gradlab.check(cost, gradients, params, X, Y, method="central", eps="auto") -> CheckResult
    gradlab.assert_gradients(...)   # raises AssertionError naming block, element and values
    gradlab.check_function(fn, inputs)            # a torch/JAX function's backward (gradcheck)
    gradlab.assert_function_gradients(fn, inputs) # the same, raising AssertionError for pytest

torch and JAX are imported only when their tensors are checked.
"""

from .check import assert_gradients, check, check_problem
from .errors import GradlabError, ModelError, UsageError
from .finite_diff import METHODS
from .frameworks.function import assert_function_gradients, check_function
from .params import Layout
from .problem import Problem
from .result import BlockResult, CheckResult, relative_difference

__all__ = [
    "check",
    "assert_gradients",
    "check_problem",
    "check_function",
    "assert_function_gradients",
    "CheckResult",
    "BlockResult",
    "Problem",
    "Layout",
    "METHODS",
    "relative_difference",
    "GradlabError",
    "ModelError",
    "UsageError",
]

__version__ = "0.1.0"
