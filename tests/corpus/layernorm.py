"""Linear layer + layer norm over the features (gamma, beta) + a tanh readout."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "layer norm"
COMPLEX_SAFE = True
EPS = 1e-5


def init(seed):
    g = rng(seed)
    p = {"W": g.normal(size=(3, 5)), "b": g.normal(size=5), "gamma": 1 + 0.3 * g.normal(size=5),
         "beta": 0.5 * g.normal(size=5)}
    return p, g.normal(size=(6, 3)), g.normal(size=(6, 5))


def _normalise(Z, axis=1):
    centred = Z - Z.mean(axis, keepdims=True)
    std = np.sqrt(np.mean(centred**2, axis=axis, keepdims=True) + EPS)
    return centred / std, std


def cost(p, X, Y):
    xhat, _ = _normalise(X @ p["W"] + p["b"])
    return 0.5 * np.sum((np.tanh(p["gamma"] * xhat + p["beta"]) - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    xhat, std = _normalise(X @ p["W"] + p["b"])
    out = np.tanh(p["gamma"] * xhat + p["beta"])
    dpre = (out - Y) * (1 - out**2) / len(X)
    dx = dpre * p["gamma"]
    ax = 0 if bug == "backward_wrong_axis" else 1
    dZ = dx - dx.mean(ax, keepdims=True)
    if bug != "no_variance_term":
        dZ = dZ - xhat * (dx * xhat).mean(ax, keepdims=True)
    dZ = dZ / std
    dbeta = dpre.mean(0) if bug == "dbeta_mean" else dpre.sum(0)
    return {"dW": X.T @ dZ, "db": dZ.sum(0), "dgamma": (dpre * xhat).sum(0), "dbeta": dbeta}


BUGS = declare(gradients, {"backward_wrong_axis": ["W", "b"], "no_variance_term": ["W", "b"],
                           "dbeta_mean": ["beta"]})
