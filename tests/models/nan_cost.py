"""A model whose cost is NaN (log of a negative number)."""

import numpy as np


def init(seed):
    return {"w": -np.ones(3)}, None, None


def cost(p, X, Y):
    with np.errstate(invalid="ignore"):
        return float(np.sum(np.log(p["w"])))


def gradients(p, X, Y):
    return {"dw": 1 / p["w"]}
