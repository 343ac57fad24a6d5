"""2-D convolution (valid, one channel, 3x3 kernel, scalar bias) + tanh + squared error."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "convolution"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"K": 0.5 * g.normal(size=(3, 3)), "c": np.array(0.1 * g.normal())}
    return p, g.normal(size=(2, 6, 6)), g.normal(size=(2, 4, 4))


def _patches(X):
    return {(i, j): X[:, i:i + 4, j:j + 4] for i in range(3) for j in range(3)}


def cost(p, X, Y):
    Z = sum(p["K"][ij] * w for ij, w in _patches(X).items()) + p["c"]
    return 0.5 * np.sum((np.tanh(Z) - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    patches = _patches(X)
    A = np.tanh(sum(p["K"][ij] * w for ij, w in patches.items()) + p["c"])
    dZ = (A - Y) * (1 - A**2) / len(X)
    dK = np.zeros((3, 3))
    for ij, w in patches.items():
        dK[ij] = np.sum(dZ * w)
    dK = {"flipped_kernel": dK[::-1, ::-1], "transposed_kernel": dK.T}.get(bug, dK)
    dc = np.array(dZ.sum() * (len(X) if bug == "bias_not_averaged" else 1))
    return {"dK": dK, "dc": dc}


BUGS = declare(gradients, {"flipped_kernel": ["K"], "transposed_kernel": ["K"],
                           "bias_not_averaged": ["c"]})
