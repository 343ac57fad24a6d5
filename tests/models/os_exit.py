"""A cost that ends the process with os._exit(7)."""

import os

import numpy as np


def init(seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(3)}, None, None


def cost(p, X, Y):
    os._exit(7)


def gradients(p, X, Y):
    return {"dw": 2 * p["w"]}
