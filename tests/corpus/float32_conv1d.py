"""1-D convolution with a 3-D kernel (out, in, width) in float32, squared error."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "float32"


def init(seed):
    g = rng(seed)
    p = {"K": (0.5 * g.normal(size=(3, 3, 2))).astype(np.float32)}
    return p, g.normal(size=(2, 3, 7)).astype(np.float32), g.normal(size=(2, 3, 6)).astype(
        np.float32)


def _conv(K, X):
    return K[:, :, 0] @ X[:, :, :-1] + K[:, :, 1] @ X[:, :, 1:]


def cost(p, X, Y):
    return 0.5 * np.sum((_conv(p["K"], X) - Y) ** 2) / len(X)


def gradients(p, X, Y, bug=None):
    dZ = (_conv(p["K"], X) - Y) / len(X)
    dK = np.stack([np.einsum("not,nit->oi", dZ, X[:, :, :-1]),
                   np.einsum("not,nit->oi", dZ, X[:, :, 1:])], axis=2)
    return {"dK": {"flipped_kernel": dK[:, :, ::-1],
                   "axes_permuted": dK.transpose(1, 0, 2)}.get(bug, dK)}


BUGS = declare(gradients, {"flipped_kernel": ["K"], "axes_permuted": ["K"]})
