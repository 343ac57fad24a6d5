"""Single-head attention softmax(Q K^T / sqrt(d)) V on 4 tokens + squared error."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "attention"
COMPLEX_SAFE = True
D = 2


def init(seed):
    g = rng(seed)
    p = {k: g.normal(size=(3, D)) for k in ("Wq", "Wk", "Wv")}
    return p, g.normal(size=(4, 3)), g.normal(size=(4, D))


def _forward(p, X):
    Q, K, V = X @ p["Wq"], X @ p["Wk"], X @ p["Wv"]
    E = np.exp(Q @ K.T / np.sqrt(D))
    return Q, K, V, E / E.sum(1, keepdims=True)


def cost(p, X, Y):
    *_, V, A = _forward(p, X)
    return 0.5 * np.sum((A @ V - Y) ** 2)


def gradients(p, X, Y, bug=None):
    Q, K, V, A = _forward(p, X)
    dO = A @ V - Y
    dA = dO @ V.T
    dS = A * dA if bug == "softmax_no_subtract" else A * (dA - np.sum(dA * A, 1, keepdims=True))
    dS = dS * (1.0 if bug == "missing_scale" else 1 / np.sqrt(D))
    dQ, dK = (dS.T @ K, dS @ Q) if bug == "qk_roles_exchanged" else (dS @ K, dS.T @ Q)
    return {"dWq": X.T @ dQ, "dWk": X.T @ dK, "dWv": X.T @ (A.T @ dO)}


BUGS = declare(gradients, {"softmax_no_subtract": ["Wq", "Wk"], "missing_scale": ["Wq", "Wk"],
                           "qk_roles_exchanged": ["Wq", "Wk"]})
