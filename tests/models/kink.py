"""J = sum(relu(w * x)) with one w*x just above zero: a kink lies within a 1e-3 step."""

import numpy as np

COMPLEX_SAFE = True


def init(seed):
    return {"w": np.array([1.0, -2.0, 2e-4, 0.5])}, np.array([1.0, 1.0, 1.0, 3.0]), None


def cost(p, x, _y):
    z = p["w"] * x
    return np.sum(np.where(np.real(z) > 0, z, 0) ** 2) + np.sum(np.where(np.real(z) > 0, z, 0))


def gradients(p, x, _y):
    z = p["w"] * x
    on = z > 0
    return {"dw": (2 * z * on + on) * x}
