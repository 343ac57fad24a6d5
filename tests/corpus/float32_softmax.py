"""Softmax cross-entropy in float32."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "float32"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(4, 3)).astype(np.float32), "b": g.normal(size=3).astype(np.float32)}
    return p, g.normal(size=(12, 4)).astype(np.float32), g.integers(0, 3, size=12)


def cost(p, X, y):
    E = np.exp(X @ p["W"] + p["b"])
    return -np.sum(np.log(E[np.arange(len(y)), y] / E.sum(1))) / len(y)


def gradients(p, X, y, bug=None):
    E = np.exp(X @ p["W"] + p["b"])
    dZ = E / E.sum(1, keepdims=True)
    if bug != "forgot_minus_one":
        dZ[np.arange(len(y)), y] -= 1.0
    dZ = dZ / len(y)
    dW = X.T @ dZ
    if bug == "wrong_element":
        dW[3, 2] = dW[2, 3 - 1]
    return {"dW": dW, "db": dZ.sum(0)}


BUGS = declare(gradients, {"forgot_minus_one": ["W", "b"], "wrong_element": ["W"]})
