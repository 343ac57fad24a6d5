"""mean |XW + b - Y| on a dyadic grid with residual [0, 0] exactly 0: W[:, 0], b[0] on kinks."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, dyadic, rng  # noqa: E402

FAMILY = "abs loss"


def init(seed):
    g = rng(seed)
    p = {"W": dyadic(g, (4, 3)), "b": dyadic(g, 3)}
    X = dyadic(g, (6, 4))
    X[0] = [1.0, -0.5, 0.25, 2.0]  # no zero input: every W[:, 0] sees the kink
    Y = g.normal(size=(6, 3))
    Y[0, 0] = (X[0] @ p["W"][:, 0]) + p["b"][0]  # exact on the grid
    return p, X, Y


def cost(p, X, Y):
    return np.sum(np.abs(X @ p["W"] + p["b"] - Y)) / len(X)


def gradients(p, X, Y, bug=None):
    R = X @ p["W"] + p["b"] - Y
    S = np.sign(R) / len(X)
    if bug == "missing_1_over_m":
        S = S * len(X)
    dW = X.T @ S
    if bug == "wrong_element":
        dW[1, 2] = -dW[1, 2]
    return {"dW": dW, "db": S.sum(0)}


BUGS = declare(gradients, {"missing_1_over_m": ["W", "b"], "wrong_element": ["W"]})
