"""Linear regression with an L1 penalty; two weights exactly 0 (kinks of |W|)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "l1 penalty"
LAM = 0.1


def init(seed):
    g = rng(seed)
    W = g.normal(size=(4, 3))
    W[0, 0] = W[2, 1] = 0.0
    return {"W": W, "b": g.normal(size=3)}, g.normal(size=(8, 4)), g.normal(size=(8, 3))


def cost(p, X, Y):
    R = X @ p["W"] + p["b"] - Y
    return 0.5 * np.sum(R**2) / len(X) + LAM * np.sum(np.abs(p["W"]))


def gradients(p, X, Y, bug=None):
    R = (X @ p["W"] + p["b"] - Y) / len(X)
    l1 = {"missing_l1": 0.0, "l2_instead_of_l1": LAM * p["W"]}.get(bug, LAM * np.sign(p["W"]))
    db = R.sum(0) * (len(X) if bug == "bias_not_averaged" else 1)
    return {"dW": X.T @ R + l1, "db": db}


BUGS = declare(gradients, {"missing_l1": ["W"], "l2_instead_of_l1": ["W"],
                           "bias_not_averaged": ["b"]})
