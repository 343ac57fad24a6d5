"""Least absolute deviations: mean |XW + b - Y| (generic data, no zero residual)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "abs loss"


def init(seed):
    g = rng(seed)
    return ({"W": g.normal(size=(4, 3)), "b": g.normal(size=3)}, g.normal(size=(10, 4)),
            g.normal(size=(10, 3)))


def cost(p, X, Y):
    return np.sum(np.abs(X @ p["W"] + p["b"] - Y)) / len(X)


def gradients(p, X, Y, bug=None):
    R = X @ p["W"] + p["b"] - Y
    S = {"residual_not_sign": R, "residual_sign_wrong": -np.sign(R)}.get(bug, np.sign(R)) / len(X)
    db = S.sum(0) * (len(X) if bug == "bias_not_averaged" else 1)
    return {"dW": X.T @ S, "db": db}


BUGS = declare(gradients, {"residual_not_sign": ["W", "b"], "residual_sign_wrong": ["W", "b"],
                           "bias_not_averaged": ["b"]})
