"""A cost that allocates 64 GB (past any sane memory limit)."""

import numpy as np


def init(seed):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(3)}, None, None


def cost(p, X, Y):
    big = np.ones(8 << 30)  # 8 Gi float64 = 64 GiB
    return float(np.sum(p["w"] ** 2) + big[0])


def gradients(p, X, Y):
    return {"dw": 2 * p["w"]}
