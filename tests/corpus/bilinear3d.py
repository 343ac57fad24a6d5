"""Bilinear regression y_k = x^T T_k z + u_k with a 3-D tensor T (2, 3, 3)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "3-D tensor"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    p = {"T": g.normal(size=(2, 3, 3)), "u": g.normal(size=2)}
    return p, (g.normal(size=(6, 3)), g.normal(size=(6, 3))), g.normal(size=(6, 2))


def cost(p, X, Y):
    x, z = X
    return 0.5 * np.sum((np.einsum("kij,ni,nj->nk", p["T"], x, z) + p["u"] - Y) ** 2) / len(x)


def gradients(p, X, Y, bug=None):
    x, z = X
    r = (np.einsum("kij,ni,nj->nk", p["T"], x, z) + p["u"] - Y) / len(x)
    spec = "nk,nj,ni->kij" if bug == "x_z_swapped" else "nk,ni,nj->kij"
    dT = np.einsum(spec, r, x, z)
    du = r.sum(0) * (len(x) if bug == "du_not_averaged" else 1)
    return {"dT": dT, "du": du}


BUGS = declare(gradients, {"x_z_swapped": ["T"], "du_not_averaged": ["u"]})
