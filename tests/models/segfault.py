"""A cost that crashes with a segmentation fault (reads address 0 through ctypes)."""

import ctypes

import numpy as np


def init(seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(3)}, None, None


def cost(p, X, Y):
    ctypes.string_at(0)


def gradients(p, X, Y):
    return {"dw": 2 * p["w"]}
