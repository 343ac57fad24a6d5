"""Logistic regression whose cost is in "dollars": scaled to about 1e8."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "cost scale"
COMPLEX_SAFE = True
SCALE = 1e8


def init(seed):
    g = rng(seed)
    p = {"w": g.normal(size=5), "b": np.array([0.3]), "v": g.normal(size=2)}
    return p, g.normal(size=(10, 5)), (g.normal(size=10) > 0).astype(float)


def _prob(p, X):
    z = X @ p["w"] + p["b"] + (X[:, :2] ** 2) @ p["v"]
    return 1 / (1 + np.exp(-z))


def cost(p, X, y):
    a = _prob(p, X)
    return -SCALE * np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)) / len(X)


def gradients(p, X, y, bug=None):
    dz = SCALE * (_prob(p, X) - y) / len(X)
    dv = (X[:, :2] ** (1 if bug == "square_not_differentiated" else 2)).T @ dz
    dw = X.T @ dz / (SCALE if bug == "scale_forgotten" else 1.0)
    return {"dw": dw, "db": np.array([dz.sum()]), "dv": dv}


BUGS = declare(gradients, {"square_not_differentiated": ["v"], "scale_forgotten": ["w"]})
