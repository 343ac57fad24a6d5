"""A user's own model as a benchmark would write it: a tanh network with a squared error.

``DIMS``, ``M`` and ``BUG`` are rewritten by benchmarks/bench_user_model.py for each
contender (64-128-64-1 with m 256 is P = 16,641; 1000-1000-1 with m 64 is P = 1,002,001).
``BUG``: None, "scale" (dW2 1.001x too large) or "one" (one element of dW1 wrong).
"""

import numpy as np

DIMS = (64, 128, 64, 1)
M = 256
BUG = None


def init(seed):
    """Weights scaled by 1/sqrt(fan-in), small biases, Gaussian data."""
    rng = np.random.default_rng(seed)
    p = {}
    for i in range(1, len(DIMS)):
        p[f"W{i}"] = rng.standard_normal((DIMS[i], DIMS[i - 1])) / np.sqrt(DIMS[i - 1])
        p[f"b{i}"] = rng.standard_normal((DIMS[i], 1)) * 0.1
    return p, rng.standard_normal((DIMS[0], M)), rng.standard_normal((1, M))


def _forward(p, X):
    A = [X]
    for i in range(1, len(DIMS)):
        Z = p[f"W{i}"] @ A[-1] + p[f"b{i}"]
        A.append(np.tanh(Z) if i < len(DIMS) - 1 else Z)
    return A


def cost(p, X, Y):
    """J = 1/(2m) sum((out - Y)^2)."""
    return float(np.sum((_forward(p, X)[-1] - Y) ** 2) / (2 * X.shape[1]))


def gradients(p, X, Y):
    """Backprop, with the bug named by BUG."""
    A = _forward(p, X)
    dZ = (A[-1] - Y) / X.shape[1]
    g = {}
    for i in range(len(DIMS) - 1, 0, -1):
        g[f"dW{i}"] = dZ @ A[i - 1].T
        g[f"db{i}"] = dZ.sum(axis=1, keepdims=True)
        if i > 1:
            dZ = (p[f"W{i}"].T @ dZ) * (1 - A[i - 1] ** 2)
    if BUG == "scale":
        g["dW2"] = g["dW2"] * 1.001
    elif BUG == "one":
        g["dW1"] = g["dW1"].copy()
        g["dW1"][7, 11] += 0.05 * np.abs(g["dW1"]).max()
    return g
