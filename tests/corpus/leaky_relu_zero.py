"""Leaky ReLU (slope 0.1) layer with pre-activations of example 0 exactly 0."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "relu"
SLOPE = 0.1


def init(seed):
    g = rng(seed)
    X, W, b = g.normal(size=(8, 3)), g.normal(size=(3, 4)), g.normal(size=4)
    X[0] = [0.0, 1.0, 0.0]
    b[[1, 3]] = -W[1, [1, 3]]
    return {"W": W, "b": b, "v": g.normal(size=4)}, X, g.normal(size=8)


def cost(p, X, Y):
    z = X @ p["W"] + p["b"]
    return 0.5 * np.sum((np.where(z > 0, z, SLOPE * z) @ p["v"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    z = X @ p["W"] + p["b"]
    r = (np.where(z > 0, z, SLOPE * z) @ p["v"] - Y) / len(X)
    slope = 0.01 if bug == "backward_slope" else SLOPE
    dz = np.outer(r, p["v"]) * np.where(z > 0, 1.0, slope)
    dW = X.T @ dz
    if bug == "wrong_element":
        dW[0, 0] += dW[0, 1]
    return {"dW": dW, "db": dz.sum(0), "dv": np.where(z > 0, z, SLOPE * z).T @ r}


BUGS = declare(gradients, {"backward_slope": ["W", "b"], "wrong_element": ["W"]})
