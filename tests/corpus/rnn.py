"""Unrolled tanh RNN, 4 steps, readout of the last state."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "rnn"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"Wx": 0.6 * g.normal(size=(2, 4)), "Wh": 0.5 * g.normal(size=(4, 4)),
         "b": 0.2 * g.normal(size=4), "Wy": g.normal(size=(4, 1))}
    return p, g.normal(size=(4, 3, 2)), g.normal(size=(3, 1))


def _states(p, X):
    hs = [np.zeros((X.shape[1], 4))]
    for x in X:
        hs.append(np.tanh(x @ p["Wx"] + hs[-1] @ p["Wh"] + p["b"]))
    return hs


def cost(p, X, Y):
    return 0.5 * np.sum((_states(p, X)[-1] @ p["Wy"] - Y) ** 2) / X.shape[1]


def gradients(p, X, Y, bug=None):
    hs = _states(p, X)
    dy = (hs[-1] @ p["Wy"] - Y) / X.shape[1]
    grads = {"dWx": 0.0, "dWh": 0.0, "db": 0.0, "dWy": hs[-1].T @ dy}
    dh = dy @ p["Wy"].T
    for t in range(len(X), 0, -1):
        h = hs[t]
        dz = dh * ((1 - h) if bug == "tanh_derivative_wrong" else (1 - h**2))
        grads["dWx"] = grads["dWx"] + X[t - 1].T @ dz
        grads["dWh"] = grads["dWh"] + hs[t - 1].T @ dz
        grads["db"] = grads["db"] + dz.sum(0)
        dh = 0.0 * dz[:, :4] if bug == "truncated_bptt" else dz @ p["Wh"].T
    if bug == "wh_transposed":
        grads["dWh"] = grads["dWh"].T
    return grads


BUGS = declare(gradients, {"tanh_derivative_wrong": ["Wx", "Wh", "b"],
                           "truncated_bptt": ["Wx", "Wh", "b"], "wh_transposed": ["Wh"]})
