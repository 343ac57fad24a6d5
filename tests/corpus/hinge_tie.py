"""Hinge loss on a dyadic grid where the margin of example 0 is exactly 1 (a kink)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, dyadic, rng  # noqa: E402

FAMILY = "hinge loss"


def init(seed):
    g = rng(seed)
    X = dyadic(g, (8, 3))
    X[0] = [0.5, -1.0, 0.25]
    w = dyadic(g, 3)
    y = np.where(g.normal(size=8) > 0, 1.0, -1.0)
    b = np.array([y[0] - X[0] @ w])  # y0 * (x0 w + b) == 1 exactly (y0 = +-1)
    c = g.uniform(0.5, 1.5, size=8)  # example weights (the margin stays exact)
    return {"w": w, "b": b}, X, (y, c)


def cost(p, X, Y):
    y, c = Y
    return np.sum(c * np.maximum(0.0, 1.0 - y * (X @ p["w"] + p["b"]))) / len(X)


def gradients(p, X, Y, bug=None):
    y, c = Y
    active = y * (X @ p["w"] + p["b"]) < 1.0
    dm = -(c * y * active) / len(X)
    dw = X.T @ dm
    if bug == "wrong_element":
        dw[2] *= 2.0
    db = np.array([dm.sum()]) * (len(X) if bug == "bias_not_averaged" else 1)
    return {"dw": dw, "db": db}


BUGS = declare(gradients, {"wrong_element": ["w"], "bias_not_averaged": ["b"]})
