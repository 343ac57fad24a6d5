"""1-D convolution (valid, 2 -> 2 channels, width 3; a 3-D kernel) + tanh + squared error."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "convolution"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"K": 0.5 * g.normal(size=(2, 2, 3)), "c": g.normal(size=2)}
    return p, g.normal(size=(3, 2, 8)), g.normal(size=(3, 2, 6))


def _windows(X, width):
    T = X.shape[2] - width + 1
    return [X[:, :, s:s + T] for s in range(width)]


def cost(p, X, Y):
    Z = sum(np.einsum("oi,nit->not", p["K"][:, :, s], w)
            for s, w in enumerate(_windows(X, 3))) + p["c"][:, None]
    return 0.5 * np.sum((np.tanh(Z) - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    wins = _windows(X, 3)
    Z = sum(np.einsum("oi,nit->not", p["K"][:, :, s], w) for s, w in enumerate(wins))
    A = np.tanh(Z + p["c"][:, None])
    dZ = (A - Y) * (1 - A**2) / len(X)
    dK = np.stack([np.einsum("not,nit->oi", dZ, w) for w in wins], axis=2)
    if bug == "flipped_kernel":
        dK = dK[:, :, ::-1]
    elif bug == "channels_swapped":
        dK = dK.transpose(1, 0, 2)
    dc = dZ.sum(axis=(0, 2)) / (dZ.shape[2] if bug == "bias_averaged_over_time" else 1)
    return {"dK": dK, "dc": dc}


BUGS = declare(gradients, {"flipped_kernel": ["K"], "channels_swapped": ["K"],
                           "bias_averaged_over_time": ["c"]})
