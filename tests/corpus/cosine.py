"""Cosine-similarity loss 1 - cos(XW, Y) per example (normalisation by ||XW||)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "normalisation"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    return {"W": g.normal(size=(4, 3)), "b": g.normal(size=3)}, g.normal(size=(7, 4)), g.normal(
        size=(7, 3))


def _parts(p, X, Y):
    Z = X @ p["W"] + p["b"]
    nz = np.sqrt(np.sum(Z**2, 1, keepdims=True))
    ny = np.sqrt(np.sum(Y**2, 1, keepdims=True))
    return Z, nz, ny


def cost(p, X, Y):
    Z, nz, ny = _parts(p, X, Y)
    return np.sum(1 - np.sum(Z * Y, 1, keepdims=True) / (nz * ny)) / len(X)


def gradients(p, X, Y, bug=None):
    Z, nz, ny = _parts(p, X, Y)
    cos = np.sum(Z * Y, 1, keepdims=True) / (nz * ny)
    dZ = -Y / (nz * ny)
    if bug != "norm_held_constant":
        dZ = dZ + cos * Z / nz**2
    dZ = dZ / len(X)
    db = dZ.sum(0)
    if bug == "wrong_element":
        db[2] = 0.0
    return {"dW": X.T @ dZ, "db": db}


BUGS = declare(gradients, {"norm_held_constant": ["W", "b"], "wrong_element": ["b"]})
