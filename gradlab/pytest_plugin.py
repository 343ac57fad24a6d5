"""gradlab's pytest plugin (enabled by installing gradlab: the ``pytest11`` entry point).

Provides the ``gradcheck`` fixture: :func:`gradlab.assert_function_gradients`, which checks the
backward of a torch or JAX function and fails the test with a message naming the input, the
element, both values and the diagnosis. Tolerances come from the measured noise of the
function, so float32 needs no tuning::

    def test_my_layer(gradcheck):
        x = torch.randn(4, 3, dtype=torch.float32)
        w = torch.randn(3, 2, dtype=torch.float32)
        gradcheck(MyLinear.apply, (x, w))

Loading the plugin imports neither torch nor JAX (nor gradlab): the fixture imports gradlab
when a test uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["gradcheck"]


@pytest.fixture
def gradcheck() -> Callable[..., Any]:
    """``gradcheck(fn, inputs, **options)``: :func:`gradlab.assert_function_gradients`.

    Returns:
        The assertion function; it returns the CheckResult when the backward is right.
    """
    from gradlab.frameworks.function import assert_function_gradients

    return assert_function_gradients
