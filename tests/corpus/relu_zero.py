"""Two-layer ReLU net; example 0 is one-hot so units 0 and 2 get a pre-activation exactly 0."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "relu"


def init(seed):
    g = rng(seed)
    X, W1, b1 = g.normal(size=(8, 4)), g.normal(size=(4, 5)), g.normal(size=5)
    X[0] = [1.0, 0.0, 0.0, 0.0]
    b1[[0, 2]] = -W1[0, [0, 2]]  # z[0, 0] = z[0, 2] = 0 exactly
    p = {"W1": W1, "b1": b1, "W2": g.normal(size=(5, 2)), "b2": g.normal(size=2)}
    return p, X, g.normal(size=(8, 2))


def cost(p, X, Y):
    A = np.maximum(X @ p["W1"] + p["b1"], 0.0)
    return 0.5 * np.sum((A @ p["W2"] + p["b2"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    Z = X @ p["W1"] + p["b1"]
    A = np.maximum(Z, 0.0)
    dO = (A @ p["W2"] + p["b2"] - Y) / len(X)
    mask = {"missing_relu_deriv": 1.0, "mask_is_activation": A}.get(bug, Z > 0)
    dZ = (dO @ p["W2"].T) * mask
    dW2 = (Z if bug == "wrong_layer_input" else A).T @ dO
    return {"dW1": X.T @ dZ, "db1": dZ.sum(0), "dW2": dW2, "db2": dO.sum(0)}


BUGS = declare(gradients, {"missing_relu_deriv": ["W1", "b1"], "mask_is_activation": ["W1", "b1"],
                           "wrong_layer_input": ["W2"]})
