"""Tied autoencoder: h = tanh(X W + c), reconstruction h W^T; W is used twice."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _corpus import declare, rng  # noqa: E402

FAMILY = "weight tying"
COMPLEX_SAFE = True


def init(seed):
    g = rng(seed)
    return {"W": 0.5 * g.normal(size=(4, 3)), "c": 0.1 * g.normal(size=3)}, g.normal(
        size=(8, 4)), None


def cost(p, X, _Y):
    H = np.tanh(X @ p["W"] + p["c"])
    return 0.5 * np.sum((H @ p["W"].T - X) ** 2) / len(X)


def gradients(p, X, _Y, bug=None):
    H = np.tanh(X @ p["W"] + p["c"])
    dR = (H @ p["W"].T - X) / len(X)
    dZ = (dR @ p["W"]) * (1 - H**2)
    decoder = 0.0 if bug == "encoder_only" else dR.T @ H
    encoder = 0.0 if bug == "decoder_only" else X.T @ dZ
    return {"dW": decoder + encoder, "dc": dZ.sum(0) * (-1 if bug == "dc_sign" else 1)}


BUGS = declare(gradients, {"encoder_only": ["W"], "decoder_only": ["W"], "dc_sign": ["c"]})
