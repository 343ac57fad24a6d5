"""Weighted linear SVM: hinge c max(0, 1 - y(Xw + b)) + L2; the bias b is a scalar (shape ())."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "hinge loss"
LAM = 0.05


def init(seed):
    g = rng(seed)
    X = g.normal(size=(12, 4))
    y = np.where(g.normal(size=12) > 0, 1.0, -1.0)
    c = g.uniform(0.5, 1.5, size=12)  # example weights
    return {"w": g.normal(size=4), "b": np.array(g.normal())}, X, (y, c)


def cost(p, X, Y):
    y, c = Y
    margin = y * (X @ p["w"] + p["b"])
    return np.sum(c * np.maximum(0.0, 1.0 - margin)) / len(X) + 0.5 * LAM * np.sum(p["w"] ** 2)


def gradients(p, X, Y, bug=None):
    y, c = Y
    margin = y * (X @ p["w"] + p["b"])
    active = margin < (0.0 if bug == "mask_at_zero" else 1.0)
    dm = -(c * y * active) / len(X)
    reg = 0.0 if bug == "missing_l2" else LAM * p["w"]
    db = np.array(-dm.sum() if bug == "bias_sign" else dm.sum())
    return {"dw": X.T @ dm + reg, "db": db}


BUGS = declare(gradients, {"mask_at_zero": ["w", "b"], "missing_l2": ["w"], "bias_sign": ["b"]})
