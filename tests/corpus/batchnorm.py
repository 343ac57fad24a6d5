"""Linear layer + batch norm over the batch (gamma, beta) + squared error."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "batch norm"
COMPLEX_SAFE = True
EPS = 1e-3


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(4, 3)), "gamma": 1 + 0.3 * g.normal(size=3),
         "beta": g.normal(size=3)}
    return p, g.normal(size=(8, 4)), g.normal(size=(8, 3))


def _normalise(Z):
    std = np.sqrt(np.mean((Z - Z.mean(0)) ** 2, axis=0) + EPS)
    return (Z - Z.mean(0)) / std, std


def cost(p, X, Y):
    xhat, _ = _normalise(X @ p["W"])
    return 0.5 * np.sum((p["gamma"] * xhat + p["beta"] - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    xhat, std = _normalise(X @ p["W"])
    dout = (p["gamma"] * xhat + p["beta"] - Y) / len(X)
    dx = dout * p["gamma"]
    if bug == "batch_stats_constant":
        dZ = dx / std
    elif bug == "no_variance_term":
        dZ = (dx - dx.mean(0)) / std
    else:
        dZ = (dx - dx.mean(0) - xhat * (dx * xhat).mean(0)) / std
    dgamma = dout.sum(0) if bug == "dgamma_without_xhat" else (dout * xhat).sum(0)
    return {"dW": X.T @ dZ, "dgamma": dgamma, "dbeta": dout.sum(0)}


BUGS = declare(gradients, {"batch_stats_constant": ["W"], "no_variance_term": ["W"],
                           "dgamma_without_xhat": ["gamma"]})
