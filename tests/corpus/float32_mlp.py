"""A tanh MLP in float32 (parameters and data single precision)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "float32"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"W1": g.normal(size=(4, 5)), "b1": g.normal(size=5), "W2": g.normal(size=(5, 2)),
         "b2": g.normal(size=2)}
    single = {k: v.astype(np.float32) for k, v in p.items()}
    return single, g.normal(size=(8, 4)).astype(np.float32), g.normal(size=(8, 2)).astype(
        np.float32)


def cost(p, X, Y):
    A = np.tanh(X @ p["W1"] + p["b1"])
    return 0.5 * np.sum((A @ p["W2"] + p["b2"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    A = np.tanh(X @ p["W1"] + p["b1"])
    dO = (A @ p["W2"] + p["b2"] - Y) / len(X)
    dZ = (dO @ p["W2"].T) * ((1 - A) if bug == "tanh_derivative_wrong" else (1 - A**2))
    db2 = dO.sum(0) * (0 if bug == "db2_zero" else 1)
    return {"dW1": X.T @ dZ, "db1": dZ.sum(0), "dW2": A.T @ dO, "db2": db2.astype(np.float32)}


BUGS = declare(gradients, {"tanh_derivative_wrong": ["W1", "b1"], "db2_zero": ["b2"]})
