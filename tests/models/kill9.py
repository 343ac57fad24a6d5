"""A cost that kills its own process with SIGKILL."""

import os

import numpy as np


def init(seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(3)}, None, None


def cost(p, X, Y):
    os.kill(os.getpid(), 9)


def gradients(p, X, Y):
    return {"dw": 2 * p["w"]}
