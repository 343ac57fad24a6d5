"""A bring-your-own model whose dW is off by a factor 3 in row 1 only, and not complex-safe."""

import numpy as np


def init(seed):
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((3, 4)) * 0.5, "c": rng.standard_normal((3, 1)) * 0.1}
    X = rng.standard_normal((4, 6))
    Y = np.eye(3)[:, rng.integers(0, 3, 6)]
    return params, X, Y


def _probs(p, X):
    z = p["W"] @ X + p["c"]
    z = z - np.max(np.abs(z), axis=0, keepdims=True)  # abs(): breaks the complex step
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def cost(p, X, Y):
    return float(-np.sum(Y * np.log(_probs(p, X))) / X.shape[1])


def gradients(p, X, Y):
    d = (_probs(p, X) - Y) / X.shape[1]
    dW = d @ X.T
    dW[1] *= 3
    return {"dW": dW, "dc": d.sum(axis=1, keepdims=True)}
