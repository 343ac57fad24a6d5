"""An example bring-your-own model for ``gradlab check`` and the sweep.

A two-layer tanh network for regression with a mean squared error cost. gradlab needs three
functions (and accepts two optional extras):

    init(seed) -> (params, X, Y)       params: dict of numpy arrays, checked in key order
    cost(params, X, Y) -> float
    gradients(params, X, Y) -> dict     one gradient per parameter, keyed "dW1" (or "W1")

    COMPLEX_SAFE = True                 cost() accepts complex parameters (complex-step method)

Copy this file, replace the network by yours, and point the sweep's config at it::

    models:
      - {name: my_model, kind: file, path: examples/my_model.py}

Every cell of such a model appears in the report: its verdict per method and step, the blocks
that disagree with their diagnosis, and (should ``init``, ``cost`` or ``gradients`` raise or
return NaN) the cell marked failed or non-finite with the reason.
"""

import numpy as np

COMPLEX_SAFE = True


def init(seed):
    """Parameters, inputs and targets drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    params = {
        "W1": rng.standard_normal((4, 3)) * 0.5,
        "b1": rng.standard_normal((4, 1)) * 0.1,
        "W2": rng.standard_normal((2, 4)) * 0.5,
        "b2": rng.standard_normal((2, 1)) * 0.1,
    }
    X = rng.standard_normal((3, 5))
    Y = rng.standard_normal((2, 5))
    return params, X, Y


def _forward(p, X):
    h = np.tanh(p["W1"] @ X + p["b1"])
    return h, p["W2"] @ h + p["b2"]


def cost(p, X, Y):
    """J = 1/(2m) * sum((Yhat - Y)^2)."""
    _, out = _forward(p, X)
    return np.sum((out - Y) ** 2) / (2 * X.shape[1])


def gradients(p, X, Y):
    """Backprop of :func:`cost`, written by hand."""
    m = X.shape[1]
    h, out = _forward(p, X)
    d_out = (out - Y) / m
    d_h = (p["W2"].T @ d_out) * (1 - h**2)
    return {
        "dW1": d_h @ X.T,
        "db1": d_h.sum(axis=1, keepdims=True),
        "dW2": d_out @ h.T,
        "db2": d_out.sum(axis=1, keepdims=True),
    }
