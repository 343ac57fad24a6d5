"""examples/my_model.py with a real bug: dW1 is 1.01x too large (tests of the sweep)."""

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
        "dW1": 1.01 * (d_h @ X.T),  # the bug: 1% too large
        "db1": d_h.sum(axis=1, keepdims=True),
        "dW2": d_out @ h.T,
        "db2": d_out.sum(axis=1, keepdims=True),
    }
