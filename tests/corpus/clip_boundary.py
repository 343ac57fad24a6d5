"""clip(XW + b, -1, 1) with pre-activations of example 0 exactly at +1 (the clip boundary)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "clipping"


def init(seed):
    g = rng(seed)
    X, W, b = g.normal(size=(8, 3)), 2.0 * g.normal(size=(3, 4)), g.normal(size=4)
    X[0], W[0], b[:] = [1.0, 0.0, 0.0], 0.5, 0.5  # z[0, :] = 0.5 + 0.5 == 1 exactly
    return {"W": W, "b": b, "v": g.normal(size=4)}, X, g.normal(size=8)


def cost(p, X, Y):
    h = np.clip(X @ p["W"] + p["b"], -1.0, 1.0)
    return 0.5 * np.sum((h @ p["v"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    z = X @ p["W"] + p["b"]
    h = np.clip(z, -1.0, 1.0)
    r = (h @ p["v"] - Y) / len(X)
    inside = {"missing_clip_mask": np.ones_like(z), "mask_only_upper": z < 1.0}.get(
        bug, (z > -1.0) & (z < 1.0))
    dz = np.outer(r, p["v"]) * inside
    dv = (z if bug == "dv_uses_preactivation" else h).T @ r
    return {"dW": X.T @ dz, "db": dz.sum(0), "dv": dv}


BUGS = declare(gradients, {"missing_clip_mask": ["W", "b"], "mask_only_upper": ["W", "b"],
                           "dv_uses_preactivation": ["v"]})
