"""Huber-loss regression (delta 1), generic residuals on both sides of delta."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "huber"
DELTA = 1.0


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(4, 2)), "b": g.normal(size=2)}
    X, Y = g.normal(size=(10, 4)), 2 * g.normal(size=(10, 2))
    return p, X, Y


def cost(p, X, Y):
    a = np.abs(X @ p["W"] + p["b"] - Y)
    return np.sum(np.where(a <= DELTA, 0.5 * a**2, DELTA * (a - 0.5 * DELTA))) / len(X)


def gradients(p, X, Y, bug=None):
    R = X @ p["W"] + p["b"] - Y
    limit = {"no_clip": np.inf, "clip_at_2_delta": 2 * DELTA}.get(bug, DELTA)
    dR = np.clip(R, -limit, limit) / len(X)
    db = dR.sum(0)
    if bug == "wrong_bias_element":
        db[1] = -db[1]
    return {"dW": X.T @ dR, "db": db}


BUGS = declare(gradients, {"no_clip": ["W", "b"], "clip_at_2_delta": ["W", "b"],
                           "wrong_bias_element": ["b"]})
