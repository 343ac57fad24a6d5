"""Max-pooling (pairs) with exact ties, backward routes each window to its FIRST argmax."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, dyadic, rng  # noqa: E402

FAMILY = "max-pooling"


def init(seed):
    g = rng(seed)
    W, b = dyadic(g, (6, 4)), dyadic(g, 6)
    W[1], b[1] = W[0], b[0]  # units 0 and 1 tie in every example
    X = dyadic(g, (8, 4), lo=1, hi=8)  # positive inputs
    return {"W": W, "b": b, "c": g.normal(size=3)}, X, g.normal(size=8)


def cost(p, X, Y):
    H = X @ p["W"].T + p["b"]
    P = np.maximum(H[:, 0::2], H[:, 1::2])
    return 0.5 * np.sum((P @ p["c"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    H = X @ p["W"].T + p["b"]
    P = np.maximum(H[:, 0::2], H[:, 1::2])
    r = (P @ p["c"] - Y) / len(X)
    dP = np.outer(r, np.ones(3) if bug == "missing_c" else p["c"])
    first = H[:, 0::2] >= H[:, 1::2]
    route = np.stack([first, ~first], axis=2).reshape(H.shape).astype(float)
    if bug == "route_to_both":
        route = np.ones_like(H)
    dH = np.repeat(dP, 2, axis=1) * route
    dc = P.T @ r * (len(X) if bug == "dc_not_averaged" else 1)
    return {"dW": dH.T @ X, "db": dH.sum(0), "dc": dc}


BUGS = declare(gradients, {"route_to_both": ["W", "b"], "missing_c": ["W", "b"],
                           "dc_not_averaged": ["c"]})
