"""A bring-your-own model: softmax regression with a correct backward."""

import numpy as np

COMPLEX_SAFE = True


def init(seed):
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((3, 4)) * 0.5, "c": rng.standard_normal((3, 1)) * 0.1}
    X = rng.standard_normal((4, 6))
    Y = np.eye(3)[:, rng.integers(0, 3, 6)]
    return params, X, Y


def _probs(p, X):
    z = p["W"] @ X + p["c"]
    z = z - np.max(z.real, axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def cost(p, X, Y):
    return -np.sum(Y * np.log(_probs(p, X))) / X.shape[1]


def gradients(p, X, Y):
    d = (_probs(p, X) - Y) / X.shape[1]
    return {"dW": d @ X.T, "dc": d.sum(axis=1, keepdims=True)}
