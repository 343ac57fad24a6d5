"""Softmax classifier with a learned temperature T (a scalar parameter, shape ())."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "scalar parameter"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(3, 4)), "T": np.array(1.5 + 0.2 * g.normal())}
    return p, g.normal(size=(9, 3)), g.integers(0, 4, size=9)


def _probs(p, X):
    E = np.exp(X @ p["W"] / p["T"])
    return E / E.sum(1, keepdims=True)


def cost(p, X, y):
    return -np.sum(np.log(_probs(p, X)[np.arange(len(y)), y])) / len(y)


def gradients(p, X, y, bug=None):
    S = X @ p["W"] / p["T"]
    dS = _probs(p, X)
    dS[np.arange(len(y)), y] -= 1.0
    dS /= len(y)
    dW = X.T @ dS / (1.0 if bug == "dW_missing_temperature" else p["T"])
    dT = np.sum(dS * S) / p["T"] * (1 if bug == "dT_sign" else -1)
    return {"dW": dW, "dT": np.array(dT)}


BUGS = declare(gradients, {"dW_missing_temperature": ["W"], "dT_sign": ["T"]})
