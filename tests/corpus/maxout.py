"""Maxout: 2 units, each the max of 3 affine pieces (a 3-D weight), generic data."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "max-pooling"


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(2, 3, 3)), "b": g.normal(size=(2, 3)), "c": g.normal(size=2)}
    return p, g.normal(size=(10, 3)), g.normal(size=10)


def cost(p, X, Y):
    Z = np.einsum("uki,ni->nuk", p["W"], X) + p["b"]
    return 0.5 * np.sum((Z.max(axis=2) @ p["c"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    Z = np.einsum("uki,ni->nuk", p["W"], X) + p["b"]
    P = Z.max(axis=2)
    r = (P @ p["c"] - Y) / len(X)
    win = np.zeros_like(Z)
    k = np.zeros(P.shape, int) if bug == "route_to_first_piece" else Z.argmax(axis=2)
    np.put_along_axis(win, k[:, :, None], 1.0, axis=2)
    dZ = win * np.outer(r, p["c"])[:, :, None]
    dc = -(P.T @ r) if bug == "dc_sign" else P.T @ r
    return {"dW": np.einsum("nuk,ni->uki", dZ, X), "db": dZ.sum(0), "dc": dc}


BUGS = declare(gradients, {"route_to_first_piece": ["W", "b"], "dc_sign": ["c"]})
