"""Gaussian regression with a learned log standard deviation s (a scalar parameter)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "scalar parameter"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"w": g.normal(size=3), "s": np.array(0.2 * g.normal())}
    return p, g.normal(size=(10, 3)), g.normal(size=10)


def cost(p, X, Y):
    R = X @ p["w"] - Y
    return np.sum(0.5 * np.exp(-2 * p["s"]) * R**2 + p["s"]) / len(X)


def gradients(p, X, Y, bug=None):
    R = X @ p["w"] - Y
    prec = 1.0 if bug == "dw_missing_precision" else np.exp(-2 * p["s"])
    ds = np.mean(-np.exp(-2 * p["s"]) * R**2 + (0 if bug == "ds_missing_log_term" else 1))
    return {"dw": X.T @ (prec * R) / len(X), "ds": np.array(ds)}


BUGS = declare(gradients, {"dw_missing_precision": ["w"], "ds_missing_log_term": ["s"]})
