"""Softmax cross-entropy classifier (3 classes)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "softmax cross-entropy"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(4, 3)), "b": 0.5 * g.normal(size=3)}
    return p, g.normal(size=(10, 4)), g.integers(0, 3, size=10)


def _probs(p, X):
    E = np.exp(X @ p["W"] + p["b"])
    return E / E.sum(1, keepdims=True)


def cost(p, X, y):
    return -np.sum(np.log(_probs(p, X)[np.arange(len(y)), y])) / len(y)


def gradients(p, X, y, bug=None):
    dZ = _probs(p, X)
    label = (y + 1) % 3 if bug == "label_off_by_one" else y
    dZ[np.arange(len(y)), label] -= 1.0
    dZ = dZ / (1 if bug == "missing_1_over_m" else len(y))
    db = dZ.sum(0)
    if bug == "wrong_bias_element":
        db[0] = db[1]
    return {"dW": X.T @ dZ, "db": db}


BUGS = declare(gradients, {"label_off_by_one": ["W", "b"], "missing_1_over_m": ["W", "b"],
                           "wrong_bias_element": ["b"]})
